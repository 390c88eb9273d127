"""process_outcome end to end with twins: dedup, cooldown, CAS claims, failures, restarts."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from drift_monitor.service.alerting import (
    NEVER,
    AlertState,
    Decision,
    DetectionOutcome,
    MemoryAlertStateStore,
    RecordingNotifier,
    alert_details,
    dedup_key_for,
    process_outcome,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
COOLDOWN = timedelta(minutes=30)

REPORT: dict[str, Any] = {
    "drift_detected": True,
    "tests": {
        "ks": {"statistic": 0.31, "p_value": 1.2e-6, "drift": True, "effect_size": 0.4},
        "mmd": {"statistic": 0.002, "p_value": 0.41, "drift": False},
    },
    "kl_divergence": 0.27,
    "confidence_interval": [0.2, 0.35],
    "top_dimensions": [{"dimension": 17, "score": 0.5}, {"dimension": 3, "score": 0.4}],
    "alpha": 0.05,
}


def outcome(status: str, at: datetime, model: str = "team/bert") -> DetectionOutcome:
    return DetectionOutcome(
        model_id=model,
        status=status,  # type: ignore[arg-type]
        checked_at=at,
        report=REPORT if status in ("drift", "ok") else None,
        baseline_window=(at - timedelta(days=7), at - timedelta(hours=1)),
        current_window=(at - timedelta(hours=1), at),
        n_baseline=5000,
        n_current=800,
        threshold=0.15,
    )


class Counter:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def alert_sent(self, model_id: str, channel: str, action: str) -> None:
        self.calls.append((model_id, channel, action))


def run(
    status: str,
    at: datetime,
    store: MemoryAlertStateStore,
    *notifiers: RecordingNotifier,
    counter: Counter | None = None,
) -> list[Any]:
    return process_outcome(
        outcome(status, at),
        notifiers=list(notifiers),
        store=store,
        cooldown=COOLDOWN,
        now=at,
        counter=counter,
    )


def test_full_lifecycle_one_trigger_quiet_cooldown_one_resolve() -> None:
    store, pd, hook, counter = (
        MemoryAlertStateStore(),
        RecordingNotifier("pagerduty"),
        RecordingNotifier("webhook"),
        Counter(),
    )
    run("ok", T0, store, pd, hook, counter=counter)
    run("insufficient_data", T0 + timedelta(minutes=5), store, pd, hook)
    assert pd.sent == [] and hook.sent == []
    results = run("drift", T0 + timedelta(minutes=10), store, pd, hook, counter=counter)
    assert [r.decision for r in results] == [Decision.TRIGGER, Decision.TRIGGER]
    assert all(r.sent for r in results)
    for minutes in (15, 20, 39):  # repeat runs inside the cooldown send nothing new
        run("drift", T0 + timedelta(minutes=minutes), store, pd, hook)
    run("insufficient_data", T0 + timedelta(minutes=45), store, pd, hook)  # does not resolve
    assert pd.actions == ["trigger"] and hook.actions == ["trigger"]
    run("ok", T0 + timedelta(minutes=50), store, pd, hook, counter=counter)
    assert pd.actions == ["trigger", "resolve"] and hook.actions == ["trigger", "resolve"]
    assert pd.sent[0].dedup_key == pd.sent[1].dedup_key == "drift-monitor/team/bert"
    run("ok", T0 + timedelta(minutes=55), store, pd, hook)
    assert len(pd.sent) == 2
    assert counter.calls == [
        ("team/bert", "pagerduty", "trigger"),
        ("team/bert", "webhook", "trigger"),
        ("team/bert", "pagerduty", "resolve"),
        ("team/bert", "webhook", "resolve"),
    ]


def test_persisting_drift_is_reminded_once_per_cooldown_with_the_same_key() -> None:
    store, pd = MemoryAlertStateStore(), RecordingNotifier()
    for minutes in range(0, 95, 5):
        run("drift", T0 + timedelta(minutes=minutes), store, pd)
    assert pd.actions == ["trigger"] * 4  # minutes 0, 30, 60, 90
    assert [a.reminder for a in pd.sent] == [False, True, True, True]
    assert {a.dedup_key for a in pd.sent} == {dedup_key_for("team/bert")}


def test_state_survives_a_restart_because_it_is_stored() -> None:
    store = MemoryAlertStateStore()
    run("drift", T0, store, RecordingNotifier())
    fresh_process_notifier = RecordingNotifier()  # a new instance: nothing in memory
    run("drift", T0 + timedelta(minutes=5), store, fresh_process_notifier)
    assert fresh_process_notifier.sent == []
    run("ok", T0 + timedelta(minutes=6), store, fresh_process_notifier)
    assert fresh_process_notifier.actions == ["resolve"]


def test_failed_trigger_is_rolled_back_and_retried_next_run() -> None:
    store, pd = MemoryAlertStateStore(), RecordingNotifier()
    pd.fail_next(1)
    [result] = run("drift", T0, store, pd)
    assert result.decision is Decision.TRIGGER and not result.sent and result.error
    stored = store.get_alert_state("team/bert", "pagerduty")
    assert stored is not None and stored.state == "resolved" and stored.last_sent_at == NEVER
    [retry] = run("drift", T0 + timedelta(minutes=5), store, pd)  # inside the cooldown anyway
    assert retry.sent and pd.actions == ["trigger"]


def test_failed_resolve_keeps_the_alert_open_and_retries() -> None:
    store, pd = MemoryAlertStateStore(), RecordingNotifier()
    run("drift", T0, store, pd)
    pd.fail_next(1)
    [failed] = run("ok", T0 + timedelta(minutes=5), store, pd)
    assert not failed.sent
    stored = store.get_alert_state("team/bert", "pagerduty")
    assert stored is not None and stored.state == "triggered"
    [retry] = run("ok", T0 + timedelta(minutes=10), store, pd)
    assert retry.sent and pd.actions == ["trigger", "resolve"]


def test_one_failing_channel_does_not_stop_the_other() -> None:
    store, pd, hook = MemoryAlertStateStore(), RecordingNotifier(), RecordingNotifier("webhook")
    pd.fail_next(5)
    results = run("drift", T0, store, pd, hook)
    assert [r.sent for r in results] == [False, True]
    assert hook.actions == ["trigger"]


def test_concurrent_runs_page_once() -> None:
    store = MemoryAlertStateStore()
    notifiers = [RecordingNotifier() for _ in range(8)]
    barrier = threading.Barrier(len(notifiers))

    def worker(n: RecordingNotifier) -> None:
        barrier.wait()
        run("drift", T0, store, n)

    threads = [threading.Thread(target=worker, args=(n,)) for n in notifiers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(len(n.sent) for n in notifiers) == 1


def test_a_lost_cas_sends_nothing() -> None:
    class LosingStore(MemoryAlertStateStore):
        def transition_alert(self, *args: Any, **kwargs: Any) -> bool:
            return False

    pd = RecordingNotifier()
    [result] = run("drift", T0, LosingStore(), pd)
    assert pd.sent == [] and result.decision is Decision.NOTHING
    assert "concurrent" in result.reason


def test_resolve_uses_the_stored_dedup_key() -> None:
    store, pd = MemoryAlertStateStore(), RecordingNotifier()
    store.set(AlertState("team/bert", "pagerduty", "triggered", "legacy-key", T0))
    run("ok", T0 + timedelta(minutes=1), store, pd)
    assert pd.sent[0].dedup_key == "legacy-key"


def test_models_are_independent() -> None:
    store, pd = MemoryAlertStateStore(), RecordingNotifier()
    process_outcome(
        outcome("drift", T0, "a"), notifiers=[pd], store=store, cooldown=COOLDOWN, now=T0
    )
    process_outcome(
        outcome("drift", T0, "b"), notifiers=[pd], store=store, cooldown=COOLDOWN, now=T0
    )
    assert [a.dedup_key for a in pd.sent] == ["drift-monitor/a", "drift-monitor/b"]


def test_alert_content_carries_scores_windows_and_top_dimensions() -> None:
    store, pd = MemoryAlertStateStore(), RecordingNotifier()
    run("drift", T0, store, pd)
    alert = pd.sent[0]
    assert alert.severity == "warning" and alert.action == "trigger"
    assert "team/bert" in alert.summary and "1/2 tests" in alert.summary
    assert "ks=1.2e-06" in alert.summary
    details = alert.details
    assert details["tests"]["ks"] == {
        "statistic": 0.31,
        "p_value": 1.2e-6,
        "drift": True,
        "effect_size": 0.4,
    }
    assert details["windows"]["current"]["samples"] == 800
    assert details["windows"]["baseline"]["start"] == "2024-04-24T12:00:00+00:00"
    assert details["top_dimensions"][0]["dimension"] == 17
    assert details["kl_divergence"] == 0.27 and details["threshold"] == 0.15


def test_details_are_json_safe() -> None:
    import json

    import numpy as np

    report = {
        "tests": {
            "ks": {"statistic": np.float32(0.5), "p_value": float("nan"), "drift": np.bool_(True)}
        },
        "top_dimensions": np.array([3, 1]),
    }
    details = alert_details(DetectionOutcome("m", "drift", T0, report=report))
    text = json.dumps(details, allow_nan=False)
    assert '"p_value": null' in text and '"top_dimensions": [3, 1]' in text


def test_concurrent_reminders_send_once() -> None:
    store = MemoryAlertStateStore()
    store.set(
        AlertState(
            "team/bert",
            "pagerduty",
            "triggered",
            "drift-monitor/team/bert",
            T0 - timedelta(hours=2),
        )
    )
    notifiers = [RecordingNotifier() for _ in range(8)]
    barrier = threading.Barrier(len(notifiers))

    def worker(n: RecordingNotifier) -> None:
        barrier.wait()
        run("drift", T0, store, n)

    threads = [threading.Thread(target=worker, args=(n,)) for n in notifiers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sent = [a for n in notifiers for a in n.sent]
    assert len(sent) == 1 and sent[0].reminder


def test_an_unexpected_notifier_error_also_rolls_back() -> None:
    class Broken(RecordingNotifier):
        def send(self, alert: Any) -> None:
            raise TypeError("bug")

    store, broken, hook = MemoryAlertStateStore(), Broken(), RecordingNotifier("webhook")
    results = run("drift", T0, store, broken, hook)
    assert [r.sent for r in results] == [False, True]
    assert results[0].error == "bug"
    stored = store.get_alert_state("team/bert", "pagerduty")
    assert stored is not None and stored.state == "resolved" and stored.last_sent_at == NEVER
