"""Google ID tokens as a credential, with real signatures and no mocks of google-auth.

A throw-away RSA key and self-signed certificate stand in for Google's: a loopback HTTP server
publishes ``{kid: PEM certificate}`` as Google's certificate endpoint does, and
``GOOGLE_ID_TOKEN_CERTS_URL`` points at it. Tokens are signed with google-auth's own signer, so
the code under test runs exactly the verification it runs in production.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest
from api_support import ADMIN, API, Api
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from drift_monitor.config import Settings
from drift_monitor.entrypoints import auth
from google.auth import crypt, jwt
from google.auth.transport.requests import Request as RequestsRequest

AUDIENCE = "https://drift-detect-123456789.europe-west1.run.app"
OTHER_AUDIENCE = "https://europe-west1-my-project.cloudfunctions.net/drift-detect"
INVOKER = "scheduler@my-project.iam.gserviceaccount.com"
ADMIN_INVOKER = "backfill@my-project.iam.gserviceaccount.com"
KID = "test-key-1"


@dataclass
class SigningKey:
    private_pem: bytes
    certificate_pem: str

    @classmethod
    def generate(cls, name: str) -> SigningKey:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.now(UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=1))
            .sign(key, hashes.SHA256())
        )
        private_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return cls(private_pem, certificate.public_bytes(serialization.Encoding.PEM).decode())

    def token(self, kid: str = KID, **claims: Any) -> str:
        """A signed ID token; claims default to a valid one for INVOKER, None drops a claim."""
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": "https://accounts.google.com",
            "aud": AUDIENCE,
            "azp": "112233445566778899",
            "sub": "112233445566778899",
            "email": INVOKER,
            "email_verified": True,
            "iat": now,
            "exp": now + 3600,
        }
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        signer = crypt.RSASigner.from_string(self.private_pem, key_id=kid)
        return jwt.encode(signer, payload).decode()


@dataclass
class CertsServer:
    """Serves the certificates like https://www.googleapis.com/oauth2/v1/certs."""

    certs: dict[str, str]
    cache_control: str = "public, max-age=3600, must-revalidate, no-transform"
    gets: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def serve(self) -> ThreadingHTTPServer:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with outer.lock:
                    outer.gets += 1
                body = json.dumps(outer.certs).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Cache-Control", outer.cache_control)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{server.server_address[1]}/oauth2/v1/certs"
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server


@pytest.fixture(scope="module")
def google_key() -> SigningKey:
    return SigningKey.generate("google-test")


@pytest.fixture(scope="module")
def attacker_key() -> SigningKey:
    return SigningKey.generate("attacker")


@pytest.fixture(scope="module")
def certs_server(google_key: SigningKey) -> Iterator[CertsServer]:
    published = CertsServer({KID: google_key.certificate_pem, "other": google_key.certificate_pem})
    server = published.serve()
    yield published
    server.shutdown()
    server.server_close()


@pytest.fixture
def certs(certs_server: CertsServer) -> Iterator[CertsServer]:
    """The certificate server with a fresh count, and a cold certificate cache."""
    certs_server.gets = 0
    certs_server.cache_control = CertsServer.cache_control
    auth.CERTS_REQUEST.clear()
    yield certs_server
    auth.CERTS_REQUEST.clear()


def token_settings(certs: CertsServer, **overrides: Any) -> dict[str, Any]:
    return {
        "google_id_token_audience": (AUDIENCE, OTHER_AUDIENCE),
        "invokers": frozenset({INVOKER}),
        "admin_invokers": frozenset({ADMIN_INVOKER}),
        "google_id_token_certs_url": certs.url,
        **overrides,
    }


@pytest.fixture
def tapi(make_api: Callable[..., Api], certs: CertsServer) -> Api:
    """The operator API with keys and Google ID tokens, model ``org/encoder`` seeded."""
    api = make_api(**token_settings(certs))
    rng = np.random.default_rng(0)
    now = datetime.now(UTC)
    api.send("org/encoder", rng.normal(size=(40, 8)), now - timedelta(days=1))
    api.send("org/encoder", rng.normal(size=(30, 8)), now - timedelta(minutes=10))
    return api


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def snapshot(api: Api) -> tuple[object, ...]:
    monitor = api.container.monitor
    assert monitor is not None
    return (
        monitor.get_config("org/encoder"),
        monitor.get_baseline("org/encoder"),
        len(monitor.history("org/encoder", None, 100)),
        api.container.repository.count_vectors("org/encoder", None, None),  # type: ignore[attr-defined]
    )


BATCH = {"model_id": "org/encoder", "embeddings": np.ones((2, 8)).tolist()}


def test_api_role_token_ingests_reads_and_triggers_detection(
    tapi: Api, google_key: SigningKey
) -> None:
    headers = bearer(google_key.token())
    vectors = tapi.container.repository.count_vectors("org/encoder", None, None)  # type: ignore[attr-defined]
    assert tapi.client.post("/embeddings/batch", json=BATCH, headers=headers).status_code == 202
    assert tapi.container.repository.count_vectors("org/encoder", None, None) == vectors + 2  # type: ignore[attr-defined]
    for path in ("/models", "/models/org/encoder/config", "/drift/history/org/encoder"):
        assert tapi.client.get(path, headers=headers).status_code == 200, path
    runs = len(tapi.container.monitor.history("org/encoder", None, 100))  # type: ignore[union-attr]
    assert tapi.client.post("/drift/check/org/encoder", headers=headers).status_code == 200
    assert len(tapi.container.monitor.history("org/encoder", None, 100)) == runs + 1  # type: ignore[union-attr]
    # a token minted for the other configured audience works the same
    other = bearer(google_key.token(aud=OTHER_AUDIENCE))
    assert tapi.client.get("/models", headers=other).status_code == 200


def test_api_role_token_is_forbidden_admin_actions(tapi: Api, google_key: SigningKey) -> None:
    headers = bearer(google_key.token())
    before = snapshot(tapi)
    for path, body in [
        ("/models/org/encoder/config", {"min_samples": 10}),
        ("/models/org/encoder/rebuild-stats", {}),
    ]:
        response = tapi.client.post(path, json=body, headers=headers)
        assert response.status_code == 403, path
        message = response.json["error"]["message"]
        assert INVOKER in message and "DRIFT_MONITOR_ADMIN_INVOKERS" in message
    assert snapshot(tapi) == before


def test_admin_token_changes_configuration(tapi: Api, google_key: SigningKey) -> None:
    # email claims are compared case-insensitively (the allowlist is stored lower-case)
    headers = bearer(google_key.token(email=ADMIN_INVOKER.upper()))
    response = tapi.client.post(
        "/models/org/encoder/config", json={"min_samples": 12}, headers=headers
    )
    assert response.status_code == 200, response.json
    assert tapi.container.monitor.get_config("org/encoder")["min_samples"] == 12  # type: ignore[union-attr,index]
    assert tapi.client.get("/models", headers=headers).status_code == 200


def _stripped(token: str) -> str:
    header, payload, _signature = token.split(".")
    return f"{header}.{payload}.{auth.REMOVED_SIGNATURE}"


REFUSED: dict[str, tuple[Callable[[SigningKey, SigningKey], str], str]] = {
    "wrong audience": (
        lambda g, a: g.token(email=ADMIN_INVOKER, aud="https://elsewhere.example"),
        "audience",
    ),
    "expired": (
        lambda g, a: g.token(
            email=ADMIN_INVOKER, iat=int(time.time()) - 7200, exp=int(time.time()) - 3600
        ),
        "expired",
    ),
    "wrong issuer": (
        lambda g, a: g.token(email=ADMIN_INVOKER, iss="https://evil.example"),
        "issuer",
    ),
    "unverified email": (
        lambda g, a: g.token(email=ADMIN_INVOKER, email_verified=False),
        "not verified",
    ),
    "email_verified as a string": (
        lambda g, a: g.token(email=ADMIN_INVOKER, email_verified="true"),
        "not verified",
    ),
    "no email": (lambda g, a: g.token(email=None), "no email"),
    "email not in allowlist": (
        lambda g, a: g.token(email="stranger@other.iam.gserviceaccount.com"),
        "neither",
    ),
    "signed by another key": (lambda g, a: a.token(email=ADMIN_INVOKER), "signature"),
    "unknown key id": (lambda g, a: g.token(kid="rotated-away", email=ADMIN_INVOKER), "key"),
    "payload swapped after signing": (
        lambda g, a: ".".join(
            [
                g.token(email=INVOKER).split(".")[0],
                g.token(email=ADMIN_INVOKER).split(".")[1],
                g.token(email=INVOKER).split(".")[2],
            ]
        ),
        "signature",
    ),
    "signature removed by Cloud Run": (
        lambda g, a: _stripped(g.token(email=ADMIN_INVOKER)),
        "X-Serverless-Authorization",
    ),
    "malformed segments": (lambda g, a: "abc.def.ghi", "invalid Google ID token"),
    "header not an object": (
        lambda g, a: "WzEsMl0." + g.token().split(".", 1)[1],
        "invalid Google ID token",
    ),
    "alg none": (
        lambda g, a: "eyJhbGciOiJub25lIn0." + g.token(email=ADMIN_INVOKER).split(".")[1] + ".",
        "invalid key",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_bad_tokens_are_refused_and_change_nothing(
    tapi: Api, google_key: SigningKey, attacker_key: SigningKey, case: str
) -> None:
    make, reason = REFUSED[case]
    headers = bearer(make(google_key, attacker_key))
    before = snapshot(tapi)
    for method, path, body in [
        ("post", "/models/org/encoder/config", {"min_samples": 10}),
        ("post", "/embeddings/batch", BATCH),
        ("post", "/drift/check", None),
        ("get", "/models", None),
    ]:
        response = getattr(tapi.client, method)(path, json=body, headers=headers)
        assert response.status_code == 401, (case, path, response.json)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert reason.lower() in response.json["error"]["message"].lower(), response.json
    assert snapshot(tapi) == before


def test_certificates_are_fetched_once_for_many_requests(
    tapi: Api, google_key: SigningKey, certs: CertsServer
) -> None:
    auth.CERTS_REQUEST.clear()
    certs.gets = 0
    headers = bearer(google_key.token())
    for _ in range(25):
        assert tapi.client.get("/models", headers=headers).status_code == 200
    assert certs.gets == 1


def test_concurrent_requests_on_a_cold_instance_fetch_once(
    google_key: SigningKey, certs: CertsServer
) -> None:
    settings = Settings(**token_settings(certs), environment="test")
    token = google_key.token()
    auth.CERTS_REQUEST.clear()
    certs.gets = 0
    callers: list[auth.Caller] = []

    def verify() -> None:
        callers.append(auth.verify_id_token(token, settings))

    threads = [threading.Thread(target=verify) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(callers) == 8 and {c.identity for c in callers} == {INVOKER}
    assert certs.gets == 1


def test_cache_honours_max_age(certs: CertsServer) -> None:
    now = [1000.0]
    request = auth.CachingRequest(RequestsRequest(), clock=lambda: now[0])
    certs.cache_control = "public, max-age=120"
    certs.gets = 0
    for _ in range(3):
        assert request(certs.url).status == 200
    assert certs.gets == 1
    now[0] += 119
    request(certs.url)
    assert certs.gets == 1
    now[0] += 2
    request(certs.url)
    assert certs.gets == 2
    certs.cache_control = "no-store"
    request.clear()
    request(certs.url)
    request(certs.url)
    assert certs.gets == 4


def test_max_age_parsing() -> None:
    assert auth.max_age({"Cache-Control": "public, max-age=19204, must-revalidate"}, 5) == 19204
    assert auth.max_age({"cache-control": "max-age=100", "Age": "30"}, 5) == 70
    assert auth.max_age({"Cache-Control": "no-cache"}, 5) == 0
    assert auth.max_age({}, 5) == 5
    assert auth.max_age({"Cache-Control": "max-age=soon"}, 5) == 5


def test_unreachable_certificates_answer_503_not_401(
    make_api: Callable[..., Api], google_key: SigningKey, certs: CertsServer
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/certs"
    api = make_api(**token_settings(certs, google_id_token_certs_url=closed))
    response = api.client.get("/models", headers=bearer(google_key.token()))
    assert response.status_code == 503
    assert "certificates" in response.json["error"]["message"]


def test_tokens_alone_protect_a_production_deployment(
    make_api: Callable[..., Api], google_key: SigningKey, certs: CertsServer
) -> None:
    api = make_api(**token_settings(certs), api_key=None, admin_key=None, environment="production")
    assert not auth.unauthenticated(api.container.settings)
    assert auth.startup_warning(api.container.settings) is None
    assert api.client.get("/models").status_code == 401
    assert api.client.get("/models", headers=API).status_code == 401  # no keys configured
    assert api.client.get("/models", headers=bearer(google_key.token())).status_code == 200


def test_keys_keep_working_next_to_tokens(tapi: Api) -> None:
    assert tapi.client.get("/models", headers=API).status_code == 200
    assert (
        tapi.client.post(
            "/models/org/encoder/config", json={"min_samples": 11}, headers=ADMIN
        ).status_code
        == 200
    )
    forbidden = tapi.client.post("/models/org/encoder/config", json={"min_samples": 9}, headers=API)
    assert forbidden.status_code == 403 and "admin key" in forbidden.json["error"]["message"]


def test_tokens_are_refused_where_no_audience_is_configured(
    seeded: Api, google_key: SigningKey
) -> None:
    response = seeded.client.get("/models", headers=bearer(google_key.token()))
    assert response.status_code == 401
    assert "not accepted" in response.json["error"]["message"]


def test_jwt_shape() -> None:
    assert auth.looks_like_jwt("aGVhZGVy.cGF5bG9hZA.c2ln-_")
    for value in ("api-key-0123", "a.b", "a.b.", "a.b.c.d", "a+b.c.d", " a.b.c"):
        assert not auth.looks_like_jwt(value), value
