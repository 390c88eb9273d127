"""Google Cloud Pub/Sub publisher (the official client) and topic/subscription helpers.

With ``PUBSUB_EMULATOR_HOST`` set, the client talks to the emulator over plain gRPC with
anonymous credentials; nothing here changes for it.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from concurrent import futures as cf
from typing import Any

import google.cloud.pubsub_v1 as pubsub_v1
from google.api_core import exceptions as gexc

from drift_monitor.domain.envelope import Message
from drift_monitor.domain.errors import TransientError

DEAD_LETTER_TOPIC = "embeddings-dead-letter"
PERSIST_SUBSCRIPTION = "embeddings-persist"
STATS_SUBSCRIPTION = "embeddings-stats"

# One publish request may carry 10 MB; our largest message is ~8 MiB of vectors plus a small
# header, so a batch of 9.5 MB always holds at least one message and never exceeds the limit.
BATCH_MAX_BYTES = 9_500_000
# Callers wait for the futures anyway; a short latency only lets parts of a split batch
# published in the same loop share a request.
BATCH_MAX_LATENCY_SECONDS = 0.005
BATCH_MAX_MESSAGES = 100


def _publisher_client() -> pubsub_v1.PublisherClient:
    return pubsub_v1.PublisherClient(
        batch_settings=pubsub_v1.types.BatchSettings(
            max_bytes=BATCH_MAX_BYTES,
            max_latency=BATCH_MAX_LATENCY_SECONDS,
            max_messages=BATCH_MAX_MESSAGES,
        )
    )


def subscriber_client() -> pubsub_v1.SubscriberClient:
    """A ``SubscriberClient`` that can pull messages of any size.

    Against the emulator the official client opens its channel without raising gRPC's 4 MiB
    receive limit, so pulling one of our ~8 MiB messages fails; give it a channel that has no
    limit (GCP itself delivers through Eventarc push and never hits this).
    """
    host = os.environ.get("PUBSUB_EMULATOR_HOST")
    if not host:
        return pubsub_v1.SubscriberClient()
    import grpc
    from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

    channel = grpc.insecure_channel(
        host,
        options=[("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)],
    )
    return pubsub_v1.SubscriberClient(transport=SubscriberGrpcTransport(channel=channel))


class PubSubPublisher:
    """:class:`~drift_monitor.service.ports.Publisher` for one topic.

    Parameters
    ----------
    project, topic
        The topic is ``projects/{project}/topics/{topic}``.
    timeout
        Seconds to wait for all publish futures together before giving up.
    client
        A ``PublisherClient`` to share (one per process is the norm); built lazily if omitted.
    """

    def __init__(
        self,
        project: str,
        topic: str,
        *,
        timeout: float = 30.0,
        client: pubsub_v1.PublisherClient | None = None,
    ) -> None:
        self.project = project
        self.topic = topic
        self.timeout = timeout
        self._client = client
        self.topic_path = pubsub_v1.PublisherClient.topic_path(project, topic)

    @property
    def client(self) -> pubsub_v1.PublisherClient:
        if self._client is None:
            self._client = _publisher_client()
        return self._client

    def publish(self, messages: Sequence[Message]) -> list[str]:
        """Publish and wait until every message is acknowledged by the broker.

        Raises
        ------
        TransientError
            A publish failed or did not finish within ``timeout``; some messages may have
            been published, which is harmless because every consumer is idempotent.
        """
        try:
            pending = [
                self.client.publish(self.topic_path, m.data, **m.attributes) for m in messages
            ]
        except (gexc.GoogleAPIError, RuntimeError, ValueError) as exc:
            raise TransientError(f"publishing to {self.topic_path} failed: {exc}") from exc
        deadline = time.monotonic() + self.timeout
        ids: list[str] = []
        try:
            for future in pending:
                remaining = max(0.0, deadline - time.monotonic())
                ids.append(str(future.result(timeout=remaining)))
        except (cf.TimeoutError, TimeoutError) as exc:
            raise TransientError(
                f"publishing to {self.topic_path} did not finish within {self.timeout} s"
            ) from exc
        except Exception as exc:  # the future re-raises whatever the RPC raised
            raise TransientError(f"publishing to {self.topic_path} failed: {exc}") from exc
        return ids


def ensure_topic(project: str, topic: str, client: Any | None = None) -> str:
    """Create the topic if it is missing; return its path."""
    client = client or pubsub_v1.PublisherClient()
    path: str = client.topic_path(project, topic)
    with contextlib.suppress(gexc.AlreadyExists):
        client.create_topic(request={"name": path})
    return path


def ensure_subscription(
    project: str,
    topic: str,
    subscription: str,
    *,
    ack_deadline_seconds: int = 60,
    dead_letter_topic: str | None = None,
    max_delivery_attempts: int = 5,
    client: Any | None = None,
) -> str:
    """Create a pull subscription on ``topic`` if it is missing; return its path.

    ``dead_letter_topic`` adds Pub/Sub's own dead-letter policy: after
    ``max_delivery_attempts`` failed deliveries the message is forwarded there (GCP, the
    emulator and the test stand-in all do).
    """
    owns_client = client is None
    client = client or pubsub_v1.SubscriberClient()
    path: str = client.subscription_path(project, subscription)
    request: dict[str, Any] = {
        "name": path,
        "topic": pubsub_v1.PublisherClient.topic_path(project, topic),
        "ack_deadline_seconds": ack_deadline_seconds,
    }
    if dead_letter_topic is not None:
        request["dead_letter_policy"] = {
            "dead_letter_topic": pubsub_v1.PublisherClient.topic_path(project, dead_letter_topic),
            "max_delivery_attempts": max_delivery_attempts,
        }
    try:
        client.create_subscription(request=request)
    except gexc.AlreadyExists:
        pass
    finally:
        if owns_client:
            client.close()
    return path


def ensure_pipeline(
    project: str,
    topic: str = "embeddings",
    *,
    dead_letter_topic: str = DEAD_LETTER_TOPIC,
    subscriptions: Sequence[str] = (PERSIST_SUBSCRIPTION, STATS_SUBSCRIPTION),
) -> dict[str, str]:
    """Create the ingest topic, the dead-letter topic (with a pull subscription, so
    dead-lettered messages can be inspected) and the persist/stats subscriptions, as the
    deployment does in GCP. For the emulator and local experiments.
    """
    publisher = pubsub_v1.PublisherClient()
    paths = {
        "topic": ensure_topic(project, topic, publisher),
        "dead_letter_topic": ensure_topic(project, dead_letter_topic, publisher),
    }
    paths[dead_letter_topic] = ensure_subscription(project, dead_letter_topic, dead_letter_topic)
    for name in subscriptions:
        paths[name] = ensure_subscription(project, topic, name)
    return paths
