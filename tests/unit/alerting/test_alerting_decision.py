"""The pure alerting decision: trigger once, cooldown, reminders, resolve, insufficient data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from drift_monitor.service.alerting import NEVER, AlertState, Decision, decide

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
COOLDOWN = timedelta(minutes=30)


def state(kind: str, minutes_ago: float | None) -> AlertState:
    sent = None if minutes_ago is None else NOW - timedelta(minutes=minutes_ago)
    return AlertState("m", "pagerduty", kind, "drift-monitor/m", sent)


@pytest.mark.parametrize(
    ("status", "stored", "expected"),
    [
        # drift starts
        ("drift", None, Decision.TRIGGER),
        ("drift", state("resolved", 120), Decision.TRIGGER),
        # flapping: resolved only 10 minutes ago -> wait for the cooldown
        ("drift", state("resolved", 10), Decision.NOTHING),
        ("drift", state("resolved", 30), Decision.TRIGGER),
        # open alert: quiet inside the cooldown, reminder after it
        ("drift", state("triggered", 0), Decision.NOTHING),
        ("drift", state("triggered", 29.9), Decision.NOTHING),
        ("drift", state("triggered", 30), Decision.REMIND),
        ("drift", state("triggered", 300), Decision.REMIND),
        # back to normal: resolve at once, even inside the cooldown
        ("ok", state("triggered", 1), Decision.RESOLVE),
        ("ok", state("triggered", 300), Decision.RESOLVE),
        ("ok", state("resolved", 1), Decision.NOTHING),
        ("ok", None, Decision.NOTHING),
        # no decision: never trigger, never resolve
        ("insufficient_data", None, Decision.NOTHING),
        ("insufficient_data", state("triggered", 300), Decision.NOTHING),
        ("insufficient_data", state("resolved", 300), Decision.NOTHING),
        ("error", state("triggered", 300), Decision.NOTHING),
        ("error", None, Decision.NOTHING),
    ],
)
def test_decision_table(status: str, stored: AlertState | None, expected: Decision) -> None:
    decision, reason = decide(status, stored, NOW, COOLDOWN)
    assert decision is expected
    assert reason


def test_unsent_marker_retries_at_once() -> None:
    # After a failed send the claim is rolled back with last_sent_at=NEVER.
    unsent_trigger = AlertState("m", "pagerduty", "resolved", "k", NEVER)
    assert decide("drift", unsent_trigger, NOW, COOLDOWN)[0] is Decision.TRIGGER
    unsent_resolve = AlertState("m", "pagerduty", "triggered", "k", NEVER)
    assert decide("ok", unsent_resolve, NOW, COOLDOWN)[0] is Decision.RESOLVE


def test_naive_timestamps_from_sqlite_are_read_as_utc() -> None:
    naive = AlertState("m", "pagerduty", "triggered", "k", datetime(2024, 5, 1, 11, 50))
    assert decide("drift", naive, NOW, COOLDOWN)[0] is Decision.NOTHING


def test_zero_cooldown_reminds_every_run() -> None:
    assert decide("drift", state("triggered", 0), NOW, timedelta(0))[0] is Decision.REMIND


def test_unknown_status_is_a_bug() -> None:
    with pytest.raises(ValueError):
        decide("drifting", None, NOW, COOLDOWN)


def test_decision_actions() -> None:
    assert Decision.TRIGGER.action == "trigger"
    assert Decision.REMIND.action == "trigger"
    assert Decision.RESOLVE.action == "resolve"
    assert Decision.NOTHING.action is None
