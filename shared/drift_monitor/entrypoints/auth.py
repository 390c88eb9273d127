"""Bearer-key authentication for every HTTP entry point (ingest, detection, operator API).

Two keys from configuration, sent as ``Authorization: Bearer <key>``:

* ``DRIFT_MONITOR_API_KEY`` — ingest, read endpoints, triggering detection (:data:`API`);
* ``DRIFT_MONITOR_ADMIN_KEY`` — all of that plus configuration changes, baselines and
  statistics rebuilds (:data:`ADMIN`).

A missing or unknown key answers 401, the API key on an admin action answers 403; the check
runs before the handler reads the body, so a refused request changes nothing. Keys are
compared with :func:`hmac.compare_digest` against both configured keys every time, so the
response time does not reveal which key (if any) a guess was close to.

The second kind of credential is a Google-signed ID token in the same header. A bearer value
that is no key and looks like a JWT (three base64url segments) is verified with google-auth
against Google's certificates: valid signature, not expired, ``iss`` Google, ``aud`` one of
``GOOGLE_ID_TOKEN_AUDIENCE``, ``email_verified`` true, and ``email`` listed in
``DRIFT_MONITOR_ADMIN_INVOKERS`` (admin role) or ``DRIFT_MONITOR_INVOKERS`` (API role). Any
failed check answers 401; a caller with the API role on an admin action gets 403. The
certificates are cached for their ``Cache-Control: max-age`` (:class:`CachingRequest`), so a warm
instance does not fetch them per request; when they cannot be fetched the answer is 503
(retryable), not 401.

Cloud Run removes the signature of the ID token it checked for its own IAM invoker check
(``header.payload.SIGNATURE_REMOVED_BY_GOOGLE``) before the request reaches the container. Such
a token cannot be verified here and is refused with a message that says so: a caller behind the
invoker check sends its token in ``X-Serverless-Authorization`` (which Cloud Run checks and
strips) and a token, or a key, in ``Authorization`` (which reaches this module intact). Unsigned
tokens are never trusted: with ``X-Serverless-Authorization`` carrying the invoker's real token,
``Authorization`` could carry anything.

With no credential configured (no key and no invoker list) the behaviour depends on
``DRIFT_MONITOR_ENV``: in ``production`` every request is refused with 503 (fail closed: a
deployment that forgot its secrets must not be open); locally the monitor stays usable and
``drift-monitor serve`` logs a loud warning (:func:`startup_warning`). In GCP the functions are
additionally deployed without ``allUsers`` invoker rights, so Google's front end verifies the
caller's ID token and the ``roles/run.invoker`` binding before the request arrives here; the
keys or ID tokens checked here are the second factor, and the keys also work outside GCP.
"""

from __future__ import annotations

import hmac
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

import orjson
from flask import Request, Response
from google.auth import exceptions as google_exceptions
from google.auth import transport
from google.oauth2 import id_token as google_id_token

from drift_monitor.config import Settings
from drift_monitor.logs import log

GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")
# What Cloud Run puts in place of the signature of a token it has checked itself.
REMOVED_SIGNATURE = "SIGNATURE_REMOVED_BY_GOOGLE"
# Tolerated clock difference between Google's token service and this instance.
CLOCK_SKEW_SECONDS = 10
_JWT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


class Access(Enum):
    """What a route needs."""

    API = "api"
    ADMIN = "admin"


API = Access.API
ADMIN = Access.ADMIN


def _error(status: int, message: str) -> Response:
    body = {"error": {"field": "authorization", "message": message, "status": status}}
    response = Response(orjson.dumps(body), status=status, mimetype="application/json")
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="drift-monitor"'
    return response


def unauthenticated(settings: Settings) -> bool:
    """True when no credential is configured at all (only acceptable outside production)."""
    return (
        settings.api_key is None
        and settings.admin_key is None
        and not settings.invokers
        and not settings.admin_invokers
    )


def startup_warning(settings: Settings) -> str | None:
    """The warning ``drift-monitor serve`` logs at start-up when nobody has to authenticate."""
    if not unauthenticated(settings):
        return None
    return (
        "AUTHENTICATION IS DISABLED: neither DRIFT_MONITOR_API_KEY nor DRIFT_MONITOR_ADMIN_KEY "
        "(nor a Google ID token invoker list) is set, so anyone who can reach this port can "
        "send embeddings, read results and change model configuration. Keep it on loopback or "
        "set the keys."
    )


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _matches(token: str, key: str | None) -> bool:
    # compare_digest on equal-type bytes; a None key still costs one comparison.
    expected = (key or "\x00unset").encode()
    return hmac.compare_digest(token.encode(), expected) and key is not None


# --- Google ID tokens ------------------------------------------------------------------------


class _CachedResponse(transport.Response):
    """A fully read response, safe to hand out many times."""

    def __init__(self, status: int, headers: Mapping[str, str], data: bytes) -> None:
        self._status = status
        self._headers = dict(headers)
        self._data = data

    @property
    def status(self) -> int:
        return self._status

    @property
    def headers(self) -> Mapping[str, str]:
        return self._headers

    @property
    def data(self) -> bytes:
        return self._data


def max_age(headers: Mapping[str, str], default: float) -> float:
    """Seconds a response may be reused for, from ``Cache-Control`` (and ``Age``).

    ``no-store`` / ``no-cache`` mean 0; no ``max-age`` means ``default``.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    directives = [d.strip().lower() for d in lowered.get("cache-control", "").split(",")]
    if "no-store" in directives or "no-cache" in directives:
        return 0.0
    for directive in directives:
        name, _, value = directive.partition("=")
        if name.strip() == "max-age":
            try:
                seconds = float(value.strip().strip('"'))
            except ValueError:
                return default
            try:
                age = float(lowered.get("age", "0"))
            except ValueError:
                age = 0.0
            return max(0.0, seconds - age)
    return default


class CachingRequest(transport.Request):
    """A google-auth transport that remembers successful GETs for their ``max-age``.

    google-auth fetches the signing certificates on every ``verify_token`` call; Google serves
    them with ``Cache-Control: max-age`` of several hours, so one fetch per instance and period
    is enough. The lock is held during a fetch so concurrent requests on a cold instance wait
    for one fetch instead of each making their own.

    Parameters
    ----------
    inner
        The transport that really fetches (default: google-auth's ``requests`` transport).
    default_ttl
        Seconds to keep a response that carries no ``max-age``.
    max_ttl
        Upper bound on any reuse, whatever the server says.
    clock
        Monotonic seconds (tests pass a fake clock).
    """

    def __init__(
        self,
        inner: transport.Request | None = None,
        *,
        default_ttl: float = 300.0,
        max_ttl: float = 86_400.0,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._inner = inner
        self._default_ttl = default_ttl
        self._max_ttl = max_ttl
        self._timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, _CachedResponse]] = {}

    def _transport(self) -> transport.Request:
        if self._inner is None:
            # Imported lazily: it builds a requests.Session, which only token checks need.
            from google.auth.transport.requests import Request as RequestsRequest

            self._inner = RequestsRequest()
        return self._inner

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> transport.Response:
        if method != "GET" or body is not None:
            passed: transport.Response = self._transport()(
                url, method=method, body=body, headers=headers, timeout=timeout, **kwargs
            )
            return passed
        with self._lock:
            now = self._clock()
            cached = self._cache.get(url)
            if cached is not None and cached[0] > now:
                return cached[1]
            response = self._transport()(
                url, method="GET", headers=headers, timeout=timeout or self._timeout, **kwargs
            )
            kept = _CachedResponse(response.status, response.headers, response.data)
            ttl = min(max_age(kept.headers, self._default_ttl), self._max_ttl)
            if kept.status == 200 and ttl > 0:
                self._cache[url] = (now + ttl, kept)
            else:
                self._cache.pop(url, None)
            return kept

    def clear(self) -> None:
        """Forget every cached response."""
        with self._lock:
            self._cache.clear()


# One per process: every request of a warm instance shares the cached certificates.
CERTS_REQUEST = CachingRequest()


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Caller:
    """Who authenticated, and with which role."""

    kind: str  # "key" or "google-id-token"
    role: Access
    identity: str  # "api-key" / "admin-key" or the token's email


def looks_like_jwt(token: str) -> bool:
    """Three base64url segments separated by dots (keys never contain dots)."""
    return _JWT.fullmatch(token) is not None


def verify_id_token(token: str, settings: Settings) -> Caller:
    """Verify a Google-signed ID token and map its email to a role.

    Raises
    ------
    _Refused
        401 for any failed check, 503 when Google's certificates cannot be fetched.
    """
    audience = list(settings.google_id_token_audience)
    if not audience:
        raise _Refused(401, "invalid key (Google ID tokens are not accepted here)")
    if token.endswith("." + REMOVED_SIGNATURE):
        raise _Refused(
            401,
            "the ID token's signature was removed by Cloud Run after its invoker check, so it "
            "cannot be verified here: send the ID token in X-Serverless-Authorization and the "
            "key or an ID token in Authorization",
        )
    try:
        claims = google_id_token.verify_token(
            token,
            CERTS_REQUEST,
            audience=audience,
            certs_url=settings.google_id_token_certs_url,
            clock_skew_in_seconds=CLOCK_SKEW_SECONDS,
        )
    except google_exceptions.TransportError as exc:
        log("ERROR", "cannot fetch Google's token-signing certificates", error=str(exc)[:300])
        raise _Refused(
            503, "cannot fetch Google's token-signing certificates; retry later"
        ) from exc
    except (
        ValueError,
        TypeError,
        KeyError,
        AttributeError,
        google_exceptions.GoogleAuthError,
    ) as exc:
        # Malformed segments, bad signature, unknown key id, expiry and audience all land here.
        raise _Refused(401, f"invalid Google ID token: {str(exc)[:200]}") from exc
    if claims.get("iss") not in GOOGLE_ISSUERS:
        raise _Refused(401, "invalid Google ID token: the issuer is not Google")
    email = claims.get("email")
    if not isinstance(email, str) or not email:
        raise _Refused(401, "invalid Google ID token: no email claim (mint it with includeEmail)")
    if claims.get("email_verified") is not True:
        raise _Refused(401, "invalid Google ID token: the email is not verified")
    email = email.lower()
    if email in settings.admin_invokers:
        return Caller("google-id-token", Access.ADMIN, email)
    if email in settings.invokers:
        return Caller("google-id-token", Access.API, email)
    raise _Refused(
        401, f"{email} is in neither DRIFT_MONITOR_INVOKERS nor DRIFT_MONITOR_ADMIN_INVOKERS"
    )


def authenticate(token: str, settings: Settings) -> Caller:
    """The caller a bearer value stands for; raises :class:`_Refused` (401/503) otherwise."""
    # Both keys are compared every time (timing); keys win over the JWT shape.
    is_admin = _matches(token, settings.admin_key)
    is_api = _matches(token, settings.api_key)
    if is_admin:
        return Caller("key", Access.ADMIN, "admin-key")
    if is_api:
        return Caller("key", Access.API, "api-key")
    if looks_like_jwt(token):
        return verify_id_token(token, settings)
    raise _Refused(401, "invalid key")


def check(request: Request, settings: Settings, need: Access) -> Response | None:
    """Return an error response when the caller may not do ``need``, else ``None``.

    Call it first in a handler, before reading the body.
    """
    if unauthenticated(settings):
        if settings.production:
            return _error(
                503,
                "authentication is not configured: set DRIFT_MONITOR_API_KEY and "
                "DRIFT_MONITOR_ADMIN_KEY, or GOOGLE_ID_TOKEN_AUDIENCE with "
                "DRIFT_MONITOR_INVOKERS / DRIFT_MONITOR_ADMIN_INVOKERS (requests are refused "
                "until then)",
            )
        return None
    token = _bearer(request.headers.get("Authorization"))
    if token is None:
        return _error(401, "missing 'Authorization: Bearer <key>' header")
    try:
        caller = authenticate(token, settings)
    except _Refused as refused:
        if refused.status != 401 or looks_like_jwt(token):
            log("WARNING", "request refused", status=refused.status, reason=refused.message,
                path=request.path)  # fmt: skip
        return _error(refused.status, refused.message)
    if need is Access.ADMIN and caller.role is not Access.ADMIN:
        if caller.kind == "key":
            return _error(403, "this action needs the admin key (DRIFT_MONITOR_ADMIN_KEY)")
        return _error(
            403,
            f"this action needs the admin role: {caller.identity} is not in "
            "DRIFT_MONITOR_ADMIN_INVOKERS",
        )
    return None
