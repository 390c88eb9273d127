"""The Pub/Sub stand-in (tests/support/pubsub_standin.py) driven by the official client.

Each behaviour the project relies on from the emulator: topic and subscription management with
its status codes, batched publishing up to ~8 MiB messages, pull/ack, nack and ack-deadline
redelivery of the same message id, dead-letter policies, and the project's own dead-lettering.
The server runs in this process on a free port; no external service is needed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from drift_monitor.adapters import pubsub
from drift_monitor.domain import envelope
from drift_monitor.domain.envelope import Message
from drift_monitor.domain.errors import ValidationError
from drift_monitor.entrypoints.cloudevent import Received
from drift_monitor.entrypoints.subscribers import process
from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1
from support.pubsub_standin import PubSubStandIn

pytestmark = [
    pytest.mark.integration,
    # Deprecated in Pub/Sub, still honoured by the emulator: the quick way to see "nothing".
    pytest.mark.filterwarnings("ignore:The return_immediately flag:DeprecationWarning"),
]
PROJECT = "test-project"
STANDIN = Path(__file__).resolve().parents[2] / "support" / "pubsub_standin.py"


@pytest.fixture(scope="module")
def standin() -> Iterator[str]:
    server = PubSubStandIn()
    address = server.start()
    try:
        yield address
    finally:
        server.stop()


@pytest.fixture
def host(standin: str, monkeypatch: pytest.MonkeyPatch) -> str:
    # The client reads the variable when it is created: every client below comes later.
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", standin)
    return standin


@pytest.fixture
def subscriber(host: str) -> Iterator[Any]:
    client = pubsub.subscriber_client()
    yield client
    client.close()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def topic_with_subscription(**options: Any) -> tuple[str, str]:
    name = unique("standin")
    pubsub.ensure_topic(PROJECT, name)
    return name, pubsub.ensure_subscription(PROJECT, name, f"{name}-sub", **options)


def pull(subscriber: Any, subscription: str, *, immediately: bool = False) -> list[Any]:
    request = {"subscription": subscription, "max_messages": 100, "return_immediately": immediately}
    return list(subscriber.pull(request=request, timeout=10).received_messages)


def pull_n(subscriber: Any, subscription: str, expected: int) -> list[Any]:
    received: list[Any] = []
    deadline = time.monotonic() + 30
    while len(received) < expected and time.monotonic() < deadline:
        received.extend(pull(subscriber, subscription))
    return received


def nack(subscriber: Any, subscription: str, received: list[Any]) -> None:
    request = {
        "subscription": subscription,
        "ack_ids": [m.ack_id for m in received],
        "ack_deadline_seconds": 0,
    }
    subscriber.modify_ack_deadline(request=request)


def test_topics_and_subscriptions_answer_like_the_emulator(host: str, subscriber: Any) -> None:
    publisher = pubsub_v1.PublisherClient()
    topic = publisher.topic_path(PROJECT, unique("t"))
    assert publisher.create_topic(request={"name": topic}).name == topic
    with pytest.raises(gexc.AlreadyExists):
        publisher.create_topic(request={"name": topic})
    assert publisher.get_topic(request={"topic": topic}).name == topic
    with pytest.raises(gexc.NotFound):
        publisher.get_topic(request={"topic": topic + "-missing"})
    with pytest.raises(gexc.InvalidArgument):
        publisher.create_topic(request={"name": "not-a-topic-path"})
    listed = [t.name for t in publisher.list_topics(request={"project": f"projects/{PROJECT}"})]
    assert topic in listed

    subscription = subscriber.subscription_path(PROJECT, unique("s"))
    created = subscriber.create_subscription(request={"name": subscription, "topic": topic})
    assert (created.topic, created.ack_deadline_seconds) == (topic, 10)  # the default
    with pytest.raises(gexc.AlreadyExists):
        subscriber.create_subscription(request={"name": subscription, "topic": topic})
    with pytest.raises(gexc.NotFound):
        subscriber.create_subscription(
            request={"name": subscription + "-2", "topic": topic + "-missing"}
        )
    with pytest.raises(gexc.NotFound):
        subscriber.pull(request={"subscription": subscription + "-x", "max_messages": 1})
    with pytest.raises(gexc.InvalidArgument):
        subscriber.acknowledge(request={"subscription": subscription, "ack_ids": ["garbage"]})
    with pytest.raises(gexc.InvalidArgument):
        publisher.publish(topic, b"").result(timeout=10)

    publisher.delete_topic(request={"topic": topic})
    with pytest.raises(gexc.NotFound):
        publisher.delete_topic(request={"topic": topic})
    orphan = subscriber.get_subscription(request={"subscription": subscription})
    assert orphan.topic == "_deleted-topic_"
    subscriber.delete_subscription(request={"subscription": subscription})
    with pytest.raises(gexc.NotFound):
        subscriber.get_subscription(request={"subscription": subscription})


def test_ensure_pipeline_tolerates_existing_topics_and_subscriptions(host: str) -> None:
    name = unique("pipeline")
    subs = (f"{name}-persist", f"{name}-stats")
    first = pubsub.ensure_pipeline(
        PROJECT, name, dead_letter_topic=f"{name}-dl", subscriptions=subs
    )
    again = pubsub.ensure_pipeline(
        PROJECT, name, dead_letter_topic=f"{name}-dl", subscriptions=subs
    )
    assert first == again
    assert set(first) == {"topic", "dead_letter_topic", f"{name}-dl", *subs}


def test_a_published_batch_with_an_8_mib_message_is_pulled_whole(
    host: str, subscriber: Any
) -> None:
    name, subscription = topic_with_subscription()
    vectors = np.random.default_rng(3).normal(size=(6000, 384)).astype(np.float32)
    parts = envelope.split_batch("m/a", "big", datetime(2024, 1, 1, tzinfo=UTC), vectors)
    messages = [envelope.encode(p) for p in parts] + [Message(b"x%d" % i, {}) for i in range(20)]
    assert len(messages[0].data) > 8_000_000  # twice gRPC's default 4 MiB receive limit
    before = datetime.now(UTC)
    ids = pubsub.PubSubPublisher(PROJECT, name).publish(messages)
    assert len(set(ids)) == len(messages) and all(ids)

    received = pull_n(subscriber, subscription, len(messages))
    by_id = {m.message.message_id: m.message for m in received}
    assert sorted(by_id) == sorted(ids)  # each delivered once, under its publish id
    assert [by_id[i].data for i in ids] == [m.data for m in messages]
    assert by_id[ids[0]].attributes["format_version"] == "1"
    for message in by_id.values():
        assert before - timedelta(seconds=1) <= message.publish_time <= datetime.now(UTC)
    assert all(m.delivery_attempt == 0 for m in received)  # no dead-letter policy
    decoded = [envelope.decode(by_id[i].data, dict(by_id[i].attributes)) for i in ids[:2]]
    np.testing.assert_array_equal(np.concatenate([p.vectors for p in decoded]), vectors)

    ack_ids = [m.ack_id for m in received]
    subscriber.acknowledge(request={"subscription": subscription, "ack_ids": ack_ids})
    assert pull(subscriber, subscription, immediately=True) == []


def test_a_nack_redelivers_the_same_message_at_once(host: str, subscriber: Any) -> None:
    name, subscription = topic_with_subscription(ack_deadline_seconds=60)
    (message_id,) = pubsub.PubSubPublisher(PROJECT, name).publish([Message(b"once", {"k": "v"})])
    (first,) = pull_n(subscriber, subscription, 1)
    assert pull(subscriber, subscription, immediately=True) == []  # outstanding: not redelivered
    nack(subscriber, subscription, [first])
    (second,) = pull(subscriber, subscription, immediately=True)
    assert second.message.message_id == first.message.message_id == message_id
    assert (second.message.data, dict(second.message.attributes)) == (b"once", {"k": "v"})
    assert second.ack_id != first.ack_id
    # The first delivery's ack id is stale: acking with it is accepted and changes nothing.
    subscriber.acknowledge(request={"subscription": subscription, "ack_ids": [first.ack_id]})
    nack(subscriber, subscription, [second])
    (third,) = pull(subscriber, subscription, immediately=True)
    subscriber.acknowledge(request={"subscription": subscription, "ack_ids": [third.ack_id]})
    nack(subscriber, subscription, [third])  # after the ack: nothing comes back
    assert pull(subscriber, subscription, immediately=True) == []


def test_an_expired_ack_deadline_redelivers(host: str, subscriber: Any) -> None:
    name, subscription = topic_with_subscription(ack_deadline_seconds=10)
    pubsub.PubSubPublisher(PROJECT, name).publish([Message(b"slow consumer", {})])
    (first,) = pull_n(subscriber, subscription, 1)
    subscriber.modify_ack_deadline(
        request={"subscription": subscription, "ack_ids": [first.ack_id], "ack_deadline_seconds": 1}
    )
    assert pull(subscriber, subscription, immediately=True) == []
    started = time.monotonic()
    (again,) = pull(subscriber, subscription)  # a waiting pull sees the deadline expire
    assert 0.5 < time.monotonic() - started < 5
    assert again.message.message_id == first.message.message_id


def test_a_waiting_pull_returns_when_a_message_arrives(host: str, subscriber: Any) -> None:
    name, subscription = topic_with_subscription()
    publisher = pubsub.PubSubPublisher(PROJECT, name)
    timer = threading.Timer(0.5, publisher.publish, args=([Message(b"late", {})],))
    started = time.monotonic()
    timer.start()
    try:
        (late,) = pull(subscriber, subscription)
    finally:
        timer.join()
    assert late.message.data == b"late" and time.monotonic() - started < 5
    # With nothing to deliver, a pull is held open until just before its deadline, then empty.
    started = time.monotonic()
    response = subscriber.pull(request={"subscription": subscription, "max_messages": 5}, timeout=3)
    assert list(response.received_messages) == [] and 1.5 < time.monotonic() - started < 3


def test_a_dead_letter_policy_counts_attempts_and_forwards(host: str, subscriber: Any) -> None:
    name, dead = unique("dlp"), unique("dlp-dead")
    pubsub.ensure_topic(PROJECT, name)
    pubsub.ensure_topic(PROJECT, dead)
    dead_sub = pubsub.ensure_subscription(PROJECT, dead, f"{dead}-sub")
    subscription = pubsub.ensure_subscription(
        PROJECT, name, f"{name}-sub", dead_letter_topic=dead, max_delivery_attempts=5
    )
    pubsub.PubSubPublisher(PROJECT, name).publish([Message(b"poison", {"a": "b"})])
    attempts = []
    for _ in range(5):
        (got,) = pull_n(subscriber, subscription, 1)
        attempts.append(got.delivery_attempt)
        nack(subscriber, subscription, [got])
    assert attempts == [1, 2, 3, 4, 5]
    assert pull(subscriber, subscription, immediately=True) == []
    (forwarded,) = pull_n(subscriber, dead_sub, 1)
    assert forwarded.message.data == b"poison"
    attributes = dict(forwarded.message.attributes)
    assert attributes["a"] == "b"
    assert attributes["CloudPubSubDeadLetterSourceDeliveryCount"] == "5"
    assert attributes["CloudPubSubDeadLetterSourceSubscription"] == f"{name}-sub"


def test_the_subscribers_dead_lettering_reaches_the_dead_letter_subscription(
    host: str, subscriber: Any
) -> None:
    name = unique("embeddings")
    paths = pubsub.ensure_pipeline(
        PROJECT, name, dead_letter_topic=f"{name}-dl", subscriptions=(f"{name}-persist",)
    )
    pubsub.PubSubPublisher(PROJECT, name).publish([Message(b"not an envelope", {})])
    (junk,) = pull_n(subscriber, paths[f"{name}-persist"], 1)
    received = Received(
        Message(junk.message.data, dict(junk.message.attributes)),
        junk.message.message_id,
        paths[f"{name}-persist"],
    )

    def handler(_: Any) -> bool:
        raise AssertionError("an undecodable message never reaches the handler")

    dead_letter = pubsub.PubSubPublisher(PROJECT, f"{name}-dl")
    assert process(received, handler, dead_letter=dead_letter, consumer="persist") is None
    (dead,) = pull_n(subscriber, paths[f"{name}-dl"], 1)
    assert dead.message.data == b"not an envelope"
    assert dead.message.attributes["dead_letter_consumer"] == "persist"
    assert dead.message.attributes["original_message_id"] == junk.message.message_id
    with pytest.raises(ValidationError):
        envelope.decode(dead.message.data, dict(dead.message.attributes))


def test_the_command_line_server_prints_a_ready_line_and_stops_on_sigterm(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    process_ = subprocess.Popen(
        [sys.executable, str(STANDIN), "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process_.stdout is not None
        line = process_.stdout.readline()
        assert line.startswith("Pub/Sub stand-in ready on 127.0.0.1:"), line
        monkeypatch.setenv("PUBSUB_EMULATOR_HOST", line.rsplit(" ", 1)[1].strip())
        path = pubsub.ensure_topic(PROJECT, unique("cli"))
        assert pubsub_v1.PublisherClient().get_topic(request={"topic": path}).name == path
    finally:
        process_.send_signal(signal.SIGTERM)
        code = process_.wait(timeout=15)
    assert code == 0
