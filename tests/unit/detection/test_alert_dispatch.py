"""Detection outcomes reach the alerting decision with each model's channels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from drift_monitor import drift
from drift_monitor.domain import model_config
from drift_monitor.domain.errors import ValidationError
from drift_monitor.domain.model_config import ModelConfig
from drift_monitor.service.alerting import MemoryAlertStateStore, RecordingNotifier
from drift_monitor.service.detection import AlertDispatcher, DetectionOutcome, Window

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def outcome(status: str, minutes: int = 0) -> DetectionOutcome:
    at = NOW + timedelta(minutes=minutes)
    return DetectionOutcome(
        model_id="m",
        status=status,
        checked_at=at,
        current=Window(at - timedelta(hours=1), at),
        baseline=Window(at - timedelta(days=7), at - timedelta(hours=1)),
        n_baseline=500,
        n_current=200,
        report={"drift_detected": status == "drift",
                "tests": {"ks": {"statistic": 0.3, "p_value": 1e-5, "drift": status == "drift"}}},
    )  # fmt: skip


def dispatcher(webhooks: list[str]) -> tuple[AlertDispatcher, RecordingNotifier, RecordingNotifier]:
    pagerduty, webhook = RecordingNotifier("pagerduty"), RecordingNotifier("webhook")

    def make_webhook(url: str) -> RecordingNotifier:
        if "169.254" in url:
            raise ValidationError("alert_webhook", "metadata address")
        webhooks.append(url)
        return webhook

    d = AlertDispatcher(store=MemoryAlertStateStore(), cooldown=timedelta(minutes=30),
                        pagerduty=pagerduty, webhook=make_webhook)  # fmt: skip
    return d, pagerduty, webhook


def test_trigger_cooldown_resolve_on_both_channels() -> None:
    urls: list[str] = []
    d, pagerduty, webhook = dispatcher(urls)
    config = ModelConfig.resolve({"alert_webhook": "https://hooks.example.com/x"},
                                 default_threshold=0.15)  # fmt: skip
    d.handle(outcome("ok"), config, NOW)
    d.handle(outcome("drift", 5), config, NOW + timedelta(minutes=5))
    d.handle(outcome("drift", 10), config, NOW + timedelta(minutes=10))  # inside the cooldown
    d.handle(outcome("insufficient_data", 15), config, NOW + timedelta(minutes=15))
    d.handle(outcome("ok", 20), config, NOW + timedelta(minutes=20))
    assert pagerduty.actions == webhook.actions == ["trigger", "resolve"]
    details = pagerduty.sent[0].details
    assert details["tests"]["ks"]["p_value"] == 1e-5
    assert details["windows"]["current"]["samples"] == 200
    assert details["threshold"] == 0.15
    assert urls == ["https://hooks.example.com/x"] * 5


def test_model_without_webhook_pages_only_pagerduty() -> None:
    d, pagerduty, webhook = dispatcher([])
    d.handle(outcome("drift"), ModelConfig.resolve(None, default_threshold=0.15), NOW)
    assert pagerduty.actions == ["trigger"] and webhook.actions == []


def test_refused_webhook_does_not_stop_pagerduty() -> None:
    d, pagerduty, webhook = dispatcher([])
    config = ModelConfig.resolve(None, default_threshold=0.15)
    config = ModelConfig(**{**config.__dict__, "alert_webhook": "http://169.254.169.254/"})
    d.handle(outcome("drift"), config, NOW)
    assert pagerduty.actions == ["trigger"] and webhook.actions == []


def test_config_test_names_match_the_engine() -> None:
    assert tuple(drift.TEST_NAMES) == model_config.TEST_NAMES
