#!/usr/bin/env python3
"""The whole monitor in two minutes: baseline, same-distribution, drift, recovery, report.

Starts ``drift-monitor serve`` in a temporary data directory with API keys, and a loopback
webhook receiver configured as the model's ``alert_webhook``; then

1. sends baseline traffic (real sentence embeddings of WordNet noun definitions from
   ``../shared/data`` when present, otherwise synthetic vectors) dated two hours ago and pins
   the baseline to that range;
2. sends more nouns now and runs detection: status ``ok``, no alert;
3. sends verbs instead of nouns (another kind of traffic) and runs detection: status ``drift`` with
   scores, and the webhook receives the alert;
4. sends nouns again: status ``ok`` (after a second window at most), the webhook receives
   the resolve;
5. draws ``drift-monitor report`` to ``demo-report.png`` in the system's temporary folder
   (``--out docs/images/demo-report.png`` redraws the picture the README shows).

The current window is set to 15 seconds so the phases don't take hours; the demo waits one
window between phases so each check only sees that phase's traffic.

Usage: ``python scripts/demo.py [--out PATH.png] [--keep]``; the checkout is left unchanged
unless ``--out`` points into it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"
MODEL = "demo/all-MiniLM-L6-v2"
API_KEY = "demo-api-key-0123456789abcdef"
ADMIN_KEY = "demo-admin-key-0123456789abcdef"
WINDOW_SECONDS = 15.0


class Webhook:
    """A loopback Slack-style webhook that remembers what it received."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.messages.append(json.loads(body or b"{}"))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/drift"

    def wait_for(self, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.messages


def load_vectors(seed: int = 7) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], str]:
    """Noun and verb embeddings (real when ../shared/data exists, else synthetic)."""
    nouns_file, verbs_file = (
        DATA / "wordnet_noun_minilm384.npy",
        DATA / "wordnet_verb_minilm384.npy",
    )
    rng = np.random.default_rng(seed)
    if nouns_file.exists() and verbs_file.exists():
        nouns, verbs = np.load(nouns_file), np.load(verbs_file)
        return rng.permutation(nouns), rng.permutation(verbs), "WordNet nouns/verbs (MiniLM)"
    nouns = rng.normal(size=(3000, 64)).astype(np.float32)
    verbs = (rng.normal(size=(1500, 64)) + 0.5).astype(np.float32)
    return nouns, verbs, "synthetic (../shared/data not found)"


class Client:
    def __init__(self, base: str) -> None:
        self.base = base

    def call(self, method: str, path: str, body: Any = None, key: str = API_KEY) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise SystemExit(f"{method} {path} -> {exc.code}: {exc.read().decode()}") from exc

    def send(self, vectors: np.ndarray[Any, Any], when: datetime) -> None:
        for start in range(0, len(vectors), 200):
            self.call(
                "POST",
                "/embeddings/batch",
                {
                    "model_id": MODEL,
                    "embeddings": vectors[start : start + 200].tolist(),
                    "timestamp": when.isoformat(),
                    "metadata": {"source": "demo"},
                },
            )

    def check(self) -> dict[str, Any]:
        result: dict[str, Any] = self.call("POST", f"/drift/check/{MODEL}")["results"][0]
        return result


def start_server(data_dir: Path) -> tuple[subprocess.Popen[str], str]:
    env = {
        **os.environ,
        "DRIFT_MONITOR_ENV": "local",
        "DRIFT_MONITOR_API_KEY": API_KEY,
        "DRIFT_MONITOR_ADMIN_KEY": ADMIN_KEY,
        "ALERT_COOLDOWN_MINUTES": "30",
    }
    for name in ("DATABASE_URL", "REDIS_URL", "PROMETHEUS_GATEWAY", "PAGERDUTY_ROUTING_KEY"):
        env.pop(name, None)
    command = [
        sys.executable,
        "-m",
        "drift_monitor.cli",
        "serve",
        "--port",
        "0",
        "--data-dir",
        str(data_dir),
        "--detect-every",
        "0",
    ]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        match = re.search(r"serving on (http://[\d.]+:\d+)", line)
        if match:
            # keep draining the log so the server never blocks on a full pipe
            threading.Thread(
                target=lambda: [None for _ in process.stdout],  # type: ignore[union-attr]
                daemon=True,
            ).start()
            return process, match.group(1)
    process.kill()
    raise SystemExit("drift-monitor serve did not start")


def show(phase: str, result: dict[str, Any]) -> None:
    samples = result["samples"]
    print(
        f"[{phase}] status={result['status']} drift_detected={result['drift_detected']} "
        f"n_baseline={samples['baseline']} n_current={samples['current']}"
    )
    if result.get("kl_divergence") is not None:
        print(
            f"    kl_divergence={result['kl_divergence']:.4g} "
            f"confidence_interval={result.get('confidence_interval')}"
        )
    for name, test in sorted((result.get("tests") or {}).items()):
        if isinstance(test.get("statistic"), int | float):
            verdict = "DRIFT" if test.get("drift") else "ok"
            print(
                f"    {name:7s} statistic={test['statistic']:.4g} p={test.get('p_value')} {verdict}"
            )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(tempfile.gettempdir()) / "drift-monitor-demo" / "demo-report.png",
        help="where to draw the report (default: the temporary folder; the README's picture "
        "is docs/images/demo-report.png)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    return parser


def main() -> int:
    args = build_parser().parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)

    nouns, verbs, source = load_vectors()
    print(f"embeddings: {source}, dimension {nouns.shape[1]}")
    data_dir = Path(tempfile.mkdtemp(prefix="drift-demo-"))
    hook = Webhook()
    server, base = start_server(data_dir)
    api = Client(base)
    print(f"drift-monitor serve on {base} (data in {data_dir}); webhook at {hook.url}")
    failures = 0
    try:
        now = datetime.now(UTC)
        api.send(nouns[:800], now - timedelta(hours=2))
        api.call(
            "POST",
            f"/models/{MODEL}/config",
            {
                "current_window_minutes": WINDOW_SECONDS / 60,
                "min_samples": 100,
                "alert_webhook": hook.url,
                "statistical_test": None,
            },
            key=ADMIN_KEY,
        )
        pinned = api.call(
            "POST",
            f"/models/{MODEL}/baseline",
            {
                "start": (now - timedelta(hours=3)).isoformat(),
                "end": (now - timedelta(hours=1)).isoformat(),
            },
            key=ADMIN_KEY,
        )
        print(f"baseline pinned: {pinned['embeddings']} embeddings")

        api.send(nouns[800:1100], datetime.now(UTC))
        same = api.check()
        show("same distribution", same)
        failures += same["status"] != "ok" or len(hook.messages) != 0

        time.sleep(WINDOW_SECONDS + 1)
        # the traffic turns into another kind: paged at the first run that sees it (a small
        # share of new traffic pages after evidence accumulates over hours: see backtest)
        api.send(verbs[:300], datetime.now(UTC))
        drift = api.check()
        show("verbs instead of nouns", drift)
        messages = hook.wait_for(1)
        print(
            f"    webhook received {len(messages)} message(s): "
            f"{messages[0]['text'] if messages else '-'}"
        )
        failures += drift["status"] != "drift" or len(messages) != 1

        time.sleep(WINDOW_SECONDS + 1)
        api.send(nouns[1250:1850], datetime.now(UTC))
        back = api.check()
        if back["status"] == "drift":  # recovery needs 100:1 evidence; one more window at most
            api.send(nouns[1850:2450], datetime.now(UTC))
            back = api.check()
        show("back to normal", back)
        messages = hook.wait_for(2)
        print(
            f"    webhook received {len(messages)} message(s) in total: "
            f"{messages[-1]['text'] if len(messages) > 1 else '-'}"
        )
        failures += back["status"] != "ok" or len(messages) != 2
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        hook.server.shutdown()
    report = subprocess.run(
        [
            sys.executable,
            "-m",
            "drift_monitor.cli",
            "report",
            MODEL,
            "--out",
            str(args.out),
            "--data-dir",
            str(data_dir),
        ],
        check=False,
        env={k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
    )
    if not args.keep:
        import shutil

        shutil.rmtree(data_dir, ignore_errors=True)
    if report.returncode == 0:
        print(f"report drawn to {args.out}")
    print("demo " + ("passed" if failures == 0 and report.returncode == 0 else "FAILED"))
    return 0 if failures == 0 and report.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
