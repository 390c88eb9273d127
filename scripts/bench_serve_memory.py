#!/usr/bin/env python3
"""Bounded memory: ``drift-monitor serve`` under sustained ingest keeps its RSS under a ceiling.

    nice -n 10 .venv/bin/python scripts/bench_serve_memory.py [--gib 2] [--clients 8]
        [--rows 500] [--dim 384] [--ceiling-mib 1024] [--port 0]

Starts ``drift-monitor serve`` (embedded defaults: SQLite in a temporary data directory,
in-process bus and statistics, detection disabled so only ingest is measured) and has
``--clients`` threads post ``--rows`` x ``--dim`` float32 ``.npy`` batches, each with its own
batch id and the current time, until ``--gib`` GiB of vectors were accepted. The server's
resident set size is read from ``/proc/PID/status`` every 0.2 s. Prints the volume, rate and
RSS at start, peak and end, and exits 1 when the peak passes ``--ceiling-mib`` or a batch was
not accepted. Before the embedded bus stopped keeping every message, 8 clients took the
server from 149 MB to 5 GB in 120 s. Linux only (``/proc``). Not part of the test suite: it
writes ``--gib`` GiB to the temporary SQLite file (deleted at the end).
"""

from __future__ import annotations

import argparse
import io
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def rss_mib(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", text, re.M)
    return int(match.group(1)) / 1024 if match else float("nan")


def start_server(data_dir: Path, port: int) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "drift_monitor.cli", "serve", "--port", str(port),
         "--data-dir", str(data_dir), "--detect-every", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        match = re.search(r"serving on (http://[\d.]+:\d+)", line)
        if match:
            threading.Thread(
                target=lambda: [None for _ in process.stdout or ()], daemon=True
            ).start()
            return process, match.group(1)
    process.kill()
    raise SystemExit("drift-monitor serve did not start")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--gib", type=float, default=2.0, help="GiB of vectors to send")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--ceiling-mib", type=float, default=1024.0)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    np.save(buffer, rng.normal(size=(args.rows, args.dim)).astype(np.float32))
    body = buffer.getvalue()
    vector_bytes = args.rows * args.dim * 4
    batches = int(np.ceil(args.gib * 2**30 / vector_bytes))

    data_dir = Path(tempfile.mkdtemp(prefix="drift-bench-memory-"))
    server, base = start_server(data_dir, args.port)
    pid = server.pid
    time.sleep(1.0)
    start_rss = rss_mib(pid)
    peak = [start_rss]
    samples: list[tuple[float, float]] = []
    done = threading.Event()

    def watch() -> None:
        t0 = time.monotonic()
        while not done.is_set():
            value = rss_mib(pid)
            peak[0] = max(peak[0], value)
            samples.append((time.monotonic() - t0, value))
            time.sleep(0.2)

    lock = threading.Lock()
    next_batch = [0]
    failures: list[str] = []

    def client() -> None:
        while True:
            with lock:
                index = next_batch[0]
                if index >= batches or failures:
                    return
                next_batch[0] += 1
            request = urllib.request.Request(
                f"{base}/embeddings/batch?model_id=bench/encoder&batch_id=b{index}",
                data=body,
                method="POST",
                headers={"Content-Type": "application/x-npy"},
            )
            try:
                with urllib.request.urlopen(request, timeout=120) as response:
                    if response.status != 202:
                        failures.append(f"batch {index}: HTTP {response.status}")
            except Exception as exc:
                failures.append(f"batch {index}: {exc}")

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    started = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(args.clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    time.sleep(1.0)
    end_rss = rss_mib(pid)
    done.set()
    watcher.join()
    server.send_signal(signal.SIGINT)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
    db_bytes = sum(f.stat().st_size for f in data_dir.rglob("*") if f.is_file())
    shutil.rmtree(data_dir, ignore_errors=True)

    sent = next_batch[0] * vector_bytes
    print(
        f"sent {sent / 2**30:.2f} GiB of float32 vectors in {next_batch[0]} batches of "
        f"{args.rows} x {args.dim} from {args.clients} clients in {elapsed:.0f} s "
        f"({sent / 2**20 / elapsed:.1f} MiB/s); SQLite file {db_bytes / 2**30:.2f} GiB"
    )
    print(
        f"server RSS: start {start_rss:.0f} MiB, peak {peak[0]:.0f} MiB, end {end_rss:.0f} MiB "
        f"(ceiling {args.ceiling_mib:.0f} MiB)"
    )
    quarter = [v for t, v in samples if t <= elapsed / 4]
    if quarter:
        print(
            f"peak in the first quarter of the run {max(quarter):.0f} MiB, "
            f"over the whole run {peak[0]:.0f} MiB"
        )
    if failures:
        print(f"FAILED: {len(failures)} batches not accepted, first: {failures[0]}")
        return 1
    if peak[0] > args.ceiling_mib:
        print("FAILED: the peak RSS passed the ceiling")
        return 1
    print("bounded: the peak RSS stayed under the ceiling")
    return 0


if __name__ == "__main__":
    sys.exit(main())
