"""The GCP Workflows in workflows/ parse, call routes that exist, and run under workflows-emulator.

Most runs use the workflows' local authentication mode (``DRIFT_MONITOR_AUTH=local``: the key
from ``DRIFT_MONITOR_KEY``, no ID token). The GCP mode runs too, with the one Google call it
makes (IAM Credentials ``generateIdToken``) answered in-process by :class:`TokenService`, which
signs ID tokens as that call documents them with a throw-away key and publishes the certificate
the monitor verifies them against. Two targets: a loopback server that records every request
(exact paths, bodies and both authorization headers, retries on 503, no retry on 403), and the
real ``drift-monitor serve`` app (marked ``e2e``): batches ingested over HTTP, statistics
rebuilt, a baseline pinned, detection run, with keys and with ID tokens alone.
"""

from __future__ import annotations

import functools
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
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from deploy_support import WORKFLOWS, assigned_paths, function_calls, path_template
from google.auth import crypt, jwt
from google.auth.transport.requests import AuthorizedSession
from support.processes import stop_process

workflows_main = pytest.importorskip("workflows_emulator.main")
http_utils = pytest.importorskip("workflows_emulator.lib.http_utils")

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
    # credentials: one ID token for Cloud Run IAM and the app, no key secret; retries
    assert "generateIdToken" in text and "X-Serverless-Authorization" in text
    assert "secretmanager" not in text
    assert "retry:" in text and "predicate: ${transient}" in text


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.stem)
def test_workflow_calls_existing_routes_on_the_right_function(path: Path) -> None:
    routes = _routes()
    parsed = yaml.safe_load(path.read_text())
    calls = list(function_calls(parsed))
    assert calls, f"{path.name} calls no function"
    for args in calls:
        service = {"${api_url}": "api", "${detect_url}": "detect"}[args["base_url"]]
        if args["path"] == "${path}":
            templates = [path_template(p) for p in assigned_paths(parsed)]
        else:
            templates = [path_template(args["path"])]
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
                {
                    "path": self.path,
                    "body": body,
                    "auth": self.headers.get("Authorization"),
                    "serverless_auth": self.headers.get("X-Serverless-Authorization"),
                }
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
    run_workflow("scheduled_detection", {"fanout": True})
    run_workflow("scheduled_detection", {"fanout": False})
    assert [c["path"] for c in recorder.calls] == [
        "/detect/drift/check",
        "/detect/drift/check/org/m",
        "/detect/drift/check?fanout=true",
        "/detect/drift/check",
    ]


# --------------------------------------------------------------------------------------------
# GCP authentication mode: ID tokens from an in-process generateIdToken
# --------------------------------------------------------------------------------------------

WORKFLOWS_ACCOUNT = "drift-workflows@my-project.iam.gserviceaccount.com"
READER_ACCOUNT = "drift-reader@my-project.iam.gserviceaccount.com"
GENERATE_ID_TOKEN = "googleapis.iamcredentials.v1.projects.serviceAccounts.generateIdToken"
KID = "workflows-test-key"


@dataclass
class Minted:
    account: str
    audience: str
    include_email: bool
    token: str


@dataclass
class TokenService:
    """IAM Credentials ``generateIdToken`` and Google's certificate endpoint, on loopback.

    The emulator runs ``googleapis.*`` connector steps with ``StepCall.execute_connector``,
    which would call Google with local credentials (and has no discovery document for IAM
    Credentials); the fixture swaps in :meth:`connector`, which signs an ID token as
    ``generateIdToken`` documents it: issuer Google, ``aud`` the requested audience, ``email``
    and ``email_verified`` with ``includeEmail``. The certificate of the throw-away key is
    served like https://www.googleapis.com/oauth2/v1/certs, so ``drift-monitor serve`` with
    ``GOOGLE_ID_TOKEN_CERTS_URL`` pointing here verifies the tokens with its production code.
    """

    private_pem: bytes
    certificate_pem: str
    certs_url: str = ""
    minted: list[Minted] = field(default_factory=list)

    def connector(self, rendered_step: dict[str, Any]) -> dict[str, Any]:
        assert rendered_step["call"] == GENERATE_ID_TOKEN, f"unexpected {rendered_step['call']}"
        name = rendered_step["args"]["name"]
        prefix = "projects/-/serviceAccounts/"
        assert name.startswith(prefix), name
        account = name.removeprefix(prefix)
        body = rendered_step["args"]["body"]
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": "https://accounts.google.com",
            "aud": body["audience"],
            "azp": "100000000000000000001",
            "sub": "100000000000000000001",
            "iat": now,
            "exp": now + 3600,
        }
        if body.get("includeEmail"):
            claims.update(email=account, email_verified=True)
        signer = crypt.RSASigner.from_string(self.private_pem, key_id=KID)
        token = jwt.encode(signer, claims).decode()
        self.minted.append(Minted(account, body["audience"], bool(body.get("includeEmail")), token))
        return {"token": token}


@pytest.fixture(scope="module")
def signing_key() -> tuple[bytes, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "workflows test")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return private_pem, certificate.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture
def tokens(
    signing_key: tuple[bytes, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[TokenService]:
    service = TokenService(*signing_key)
    certs = json.dumps({KID: service.certificate_pem}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Cache-Control", "public, max-age=3600")
            self.send_header("Content-Length", str(len(certs)))
            self.end_headers()
            self.wfile.write(certs)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    service.certs_url = f"http://127.0.0.1:{server.server_port}/oauth2/v1/certs"
    monkeypatch.setattr(workflows_main.StepCall, "execute_connector", service.connector)
    # In Workflows GOOGLE_CLOUD_SERVICE_ACCOUNT_NAME is a built-in variable naming the workflow's
    # account; the emulator also reads it as "impersonate this account on every http.* call"
    # (through Google), which these loopback calls must not do.
    monkeypatch.setattr(http_utils, "IMPERSONATED_SA", "DRIFT_TEST_NO_IMPERSONATION")
    # The emulator's session would answer a 401 by refreshing its (anonymous) credentials and
    # fail with that instead; Workflows raises the 401 itself.
    monkeypatch.setattr(
        http_utils,
        "AuthorizedSession",
        functools.partial(AuthorizedSession, refresh_status_codes=()),
    )
    # GCP mode, as the workflow runs in Workflows: no local switch, no key anywhere
    monkeypatch.delenv("DRIFT_MONITOR_AUTH", raising=False)
    monkeypatch.delenv("DRIFT_MONITOR_KEY", raising=False)
    monkeypatch.setenv("GOOGLE_CLOUD_SERVICE_ACCOUNT_NAME", WORKFLOWS_ACCOUNT)
    yield service
    server.shutdown()
    server.server_close()


def test_gcp_mode_sends_one_fresh_id_token_for_the_called_function_in_both_headers(
    recorder: Recorder, tokens: TokenService
) -> None:
    recorder.fail_next = [503]
    run_workflow("backfill", {"model_id": "m"})
    api, detect = os.environ["API_URL"], os.environ["DETECT_URL"]
    # one token per attempt (the retry mints a new one), each for the function it is sent to
    assert [(m.account, m.audience, m.include_email) for m in tokens.minted] == [
        (WORKFLOWS_ACCOUNT, api, True),
        (WORKFLOWS_ACCOUNT, api, True),
        (WORKFLOWS_ACCOUNT, detect, True),
    ]
    assert [c["path"] for c in recorder.calls] == [
        "/api/models/m/rebuild-stats",
        "/api/models/m/rebuild-stats",
        "/detect/drift/check/m",
    ]
    for call, minted in zip(recorder.calls, tokens.minted, strict=True):
        assert call["auth"] == call["serverless_auth"] == f"Bearer {minted.token}"


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


@contextmanager
def serving(data_dir: Path, port: int, settings: dict[str, str]) -> Iterator[str]:
    """``drift-monitor serve`` on loopback with ``settings`` in its environment; its base URL."""
    env = {**os.environ, "DRIFT_MONITOR_ENV": "local", **settings}
    for name in ("DATABASE_URL", "REDIS_URL", "PROMETHEUS_GATEWAY", "GCS_BUCKET"):
        env.pop(name, None)
    command = Path(sys.executable).with_name("drift-monitor")
    process = subprocess.Popen(
        [str(command), "serve", "--port", str(port), "--detect-every", "0",
         "--data-dir", str(data_dir)],
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
        yield base
    finally:
        stop_process(process)
        if process.stderr:
            process.stderr.close()


@pytest.fixture
def served_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    keys = {"DRIFT_MONITOR_API_KEY": "api-key", "DRIFT_MONITOR_ADMIN_KEY": "admin-key"}
    with serving(tmp_path / "data", _free_port(), keys) as base:
        monkeypatch.setenv("API_URL", base)
        monkeypatch.setenv("DETECT_URL", base)
        monkeypatch.setenv("DRIFT_MONITOR_AUTH", "local")
        yield base


def _ingest_hourly_batches(base: str, model: str, hour: datetime) -> None:
    """Batches of 50 vectors 4.5, 3.5, 2.5 and 1.5 hours before ``hour``."""
    rng = np.random.default_rng(7)
    for hours_ago in (5, 4, 3, 2):
        batch = {
            "model_id": model,
            "timestamp": (hour - timedelta(hours=hours_ago, minutes=-30)).isoformat(),
            "embeddings": rng.normal(size=(50, 16)).round(5).tolist(),
        }
        status, answer = _post(base, "/embeddings/batch", batch, "api-key")
        assert status == 202, answer


@pytest.mark.e2e
def test_workflows_against_drift_monitor_serve(
    served_app: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = served_app
    model = "org/encoder-v1"
    # Statistics live in hourly buckets and a rebuild covers whole buckets, so the batches sit
    # mid-hour and the range ends on an hour: the outcome must not depend on the wall clock.
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    _ingest_hourly_batches(base, model, hour)

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


@pytest.mark.e2e
def test_workflows_against_drift_monitor_serve_with_id_tokens_alone(
    tmp_path: Path, tokens: TokenService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GCP mode end to end: the app verifies the workflows' tokens; no key reaches a workflow.

    The app has an API key only for ingesting the test batches; the workflows never see it.
    The workflows account is an admin invoker, a second account an API-role invoker.
    """
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    settings = {
        "DRIFT_MONITOR_API_KEY": "api-key",
        "GOOGLE_ID_TOKEN_AUDIENCE": base,
        "GOOGLE_ID_TOKEN_CERTS_URL": tokens.certs_url,
        "DRIFT_MONITOR_ADMIN_INVOKERS": WORKFLOWS_ACCOUNT,
        "DRIFT_MONITOR_INVOKERS": READER_ACCOUNT,
    }
    with serving(tmp_path / "data", port, settings):
        monkeypatch.setenv("API_URL", base)
        monkeypatch.setenv("DETECT_URL", base)
        model = "org/encoder-v1"
        hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        _ingest_hourly_batches(base, model, hour)
        start = (hour - timedelta(hours=6)).isoformat()
        end = (hour - timedelta(hours=2)).isoformat()

        # an account in no allowlist is refused (401), one with the API role may detect but
        # not rebuild (403)
        monkeypatch.setenv(
            "GOOGLE_CLOUD_SERVICE_ACCOUNT_NAME", "stranger@my-project.iam.gserviceaccount.com"
        )
        with pytest.raises(Exception, match="401"):
            run_workflow("scheduled_detection", {})
        monkeypatch.setenv("GOOGLE_CLOUD_SERVICE_ACCOUNT_NAME", READER_ACCOUNT)
        with pytest.raises(Exception, match="403"):
            run_workflow("backfill", {"model_id": model})
        every = run_workflow("scheduled_detection", {})
        assert [r["model_id"] for r in every["results"]] == [model]

        # the workflows account has the admin role: every workflow goes through
        monkeypatch.setenv("GOOGLE_CLOUD_SERVICE_ACCOUNT_NAME", WORKFLOWS_ACCOUNT)
        result = run_workflow("backfill", {"model_id": model, "start": start, "end": end})
        assert result["rebuild"] == {"model_id": model, "folded": 150}
        assert [r["model_id"] for r in result["detection"]["results"]] == [model]
        result = run_workflow(
            "baseline_refresh",
            {"model_id": model, "start": start, "end": end, "approved_by": "alice@example.com"},
        )
        assert result["baseline"]["baseline"]["pinned"] is True
        every = run_workflow("scheduled_detection", {})
        assert [r["model_id"] for r in every["results"]] == [model]
    assert {m.audience for m in tokens.minted} == {base}
