"""Entry points of the detection fan-out (``service/detect_fanout.py``).

* The tick: ``POST /drift/check?fanout=true`` on the ``detect`` function (Cloud Scheduler,
  through the ``scheduled_detection`` workflow) publishes one request per model to the detect
  topic (``{PUBSUB_TOPIC}-detect``) and answers ``200 {"checked_at", "fanout": {"slot",
  "published", "pruned_claims"}}``; ``slot_seconds`` (60..86400, default 300) is the slot
  width, normally the schedule's interval.
* The worker: the ``check`` function, subscribed to the detect topic, checks one
  model per message. A message that is not a detect request is dead-lettered and acked; a
  transient fault raises, so Pub/Sub redelivers (the subscription's dead-letter policy bounds
  the attempts).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Request, Response

from drift_monitor import bootstrap, logs
from drift_monitor.domain.envelope import Message
from drift_monitor.domain.errors import TransientError, ValidationError
from drift_monitor.entrypoints import detect_http
from drift_monitor.entrypoints.cloudevent import Received, received_message
from drift_monitor.service import detect_fanout, detection

CONSUMER = "check"
MIN_SLOT_SECONDS, MAX_SLOT_SECONDS = 60, 86_400


def detect_topic(settings: Any) -> str:
    """The detect topic: ``{PUBSUB_TOPIC}-detect`` (Terraform names it the same way)."""
    return f"{settings.pubsub_topic}-detect"


def _publisher(container: Any) -> Any:
    publisher = getattr(container, "detect_publisher", None)
    if publisher is None:
        from drift_monitor.adapters.pubsub import PubSubPublisher

        settings = container.settings
        publisher = PubSubPublisher(settings.google_cloud_project, detect_topic(settings))
        container.detect_publisher = publisher
    return publisher


def _claims(container: Any) -> Any:
    claims = getattr(container, "detection_claims", None)
    if claims is None:
        from drift_monitor.adapters.sql.claims import SqlDetectionClaims

        claims = SqlDetectionClaims(container.engine)
        container.detection_claims = claims
    return claims


def tick(request: Request, container: Any, now: datetime) -> Response:
    """``POST /drift/check?fanout=true``: publish one detect request per model."""
    if (
        getattr(container, "embedded", False)
        and getattr(container, "detect_publisher", None) is None
    ):
        return detect_http.error(
            "fanout", "the embedded mode has no detect topic: POST /drift/check without fanout", 422
        )
    raw = request.args.get("slot_seconds", str(detect_fanout.DEFAULT_SLOT_SECONDS))
    if (
        not (raw.isascii() and raw.isdigit())
        or not MIN_SLOT_SECONDS <= int(raw) <= MAX_SLOT_SECONDS
    ):
        return detect_http.error(
            "slot_seconds", f"must be an integer from {MIN_SLOT_SECONDS} to {MAX_SLOT_SECONDS}", 422
        )
    try:
        ids = detection.model_ids(container.repository)
        result = detect_fanout.publish_tick(
            ids, _publisher(container), _claims(container), now, int(raw)
        )
    except TransientError as exc:
        logs.log("WARNING", f"detection fan-out failed: {exc}")
        return detect_http.error("fanout", "the database or broker is unavailable; retry", 503)
    logs.log("INFO", "detection fan-out published", **result.to_dict())
    return detect_http.json_response({"checked_at": detection.iso(now), "fanout": result.to_dict()})


def run_model_with(event: Any, container: Any) -> detection.DetectionOutcome | None:
    """Check the model one delivery asks for; None when dead-lettered or already checked."""
    try:
        received = received_message(event)
    except ValidationError as exc:
        _dead_letter(container, Received(Message(b"", {}), ""), exc)
        return None
    try:
        request = detect_fanout.DetectRequest.decode(received.message.data)
    except ValidationError as exc:
        _dead_letter(container, received, exc)
        return None

    def run(model_id: str, slot: datetime) -> detection.DetectionOutcome:
        return detection.run_detection(model_id, now=slot, **detect_http.collaborators(container))

    outcome = detect_fanout.run_requested(request, _claims(container), run)
    logs.log(
        "INFO",
        f"{CONSUMER}: {'checked' if outcome else 'skipped (slot checked before)'} "
        f"{request.model_id}",
        consumer=CONSUMER,
        message_id=received.message_id,
        model_id=request.model_id,
        slot=request.slot.isoformat(),
        status=getattr(outcome, "status", None),
        duplicate=outcome is None,
    )
    return outcome if isinstance(outcome, detection.DetectionOutcome) else None


def run_model(event: Any) -> None:
    """Cloud Function ``check``."""
    run_model_with(event, bootstrap.sql_container())


def _dead_letter(container: Any, received: Received, error: ValidationError) -> None:
    logs.log(
        "ERROR",
        f"{CONSUMER}: rejected message {received.message_id or '(no id)'}: "
        f"{error.field}: {error.message}",
        consumer=CONSUMER,
        message_id=received.message_id,
        field=error.field,
        reason=error.message,
    )
    attributes = {
        **received.message.attributes,
        "dead_letter_consumer": CONSUMER,
        "dead_letter_field": error.field[:500],
        "dead_letter_reason": error.message[:500],
        "original_message_id": received.message_id,
    }
    container.dead_letter.publish([Message(received.message.data, attributes)])
