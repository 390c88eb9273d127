"""The GCP Workflows in workflows/ parse, call routes that exist, and run under workflows-emulator.

Runs use the workflows' local authentication mode (``DRIFT_MONITOR_AUTH=local``: the key from
``DRIFT_MONITOR_KEY``, no ID token), because the emulator cannot mint Google ID tokens or reach
Secret Manager. Two targets: a loopback server that records every request (exact paths and
bodies, retries on 503, no retry on 403), and the real ``drift-monitor serve`` app (marked
``e2e``): batches ingested over HTTP, statistics rebuilt, a baseline pinned, detection run.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from deploy_support import WORKFLOWS

workflows_main = pytest.importorskip("workflows_emulator.main")

WORKFLOW_FILES = sorted(WORKFLOWS.glob("*.yaml"))
EXPECTED = {"backfill", "baseline_refresh", "scheduled_detection"}


def run_workflow(name: str, args: dict[str, Any]) -> Any:
    config = workflows_main.load_workflow(str(WORKFLOWS / f"{name}.yaml"))
    return workflows_main.execute_workflow(config, {"args": args})


def _routes() -> dict[str, set[str]]:
    """Route templates ("/models/{model_id}/baseline") served by each HTTP function, POST only."""
    from drift_monitor.entrypoints import api_http, detect_http

    found: dict[str, set[str]] = {}
    for service, urls in (("api", api_http.URLS), ("detect", detect_http.URLS)):
        for rule in urls.iter_rules():
            if "POST" in (rule.methods or ()):
                found.setdefault(service, set()).add(
                    re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
                )
    return found


def _template(expr: str) -> str:
    """'${"/models/" + model_id + "/baseline"}' -> '/models/{model_id}/baseline'."""
    if not expr.startswith("${"):
        return expr
    parts = [p.strip() for p in expr[2:-1].split("+")]
    out = ""
    for part in parts:
        if part.startswith('"') and part.endswith('"'):
            out += part[1:-1]
        else:
            out += "{" + part.split(".")[-1] + "}"
    return out


def _calls(node: Any) -> Iterator[dict[str, Any]]:
    """Every `call: call_function` step's args in a parsed workflow."""
    if isinstance(node, dict):
        if node.get("call") == "call_function":
            yield node["args"]
        for value in node.values():
            yield from _calls(value)
    elif isinstance(node, list):
        for value in node:
            yield from _calls(value)


def _assigned_paths(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "path" and isinstance(value, str) and value != "${path}":
                yield value
            yield from _assigned_paths(value)
    elif isinstance(node, list):
        for value in node:
            yield from _assigned_paths(value)


# --------------------------------------------------------------------------------------------
# Static checks
# --------------------------------------------------------------------------------------------


def test_the_expected_workflows_exist() -> None:
    assert {p.stem for p in WORKFLOW_FILES} == EXPECTED


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.stem)
def test_workflow_is_valid_workflows_yaml(path: Path) -> None:
    # load_workflow validates against the Workflows JSON schema shipped with the emulator
    config = workflows_main.load_workflow(str(path))
    assert "main" in config and config["main"]["params"] == ["args"]
    text = path.read_text()
    # credentials: ID token for Cloud Run IAM, key for the app, retries on transient failures
    assert "generateIdToken" in text and "X-Serverless-Authorization" in text
    assert "retry:" in text and "predicate: ${transient}" in text


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.stem)
def test_workflow_calls_existing_routes_on_the_right_function(path: Path) -> None:
    routes = _routes()
    parsed = yaml.safe_load(path.read_text())
    calls = list(_calls(parsed))
    assert calls, f"{path.name} calls no function"
    for args in calls:
        service = {"${api_url}": "api", "${detect_url}": "detect"}[args["base_url"]]
        if args["path"] == "${path}":
            templates = [_template(p) for p in _assigned_paths(parsed)]
        else:
            templates = [_template(args["path"])]
        for template in templates:
            assert template in routes[service], f"{path.name}: {service} has no POST {template}"


# --------------------------------------------------------------------------------------------
# Runs against a recording loopback server
# --------------------------------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.fail_next: list[int] = []  # statuses to answer before succeeding


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    rec = Recorder()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"null")
            rec.calls.append(
                {"path": self.path, "body": body, "auth": self.headers.get("Authorization")}
            )
            status = rec.fail_next.pop(0) if rec.fail_next else 200
            payload = json.dumps({"path": self.path, "status": status}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    monkeypatch.setenv("API_URL", base + "/api")
    monkeypatch.setenv("DETECT_URL", base + "/detect")
    monkeypatch.setenv("DRIFT_MONITOR_AUTH", "local")
    monkeypatch.setenv("DRIFT_MONITOR_KEY", "admin-key")
    yield rec
    server.shutdown()
    server.server_close()


def test_backfill_rebuilds_then_detects(recorder: Recorder) -> None:
    args = {
        "model_id": "org/model-a",
        "start": "2024-05-01T00:00:00Z",
        "end": "2024-05-08T00:00:00Z",
    }
    result = run_workflow("backfill", args)
    assert [c["path"] for c in recorder.calls] == [
        "/api/models/org/model-a/rebuild-stats",
        "/detect/drift/check/org/model-a",
    ]
    assert recorder.calls[0]["body"] == {"start": args["start"], "end": args["end"]}
    assert recorder.calls[1]["body"] == {}
    assert {c["auth"] for c in recorder.calls} == {"Bearer admin-key"}
    assert result["rebuild"]["path"] == "/api/models/org/model-a/rebuild-stats"
    assert result["detection"]["path"] == "/detect/drift/check/org/model-a"


def test_backfill_without_a_range_sends_an_empty_body(recorder: Recorder) -> None:
    run_workflow("backfill", {"model_id": "m"})
    assert recorder.calls[0]["body"] == {}


def test_transient_failures_are_retried(recorder: Recorder) -> None:
    recorder.fail_next = [503]
    run_workflow("backfill", {"model_id": "m"})
    paths = [c["path"] for c in recorder.calls]
    assert paths == ["/api/models/m/rebuild-stats"] * 2 + ["/detect/drift/check/m"]


def test_a_refused_request_fails_the_workflow_without_retrying(recorder: Recorder) -> None:
    recorder.fail_next = [403]
    with pytest.raises(Exception) as raised:
        run_workflow("backfill", {"model_id": "m"})
    assert "403" in str(raised.value)
    assert [c["path"] for c in recorder.calls] == ["/api/models/m/rebuild-stats"]


def test_baseline_refresh_pins_then_detects(recorder: Recorder) -> None:
    args = {
        "model_id": "bert-base",
        "start": "2024-05-08T00:00:00Z",
        "end": "2024-05-09T00:00:00Z",
        "approved_by": "alice@example.com",
        "change": "v2 rollout",
    }
    result = run_workflow("baseline_refresh", args)
    assert [(c["path"], c["body"]) for c in recorder.calls] == [
        ("/api/models/bert-base/baseline", {"start": args["start"], "end": args["end"]}),
        ("/detect/drift/check/bert-base", {}),
    ]
    assert result["approved_by"] == "alice@example.com"


@pytest.mark.parametrize("missing", ["model_id", "start", "end", "approved_by"])
def test_baseline_refresh_refuses_without_every_argument(recorder: Recorder, missing: str) -> None:
    args = {"model_id": "m", "start": "2024-05-08T00:00:00Z", "end": "2024-05-09T00:00:00Z"}
    args["approved_by"] = "alice"
    del args[missing]
    with pytest.raises(Exception, match=missing):
        run_workflow("baseline_refresh", args)
    assert recorder.calls == []


def test_scheduled_detection_checks_every_model_or_one(recorder: Recorder) -> None:
    run_workflow("scheduled_detection", {})
    run_workflow("scheduled_detection", {"model_id": "org/m"})
    assert [c["path"] for c in recorder.calls] == [
        "/detect/drift/check",
        "/detect/drift/check/org/m",
    ]


# --------------------------------------------------------------------------------------------
# Runs against the real app (drift-monitor serve)
# --------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _post(base: str, path: str, body: Any, key: str) -> tuple[int, Any]:
    request = urllib.request.Request(
        base + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


@pytest.fixture
def served_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    port = _free_port()
    env = {
        **os.environ,
        "DRIFT_MONITOR_API_KEY": "api-key",
        "DRIFT_MONITOR_ADMIN_KEY": "admin-key",
        "DRIFT_MONITOR_ENV": "local",
    }
    for name in ("DATABASE_URL", "REDIS_URL", "PROMETHEUS_GATEWAY", "GCS_BUCKET"):
        env.pop(name, None)
    command = Path(sys.executable).with_name("drift-monitor")
    process = subprocess.Popen(
        [str(command), "serve", "--port", str(port), "--detect-every", "0",
         "--data-dir", str(tmp_path / "data")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                stderr = process.stderr.read().decode() if process.stderr else ""
                pytest.fail(f"drift-monitor serve did not come up: {stderr[-2000:]}")
            time.sleep(0.2)
        monkeypatch.setenv("API_URL", base)
        monkeypatch.setenv("DETECT_URL", base)
        monkeypatch.setenv("DRIFT_MONITOR_AUTH", "local")
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()


@pytest.mark.e2e
def test_workflows_against_drift_monitor_serve(
    served_app: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = served_app
    model = "org/encoder-v1"
    # Statistics live in hourly buckets and a rebuild covers whole buckets, so the batches sit
    # mid-hour and the range ends on an hour: the outcome must not depend on the wall clock.
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    rng = np.random.default_rng(7)
    for hours_ago in (5, 4, 3, 2):
        batch = {
            "model_id": model,
            "timestamp": (hour - timedelta(hours=hours_ago, minutes=-30)).isoformat(),
            "embeddings": rng.normal(size=(50, 16)).round(5).tolist(),
        }
        status, answer = _post(base, "/embeddings/batch", batch, "api-key")
        assert status == 202, answer

    # backfill needs the admin key: with the API key the app refuses and the workflow fails
    monkeypatch.setenv("DRIFT_MONITOR_KEY", "api-key")
    with pytest.raises(Exception, match="403"):
        run_workflow("backfill", {"model_id": model})

    monkeypatch.setenv("DRIFT_MONITOR_KEY", "admin-key")
    start = (hour - timedelta(hours=6)).isoformat()
    end = (hour - timedelta(hours=2)).isoformat()  # covers the batches 4.5, 3.5 and 2.5 hours ago
    result = run_workflow("backfill", {"model_id": model, "start": start, "end": end})
    assert result["rebuild"] == {"model_id": model, "folded": 150}
    assert [r["model_id"] for r in result["detection"]["results"]] == [model]

    result = run_workflow(
        "baseline_refresh",
        {"model_id": model, "start": start, "end": end, "approved_by": "alice@example.com"},
    )
    assert result["baseline"]["baseline"]["pinned"] is True
    assert result["baseline"]["embeddings"] == 150
    assert result["detection"]["results"][0]["model_id"] == model

    monkeypatch.setenv("DRIFT_MONITOR_KEY", "api-key")
    every = run_workflow("scheduled_detection", {})
    assert [r["model_id"] for r in every["results"]] == [model]
