"""SqlMonitorRepository on SQLite: configs, baselines, results and alert compare-and-set."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
from drift_monitor.adapters.sql import SqlMonitorRepository
from drift_monitor.domain.errors import ValidationError
from sqlalchemy import Engine

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def result(model_id: str = "m", at: datetime = T0, status: str = "ok", **extra: object) -> dict:
    row: dict = {
        "model_id": model_id,
        "checked_at": at,
        "status": status,
        "drift_detected": status == "drift",
        "report": {"tests": {"ks": {"p_value": 0.5}}},
    }
    row.update(extra)
    return row


def test_config_upsert_round_trip(monitor: SqlMonitorRepository) -> None:
    assert monitor.get_config("m") is None
    monitor.save_config("m", {"drift_threshold": 0.2, "statistical_test": ["ks", "mmd"]})
    assert monitor.get_config("m") == {"drift_threshold": 0.2, "statistical_test": ["ks", "mmd"]}
    monitor.save_config("m", {"alpha": 0.01})  # replaces, does not merge
    assert monitor.get_config("m") == {"alpha": 0.01}
    assert monitor.get_config("other") is None


def test_baseline_set_replace_and_utc(monitor: SqlMonitorRepository) -> None:
    assert monitor.get_baseline("m") is None
    tz = timezone(timedelta(hours=2))
    start, end = T0.astimezone(tz), (T0 + timedelta(days=1)).astimezone(tz)
    monitor.set_baseline("m", start, end, True, now=T0)
    stored = monitor.get_baseline("m")
    assert stored is not None
    assert (stored.start, stored.end, stored.pinned, stored.updated_at) == (
        T0,
        T0 + timedelta(days=1),
        True,
        T0,
    )
    assert stored.start.tzinfo == UTC and stored.end.tzinfo == UTC
    monitor.set_baseline("m", T0 - timedelta(days=7), T0, False, now=T0 + timedelta(hours=1))
    replaced = monitor.get_baseline("m")
    assert replaced is not None and not replaced.pinned
    assert replaced.start == T0 - timedelta(days=7)


def test_baseline_must_be_ordered(monitor: SqlMonitorRepository) -> None:
    with pytest.raises(ValidationError) as caught:
        monitor.set_baseline("m", T0, T0, True)
    assert caught.value.field == "end"
    assert monitor.get_baseline("m") is None


def test_results_history_newest_first(monitor: SqlMonitorRepository) -> None:
    assert monitor.latest_result("m") is None
    ids = [monitor.add_result(result(at=T0 + timedelta(minutes=i), n_current=i)) for i in range(5)]
    assert len(set(ids)) == 5
    monitor.add_result(result("other", at=T0 + timedelta(hours=1)))
    latest = monitor.latest_result("m")
    assert latest is not None and latest.id == ids[-1] and latest.n_current == 4
    assert latest.checked_at == T0 + timedelta(minutes=4) and latest.checked_at.tzinfo == UTC
    assert [r.n_current for r in monitor.history("m")] == [4, 3, 2, 1, 0]
    assert [r.n_current for r in monitor.history("m", limit=2)] == [4, 3]
    assert [r.n_current for r in monitor.history("m", since=T0 + timedelta(minutes=3))] == [4, 3]
    with pytest.raises(ValidationError):
        monitor.history("m", limit=0)


def test_result_fields_and_json_cleanup(monitor: SqlMonitorRepository) -> None:
    report = {
        "drift_detected": np.bool_(True),
        "tests": {"ks": {"p_value": np.float64("nan"), "statistic": np.float32(0.25)}},
        "top_dimensions": np.array([3, 1, 2]),
        "kl_divergence": float("inf"),
    }
    new_id = monitor.add_result(
        result(
            status="drift",
            report=report,
            baseline_start=T0 - timedelta(days=7),
            baseline_end=T0 - timedelta(hours=1),
            current_start=T0 - timedelta(hours=1),
            current_end=T0,
            n_baseline=np.int64(5000),
            n_current=700,
        )
    )
    got = monitor.latest_result("m")
    assert got is not None and got.id == new_id
    assert got.status == "drift" and got.drift_detected is True
    assert got.report == {
        "drift_detected": True,
        "tests": {"ks": {"p_value": None, "statistic": 0.25}},
        "top_dimensions": [3, 1, 2],
        "kl_divergence": None,
    }
    assert (got.baseline_start, got.current_end) == (T0 - timedelta(days=7), T0)
    assert (got.n_baseline, got.n_current) == (5000, 700)


def test_unknown_status_rejected(monitor: SqlMonitorRepository) -> None:
    with pytest.raises(ValidationError) as caught:
        monitor.add_result(result(status="maybe"))
    assert caught.value.field == "status"
    assert monitor.latest_result("m") is None


def test_transition_alert_compare_and_set(monitor: SqlMonitorRepository) -> None:
    assert monitor.get_alert_state("m", "pagerduty") is None
    assert monitor.transition_alert("m", "pagerduty", None, "triggered", "k1", T0)
    # a second "first trigger" loses: the row exists
    assert not monitor.transition_alert("m", "pagerduty", None, "triggered", "k1", T0)
    # wrong expectation loses and changes nothing
    assert not monitor.transition_alert("m", "pagerduty", "resolved", "triggered", "k1", T0)
    state = monitor.get_alert_state("m", "pagerduty")
    assert state is not None
    assert (state.state, state.dedup_key, state.last_sent_at) == ("triggered", "k1", T0)
    later = T0 + timedelta(minutes=5)
    assert monitor.transition_alert("m", "pagerduty", "triggered", "resolved", "k1", later)
    assert not monitor.transition_alert("m", "pagerduty", "triggered", "resolved", "k1", later)
    state = monitor.get_alert_state("m", "pagerduty")
    assert state is not None and state.state == "resolved" and state.updated_at == later
    # channels are independent
    assert monitor.get_alert_state("m", "webhook") is None
    assert monitor.transition_alert("m", "webhook", None, "triggered", "k1", later)


def test_transition_alert_cooldown(monitor: SqlMonitorRepository) -> None:
    cooldown = timedelta(minutes=30)
    assert monitor.transition_alert("m", "pd", None, "triggered", "k", T0)
    assert monitor.transition_alert("m", "pd", "triggered", "resolved", "k", T0 + cooldown / 3)
    # re-trigger inside the cooldown of the last send is refused...
    now = T0 + cooldown / 2
    assert not monitor.transition_alert(
        "m", "pd", "resolved", "triggered", "k", now, sent_before=now - cooldown
    )
    # ...and allowed once the last send is older than the cooldown
    now = T0 + cooldown / 3 + cooldown + timedelta(seconds=1)
    assert monitor.transition_alert(
        "m", "pd", "resolved", "triggered", "k", now, sent_before=now - cooldown
    )


def test_transition_alert_rejects_unknown_states(monitor: SqlMonitorRepository) -> None:
    with pytest.raises(ValidationError):
        monitor.transition_alert("m", "pd", None, "paging", "k", T0)
    with pytest.raises(ValidationError):
        monitor.transition_alert("m", "pd", "paging", "resolved", "k", T0)


def test_concurrent_transitions_have_one_winner(engine: Engine) -> None:
    monitor = SqlMonitorRepository(engine)
    barrier = threading.Barrier(8)
    wins: list[bool] = []

    def race(expected: str | None, new: str) -> None:
        barrier.wait()
        wins.append(monitor.transition_alert("m", "pd", expected, new, "k", T0))

    for expected, new in ((None, "triggered"), ("triggered", "resolved")):
        wins.clear()
        threads = [threading.Thread(target=race, args=(expected, new)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(wins) == [False] * 7 + [True]
