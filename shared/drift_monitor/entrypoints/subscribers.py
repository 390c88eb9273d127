"""Pub/Sub subscriber entry points: ``persist`` (Cloud SQL) and ``fold_stats`` (Redis).

Outcome of one delivery:

* handled (or a redelivery of something already handled): return normally -> ack;
* :class:`ValidationError` (undecodable, unknown version, wrong dimension ...): log at ERROR,
  publish the raw message to the dead-letter topic, return normally -> ack. Retrying could
  never succeed, and it must not block the subscription;
* :class:`TransientError` (database or Redis unreachable): raise -> Pub/Sub redelivers with
  backoff (the deployment's dead-letter policy bounds the attempts).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

import drift_monitor.bootstrap as bootstrap
from drift_monitor import logs
from drift_monitor.adapters.metrics import process_latency
from drift_monitor.domain.batch import BatchPart
from drift_monitor.domain.envelope import Message, decode
from drift_monitor.domain.errors import TransientError, ValidationError
from drift_monitor.entrypoints.cloudevent import Received, received_message
from drift_monitor.entrypoints.latency import observed, push_due
from drift_monitor.service import ingest
from drift_monitor.service.ports import Publisher

Handler = Callable[[BatchPart], bool]
_MAX_ATTRIBUTE_CHARS = 500  # Pub/Sub allows 1024 bytes per attribute value


def process(
    received: Received, handler: Handler, *, dead_letter: Publisher, consumer: str
) -> bool | None:
    """Decode and handle one message.

    Returns
    -------
    bool or None
        The handler's answer (False: already handled before), or None when dead-lettered.

    Raises
    ------
    TransientError
        From the handler or the dead-letter publish: the delivery must be retried.
    """
    attributes = received.message.attributes
    try:
        part = decode(received.message.data, attributes)
        done = handler(part)
    except ValidationError as exc:
        _dead_letter(received, exc, dead_letter=dead_letter, consumer=consumer)
        return None
    except TransientError as exc:
        logs.log(
            "WARNING",
            f"{consumer}: transient failure, message will be redelivered: {exc}",
            consumer=consumer,
            message_id=received.message_id,
            batch_id=attributes.get("batch_id"),
        )
        raise
    logs.log(
        "INFO",
        f"{consumer}: {'applied' if done else 'skipped (seen before or expired)'} {part.key}",
        consumer=consumer,
        message_id=received.message_id,
        model_id=part.model_id,
        batch_id=part.batch_id,
        part=part.part,
        count=part.count,
        skipped=not done,  # seen before, or dated before the statistics horizon
    )
    return done


def process_event(
    event: Any, handler: Handler, *, dead_letter: Publisher, consumer: str
) -> bool | None:
    """:func:`process` for a CloudEvent; an event that is not a Pub/Sub message is
    dead-lettered too (its JSON data becomes the dead-letter payload)."""
    try:
        received = received_message(event)
    except ValidationError as exc:
        raw = getattr(event, "data", event)
        payload = orjson.dumps(raw, default=str) if not isinstance(raw, bytes) else raw
        unreadable = Received(Message(payload, {}), "")
        _dead_letter(unreadable, exc, dead_letter=dead_letter, consumer=consumer)
        return None
    return process(received, handler, dead_letter=dead_letter, consumer=consumer)


def _dead_letter(
    received: Received, error: ValidationError, *, dead_letter: Publisher, consumer: str
) -> None:
    attributes = {
        **received.message.attributes,
        "dead_letter_consumer": consumer,
        "dead_letter_field": error.field[:_MAX_ATTRIBUTE_CHARS],
        "dead_letter_reason": error.message[:_MAX_ATTRIBUTE_CHARS],
        "original_message_id": received.message_id,
    }
    logs.log(
        "ERROR",
        f"{consumer}: rejected message {received.message_id or '(no id)'}: "
        f"{error.field}: {error.message}",
        consumer=consumer,
        message_id=received.message_id,
        subscription=received.subscription,
        field=error.field,
        reason=error.message,
        attributes=received.message.attributes,
        bytes=len(received.message.data),
    )
    dead_letter.publish([Message(received.message.data, attributes)])
    process_latency().count_dead_letter(consumer)


def persist_handler(container: Any) -> Handler:
    """The persist use case bound to a container's collaborators."""

    def handle(part: BatchPart) -> bool:
        with observed("persist", container):
            return ingest.persist_part(
                part,
                container.repository,
                container.archive,
                configured_dimension=container.settings.embedding_dimension,
            )

    return handle


def stats_handler(container: Any) -> Handler:
    """The fold-statistics use case bound to a container's collaborators."""

    def handle(part: BatchPart) -> bool:
        with observed("stats", container):
            return ingest.fold_part(
                part,
                container.stats,
                container.registry,
                configured_dimension=container.settings.embedding_dimension,
            )

    return handle


def persist(event: Any) -> None:
    """Cloud Function ``persist``: write the message's part to the database."""
    c = bootstrap.sql_container()
    process_event(event, persist_handler(c), dead_letter=c.dead_letter, consumer="persist")
    push_due("persist", c)  # a dead letter counted after the handler's own push


def fold_stats(event: Any) -> None:
    """Cloud Function ``stats``: fold the message's part into running statistics."""
    c = bootstrap.container()
    process_event(event, stats_handler(c), dead_letter=c.dead_letter, consumer="stats")
    push_due("stats", c)
