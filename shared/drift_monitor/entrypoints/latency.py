"""Ingest and persist latency: observed in-process, pushed to the Pushgateway now and then.

Every request is timed into the process-wide histograms (served at ``/metrics`` in the
embedded mode). In production, where ``PROMETHEUS_GATEWAY`` is set, an instance pushes its
histograms at most once every :data:`PUSH_INTERVAL_SECONDS`, so a busy function does not make
one extra HTTP call per request; the grouping key is (function, instance).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from drift_monitor.adapters.metrics import PushgatewayExporter, process_latency

PUSH_INTERVAL_SECONDS = 30.0
# Cloud Run (functions gen2) names the revision; the suffix tells instances apart.
INSTANCE = f"{os.environ.get('K_REVISION', 'local')}-{uuid.uuid4().hex[:8]}"

_lock = threading.Lock()
_last_push: dict[str, float] = {}


@contextmanager
def observed(function: str, container: Any) -> Iterator[None]:
    """Time the block as ``function`` ("ingest" or "persist") and push when it is due."""
    latency = process_latency()
    observe = latency.observe_ingest if function == "ingest" else latency.observe_persist
    started = time.perf_counter()
    try:
        yield
    finally:
        observe(time.perf_counter() - started)
        _maybe_push(function, container)


def _maybe_push(function: str, container: Any) -> None:
    exporter = getattr(container, "metrics", None)
    if not isinstance(exporter, PushgatewayExporter):
        return
    now = time.monotonic()
    with _lock:
        if now - _last_push.get(function, float("-inf")) < PUSH_INTERVAL_SECONDS:
            return
        _last_push[function] = now
    exporter.push_latency(process_latency(), function, INSTANCE)
