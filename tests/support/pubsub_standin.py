"""A small in-memory Pub/Sub server speaking the ``google.pubsub.v1`` gRPC API.

It stands in for the official emulator on machines without it (no Java, no Cloud SDK): the
official client talks to it through ``PUBSUB_EMULATOR_HOST`` exactly as to the emulator. It
serves what the project uses, with the emulator's status codes and at-least-once delivery:

- Publisher: CreateTopic, GetTopic, ListTopics, DeleteTopic, Publish (message ids, publish time).
- Subscriber: CreateSubscription, GetSubscription, ListSubscriptions, DeleteSubscription,
  Pull, Acknowledge, ModifyAckDeadline. A delivery is outstanding until its ack deadline; then,
  or at once after ``ModifyAckDeadline(0)`` (a nack), the message is delivered again with a new
  ack id and the same message id. With a dead-letter policy, ``delivery_attempt`` counts the
  deliveries and a message nacked ``max_delivery_attempts`` times moves to the dead-letter topic.

Not served: StreamingPull (nothing in the project subscribes with a streaming pull), push
subscriptions, filters, ordering keys, snapshots and seek, exactly-once delivery, retention.

Run ``python tests/support/pubsub_standin.py --host 127.0.0.1 --port N`` (prints a ready line),
or in-process: ``server = PubSubStandIn(); host = server.start(); ...; server.stop()``.
"""

from __future__ import annotations

import argparse
import itertools
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NoReturn

import grpc
from google.pubsub_v1 import types

DELETED_TOPIC = "_deleted-topic_"
DEFAULT_ACK_DEADLINE = 10
MAX_ACK_DEADLINE = 600
# Like the emulator, an empty pull without return_immediately is held open until just before
# the caller's deadline, but never longer than this.
MAX_PULL_WAIT = 30.0
UNLIMITED = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]


@dataclass
class Delivery:
    """One message in a subscription's backlog, with the state of its latest delivery."""

    message: types.PubsubMessage
    attempts: int = 0
    ack_id: str | None = None  # of the outstanding delivery
    deadline: float = 0.0  # time.monotonic() when the outstanding delivery expires


@dataclass
class Subscription:
    proto: types.Subscription
    backlog: dict[str, Delivery] = field(default_factory=dict)  # by message id, oldest first


class Abort(Exception):
    """An RPC error: turned into the gRPC status by the handler wrapper."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


def _check_name(name: str, kind: str) -> None:
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != "projects" or parts[2] != kind or not all(parts):
        raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid [{kind}] name: ({name})")


class Broker:
    """Topics, subscriptions and their backlogs; every method is one RPC, thread-safe."""

    def __init__(self) -> None:
        self.topics: dict[str, types.Topic] = {}
        self.subscriptions: dict[str, Subscription] = {}
        self.changed = threading.Condition()  # guards all state; notified on publish/nack
        self._message_ids = itertools.count(1)
        self._ack_ids = itertools.count(1)

    # -- Publisher ------------------------------------------------------------------------
    def create_topic(self, topic: types.Topic, _: grpc.ServicerContext) -> types.Topic:
        _check_name(topic.name, "topics")
        with self.changed:
            if topic.name in self.topics:
                raise Abort(grpc.StatusCode.ALREADY_EXISTS, "Topic already exists")
            self.topics[topic.name] = topic
            return topic

    def get_topic(self, request: types.GetTopicRequest, _: grpc.ServicerContext) -> types.Topic:
        with self.changed:
            return self._topic(request.topic)

    def list_topics(
        self, request: types.ListTopicsRequest, _: grpc.ServicerContext
    ) -> types.ListTopicsResponse:
        prefix = f"{request.project}/topics/"
        with self.changed:
            found = [t for name, t in sorted(self.topics.items()) if name.startswith(prefix)]
        return types.ListTopicsResponse(topics=found)

    def delete_topic(self, request: types.DeleteTopicRequest, _: grpc.ServicerContext) -> None:
        with self.changed:
            self._topic(request.topic)
            del self.topics[request.topic]
            for sub in self.subscriptions.values():
                if sub.proto.topic == request.topic:
                    sub.proto.topic = DELETED_TOPIC

    def publish(
        self, request: types.PublishRequest, _: grpc.ServicerContext
    ) -> types.PublishResponse:
        if not request.messages:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "No messages specified")
        if any(not m.data and not m.attributes for m in request.messages):
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "Some messages are empty")
        with self.changed:
            self._topic(request.topic)
            ids = [self._publish(request.topic, m) for m in request.messages]
        return types.PublishResponse(message_ids=ids)

    # -- Subscriber -----------------------------------------------------------------------
    def create_subscription(
        self, request: types.Subscription, _: grpc.ServicerContext
    ) -> types.Subscription:
        _check_name(request.name, "subscriptions")
        if request.push_config.push_endpoint:
            raise Abort(grpc.StatusCode.UNIMPLEMENTED, "push subscriptions are not served")
        if not 0 <= request.ack_deadline_seconds <= MAX_ACK_DEADLINE:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "Invalid ack deadline")
        with self.changed:
            if request.name in self.subscriptions:
                raise Abort(grpc.StatusCode.ALREADY_EXISTS, "Subscription already exists")
            if request.topic not in self.topics:
                raise Abort(grpc.StatusCode.NOT_FOUND, "Subscription topic does not exist")
            proto = types.Subscription(request)
            proto.ack_deadline_seconds = max(DEFAULT_ACK_DEADLINE, request.ack_deadline_seconds)
            if not proto.message_retention_duration:
                proto.message_retention_duration = {"seconds": 7 * 24 * 3600}
            self.subscriptions[proto.name] = Subscription(proto)
            return proto

    def get_subscription(
        self, request: types.GetSubscriptionRequest, _: grpc.ServicerContext
    ) -> types.Subscription:
        with self.changed:
            return self._subscription(request.subscription).proto

    def list_subscriptions(
        self, request: types.ListSubscriptionsRequest, _: grpc.ServicerContext
    ) -> types.ListSubscriptionsResponse:
        prefix = f"{request.project}/subscriptions/"
        with self.changed:
            found = [s.proto for n, s in sorted(self.subscriptions.items()) if n.startswith(prefix)]
        return types.ListSubscriptionsResponse(subscriptions=found)

    def delete_subscription(
        self, request: types.DeleteSubscriptionRequest, _: grpc.ServicerContext
    ) -> None:
        with self.changed:
            self._subscription(request.subscription)
            del self.subscriptions[request.subscription]

    def pull(self, request: types.PullRequest, context: grpc.ServicerContext) -> types.PullResponse:
        if request.max_messages <= 0:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "No max_messages specified")
        remaining = context.time_remaining()  # None without a deadline
        wait = min(MAX_PULL_WAIT, MAX_PULL_WAIT if remaining is None else remaining - 1.0)
        if request.return_immediately:
            wait = 0.0
        give_up = time.monotonic() + wait
        with self.changed:
            while True:
                sub = self._subscription(request.subscription)
                received = self._deliver(sub, request.max_messages)
                if received or time.monotonic() >= give_up or not context.is_active():
                    return types.PullResponse(received_messages=received)
                # Deadlines expire without a notification: wake up now and then to look.
                self.changed.wait(timeout=min(0.1, max(0.0, give_up - time.monotonic())))

    def acknowledge(self, request: types.AcknowledgeRequest, _: grpc.ServicerContext) -> None:
        with self.changed:
            sub = self._subscription(request.subscription)
            for delivery in self._outstanding(sub, request.ack_ids):
                del sub.backlog[delivery.message.message_id]

    def modify_ack_deadline(
        self, request: types.ModifyAckDeadlineRequest, _: grpc.ServicerContext
    ) -> None:
        if request.ack_deadline_seconds < 0:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "Invalid ack deadline")
        seconds = min(request.ack_deadline_seconds, MAX_ACK_DEADLINE)
        with self.changed:
            sub = self._subscription(request.subscription)
            for delivery in self._outstanding(sub, request.ack_ids):
                delivery.deadline = time.monotonic() + seconds
                if seconds == 0:  # a nack: like the emulator, back of the queue
                    sub.backlog[delivery.message.message_id] = sub.backlog.pop(
                        delivery.message.message_id
                    )
            self.changed.notify_all()

    # -- helpers (called with the lock held) ----------------------------------------------
    def _topic(self, name: str) -> types.Topic:
        if name not in self.topics:
            raise Abort(grpc.StatusCode.NOT_FOUND, "Topic not found")
        return self.topics[name]

    def _subscription(self, name: str) -> Subscription:
        if name not in self.subscriptions:
            raise Abort(grpc.StatusCode.NOT_FOUND, "Subscription does not exist")
        return self.subscriptions[name]

    def _publish(self, topic: str, message: types.PubsubMessage) -> str:
        stored = types.PubsubMessage(message)
        stored.message_id = str(next(self._message_ids))
        stored.publish_time = datetime.now(UTC)
        for sub in self.subscriptions.values():
            if sub.proto.topic == topic:
                sub.backlog[stored.message_id] = Delivery(stored)
        self.changed.notify_all()
        return str(stored.message_id)

    def _outstanding(self, sub: Subscription, ack_ids: Sequence[str]) -> list[Delivery]:
        """The deliveries still holding these ack ids; stale ones are ignored like Pub/Sub."""
        by_ack_id = {d.ack_id: d for d in sub.backlog.values() if d.ack_id}
        for ack_id in ack_ids:
            name, _, number = ack_id.rpartition(":")
            if name != sub.proto.name or not number.isdigit():
                raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid ack id (ack_id={ack_id})")
        return [by_ack_id[a] for a in ack_ids if a in by_ack_id]

    def _deliver(self, sub: Subscription, limit: int) -> list[types.ReceivedMessage]:
        now = time.monotonic()
        policy = sub.proto.dead_letter_policy
        received: list[types.ReceivedMessage] = []
        for delivery in list(sub.backlog.values()):
            if len(received) >= limit:
                break
            if delivery.ack_id is not None and delivery.deadline > now:
                continue  # outstanding
            if policy.dead_letter_topic and delivery.attempts >= policy.max_delivery_attempts:
                self._dead_letter(sub, delivery)
                continue
            delivery.attempts += 1
            delivery.ack_id = f"{sub.proto.name}:{next(self._ack_ids)}"
            delivery.deadline = now + sub.proto.ack_deadline_seconds
            received.append(
                types.ReceivedMessage(
                    ack_id=delivery.ack_id,
                    message=delivery.message,
                    # Pub/Sub counts attempts only for subscriptions with a dead-letter policy.
                    delivery_attempt=delivery.attempts if policy.dead_letter_topic else 0,
                )
            )
        return received

    def _dead_letter(self, sub: Subscription, delivery: Delivery) -> None:
        """Forward a message past its delivery attempts, with the attributes Pub/Sub adds."""
        del sub.backlog[delivery.message.message_id]
        topic = sub.proto.dead_letter_policy.dead_letter_topic
        if topic not in self.topics:
            return  # Pub/Sub cannot forward either; the message is dropped
        _, project, _, name = sub.proto.name.split("/")
        source = delivery.message
        attributes = dict(source.attributes)
        attributes.update(
            CloudPubSubDeadLetterSourceSubscription=name,
            CloudPubSubDeadLetterSourceSubscriptionProject=project,
            CloudPubSubDeadLetterSourceDeliveryCount=str(delivery.attempts),
            CloudPubSubDeadLetterSourceTopicPublishTime=source.publish_time.isoformat(
                timespec="milliseconds"
            ).replace("+00:00", "Z"),
        )
        self._publish(topic, types.PubsubMessage(data=source.data, attributes=attributes))


def _handler(
    method: Callable[[Any, grpc.ServicerContext], Any], request_type: Any, response_type: Any
) -> grpc.RpcMethodHandler:
    def call(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(request, context)
        except Abort as exc:
            context.abort(exc.code, exc.details)

    serialize: Callable[[Any], bytes] = (
        response_type.serialize if response_type is not None else (lambda _: b"")
    )
    return grpc.unary_unary_rpc_method_handler(
        call, request_deserializer=request_type.deserialize, response_serializer=serialize
    )


def generic_handlers(broker: Broker) -> tuple[grpc.GenericRpcHandler, ...]:
    """The Publisher and Subscriber services of ``broker`` (``None`` = google.protobuf.Empty)."""
    t = types
    publisher = {
        "CreateTopic": _handler(broker.create_topic, t.Topic, t.Topic),
        "GetTopic": _handler(broker.get_topic, t.GetTopicRequest, t.Topic),
        "ListTopics": _handler(broker.list_topics, t.ListTopicsRequest, t.ListTopicsResponse),
        "DeleteTopic": _handler(broker.delete_topic, t.DeleteTopicRequest, None),
        "Publish": _handler(broker.publish, t.PublishRequest, t.PublishResponse),
    }
    subscriber = {
        "CreateSubscription": _handler(broker.create_subscription, t.Subscription, t.Subscription),
        "GetSubscription": _handler(
            broker.get_subscription, t.GetSubscriptionRequest, t.Subscription
        ),
        "ListSubscriptions": _handler(
            broker.list_subscriptions, t.ListSubscriptionsRequest, t.ListSubscriptionsResponse
        ),
        "DeleteSubscription": _handler(
            broker.delete_subscription, t.DeleteSubscriptionRequest, None
        ),
        "Pull": _handler(broker.pull, t.PullRequest, t.PullResponse),
        "Acknowledge": _handler(broker.acknowledge, t.AcknowledgeRequest, None),
        "ModifyAckDeadline": _handler(broker.modify_ack_deadline, t.ModifyAckDeadlineRequest, None),
    }
    return (
        grpc.method_handlers_generic_handler("google.pubsub.v1.Publisher", publisher),
        grpc.method_handlers_generic_handler("google.pubsub.v1.Subscriber", subscriber),
    )


class PubSubStandIn:
    """The stand-in server in this process: ``start()`` returns ``host:port``; ``stop()``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, workers: int = 16) -> None:
        self.broker = Broker()
        # Pull holds a worker while it waits, so allow a few concurrent pulls.
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=workers), options=UNLIMITED
        )
        self.server.add_generic_rpc_handlers(generic_handlers(self.broker))
        self.port = self.server.add_insecure_port(f"{host}:{port}")
        self.address = f"{host}:{self.port}"

    def start(self) -> str:
        self.server.start()
        return self.address

    def stop(self, grace: float = 1.0) -> None:
        self.server.stop(grace).wait()


def _raise_exit(signum: int, _frame: object) -> NoReturn:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="In-memory Pub/Sub stand-in (gRPC).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8085)
    args = parser.parse_args(argv)
    server = PubSubStandIn(args.host, args.port)
    signal.signal(signal.SIGTERM, _raise_exit)
    print(f"Pub/Sub stand-in ready on {server.start()}", flush=True)
    try:
        server.server.wait_for_termination()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
