"""A loopback stand-in for PagerDuty's Events API v2 and for Slack-style webhooks.

It listens on a free ``127.0.0.1`` port (a real HTTP server in a thread) and

* at ``POST /v2/enqueue`` validates each event strictly against the Events API v2 shape
  (required fields, ``event_action`` values, severity enum, summary <= 1024 characters,
  32-character ``routing_key``, ``dedup_key`` required for acknowledge/resolve, no unknown
  top-level keys) and answers like PagerDuty: 202 ``{"status": "success", "message": "Event
  processed", "dedup_key": ...}`` or 400 ``{"status": "invalid event", ...}``;
* at ``POST /webhook/<name>`` records Slack-compatible messages (``text`` required, ``blocks``
  a list of typed objects when present) and answers 200 ``ok``;
* can be told to answer 429 or 5xx the next N times (``fail_next``), with ``Retry-After``.

Every request is recorded, accepted or not, so tests can assert on exactly what was sent.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

EVENT_ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")
TOP_LEVEL_KEYS = frozenset(
    {
        "routing_key",
        "event_action",
        "dedup_key",
        "payload",
        "images",
        "links",
        "client",
        "client_url",
    }
)
PAYLOAD_KEYS = frozenset(
    {"summary", "source", "severity", "timestamp", "component", "group", "class", "custom_details"}
)


def validate_event(event: Any, routing_key: str | None = None) -> list[str]:
    """Problems with a PagerDuty Events API v2 alert event (empty when it is valid)."""
    if not isinstance(event, dict):
        return ["body must be a JSON object"]
    errors: list[str] = []
    unknown = sorted(set(event) - TOP_LEVEL_KEYS)
    if unknown:
        errors.append(f"unknown top-level keys: {unknown}")
    key = event.get("routing_key")
    if not isinstance(key, str) or len(key) != 32:
        errors.append("routing_key must be a 32-character string")
    elif routing_key is not None and key != routing_key:
        errors.append("routing_key does not match the expected integration key")
    action = event.get("event_action")
    if action not in EVENT_ACTIONS:
        errors.append(f"event_action must be one of {EVENT_ACTIONS}")
    dedup = event.get("dedup_key")
    if dedup is not None and (not isinstance(dedup, str) or not dedup or len(dedup) > 255):
        errors.append("dedup_key must be a non-empty string of at most 255 characters")
    if action in ("acknowledge", "resolve") and dedup is None:
        errors.append(f"dedup_key is required for {action}")
    payload = event.get("payload")
    if action == "trigger" and payload is None:
        errors.append("payload is required for trigger")
    if payload is not None:
        errors.extend(_validate_payload(payload))
    for name, required in (("links", "href"), ("images", "src")):
        items = event.get(name)
        if items is None:
            continue
        if not isinstance(items, list) or not all(
            isinstance(i, dict) and isinstance(i.get(required), str) for i in items
        ):
            errors.append(f"{name} must be a list of objects with a string '{required}'")
    for name in ("client", "client_url"):
        if name in event and not isinstance(event[name], str):
            errors.append(f"{name} must be a string")
    return errors


def _validate_payload(payload: Any) -> list[str]:
    if not isinstance(payload, dict):
        return ["payload must be an object"]
    errors: list[str] = []
    unknown = sorted(set(payload) - PAYLOAD_KEYS)
    if unknown:
        errors.append(f"unknown payload keys: {unknown}")
    summary = payload.get("summary")
    if not isinstance(summary, str) or not summary:
        errors.append("payload.summary is required")
    elif len(summary) > 1024:
        errors.append("payload.summary must be at most 1024 characters")
    source = payload.get("source")
    if not isinstance(source, str) or not source:
        errors.append("payload.source is required")
    if payload.get("severity") not in SEVERITIES:
        errors.append(f"payload.severity must be one of {SEVERITIES}")
    timestamp = payload.get("timestamp")
    if timestamp is not None:
        try:
            datetime.fromisoformat(str(timestamp).replace("Z", "+00:00"))
        except ValueError:
            errors.append("payload.timestamp must be an ISO 8601 timestamp")
    for name in ("component", "group", "class"):
        if name in payload and not isinstance(payload[name], str):
            errors.append(f"payload.{name} must be a string")
    if "custom_details" in payload and not isinstance(payload["custom_details"], dict):
        errors.append("payload.custom_details must be an object")
    return errors


def validate_slack_message(message: Any) -> list[str]:
    """Problems with a Slack-compatible webhook message (empty when it is valid)."""
    if not isinstance(message, dict):
        return ["body must be a JSON object"]
    errors: list[str] = []
    text = message.get("text")
    if not isinstance(text, str) or not text.strip():
        errors.append("text is required")
    blocks = message.get("blocks")
    if blocks is not None and (
        not isinstance(blocks, list)
        or not all(isinstance(b, dict) and isinstance(b.get("type"), str) for b in blocks)
    ):
        errors.append("blocks must be a list of objects with a 'type'")
    if isinstance(blocks, list) and len(blocks) > 50:
        errors.append("at most 50 blocks")
    return errors


@dataclass
class Received:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: Any
    status: int
    errors: list[str] = field(default_factory=list)


class Receiver:
    """The loopback receiver. Use as a context manager or call ``start``/``stop``.

    Parameters
    ----------
    routing_key
        When given, events with another routing key are rejected (400).
    """

    def __init__(self, routing_key: str | None = None) -> None:
        self.routing_key = routing_key
        self.requests: list[Received] = []
        self._lock = threading.Condition()
        self._failures: list[tuple[int, str | None]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver._handle(self)

            def log_message(self, format: str, *args: Any) -> None:  # quiet test output
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "receiver not started"
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def events_url(self) -> str:
        """Where to point ``PAGERDUTY_EVENTS_URL``."""
        return f"{self.base_url}/v2/enqueue"

    def webhook_url(self, name: str = "default") -> str:
        """A Slack-style webhook URL; calls are recorded under ``name``."""
        return f"{self.base_url}/webhook/{name}"

    # -- behaviour -------------------------------------------------------------------------
    def fail_next(self, n: int, status: int = 500, retry_after: str | None = None) -> None:
        """Answer the next ``n`` requests (any path) with ``status`` (e.g. 429, 500, 503)."""
        with self._lock:
            self._failures.extend([(status, retry_after)] * n)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._failures.clear()

    # -- what arrived ----------------------------------------------------------------------
    @property
    def events(self) -> list[dict[str, Any]]:
        """PagerDuty events that were accepted (202), in arrival order."""
        with self._lock:
            return [r.body for r in self.requests if r.path == "/v2/enqueue" and r.status == 202]

    @property
    def rejected(self) -> list[Received]:
        """Requests answered 400 because their shape was wrong."""
        with self._lock:
            return [r for r in self.requests if r.status == 400]

    def webhooks(self, name: str | None = None) -> list[dict[str, Any]]:
        """Accepted webhook messages (all, or those sent to ``webhook_url(name)``)."""
        prefix = "/webhook/" if name is None else f"/webhook/{name}"
        with self._lock:
            return [
                r.body
                for r in self.requests
                if r.status == 200
                and (r.path == prefix or (name is None and r.path.startswith(prefix)))
            ]

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        """Block until at least ``count`` requests arrived; return them."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.requests) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{len(self.requests)} of {count} requests arrived")
                self._lock.wait(remaining)
            return list(self.requests)

    # -- request handling ------------------------------------------------------------------
    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in handler.headers.items()}
        path = handler.path
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        with self._lock:
            failure = self._failures.pop(0) if self._failures else None
        if failure is not None:
            status, retry_after = failure
            extra = {"Retry-After": retry_after} if retry_after is not None else {}
            self._record(Received(path, headers, body, status, ["injected failure"]))
            self._answer(handler, status, {"status": "failure", "message": "injected"}, extra)
            return
        errors: list[str] = []
        if not headers.get("content-type", "").startswith("application/json"):
            errors.append("Content-Type must be application/json")
        if path == "/v2/enqueue":
            errors += validate_event(body, self.routing_key)
            if errors:
                self._record(Received(path, headers, body, 400, errors))
                self._answer(
                    handler,
                    400,
                    {
                        "status": "invalid event",
                        "message": "Event object is invalid",
                        "errors": errors,
                    },
                )
                return
            self._record(Received(path, headers, body, 202))
            self._answer(
                handler,
                202,
                {
                    "status": "success",
                    "message": "Event processed",
                    "dedup_key": body.get("dedup_key") or "generated",
                },
            )
            return
        if path.startswith("/webhook/"):
            errors += validate_slack_message(body)
            status = 400 if errors else 200
            self._record(Received(path, headers, body, status, errors))
            handler.send_response(status)
            handler.send_header("Content-Type", "text/plain")
            reply = b"invalid_payload" if errors else b"ok"
            handler.send_header("Content-Length", str(len(reply)))
            handler.end_headers()
            handler.wfile.write(reply)
            return
        self._record(Received(path, headers, body, 404, ["unknown path"]))
        self._answer(handler, 404, {"status": "not found"})

    def _record(self, received: Received) -> None:
        with self._lock:
            self.requests.append(received)
            self._lock.notify_all()

    @staticmethod
    def _answer(
        handler: BaseHTTPRequestHandler,
        status: int,
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> None:
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)
