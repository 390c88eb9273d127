"""Real HTTP against the loopback receiver: Events v2 shape accepted, retries, breaker."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from drift_monitor.adapters.http_delivery import (
    CircuitOpenError,
    DeliveryError,
    HttpDelivery,
    RetryPolicy,
)
from drift_monitor.adapters.pagerduty import PagerDutyNotifier
from drift_monitor.adapters.url_safety import UnsafeURLError, UrlPolicy
from drift_monitor.adapters.webhook import WebhookNotifier
from drift_monitor.service.alerting import (
    Alert,
    Decision,
    DetectionOutcome,
    MemoryAlertStateStore,
    Status,
    build_alert,
    process_outcome,
)
from support.fixtures import TEST_ROUTING_KEY, pagerduty_receiver  # noqa: F401
from support.receiver import Receiver

pytestmark = pytest.mark.integration

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
REPORT = {
    "drift_detected": True,
    "tests": {
        "ks": {"statistic": 0.4, "p_value": 1e-9, "drift": True},
        "mmd": {"statistic": 0.03, "p_value": 0.001, "drift": True},
    },
    "kl_divergence": 0.31,
    "top_dimensions": [{"dimension": 12, "score": 0.8}],
}


def fast_delivery(**kwargs: object) -> HttpDelivery:
    retry = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05, timeout=2.0)
    return HttpDelivery(policy=UrlPolicy.for_environment("test"), retry=retry, **kwargs)  # type: ignore[arg-type]


def outcome(status: Status, at: datetime) -> DetectionOutcome:
    return DetectionOutcome(
        "team/bert",
        status,
        at,
        report=REPORT if status == "drift" else {},
        current_window=(at - timedelta(hours=1), at),
        n_current=900,
        n_baseline=6000,
    )


def test_trigger_and_resolve_are_accepted_by_a_strict_receiver(
    pagerduty_receiver: Receiver,  # noqa: F811
) -> None:
    delivery = fast_delivery()
    pd = PagerDutyNotifier(TEST_ROUTING_KEY, pagerduty_receiver.events_url, delivery)
    hook = WebhookNotifier(pagerduty_receiver.webhook_url("team-bert"), delivery)
    store = MemoryAlertStateStore()
    cooldown = timedelta(minutes=30)
    timeline: list[tuple[int, Status]] = [(0, "ok"), (10, "drift"), (15, "drift"), (20, "ok")]
    for minutes, status in [*timeline, (25, "ok")]:
        at = T0 + timedelta(minutes=minutes)
        results = process_outcome(
            outcome(status, at), notifiers=[pd, hook], store=store, cooldown=cooldown, now=at
        )
        assert all(r.error is None for r in results), results
    assert pagerduty_receiver.rejected == []
    events = pagerduty_receiver.events
    assert [e["event_action"] for e in events] == ["trigger", "resolve"]
    assert {e["dedup_key"] for e in events} == {"drift-monitor/team/bert"}
    details = events[0]["payload"]["custom_details"]
    assert details["tests"]["ks"]["p_value"] == 1e-9
    assert details["windows"]["current"]["samples"] == 900
    assert details["top_dimensions"] == [{"dimension": 12, "score": 0.8}]
    webhooks = pagerduty_receiver.webhooks("team-bert")
    assert len(webhooks) == 2
    assert "[DRIFT]" in webhooks[0]["text"] and "[RESOLVED]" in webhooks[1]["text"]


def test_retries_on_429_and_5xx_succeed(pagerduty_receiver: Receiver) -> None:  # noqa: F811
    pagerduty_receiver.fail_next(1, status=429, retry_after="0")
    pagerduty_receiver.fail_next(2, status=503)
    pd = PagerDutyNotifier(TEST_ROUTING_KEY, pagerduty_receiver.events_url, fast_delivery())
    store = MemoryAlertStateStore()
    [result] = process_outcome(
        outcome("drift", T0), notifiers=[pd], store=store, cooldown=timedelta(minutes=30), now=T0
    )
    assert result.sent
    statuses = [r.status for r in pagerduty_receiver.requests]
    assert statuses == [429, 503, 503, 202]
    assert len(pagerduty_receiver.events) == 1


def test_400_is_not_retried(pagerduty_receiver: Receiver) -> None:  # noqa: F811
    # A receiver expecting another routing key answers 400 "invalid event".
    other = "0" * 32
    pd = PagerDutyNotifier(other, pagerduty_receiver.events_url, fast_delivery())
    with pytest.raises(DeliveryError) as info:
        pd.send(_alert(outcome("drift", T0)))
    assert info.value.status == 400 and not info.value.retryable
    assert len(pagerduty_receiver.requests) == 1


def _alert(o: DetectionOutcome) -> Alert:
    return build_alert(o, Decision.TRIGGER, "drift-monitor/team/bert")


@pytest.fixture
def dead_port() -> Iterator[int]:
    """A loopback port with nothing listening (bound, then closed)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    sock.close()
    yield port


def test_breaker_opens_against_a_dead_port_and_fails_fast(
    dead_port: int,
    pagerduty_receiver: Receiver,  # noqa: F811
) -> None:
    delivery = fast_delivery(failure_threshold=3, reset_timeout=60.0)
    dead = PagerDutyNotifier(TEST_ROUTING_KEY, f"http://127.0.0.1:{dead_port}/v2/enqueue", delivery)
    alive = WebhookNotifier(pagerduty_receiver.webhook_url("other-model"), delivery)
    store = MemoryAlertStateStore()
    results = []
    started = time.monotonic()
    for i in range(20):  # twenty models, PagerDuty dead
        o = DetectionOutcome(f"model-{i}", "drift", T0, report=REPORT)
        results.extend(
            process_outcome(
                o, notifiers=[dead, alive], store=store, cooldown=timedelta(minutes=30), now=T0
            )
        )
    elapsed = time.monotonic() - started
    pd_results = [r for r in results if r.channel == "pagerduty"]
    assert not any(r.sent for r in pd_results)
    assert sum("circuit open" in (r.error or "") for r in pd_results) >= 18
    assert delivery.breaker(f"http://127.0.0.1:{dead_port}").state == "open"
    # The webhook of every model still went out, and the run did not stall.
    assert len(pagerduty_receiver.webhooks("other-model")) == 20
    assert elapsed < 10
    with pytest.raises(CircuitOpenError):
        dead.send(_alert(outcome("drift", T0)))


def test_loopback_is_refused_in_production(pagerduty_receiver: Receiver) -> None:  # noqa: F811
    strict = HttpDelivery(policy=UrlPolicy.for_environment("production"))
    with pytest.raises(UnsafeURLError):
        WebhookNotifier(pagerduty_receiver.webhook_url("x"), strict)
    with pytest.raises(UnsafeURLError):
        strict.post_json(f"https://127.0.0.1:{pagerduty_receiver.port}/x", {"text": "x"})
    assert pagerduty_receiver.requests == []
