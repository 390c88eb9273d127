"""JSON-lines logging: one object per line with ``severity`` and ``message`` (Cloud Logging).

Use :func:`log` for structured events, or any stdlib logger under ``drift_monitor`` once
:func:`configure` has run (the composition root calls it).
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

_LOGGER = logging.getLogger("drift_monitor")
_SEVERITY = {"WARNING": "WARNING", "CRITICAL": "CRITICAL", "ERROR": "ERROR", "INFO": "INFO"}


class JsonFormatter(logging.Formatter):
    """Render a record as one JSON object; ``extra={"fields": {...}}`` adds keys."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": _SEVERITY.get(record.levelname, "DEBUG"),
            "message": record.getMessage(),
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "logger": record.name,
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def configure(level: int = logging.INFO, stream: TextIO | None = None) -> None:
    """Send ``drift_monitor`` logs as JSON lines to ``stream`` (stderr); idempotent."""
    for handler in _LOGGER.handlers:
        if isinstance(handler.formatter, JsonFormatter):
            if stream is not None and isinstance(handler, logging.StreamHandler):
                handler.setStream(stream)
            _LOGGER.setLevel(level)
            return
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    _LOGGER.addHandler(handler)
    _LOGGER.setLevel(level)
    _LOGGER.propagate = True  # pytest's caplog still sees records


def log(severity: str, message: str, **fields: Any) -> None:
    """Log one structured event, e.g. ``log("ERROR", "dead-lettered", field="data")``."""
    _LOGGER.log(logging.getLevelName(severity.upper()), message, extra={"fields": fields})
