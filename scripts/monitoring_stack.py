#!/usr/bin/env python3
"""A local monitoring stack: ``drift-monitor serve`` with Prometheus and a Pushgateway beside it.

Started by ``scripts/monitoring``. Runs Debian's ``prometheus`` and ``prometheus-pushgateway``
on loopback, Prometheus with the repository's rules (``monitoring/prometheus``) scraping the
monitor's ``/metrics`` (with ``DRIFT_MONITOR_API_KEY`` as bearer token when set) and the
gateway, prints the URLs, and on Ctrl-C (or when one of them exits) stops exactly the processes
it started. Data (Prometheus TSDB, gateway persistence, the monitor's SQLite file) stays in
``--workdir`` (default ``.drift-monitor/monitoring``).

Grafana is not packaged here: import ``monitoring/grafana/drift-monitor.json`` into any Grafana
and point its Prometheus data source at the printed Prometheus URL (``docs/metrics.md``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import FrameType

REPO = Path(__file__).resolve().parent.parent
RULES = REPO / "monitoring" / "prometheus" / "drift-monitor.rules.yml"
DASHBOARD = REPO / "monitoring" / "grafana" / "drift-monitor.json"


def binary(name: str) -> str:
    found = shutil.which(name) or (
        f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None
    )
    if found is None:
        raise SystemExit(f"monitoring: {name} not found; apt-get install {name}")
    return found


def port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"monitoring: {process.args[0]} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"monitoring: {url} did not answer within {timeout:g} s")


def prometheus_config(args: argparse.Namespace, api_key: str | None) -> str:
    serve = {
        "job_name": "drift_monitor",
        "metrics_path": "/metrics",
        "static_configs": [{"targets": [f"{args.host}:{args.serve_port}"]}],
    }
    if api_key:
        serve["authorization"] = {"type": "Bearer", "credentials": api_key}
    config = {
        "global": {
            "scrape_interval": args.scrape_interval,
            "evaluation_interval": args.scrape_interval,
        },
        "rule_files": [str(RULES)],
        "scrape_configs": [
            serve,
            {
                "job_name": "pushgateway",
                "honor_labels": True,  # keep the pushed job and grouping labels
                "static_configs": [{"targets": [f"{args.host}:{args.pushgateway_port}"]}],
            },
        ],
    }
    import json

    return json.dumps(config, indent=2)  # JSON is YAML


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/monitoring", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--serve-port", type=int, default=8080)
    parser.add_argument("--prometheus-port", type=int, default=9090)
    parser.add_argument("--pushgateway-port", type=int, default=9091)
    parser.add_argument("--scrape-interval", default="15s")
    parser.add_argument("--detect-every", default="60", help="seconds between detection runs")
    parser.add_argument("--workdir", type=Path, default=REPO / ".drift-monitor" / "monitoring")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    prometheus, pushgateway = binary("prometheus"), binary("prometheus-pushgateway")
    for name in ("serve_port", "prometheus_port", "pushgateway_port"):
        port = getattr(args, name)
        if not port_free(args.host, port):
            print(f"monitoring: {args.host}:{port} is in use (--{name.replace('_', '-')})",
                  file=sys.stderr)  # fmt: skip
            return 2
    workdir = args.workdir.resolve()
    (workdir / "prometheus").mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text(prometheus_config(args, os.environ.get("DRIFT_MONITOR_API_KEY")))
    logs = (workdir / "stack.log").open("ab")
    started: list[subprocess.Popen[bytes]] = []

    def start(command: list[str]) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(command, stdout=logs, stderr=logs, start_new_session=True)
        started.append(process)
        return process

    stopping = False

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        gateway = start([pushgateway, f"--web.listen-address={args.host}:{args.pushgateway_port}",
                         f"--persistence.file={workdir / 'pushgateway.data'}"])  # fmt: skip
        serve = start([sys.executable, "-m", "drift_monitor.cli", "serve", "--host", args.host,
                       "--port", str(args.serve_port), "--detect-every", args.detect_every,
                       "--data-dir", str(workdir / "data")])  # fmt: skip
        prom = start([prometheus, f"--config.file={config}",
                      f"--storage.tsdb.path={workdir / 'prometheus'}",
                      f"--web.listen-address={args.host}:{args.prometheus_port}"])  # fmt: skip
        base = f"http://{args.host}"
        wait_ready(f"{base}:{args.pushgateway_port}/-/ready", gateway)
        wait_ready(f"{base}:{args.serve_port}/healthz", serve)
        wait_ready(f"{base}:{args.prometheus_port}/-/ready", prom)
        print(f"drift-monitor  {base}:{args.serve_port}/  (metrics: /metrics)")
        print(f"Prometheus     {base}:{args.prometheus_port}/  (rules: /rules, alerts: /alerts)")
        print(f"Pushgateway    {base}:{args.pushgateway_port}/")
        print(f"Grafana        import {DASHBOARD.relative_to(REPO)} with the Prometheus data "
              f"source {base}:{args.prometheus_port} (docs/metrics.md)")  # fmt: skip
        print(f"logs and data  {workdir}   (Ctrl-C stops the three)", flush=True)
        while not stopping and all(p.poll() is None for p in started):
            time.sleep(0.2)
        exited = [p for p in started if p.poll() is not None]
        if exited and not stopping:
            print(f"monitoring: {exited[0].args[0]} exited ({exited[0].returncode}); stopping",
                  file=sys.stderr)  # fmt: skip
            return 1
        return 0
    finally:
        for process in reversed(started):
            if process.poll() is None:
                process.terminate()
        for process in reversed(started):
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        logs.close()
        print("monitoring: stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
