"""The per-endpoint circuit breaker: opens, fails fast, half-opens, recovers or re-opens."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from alerting_fakes import FakeClock, ScriptedTransport
from drift_monitor.adapters.http_delivery import (
    CircuitBreaker,
    CircuitOpenError,
    DeliveryError,
    HttpDelivery,
    RetryPolicy,
)

PD = "https://events.pagerduty.com/v2/enqueue"
SLACK = "https://hooks.slack.com/services/x"
MakeDelivery = Callable[..., HttpDelivery]


def test_breaker_state_machine(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_threshold=3, reset_timeout=60, clock=clock)
    assert breaker.state == "closed"
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state == "closed"
    breaker.record_failure()
    assert breaker.state == "open" and not breaker.allow()
    assert breaker.retry_in() == 60
    clock.now += 59.9
    assert not breaker.allow()
    clock.now += 0.1
    assert breaker.state == "half_open"
    assert breaker.allow()  # the one trial request
    assert not breaker.allow()  # no second one while the trial is in flight
    breaker.record_failure()  # trial failed: open again, for a full reset_timeout
    assert breaker.state == "open"
    clock.now += 60
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed" and breaker.allow()


def test_success_resets_the_failure_count(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout=10, clock=clock)
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state == "closed"


def test_invalid_settings() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(failure_threshold=0)
    with pytest.raises(ValueError):
        CircuitBreaker(reset_timeout=0)


def test_dead_endpoint_fails_fast_and_other_endpoints_are_unaffected(
    make_delivery: MakeDelivery, transport: ScriptedTransport, clock: FakeClock
) -> None:
    delivery = make_delivery(
        retry=RetryPolicy(max_attempts=2, base_delay=0.1, max_delay=0.1),
        failure_threshold=3,
        reset_timeout=30,
    )
    transport.default = ConnectionRefusedError()
    with pytest.raises(DeliveryError):
        delivery.post_json(PD, {})  # attempts 1, 2
    with pytest.raises(CircuitOpenError):
        delivery.post_json(PD, {})  # attempt 3 opens the circuit; no 4th request
    assert len(transport.calls) == 3
    calls_before = len(transport.calls)
    # Every later model now fails instantly, without a request and without sleeping.
    sleeps_before = len(clock.sleeps)
    for _ in range(10):
        with pytest.raises(CircuitOpenError) as info:
            delivery.post_json(PD, {})
        assert info.value.attempts == 0
    assert len(transport.calls) == calls_before and len(clock.sleeps) == sleeps_before
    # Slack is another endpoint with its own closed breaker.
    transport.default = 200
    assert delivery.post_json(SLACK, {"text": "x"}).status == 200
    assert delivery.breaker("https://events.pagerduty.com:443").state == "open"
    assert delivery.breaker("https://hooks.slack.com:443").state == "closed"


def test_half_open_trial_recovers_the_endpoint(
    make_delivery: MakeDelivery, transport: ScriptedTransport, clock: FakeClock
) -> None:
    delivery = make_delivery(
        retry=RetryPolicy(max_attempts=1), failure_threshold=2, reset_timeout=30
    )
    transport.script = [500, 500]
    for _ in range(2):
        with pytest.raises(DeliveryError):
            delivery.post_json(PD, {})
    with pytest.raises(CircuitOpenError):
        delivery.post_json(PD, {})
    clock.now += 30
    assert delivery.post_json(PD, {}).status == 202  # the half-open trial succeeds
    assert delivery.breaker("https://events.pagerduty.com:443").state == "closed"


def test_429_does_not_open_the_breaker(
    make_delivery: MakeDelivery, transport: ScriptedTransport
) -> None:
    delivery = make_delivery(retry=RetryPolicy(max_attempts=1), failure_threshold=1)
    transport.script = [429, 429, 429]
    for _ in range(3):
        with pytest.raises(DeliveryError) as info:
            delivery.post_json(PD, {})
        assert not isinstance(info.value, CircuitOpenError)
    assert len(transport.calls) == 3
