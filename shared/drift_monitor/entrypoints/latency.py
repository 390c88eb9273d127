"""Process metrics of the functions: observed in-process, pushed to the Pushgateway now and then.

Every ingest, persist and stats delivery is timed into the process-wide histograms (served at
``/metrics`` in the embedded mode); ingest answers are counted by status code. In production,
where ``PROMETHEUS_GATEWAY`` is set, an instance adds what it observed to its function's group
(``{job, function}``, see :meth:`PushgatewayExporter.push_function`) at most once every
:data:`PUSH_INTERVAL_SECONDS`, so a busy function does not make extra HTTP calls per request,
and once more when the process exits (best effort: what a killed instance observed after its
last push is lost).
"""

from __future__ import annotations

import atexit
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from drift_monitor.adapters.metrics import PushgatewayExporter, process_latency

PUSH_INTERVAL_SECONDS = 30.0

_lock = threading.Lock()
_last_push: dict[str, float] = {}
_exit_pushes: dict[str, PushgatewayExporter] = {}


@dataclass
class Answer:
    """What the timed block answered; ``status`` stays None when it raised (counted as 500)."""

    status: int | None = None


@contextmanager
def observed(function: str, container: Any) -> Iterator[Answer]:
    """Time the block as ``function`` ("ingest", "persist" or "stats") and push when due.

    For "ingest", set ``answer.status`` to the HTTP status returned, to count it.
    """
    metrics = process_latency()
    observe: Callable[[float], None] = {
        "ingest": metrics.observe_ingest,
        "persist": metrics.observe_persist,
        "stats": metrics.observe_stats,
    }[function]
    answer = Answer()
    started = time.perf_counter()
    try:
        yield answer
    finally:
        observe(time.perf_counter() - started)
        if function == "ingest":
            metrics.count_ingest(answer.status if answer.status is not None else 500)
        push_due(function, container)


def push_due(function: str, container: Any, *, force: bool = False) -> None:
    """Push the process metrics to ``function``'s group if the interval has passed."""
    exporter = getattr(container, "metrics", None)
    if not isinstance(exporter, PushgatewayExporter):
        return
    now = time.monotonic()
    with _lock:
        if not force and now - _last_push.get(function, float("-inf")) < PUSH_INTERVAL_SECONDS:
            return
        _last_push[function] = now
        if not _exit_pushes:
            atexit.register(_push_at_exit)
        _exit_pushes[function] = exporter
    exporter.push_function(process_latency(), function)


def _push_at_exit() -> None:
    with _lock:
        pending = list(_exit_pushes.items())
    for function, exporter in pending:
        exporter.push_function(process_latency(), function)
