"""Capture the ``drift_monitor`` JSON log lines of a block (without touching the real handler)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from drift_monitor.logs import JsonFormatter


@contextmanager
def json_lines() -> Iterator[list[dict[str, Any]]]:
    """Yield a list that holds, after the block, every line logged in it (parsed)."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("drift_monitor")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    entries: list[dict[str, Any]] = []
    try:
        yield entries
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        entries.extend(json.loads(x) for x in buffer.getvalue().splitlines() if x.strip())
