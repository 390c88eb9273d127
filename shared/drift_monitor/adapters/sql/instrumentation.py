"""SQL metrics from SQLAlchemy engine events: statement time and connection-pool use.

:func:`instrument` adds ``before_cursor_execute``/``after_cursor_execute`` listeners that time
each statement into ``drift_monitor_db_query_duration_seconds{operation}`` (operation = the
statement's first keyword: select, insert, update, delete, or other) and registers the pool
with ``drift_monitor_db_pool_connections{state}``. Both live in the process metrics
(:func:`drift_monitor.adapters.metrics.process_latency`).
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Engine, event

from drift_monitor.adapters.metrics import LatencyMetrics, process_latency

OPERATIONS = frozenset({"select", "insert", "update", "delete"})
_STARTED = "drift_monitor_statement_started"


def operation(statement: str) -> str:
    """The label of a statement: its first keyword when it is a DML verb, else ``other``.

    A leading ``WITH`` (common table expression) counts as the verb that follows it being
    unknown, hence ``other``; the label set stays small whatever the SQL.
    """
    words = statement.lstrip(" \t\r\n(").split(None, 1)
    verb = words[0].lower() if words else ""
    return verb if verb in OPERATIONS else "other"


def instrument(engine: Engine, metrics: LatencyMetrics | None = None) -> Engine:
    """Time every statement of ``engine`` and export its pool; returns the engine."""
    target = metrics or process_latency()
    target.pools.watch(engine.pool)

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn: Any, _cursor: Any, _statement: str, *_: Any) -> None:
        conn.info.setdefault(_STARTED, []).append(time.perf_counter())

    @event.listens_for(engine, "after_cursor_execute")
    def _after(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        stack = conn.info.get(_STARTED)
        if stack:
            target.observe_query(operation(statement), time.perf_counter() - stack.pop())

    @event.listens_for(engine, "handle_error")
    def _failed(context: Any) -> None:
        stack = context.connection.info.get(_STARTED) if context.connection is not None else None
        if stack:
            statement = context.statement or ""
            target.observe_query(operation(statement), time.perf_counter() - stack.pop())

    return engine
