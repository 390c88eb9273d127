"""In-process message bus for the embedded mode (``drift-monitor serve``) and unit tests.

It speaks the same envelope as Pub/Sub: publishers hand it encoded :class:`Message` objects,
and each consumer receives a private copy to decode, exactly as a subscriber function would.
Delivery is synchronous and serialised by a lock, so SQLite and the in-process statistics
store see one writer at a time; an exception from a consumer (a :class:`TransientError`)
reaches the publisher, which answers 503 so the client retries the same batch.

Nothing here keeps a delivered message: the bus holds only its consumers and a count, and the
embedded dead-letter list keeps the newest :data:`DEAD_LETTER_KEPT` messages, so memory stays
bounded however much traffic ``serve`` receives.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Callable, Sequence

from drift_monitor.domain.envelope import Message

DEAD_LETTER_KEPT = 100
"""How many dead-lettered messages the embedded dead-letter list keeps (the newest)."""

Consumer = Callable[[Message, str], None]
"""Receives a message and its id (the id a Pub/Sub CloudEvent carries as ``messageId``)."""


class MemoryBus:
    """A :class:`~drift_monitor.service.ports.Publisher` that delivers to in-process consumers.

    Parameters
    ----------
    consumers
        Called in order for each published message; more can be added with :meth:`subscribe`.
    """

    def __init__(self, consumers: Sequence[Consumer] = ()) -> None:
        self._consumers: list[Consumer] = list(consumers)
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self.published_count = 0

    def subscribe(self, consumer: Consumer) -> None:
        with self._lock:
            self._consumers.append(consumer)

    def publish(self, messages: Sequence[Message]) -> list[str]:
        ids: list[str] = []
        with self._lock:
            for message in messages:
                message_id = f"local-{next(self._ids)}"
                self.published_count += 1
                for consumer in self._consumers:
                    consumer(Message(bytes(message.data), dict(message.attributes)), message_id)
                ids.append(message_id)
        return ids


class DeadLetterList:
    """The embedded dead-letter topic: keeps the newest ``keep`` messages, in memory.

    ``count`` is how many were ever published; ``messages`` holds the last ``keep`` of them.
    """

    def __init__(self, keep: int = DEAD_LETTER_KEPT) -> None:
        self._lock = threading.Lock()
        self.messages: deque[Message] = deque(maxlen=keep)
        self.count = 0

    def publish(self, messages: Sequence[Message]) -> list[str]:
        with self._lock:
            start = self.count
            self.messages.extend(messages)
            self.count += len(messages)
            return [f"dead-letter-{start + i + 1}" for i in range(len(messages))]
