"""scripts/monitoring: serve, Prometheus with the rules and a Pushgateway start, are scraped,
and stop (all three, only them) on Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def get(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as response:
        data: dict[str, object] = json.loads(response.read())["data"]
        return data


@pytest.mark.timeout(180)
def test_stack_starts_scrapes_with_rules_and_stops_what_it_started(
    tmp_path: Path, prometheus: str
) -> None:
    serve, prom, gateway = free_ports(3)
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "PROMETHEUS_GATEWAY")}  # fmt: skip
    env["DRIFT_MONITOR_API_KEY"] = "stack-test-key-0123456789"  # scraped with it as bearer
    process = subprocess.Popen(
        [sys.executable, str(REPO / "scripts" / "monitoring_stack.py"),
         "--serve-port", str(serve), "--prometheus-port", str(prom),
         "--pushgateway-port", str(gateway), "--scrape-interval", "1s",
         "--detect-every", "0", "--workdir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    assert process.stdout is not None
    printed = []
    try:
        for line in process.stdout:
            printed.append(line)
            if line.startswith("logs and data"):
                break
        text = "".join(printed)
        for port in (serve, prom, gateway):
            assert f"http://127.0.0.1:{port}/" in text, text
        assert "monitoring/grafana/drift-monitor.json" in text
        base = f"http://127.0.0.1:{prom}/api/v1"
        deadline = time.monotonic() + 60
        health: dict[str, str] = {}
        while time.monotonic() < deadline:
            targets = get(f"{base}/targets")["activeTargets"]
            health = {t["labels"]["job"]: t["health"] for t in targets}  # type: ignore[attr-defined]
            if health == {"drift_monitor": "up", "pushgateway": "up"}:
                break
            time.sleep(0.5)
        assert health == {"drift_monitor": "up", "pushgateway": "up"}
        groups = {g["name"] for g in get(f"{base}/rules")["groups"]}  # type: ignore[attr-defined]
        assert groups == {"drift_monitor_recording", "drift_monitor_alerts"}
    finally:
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
    assert process.returncode == 0, rest
    assert "monitoring: stopped" in rest
    for port in (serve, prom, gateway):
        assert not listening(port), port


def test_a_busy_port_is_refused_before_starting_anything(tmp_path: Path, prometheus: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [sys.executable, str(REPO / "scripts" / "monitoring_stack.py"),
             "--prometheus-port", str(port), "--serve-port", str(free_ports(1)[0]),
             "--pushgateway-port", str(free_ports(1)[0]), "--workdir", str(tmp_path)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert done.returncode == 2
    assert f"127.0.0.1:{port} is in use (--prometheus-port)" in done.stderr
    assert not (tmp_path / "prometheus.yml").exists()
