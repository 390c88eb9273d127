"""PagerDuty and webhook notifiers: Events v2 body shape, secrets kept out of logs, URL checks."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from alerting_fakes import ScriptedTransport
from drift_monitor.adapters.http_delivery import DeliveryError, HttpDelivery
from drift_monitor.adapters.pagerduty import PagerDutyNotifier
from drift_monitor.adapters.url_safety import UnsafeURLError
from drift_monitor.adapters.webhook import WebhookNotifier, slack_message
from drift_monitor.service.alerting import (
    Alert,
    DetectionOutcome,
    MemoryAlertStateStore,
    process_outcome,
)
from support.receiver import validate_event, validate_slack_message

KEY = "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6"
PD_URL = "https://events.pagerduty.com/v2/enqueue"
MakeDelivery = Callable[..., HttpDelivery]
AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
COOLDOWN = timedelta(minutes=30)


def trigger(summary: str = "Embedding drift detected for model m") -> Alert:
    return Alert(
        action="trigger",
        model_id="team/bert",
        dedup_key="drift-monitor/team/bert",
        summary=summary,
        severity="warning",
        timestamp=AT,
        details={
            "tests": {"ks": {"statistic": 0.3, "p_value": 0.001, "drift": True}},
            "top_dimensions": [{"dimension": 4}],
        },
    )


def resolve() -> Alert:
    return Alert("resolve", "team/bert", "drift-monitor/team/bert", "resolved", "warning", AT)


def sent_body(transport: ScriptedTransport, index: int = -1) -> dict[str, object]:
    body: dict[str, object] = json.loads(transport.calls[index][1])
    return body


def test_trigger_event_has_the_events_v2_shape(
    make_delivery: MakeDelivery, transport: ScriptedTransport
) -> None:
    notifier = PagerDutyNotifier(KEY, PD_URL, make_delivery(), dashboard_url="https://dm.example/")
    notifier.send(trigger())
    body = sent_body(transport)
    assert validate_event(body, KEY) == []
    assert body["event_action"] == "trigger"
    assert body["dedup_key"] == "drift-monitor/team/bert"
    payload = body["payload"]
    assert isinstance(payload, dict)
    assert payload["severity"] == "warning" and payload["component"] == "team/bert"
    assert payload["source"] == "drift-monitor"
    assert payload["timestamp"] == "2024-05-01T12:00:00+00:00"
    assert payload["custom_details"]["tests"]["ks"]["p_value"] == 0.001
    assert body["links"] == [
        {"href": "https://dm.example/drift/status/team/bert", "text": "Drift status"}
    ]


def test_resolve_event_carries_the_same_dedup_key_and_no_payload(
    make_delivery: MakeDelivery, transport: ScriptedTransport
) -> None:
    PagerDutyNotifier(KEY, PD_URL, make_delivery()).send(resolve())
    body = sent_body(transport)
    assert validate_event(body, KEY) == []
    assert body == {
        "routing_key": KEY,
        "event_action": "resolve",
        "dedup_key": "drift-monitor/team/bert",
    }


def test_summary_is_truncated_to_1024(
    make_delivery: MakeDelivery, transport: ScriptedTransport
) -> None:
    PagerDutyNotifier(KEY, PD_URL, make_delivery()).send(trigger("x" * 5000))
    payload = sent_body(transport)["payload"]
    assert isinstance(payload, dict) and len(payload["summary"]) == 1024


@pytest.mark.parametrize("bad", ["", "short", "x" * 33, None])
def test_malformed_routing_key_is_refused_without_echoing_it(bad: object) -> None:
    with pytest.raises(ValueError) as info:
        PagerDutyNotifier(bad, PD_URL)  # type: ignore[arg-type]
    assert "short" not in str(info.value)


def test_events_url_must_be_https_in_production() -> None:
    with pytest.raises(UnsafeURLError) as info:
        PagerDutyNotifier(KEY, "http://events.pagerduty.com/v2/enqueue")
    assert info.value.field == "PAGERDUTY_EVENTS_URL"


def test_non_success_status_in_a_2xx_answer_is_a_failure(
    make_delivery: MakeDelivery, transport: ScriptedTransport
) -> None:
    def answer(*args: object) -> object:
        from drift_monitor.adapters.http_delivery import RawResponse

        return RawResponse(202, {}, b'{"status": "invalid event"}')

    delivery = make_delivery()
    delivery.transport = answer  # type: ignore[assignment]
    with pytest.raises(DeliveryError):
        PagerDutyNotifier(KEY, PD_URL, delivery).send(trigger())


def test_routing_key_never_reaches_the_logs(
    make_delivery: MakeDelivery,
    transport: ScriptedTransport,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    notifier = PagerDutyNotifier(KEY, PD_URL, make_delivery(failure_threshold=2))
    store = MemoryAlertStateStore()
    outcome = DetectionOutcome("team/bert", "drift", AT, report={"tests": {}})
    process_outcome(outcome, notifiers=[notifier], store=store, cooldown=COOLDOWN, now=AT)
    transport.default = 500  # failures, retries, an opening breaker: all logged
    process_outcome(
        DetectionOutcome("team/bert", "ok", AT, report={}),
        notifiers=[notifier],
        store=store,
        cooldown=COOLDOWN,
        now=AT,
    )
    process_outcome(
        DetectionOutcome("team/bert", "ok", AT, report={}),
        notifiers=[notifier],
        store=store,
        cooldown=COOLDOWN,
        now=AT,
    )
    assert len(caplog.records) >= 5
    for record in caplog.records:
        rendered = record.getMessage() + repr(getattr(record, "fields", ""))
        assert KEY not in rendered
    assert KEY not in repr(notifier)


def test_webhook_message_is_slack_compatible(
    make_delivery: MakeDelivery, transport: ScriptedTransport
) -> None:
    notifier = WebhookNotifier("https://hooks.slack.com/services/T/B/x", make_delivery())
    notifier.send(trigger())
    body = sent_body(transport)
    assert validate_slack_message(body) == []
    assert set(body) == {"text", "blocks"}
    assert "[DRIFT]" in str(body["text"])
    rendered = json.dumps(body)
    assert "*ks*" in rendered and "Top drifted dimensions" in rendered
    assert transport.calls[-1][0].path == "/services/T/B/x"


def test_webhook_resolve_and_reminder_are_labelled() -> None:
    assert "[RESOLVED]" in slack_message(resolve())["text"]
    reminder = Alert(**{**trigger().__dict__, "reminder": True})
    assert "[STILL DRIFTING]" in slack_message(reminder)["text"]


def test_slack_header_respects_block_kit_limits() -> None:
    long = Alert(**{**trigger().__dict__, "model_id": "m" * 128, "summary": "s" * 5000})
    message = slack_message(long)
    assert len(message["blocks"][0]["text"]["text"]) <= 150
    assert len(message["blocks"][1]["text"]["text"]) <= 3000


@pytest.mark.parametrize(
    "url",
    [
        "https://169.254.169.254/latest/meta-data/",
        "https://metadata.google.internal/computeMetadata/v1/",
        "https://10.0.0.8/hook",
        "https://[::1]/hook",
        "http://hooks.slack.com/services/x",
    ],
)
def test_webhook_url_is_validated_at_construction(url: str, make_delivery: MakeDelivery) -> None:
    with pytest.raises(UnsafeURLError):
        WebhookNotifier(url, make_delivery(production=True))


def test_webhook_url_resolving_to_metadata_is_refused_at_send(
    make_delivery: MakeDelivery, transport: ScriptedTransport
) -> None:
    delivery = make_delivery(hosts={"hooks.example.com": ["169.254.169.254"]})
    notifier = WebhookNotifier("https://hooks.example.com/x", delivery)
    with pytest.raises(UnsafeURLError):
        notifier.send(trigger())
    assert transport.calls == []
    assert "hooks.example.com/x" not in repr(notifier)
