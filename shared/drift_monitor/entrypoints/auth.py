"""Bearer-key authentication for every HTTP entry point (ingest, detection, operator API).

Two keys from configuration, sent as ``Authorization: Bearer <key>``:

* ``DRIFT_MONITOR_API_KEY`` — ingest, read endpoints, triggering detection (:data:`API`);
* ``DRIFT_MONITOR_ADMIN_KEY`` — all of that plus configuration changes, baselines and
  statistics rebuilds (:data:`ADMIN`).

A missing or unknown key answers 401, the API key on an admin action answers 403; the check
runs before the handler reads the body, so a refused request changes nothing. Keys are
compared with :func:`hmac.compare_digest` against both configured keys every time, so the
response time does not reveal which key (if any) a guess was close to.

With no key configured the behaviour depends on ``DRIFT_MONITOR_ENV``: in ``production`` every
request is refused with 503 (fail closed: a deployment that forgot its secrets must not be
open); locally the monitor stays usable and ``drift-monitor serve`` logs a loud warning
(:func:`startup_warning`). In GCP the functions are additionally deployed without
``allUsers`` invoker rights, so Google's front end verifies the caller's ID token and the
``roles/cloudfunctions.invoker`` / ``roles/run.invoker`` binding before the request arrives
here; the keys are the second factor that also works outside GCP.
"""

from __future__ import annotations

import hmac
from enum import Enum

import orjson
from flask import Request, Response

from drift_monitor.config import Settings


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
    """True when no key is configured at all (only acceptable outside production)."""
    return settings.api_key is None and settings.admin_key is None


def startup_warning(settings: Settings) -> str | None:
    """The warning ``drift-monitor serve`` logs at start-up when nobody has to authenticate."""
    if not unauthenticated(settings):
        return None
    return (
        "AUTHENTICATION IS DISABLED: neither DRIFT_MONITOR_API_KEY nor DRIFT_MONITOR_ADMIN_KEY "
        "is set, so anyone who can reach this port can send embeddings, read results and "
        "change model configuration. Keep it on loopback or set the keys."
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


def check(request: Request, settings: Settings, need: Access) -> Response | None:
    """Return an error response when the caller may not do ``need``, else ``None``.

    Call it first in a handler, before reading the body.
    """
    if unauthenticated(settings):
        if settings.production:
            return _error(
                503,
                "authentication is not configured: set DRIFT_MONITOR_API_KEY and "
                "DRIFT_MONITOR_ADMIN_KEY (requests are refused until then)",
            )
        return None
    token = _bearer(request.headers.get("Authorization"))
    if token is None:
        return _error(401, "missing 'Authorization: Bearer <key>' header")
    is_admin = _matches(token, settings.admin_key)
    is_api = _matches(token, settings.api_key)
    if not (is_admin or is_api):
        return _error(401, "invalid key")
    if need is Access.ADMIN and not is_admin:
        return _error(403, "this action needs the admin key (DRIFT_MONITOR_ADMIN_KEY)")
    return None
