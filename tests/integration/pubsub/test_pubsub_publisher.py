"""PubSubPublisher, the topic helpers and PubSubSender against the official Pub/Sub emulator."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from drift_monitor.adapters import pubsub
from drift_monitor.client import PubSubSender
from drift_monitor.domain import envelope
from drift_monitor.domain.envelope import Message
from drift_monitor.domain.errors import TransientError, ValidationError

pytestmark = pytest.mark.integration
PROJECT = "test-project"


def pull_all(subscription: str, expected: int, *, ack: bool = True) -> list[Any]:
    """Pull until ``expected`` messages arrived (bounded), optionally acknowledging them."""
    subscriber = pubsub.subscriber_client()
    received: list[Any] = []
    try:
        for _ in range(30):
            if len(received) >= expected:
                break
            response = subscriber.pull(
                request={"subscription": subscription, "max_messages": 100}, timeout=10
            )
            received.extend(response.received_messages)
            if ack and response.received_messages:
                subscriber.acknowledge(
                    request={
                        "subscription": subscription,
                        "ack_ids": [m.ack_id for m in response.received_messages],
                    }
                )
    finally:
        subscriber.close()
    return received


@pytest.fixture
def topic(pubsub_emulator_host: str) -> tuple[str, str]:
    name = f"embeddings-{uuid.uuid4().hex[:10]}"
    pubsub.ensure_topic(PROJECT, name)
    return name, pubsub.ensure_subscription(PROJECT, name, f"{name}-sub")


def test_split_batch_round_trips_through_the_emulator(topic: tuple[str, str]) -> None:
    name, subscription = topic
    vectors = np.random.default_rng(0).normal(size=(6000, 384)).astype(np.float32)
    parts = envelope.split_batch("m/a", "b-1", datetime(2024, 1, 1, tzinfo=UTC), vectors)
    assert len(parts) == 2  # the first one is ~8 MiB: close to Pub/Sub's 10 MB limit
    publisher = pubsub.PubSubPublisher(PROJECT, name)
    ids = publisher.publish([envelope.encode(p) for p in parts])
    assert len(ids) == 2 and all(ids)
    received = pull_all(subscription, 2)
    decoded = sorted(
        (envelope.decode(m.message.data, dict(m.message.attributes)) for m in received),
        key=lambda p: p.part,
    )
    assert [p.key for p in decoded] == ["b-1#0", "b-1#1"]
    np.testing.assert_array_equal(np.concatenate([p.vectors for p in decoded]), vectors)
    assert received[0].message.attributes["format_version"] == "1"


def test_publishing_to_a_missing_topic_is_a_transient_error(pubsub_emulator_host: str) -> None:
    publisher = pubsub.PubSubPublisher(PROJECT, f"missing-{uuid.uuid4().hex[:8]}", timeout=10)
    with pytest.raises(TransientError):
        publisher.publish([Message(b"x", {})])


def test_ensure_pipeline_is_idempotent(pubsub_emulator_host: str) -> None:
    name = f"embeddings-{uuid.uuid4().hex[:10]}"
    dead = f"{name}-dead-letter"
    subs = (f"{name}-persist", f"{name}-stats")
    first = pubsub.ensure_pipeline(PROJECT, name, dead_letter_topic=dead, subscriptions=subs)
    again = pubsub.ensure_pipeline(PROJECT, name, dead_letter_topic=dead, subscriptions=subs)
    assert first == again
    assert first[subs[0]].endswith(f"/subscriptions/{subs[0]}")


def test_pubsub_sender_publishes_the_documented_format(topic: tuple[str, str]) -> None:
    name, subscription = topic
    sender = PubSubSender(PROJECT, name)
    vectors = np.random.default_rng(1).normal(size=(10, 16)).astype(np.float16)
    result = sender.send("svc", vectors, batch_id="direct-1", metadata={"env": "prod"})
    assert (result.batch_id, result.accepted, result.parts) == ("direct-1", 10, 1)
    (message,) = pull_all(subscription, 1)
    part = envelope.decode(message.message.data, dict(message.message.attributes))
    assert part.metadata == {"env": "prod"}
    np.testing.assert_array_equal(part.vectors, vectors.astype(np.float32))
    with pytest.raises(ValidationError):
        sender.send("svc", np.full((2, 3), np.nan))
