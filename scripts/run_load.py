#!/usr/bin/env python3
"""Run ``tests/load/locustfile.py`` headless for a bounded time and summarise it.

    .venv/bin/python scripts/run_load.py [--duration 60] [--users 10] [--spawn-rate 5]
        [--port 18310] [--host URL] [--detect-every 30]

Without ``--host`` it starts ``drift-monitor serve`` (SQLite in a temporary folder, in-process
bus and statistics, detection every ``--detect-every`` seconds) on ``--port`` and stops it
afterwards; with ``--host`` it targets a running deployment (for example the
functions-framework stack). Prints one summary line: requests, requests/s, p50/p95/p99
latency in milliseconds and the error count, then per-request-type lines. Exit status 1 when
any request failed.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOCUSTFILE = REPO / "tests" / "load" / "locustfile.py"


@dataclass(frozen=True)
class Summary:
    name: str
    requests: int
    failures: int
    rps: float
    p50: float
    p95: float
    p99: float

    def line(self) -> str:
        return (
            f"{self.name:34s} {self.requests:8d} req {self.rps:8.1f} req/s  p50 {self.p50:7.0f} ms"
            f"  p95 {self.p95:7.0f} ms  p99 {self.p99:7.0f} ms  errors {self.failures}"
        )


def wait_healthy(port: int, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("drift-monitor serve exited before becoming healthy")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("drift-monitor serve did not become healthy")


def read_stats(path: Path) -> list[Summary]:
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))

    def number(row: dict[str, str], key: str) -> float:
        value = row.get(key) or "0"
        return float(value) if value != "N/A" else 0.0

    return [
        Summary(
            name=row["Name"] if row["Name"] != "Aggregated" else "all requests",
            requests=int(number(row, "Request Count")),
            failures=int(number(row, "Failure Count")),
            rps=number(row, "Requests/s"),
            p50=number(row, "50%"),
            p95=number(row, "95%"),
            p99=number(row, "99%"),
        )
        for row in rows
    ]


def run(
    *,
    duration: int,
    users: int,
    spawn_rate: float,
    port: int,
    host: str | None = None,
    detect_every: float = 30.0,
) -> list[Summary]:
    """Run the load test; the last summary is the aggregate over every request."""
    with tempfile.TemporaryDirectory(prefix="drift-load-") as tmp:
        server: subprocess.Popen[bytes] | None = None
        if host is None:
            env = {**os.environ, "DRIFT_MONITOR_DATA_DIR": str(Path(tmp) / "data")}
            env.pop("DATABASE_URL", None)
            env.pop("REDIS_URL", None)
            cmd = [sys.executable, "-m", "drift_monitor.cli", "serve", "--port", str(port)]
            cmd += ["--detect-every", str(detect_every)]
            log = (Path(tmp) / "serve.log").open("wb")
            server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
            host = f"http://127.0.0.1:{port}"
        try:
            if server is not None:
                wait_healthy(port, server)
            prefix = Path(tmp) / "locust"
            cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless"]
            cmd += ["-u", str(users), "-r", str(spawn_rate), "-t", f"{duration}s"]
            cmd += ["--host", host, "--csv", str(prefix), "--only-summary", "--stop-timeout", "10"]
            cmd += ["--loglevel", "WARNING"]
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 120)
            stats = prefix.with_name("locust_stats.csv")
            if not stats.exists():
                raise SystemExit(f"locust wrote no statistics:\n{done.stderr[-2000:]}")
            return read_stats(stats)
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=60, help="seconds (default 60)")
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--spawn-rate", type=float, default=5.0)
    parser.add_argument("--port", type=int, default=18310, help="port for embedded serve")
    parser.add_argument("--host", default=None, help="target this URL instead of serve")
    parser.add_argument("--detect-every", type=float, default=30.0)
    args = parser.parse_args(argv)
    summaries = run(
        duration=args.duration,
        users=args.users,
        spawn_rate=args.spawn_rate,
        port=args.port,
        host=args.host,
        detect_every=args.detect_every,
    )
    total = summaries[-1]
    print(f"{args.users} users for {args.duration} s against {args.host or 'embedded serve'}")
    for summary in summaries[:-1]:
        print("  " + summary.line())
    print(total.line())
    return 1 if total.failures else 0


if __name__ == "__main__":
    sys.exit(main())
