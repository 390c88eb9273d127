"""Slack-compatible webhook notifier (the model's ``alert_webhook``).

The body is what a Slack incoming webhook accepts: ``text`` (the fallback shown in
notifications and by non-Slack receivers) plus Block Kit ``blocks`` (header, summary, a few
fields, the top drifted dimensions). Nothing else is added at the top level, so Slack, Mattermost
and other Slack-compatible receivers all take it.

The URL is validated when the notifier is built (:func:`validate_webhook_url`) and again, after
DNS resolution, on every attempt (:mod:`drift_monitor.adapters.url_safety`). Webhook URLs often
carry a secret in their path (Slack's do), so the URL is never logged: only its host.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from drift_monitor.adapters.http_delivery import HttpDelivery
from drift_monitor.adapters.url_safety import validate_webhook_url
from drift_monitor.service.alerting import Alert

CHANNEL = "webhook"

# Block Kit limits: header 150 characters, section text 3000, field text 2000, 10 fields.
_HEADER_MAX = 150
_TEXT_MAX = 3000
_FIELDS_MAX = 10


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else "n/a"
    if value is None:
        return "n/a"
    return str(value)


def _fields(details: Mapping[str, Any]) -> list[dict[str, str]]:
    fields: list[dict[str, str]] = []
    tests = details.get("tests")
    if isinstance(tests, Mapping):
        for name, result in tests.items():
            if not isinstance(result, Mapping):
                continue
            flag = ":red_circle:" if result.get("drift") else ":large_green_circle:"
            fields.append(
                {
                    "type": "mrkdwn",
                    "text": f"{flag} *{name}*\nscore {_fmt(result.get('statistic'))}, "
                    f"p {_fmt(result.get('p_value'))}",
                }
            )
    windows = details.get("windows")
    if isinstance(windows, Mapping):
        for name in ("baseline", "current"):
            window = windows.get(name)
            if isinstance(window, Mapping):
                fields.append(
                    {
                        "type": "mrkdwn",
                        "text": f"*{name} window*\n{_fmt(window.get('samples'))} samples, "
                        f"{_fmt(window.get('start'))} → {_fmt(window.get('end'))}",
                    }
                )
    return fields[:_FIELDS_MAX]


def slack_message(alert: Alert) -> dict[str, Any]:
    """The Slack-compatible JSON body for ``alert``."""
    resolved = alert.action == "resolve"
    icon = ":white_check_mark:" if resolved else ":rotating_light:"
    prefix = "[RESOLVED]" if resolved else ("[STILL DRIFTING]" if alert.reminder else "[DRIFT]")
    text = f"{icon} {prefix} {alert.summary}"
    header = f"{prefix} {alert.model_id}"[:_HEADER_MAX]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header}},
        {"type": "section", "text": {"type": "mrkdwn", "text": text[:_TEXT_MAX]}},
    ]
    if not resolved:
        fields = _fields(alert.details)
        if fields:
            blocks.append({"type": "section", "fields": fields})
        top = alert.details.get("top_dimensions")
        if isinstance(top, list) and top:
            shown = ", ".join(
                _fmt(d.get("dimension", d) if isinstance(d, Mapping) else d) for d in top[:10]
            )
            blocks.append(
                {
                    "type": "section",
                    "text": {
                        "type": "mrkdwn",
                        "text": f"*Top drifted dimensions:* {shown}"[:_TEXT_MAX],
                    },
                }
            )
    blocks.append(
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": f"dedup key `{alert.dedup_key}` · "
                    f"{alert.severity} · {alert.timestamp.isoformat()}",
                }
            ],
        }
    )
    return {"text": text, "blocks": blocks}


class WebhookNotifier:
    """:class:`~drift_monitor.service.alerting.Notifier` posting to one model's webhook.

    Parameters
    ----------
    url
        The model's ``alert_webhook``; validated now (422 :class:`UnsafeURLError` if refused).
    delivery
        Shared :class:`HttpDelivery`; its ``policy`` decides whether loopback is allowed.
    """

    def __init__(self, url: str, delivery: HttpDelivery | None = None) -> None:
        self.delivery = delivery or HttpDelivery()
        self._url = validate_webhook_url(url, self.delivery.policy)

    def __repr__(self) -> str:
        return "WebhookNotifier(url='***')"

    @property
    def channel(self) -> str:
        return CHANNEL

    def send(self, alert: Alert) -> None:
        """Post the message; raise ``DeliveryError``/``UnsafeURLError`` when it did not arrive."""
        self.delivery.post_json(self._url, slack_message(alert), field="alert_webhook")
