"""Alert state on real PostgreSQL: concurrent runs page once; state survives a new process."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from drift_monitor.adapters.sql import SqlMonitorRepository, upgrade
from drift_monitor.service.alerting import (
    Alert,
    DetectionOutcome,
    RecordingNotifier,
    process_outcome,
)
from sqlalchemy.engine import make_url

pytestmark = pytest.mark.integration

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
COOLDOWN = timedelta(minutes=30)


@pytest.fixture
def pg_engine(postgres_url: str) -> Iterator[sa.Engine]:
    """A database of this test's own, dropped afterwards."""
    name = f"g1_alerts_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine = sa.create_engine(make_url(postgres_url).set(database=name), pool_size=10)
    try:
        upgrade(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def run(
    store: SqlMonitorRepository, notifier: RecordingNotifier, status: str, at: datetime
) -> None:
    process_outcome(
        DetectionOutcome("team/bert", status, at, report={}),  # type: ignore[arg-type]
        notifiers=[notifier],
        store=store,
        cooldown=COOLDOWN,
        now=at,
    )


def concurrently(store: SqlMonitorRepository, status: str, at: datetime, n: int = 8) -> list[Alert]:
    notifiers = [RecordingNotifier() for _ in range(n)]
    barrier = threading.Barrier(n)

    def worker(notifier: RecordingNotifier) -> None:
        barrier.wait()
        run(store, notifier, status, at)

    threads = [threading.Thread(target=worker, args=(x,)) for x in notifiers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [a for x in notifiers for a in x.sent]


def test_concurrent_runs_trigger_remind_and_resolve_once(pg_engine: sa.Engine) -> None:
    store = SqlMonitorRepository(pg_engine)
    triggers = concurrently(store, "drift", T0)
    assert [(a.action, a.reminder) for a in triggers] == [("trigger", False)]
    assert concurrently(store, "drift", T0 + timedelta(minutes=10)) == []
    reminders = concurrently(store, "drift", T0 + timedelta(minutes=31))
    assert [(a.action, a.reminder) for a in reminders] == [("trigger", True)]
    resolves = concurrently(store, "ok", T0 + timedelta(minutes=32))
    assert [a.action for a in resolves] == ["resolve"]
    assert {a.dedup_key for a in triggers + reminders + resolves} == {"drift-monitor/team/bert"}


def test_state_survives_a_new_process(pg_engine: sa.Engine, postgres_url: str) -> None:
    run(SqlMonitorRepository(pg_engine), RecordingNotifier(), "drift", T0)
    # A "restarted" detection function: new engine, new repository, new notifier.
    fresh_engine = sa.create_engine(pg_engine.url)
    try:
        notifier = RecordingNotifier()
        store = SqlMonitorRepository(fresh_engine)
        run(store, notifier, "drift", T0 + timedelta(minutes=5))
        assert notifier.sent == []
        run(store, notifier, "ok", T0 + timedelta(minutes=6))
        assert notifier.actions == ["resolve"]
    finally:
        fresh_engine.dispose()
