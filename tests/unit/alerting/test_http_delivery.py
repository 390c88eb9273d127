"""Retries, backoff, Retry-After and what is never retried, with an instant fake clock."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from alerting_fakes import FakeClock, ScriptedTransport
from drift_monitor.adapters.http_delivery import (
    DeliveryError,
    HttpDelivery,
    RetryPolicy,
    parse_retry_after,
)
from drift_monitor.adapters.url_safety import UnsafeURLError

URL = "https://events.pagerduty.com/v2/enqueue"
MakeDelivery = Callable[..., HttpDelivery]


def test_success_on_first_attempt_posts_json_to_the_checked_ip(
    make_delivery: MakeDelivery, transport: ScriptedTransport, clock: FakeClock
) -> None:
    response = make_delivery().post_json(URL, {"a": 1})
    assert response.status == 202 and response.attempts == 1
    assert response.json() == {"status": "success"}
    target, body, headers = transport.calls[0]
    assert target.ip == "44.242.69.192" and target.host == "events.pagerduty.com"
    assert target.path == "/v2/enqueue"
    assert json.loads(body) == {"a": 1}
    assert headers["Content-Type"] == "application/json"
    assert clock.sleeps == []


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_retryable_statuses_are_retried_until_success(
    make_delivery: MakeDelivery, transport: ScriptedTransport, clock: FakeClock, status: int
) -> None:
    transport.script = [status, status, 202]
    response = make_delivery().post_json(URL, {})
    assert response.attempts == 3
    assert len(transport.calls) == 3
    assert len(clock.sleeps) == 2


def test_connection_errors_are_retried(
    make_delivery: MakeDelivery, transport: ScriptedTransport
) -> None:
    transport.script = [ConnectionRefusedError(), TimeoutError(), 202]
    assert make_delivery().post_json(URL, {}).attempts == 3


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 301, 302])
def test_other_4xx_and_redirects_are_not_retried(
    make_delivery: MakeDelivery, transport: ScriptedTransport, clock: FakeClock, status: int
) -> None:
    transport.script = [status]
    with pytest.raises(DeliveryError) as info:
        make_delivery().post_json(URL, {})
    assert info.value.status == status
    assert info.value.retryable is False
    assert info.value.attempts == 1
    assert len(transport.calls) == 1 and clock.sleeps == []


def test_backoff_grows_exponentially_with_jitter_and_is_capped(
    make_delivery: MakeDelivery, transport: ScriptedTransport, clock: FakeClock
) -> None:
    policy = RetryPolicy(max_attempts=6, base_delay=1.0, max_delay=4.0, total_budget=1000)
    transport.default = 503
    with pytest.raises(DeliveryError) as info:
        make_delivery(retry=policy, failure_threshold=100).post_json(URL, {})
    assert info.value.attempts == 6 and info.value.retryable
    ceilings = [1.0, 2.0, 4.0, 4.0, 4.0]
    assert len(clock.sleeps) == 5
    for delay, ceiling in zip(clock.sleeps, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling
    # Jitter: the delays are not simply the ceilings.
    assert clock.sleeps != ceilings


def test_retry_after_seconds_is_honoured(
    make_delivery: MakeDelivery, transport: ScriptedTransport, clock: FakeClock
) -> None:
    transport.script = [(429, {"retry-after": "7"}), 202]
    make_delivery().post_json(URL, {})
    assert clock.sleeps == [7.0]


def test_retry_after_http_date_is_honoured(
    make_delivery: MakeDelivery, transport: ScriptedTransport, clock: FakeClock
) -> None:
    # wall clock in the fixture is 1_700_000_000 = Tue, 14 Nov 2023 22:13:20 GMT
    transport.script = [(503, {"retry-after": "Tue, 14 Nov 2023 22:13:32 GMT"}), 202]
    make_delivery().post_json(URL, {})
    assert clock.sleeps == [12.0]


def test_retry_after_beyond_the_cap_gives_up_without_sleeping(
    make_delivery: MakeDelivery, transport: ScriptedTransport, clock: FakeClock
) -> None:
    transport.script = [(429, {"retry-after": "3600"})]
    with pytest.raises(DeliveryError, match="Retry-After") as info:
        make_delivery().post_json(URL, {})
    assert info.value.retryable and info.value.status == 429
    assert clock.sleeps == []


def test_total_budget_bounds_the_time_spent(
    make_delivery: MakeDelivery, transport: ScriptedTransport, clock: FakeClock
) -> None:
    policy = RetryPolicy(max_attempts=50, base_delay=2.0, max_delay=2.0, total_budget=5.0)
    transport.default = 500
    with pytest.raises(DeliveryError, match="budget"):
        make_delivery(retry=policy, failure_threshold=100).post_json(URL, {})
    assert sum(clock.sleeps) <= 5.0


def test_unsafe_url_is_refused_before_any_request(
    make_delivery: MakeDelivery, transport: ScriptedTransport
) -> None:
    delivery = make_delivery(hosts={"rebind.example.com": ["169.254.169.254"]})
    with pytest.raises(UnsafeURLError):
        delivery.post_json("https://rebind.example.com/hook", {})
    assert transport.calls == []


def test_dns_failure_is_retried_then_reported(
    make_delivery: MakeDelivery, transport: ScriptedTransport, clock: FakeClock
) -> None:
    with pytest.raises(DeliveryError, match="name resolution"):
        make_delivery(hosts={}).post_json(URL, {})
    assert transport.calls == []
    assert len(clock.sleeps) == 3


def test_error_messages_never_contain_the_body_or_the_url_path(
    make_delivery: MakeDelivery, transport: ScriptedTransport
) -> None:
    transport.default = 500
    secret_url = "https://hooks.slack.com/services/T0/B0/SECRETTOKEN"
    with pytest.raises(DeliveryError) as info:
        make_delivery(failure_threshold=100).post_json(secret_url, {"routing_key": "SECRETKEY"})
    text = str(info.value)
    assert "SECRETTOKEN" not in text and "SECRETKEY" not in text
    assert info.value.endpoint == "https://hooks.slack.com:443"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("5", 5.0),
        (" 12 ", 12.0),
        ("soon", None),
        ("Tue, 14 Nov 2023 22:13:30 GMT", 10.0),
        ("Tue, 14 Nov 2023 22:13:00 GMT", 0.0),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, 1_700_000_000.0) == expected
