"""PagerDuty Events API v2 notifier.

``POST {events_url}`` with ``routing_key``, ``event_action`` (``trigger`` | ``resolve``),
``dedup_key`` (stable per model: ``drift-monitor/<model_id>``), and for triggers a ``payload``
with ``summary`` (<= 1024 characters), ``source``, ``severity``, ``timestamp``, ``component``,
``group``, ``class`` and ``custom_details`` (scores, p-values, windows, top drifted dimensions).
PagerDuty answers 202 with ``{"status": "success", "dedup_key": ...}``.

The routing key is a secret: it is sent in the body only, never logged, never put in an
exception message, and hidden from ``repr``.
"""

from __future__ import annotations

import logging
from typing import Any

from drift_monitor.adapters.http_delivery import DeliveryError, HttpDelivery
from drift_monitor.adapters.url_safety import validate_webhook_url
from drift_monitor.service.alerting import Alert

_log = logging.getLogger(__name__)

CHANNEL = "pagerduty"
DEFAULT_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"


class PagerDutyNotifier:
    """:class:`~drift_monitor.service.alerting.Notifier` for the PagerDuty Events API v2.

    Parameters
    ----------
    routing_key
        The 32-character integration key (``PAGERDUTY_ROUTING_KEY``).
    events_url
        ``PAGERDUTY_EVENTS_URL``; tests point it at a loopback receiver.
    delivery
        Shared :class:`HttpDelivery` (URL checks, retries, circuit breaker).
    source
        ``payload.source``: where the problem is (the monitored model lives in ``component``).
    dashboard_url
        Optional link attached to triggers (``links``), e.g. the status endpoint base URL.
    """

    def __init__(
        self,
        routing_key: str,
        events_url: str = DEFAULT_EVENTS_URL,
        delivery: HttpDelivery | None = None,
        *,
        source: str = "drift-monitor",
        dashboard_url: str | None = None,
    ) -> None:
        if not isinstance(routing_key, str) or len(routing_key.strip()) != 32:
            # Never echo the value: it is a secret even when it is malformed.
            raise ValueError("the PagerDuty routing key must be a 32-character integration key")
        self._routing_key = routing_key.strip()
        self.delivery = delivery or HttpDelivery()
        self.events_url = validate_webhook_url(
            events_url, self.delivery.policy, field="PAGERDUTY_EVENTS_URL"
        )
        self.source = source
        self.dashboard_url = dashboard_url.rstrip("/") if dashboard_url else None

    def __repr__(self) -> str:
        return f"PagerDutyNotifier(routing_key='***', events_url={self.events_url!r})"

    @property
    def channel(self) -> str:
        return CHANNEL

    def event(self, alert: Alert) -> dict[str, Any]:
        """The Events v2 body for ``alert`` (includes the routing key: do not log it)."""
        body: dict[str, Any] = {
            "routing_key": self._routing_key,
            "event_action": alert.action,
            "dedup_key": alert.dedup_key,
        }
        if alert.action == "trigger":
            body["payload"] = {
                "summary": alert.summary[:1024],
                "source": self.source,
                "severity": alert.severity,
                "timestamp": alert.timestamp.isoformat(),
                "component": alert.model_id,
                "group": "embedding-drift",
                "class": "embedding drift",
                "custom_details": dict(alert.details),
            }
            body["client"] = "drift-monitor"
            if self.dashboard_url:
                link = f"{self.dashboard_url}/drift/status/{alert.model_id}"
                body["links"] = [{"href": link, "text": "Drift status"}]
        return body

    def send(self, alert: Alert) -> None:
        """Enqueue the event; raise :class:`DeliveryError` when PagerDuty did not accept it."""
        response = self.delivery.post_json(
            self.events_url, self.event(alert), field="PAGERDUTY_EVENTS_URL"
        )
        answer = response.json()
        if isinstance(answer, dict) and answer.get("status") not in (None, "success"):
            raise DeliveryError(
                f"PagerDuty answered {response.status} with status {answer.get('status')!r}",
                endpoint=self.events_url,
                status=response.status,
                attempts=response.attempts,
                retryable=False,
            )
        _log.info(
            "pagerduty event accepted",
            extra={
                "fields": {
                    "model_id": alert.model_id,
                    "event_action": alert.action,
                    "dedup_key": alert.dedup_key,
                    "status": response.status,
                }
            },
        )
