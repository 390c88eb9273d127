"""The alerting decision against the real SQL alert-state store (SQLite file, no server).

The same scenario runs against the in-memory twin, so the twin cannot drift from the SQL
semantics (compare-and-set, cooldown inside the claim, naive SQLite timestamps).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from drift_monitor.adapters.sql import SqlMonitorRepository, sqlite_engine, upgrade
from drift_monitor.service.alerting import (
    AlertStateStore,
    DetectionOutcome,
    MemoryAlertStateStore,
    RecordingNotifier,
    process_outcome,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
COOLDOWN = timedelta(minutes=30)


def sql_store(tmp_path: Path) -> AlertStateStore:
    engine = sqlite_engine(f"sqlite:///{tmp_path / 'alerts.db'}")
    upgrade(engine)
    return SqlMonitorRepository(engine)


def memory_store(tmp_path: Path) -> AlertStateStore:
    return MemoryAlertStateStore()


@pytest.mark.parametrize("make_store", [sql_store, memory_store], ids=["sqlite", "memory"])
def test_lifecycle_on_each_store(
    make_store: Callable[[Path], AlertStateStore], tmp_path: Path
) -> None:
    store = make_store(tmp_path)
    pd = RecordingNotifier()
    timeline = [
        (0, "drift"),
        (5, "drift"),
        (29, "drift"),
        (30, "drift"),
        (31, "drift"),
        (40, "insufficient_data"),
        (45, "ok"),
        (50, "drift"),
        (80, "drift"),
        (81, "ok"),
    ]
    for minutes, status in timeline:
        at = T0 + timedelta(minutes=minutes)
        process_outcome(
            DetectionOutcome("team/bert", status, at, report={}),  # type: ignore[arg-type]
            notifiers=[pd],
            store=store,
            cooldown=COOLDOWN,
            now=at,
        )
    sent = [(a.action, a.reminder, a.timestamp - T0) for a in pd.sent]
    assert sent == [
        ("trigger", False, timedelta(0)),
        ("trigger", True, timedelta(minutes=30)),  # reminder after exactly one cooldown
        ("resolve", False, timedelta(minutes=45)),
        # minute 50 is inside the cooldown after the resolve (flapping guard)
        ("trigger", False, timedelta(minutes=80)),
        ("resolve", False, timedelta(minutes=81)),
    ]


@pytest.mark.parametrize("make_store", [sql_store, memory_store], ids=["sqlite", "memory"])
def test_failed_send_rolls_back_on_each_store(
    make_store: Callable[[Path], AlertStateStore], tmp_path: Path
) -> None:
    store = make_store(tmp_path)
    pd = RecordingNotifier()
    pd.fail_next(1)
    for minutes in (0, 1):
        at = T0 + timedelta(minutes=minutes)
        process_outcome(
            DetectionOutcome("m", "drift", at, report={}),
            notifiers=[pd],
            store=store,
            cooldown=COOLDOWN,
            now=at,
        )
    assert pd.actions == ["trigger"]
    state = store.get_alert_state("m", "pagerduty")
    assert state is not None and state.state == "triggered"
