"""JSON-lines logging: one object per line with ``severity`` and ``message`` (Cloud Logging).

Use :func:`log` for structured events, or any stdlib logger under ``drift_monitor`` once
:func:`configure` has run (the composition root calls it).

Inside :func:`request_context` every line also carries the request's trace, read from
``traceparent`` (W3C) or ``X-Cloud-Trace-Context``, as Cloud Logging's
``logging.googleapis.com/trace``, ``logging.googleapis.com/spanId`` and
``logging.googleapis.com/trace_sampled`` fields, so the Logs Explorer groups a request's lines
under its trace. :func:`http_request` builds the ``httpRequest`` object of a request line.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

_LOGGER = logging.getLogger("drift_monitor")
_SEVERITY = {"WARNING": "WARNING", "CRITICAL": "CRITICAL", "ERROR": "ERROR", "INFO": "INFO"}
_CONTEXT: ContextVar[dict[str, Any] | None] = ContextVar("drift_monitor_log_context", default=None)

TRACE = "logging.googleapis.com/trace"
SPAN = "logging.googleapis.com/spanId"
SAMPLED = "logging.googleapis.com/trace_sampled"
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_CLOUD_TRACE = re.compile(r"^([0-9a-fA-F]{32})(?:/(\d{1,20}))?(?:;o=([01]))?$")


def trace_fields(headers: Any, project: str | None = None) -> dict[str, Any]:
    """Cloud Logging trace fields from a request's headers (empty when there is no trace).

    ``headers``: anything with ``get(name)`` (werkzeug's case-insensitive ``Headers``, a dict).

    ``traceparent`` wins over ``X-Cloud-Trace-Context``; malformed values and all-zero ids are
    ignored. ``project`` defaults to ``GOOGLE_CLOUD_PROJECT``; without one only the span and
    sampling flag are kept (a trace field must name its project).
    """
    project = project or os.environ.get("GOOGLE_CLOUD_PROJECT") or None
    trace = span = None
    sampled: bool | None = None
    parent = _TRACEPARENT.match((headers.get("traceparent") or "").strip().lower())
    if parent and set(parent.group(1)) != {"0"} and set(parent.group(2)) != {"0"}:
        trace, span = parent.group(1), parent.group(2)
        sampled = bool(int(parent.group(3), 16) & 1)
    else:
        cloud = _CLOUD_TRACE.match((headers.get("X-Cloud-Trace-Context") or "").strip())
        if cloud and set(cloud.group(1)) != {"0"}:
            trace = cloud.group(1).lower()
            if cloud.group(2) and 0 < int(cloud.group(2)) < 2**64:
                span = format(int(cloud.group(2)), "016x")  # decimal in this header
            if cloud.group(3) is not None:
                sampled = cloud.group(3) == "1"
    out: dict[str, Any] = {}
    if trace is None:
        return out
    if project:
        out[TRACE] = f"projects/{project}/traces/{trace}"
    if span:
        out[SPAN] = span
    if sampled is not None:
        out[SAMPLED] = sampled
    return out


@contextmanager
def request_context(headers: Any, project: str | None = None) -> Iterator[None]:
    """Add the request's trace fields to every line logged inside the block."""
    token = _CONTEXT.set(trace_fields(headers, project))
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def set_context(fields: dict[str, Any] | None) -> Any:
    """Set the fields added to every line (for frameworks with separate enter/exit hooks);
    returns the token for :func:`reset_context`."""
    return _CONTEXT.set(fields)


def reset_context(token: Any) -> None:
    _CONTEXT.reset(token)


def http_request(
    *,
    method: str,
    url: str,
    status: int,
    latency_seconds: float,
    response_size: int | None = None,
    request_size: int | None = None,
    user_agent: str | None = None,
    remote_ip: str | None = None,
    referer: str | None = None,
    protocol: str | None = None,
) -> dict[str, Any]:
    """Cloud Logging's ``httpRequest`` object (LogEntry ``HttpRequest``) for a request line."""
    entry: dict[str, Any] = {
        "requestMethod": method,
        "requestUrl": url,
        "status": int(status),
        "latency": f"{max(latency_seconds, 0.0):.6f}s",
    }
    optional = {
        "responseSize": None if response_size is None else str(response_size),
        "requestSize": None if request_size is None else str(request_size),
        "userAgent": user_agent,
        "remoteIp": remote_ip,
        "referer": referer,
        "protocol": protocol,
    }
    entry.update({k: v for k, v in optional.items() if v})
    return entry


class JsonFormatter(logging.Formatter):
    """Render a record as one JSON object; ``extra={"fields": {...}}`` adds keys."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": _SEVERITY.get(record.levelname, "DEBUG"),
            "message": record.getMessage(),
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "logger": record.name,
        }
        context = _CONTEXT.get()
        if context:
            entry.update(context)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of each record (a process that swaps
    stderr, e.g. a CLI run under a test harness, never logs to a closed stream)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def configure(level: int = logging.INFO, stream: TextIO | None = None) -> None:
    """Send ``drift_monitor`` logs as JSON lines to ``stream`` (default: the current stderr);
    idempotent: one JSON handler whatever the number of calls."""
    for old in list(_LOGGER.handlers):
        if isinstance(old.formatter, JsonFormatter):
            _LOGGER.removeHandler(old)
    handler: logging.Handler = _StderrHandler() if stream is None else logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    _LOGGER.addHandler(handler)
    _LOGGER.setLevel(level)
    _LOGGER.propagate = True  # pytest's caplog still sees records


def log(severity: str, message: str, **fields: Any) -> None:
    """Log one structured event, e.g. ``log("ERROR", "dead-lettered", field="data")``."""
    _LOGGER.log(logging.getLevelName(severity.upper()), message, extra={"fields": fields})
