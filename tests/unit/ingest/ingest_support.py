"""Twins for the ingest tests: in-memory collaborators that record every write, plus helpers."""

from __future__ import annotations

import base64
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cloudevents.conversion import to_structured
from cloudevents.http import CloudEvent
from drift_monitor import bootstrap
from drift_monitor.adapters.memory_bus import DeadLetterList
from drift_monitor.config import Settings
from drift_monitor.domain.batch import BatchPart
from drift_monitor.domain.envelope import Message
from drift_monitor.domain.errors import TransientError, ValidationError

REPO_ROOT = Path(__file__).resolve().parents[3]
MAIN = str(REPO_ROOT / "functions" / "main.py")


class RecordingPublisher:
    """Publisher twin: keeps messages; ``fail`` makes it behave like an unreachable broker."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.fail = False

    def publish(self, messages: Sequence[Message]) -> list[str]:
        if self.fail:
            raise TransientError("broker unreachable")
        start = len(self.messages)
        self.messages.extend(messages)
        return [str(start + i) for i in range(len(messages))]


class Registry:
    """DimensionRegistry twin."""

    def __init__(self) -> None:
        self.dimensions: dict[str, int] = {}
        self.claims: list[tuple[str, int]] = []

    def claim_dimension(self, model_id: str, dimension: int) -> int:
        self.claims.append((model_id, dimension))
        return self.dimensions.setdefault(model_id, dimension)

    def model_dimension(self, model_id: str) -> int | None:
        return self.dimensions.get(model_id)


class Repository(Registry):
    """BatchRepository twin, idempotent on the part key like the real one."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: dict[tuple[str, str], BatchPart] = {}
        self.fail = False

    def save_part(self, part: BatchPart) -> bool:
        if self.fail:
            raise TransientError("database unreachable")
        # Like SqlRepository: the dimension is claimed in the same transaction as the write.
        established = self.dimensions.get(part.model_id, part.dimension)
        if established != part.dimension:
            raise ValidationError("embeddings", f"model expects dimension {established}")
        key = (part.model_id, part.key)
        if key in self.parts:
            return False
        self.dimensions[part.model_id] = established
        self.parts[key] = part
        return True

    def iter_parts(
        self, model_id: str, start: datetime | None = None, end: datetime | None = None
    ) -> Iterator[BatchPart]:
        return iter([p for (m, _), p in self.parts.items() if m == model_id])


class Stats:
    """StatsStore twin: counts rows per model, once per part key."""

    def __init__(self) -> None:
        self.keys: set[tuple[str, str]] = set()
        self.rows: dict[str, int] = {}

    def fold(self, part: BatchPart) -> bool:
        key = (part.model_id, part.key)
        if key in self.keys:
            return False
        self.keys.add(key)
        self.rows[part.model_id] = self.rows.get(part.model_id, 0) + part.count
        return True

    def clear(self, model_id: str) -> None:
        self.rows.pop(model_id, None)


@dataclass
class Twins:
    settings: Settings
    publisher: RecordingPublisher = field(default_factory=RecordingPublisher)
    registry: Registry = field(default_factory=Registry)
    repository: Repository = field(default_factory=Repository)
    stats: Stats = field(default_factory=Stats)
    dead_letter: DeadLetterList = field(default_factory=DeadLetterList)

    def container(self) -> bootstrap.Container:
        return bootstrap.Container(
            settings=self.settings,
            publisher=self.publisher,
            repository=self.repository,
            stats=self.stats,
            registry=self.registry,
            dead_letter=self.dead_letter,
            ready=True,
        )

    def nothing_written(self) -> bool:
        return (
            not self.publisher.messages
            and not self.registry.dimensions
            and not self.repository.parts
            and not self.repository.dimensions
            and not self.stats.keys
            and not self.dead_letter.messages
        )


def make_twins(**settings: Any) -> Twins:
    return Twins(Settings(environment="test", **settings))


def install(t: Twins) -> Twins:
    """Make ``t`` the process-wide container (the fixture ``twins`` undoes it)."""
    bootstrap.set_container(t.container())
    return t


def pubsub_event(
    data: bytes, attributes: dict[str, str] | None = None, message_id: str = "1001"
) -> CloudEvent:
    """The CloudEvent Eventarc delivers for one Pub/Sub message."""
    return CloudEvent(
        {
            "type": "google.cloud.pubsub.topic.v1.messagePublished",
            "source": "//pubsub.googleapis.com/projects/test-project/topics/embeddings",
        },
        {
            "message": {
                "data": base64.b64encode(data).decode(),
                "attributes": attributes or {},
                "messageId": message_id,
                "publishTime": "2024-01-01T00:00:00Z",
            },
            "subscription": "projects/test-project/subscriptions/embeddings-persist",
        },
    )


def post_event(client: Any, event: CloudEvent) -> Any:
    headers, body = to_structured(event)
    return client.post("/", headers=headers, data=body)
