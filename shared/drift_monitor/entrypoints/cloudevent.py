"""Decode the CloudEvent that Eventarc delivers for a Pub/Sub message.

``event.data`` is ``{"message": {"data": "<base64>", "attributes": {...}, "messageId": "...",
"publishTime": "..."}, "subscription": "projects/.../subscriptions/..."}``.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from drift_monitor.domain.batch import BatchPart
from drift_monitor.domain.envelope import Message, decode
from drift_monitor.domain.errors import ValidationError


@dataclass(frozen=True)
class Received:
    """A Pub/Sub message as delivered: the raw envelope plus delivery facts."""

    message: Message
    message_id: str
    subscription: str | None = None


def _data_of(event: Any) -> Any:
    # cloudevents.http.CloudEvent exposes .data; a plain dict (tests, push bodies) may too.
    if hasattr(event, "data"):
        return event.data
    if isinstance(event, dict):
        return event.get("data")
    return None


def received_message(event: Any) -> Received:
    """Extract the raw message; raise :class:`ValidationError` if the event is not Pub/Sub's."""
    data = _data_of(event)
    if isinstance(data, (bytes, str)):
        raise ValidationError("data", "CloudEvent data is not a Pub/Sub message object", 400)
    message = data.get("message") if isinstance(data, dict) else None
    if not isinstance(message, dict):
        raise ValidationError("data.message", "missing Pub/Sub message", 400)
    raw = message.get("data", "")
    if not isinstance(raw, str):
        raise ValidationError("data.message.data", "must be a base64 string", 400)
    try:
        payload = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValidationError("data.message.data", f"is not valid base64: {exc}", 400) from exc
    attributes = message.get("attributes") or {}
    if not isinstance(attributes, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in attributes.items()
    ):
        raise ValidationError("data.message.attributes", "must map strings to strings", 400)
    message_id = message.get("messageId") or message.get("message_id") or ""
    subscription = data.get("subscription") if isinstance(data, dict) else None
    return Received(
        Message(payload, dict(attributes)),
        str(message_id),
        subscription if isinstance(subscription, str) else None,
    )


def decode_part(event: Any) -> BatchPart:
    """CloudEvent -> :class:`BatchPart` in one step (raises :class:`ValidationError`)."""
    received = received_message(event)
    return decode(received.message.data, received.message.attributes)
