"""The small interfaces handlers depend on. Adapters implement them; twins live beside them.

Every write method is idempotent on ``BatchPart.key`` because Pub/Sub delivers at least once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Protocol

from drift_monitor.domain.batch import BatchPart
from drift_monitor.domain.envelope import Message


class Publisher(Protocol):
    def publish(self, messages: Sequence[Message]) -> list[str]:
        """Publish all messages; return their ids only once every publish has resolved.

        Raise :class:`~drift_monitor.domain.errors.TransientError` when the broker fails.
        """
        ...


class BatchRepository(Protocol):
    """Durable storage of batches (Cloud SQL in production, SQLite locally)."""

    def save_part(self, part: BatchPart) -> bool:
        """Store one part; return False (and write nothing) if its key was stored before."""
        ...

    def claim_dimension(self, model_id: str, dimension: int) -> int:
        """Record ``dimension`` for a new model; return the model's established dimension."""
        ...

    def model_dimension(self, model_id: str) -> int | None: ...

    def iter_parts(
        self, model_id: str, start: datetime | None = None, end: datetime | None = None
    ) -> Iterator[BatchPart]:
        """Stored parts with ``start <= timestamp < end``, oldest first."""
        ...


class StatsStore(Protocol):
    """Per-model, per-time-bucket running statistics (Memorystore in production)."""

    def fold(self, part: BatchPart) -> bool:
        """Merge a part into its bucket atomically; False if this key was folded before."""
        ...

    def clear(self, model_id: str) -> None: ...


class DimensionRegistry(Protocol):
    """Fast lookup of a model's established dimension for the ingest path."""

    def claim_dimension(self, model_id: str, dimension: int) -> int: ...

    def model_dimension(self, model_id: str) -> int | None: ...


class Archive(Protocol):
    """Raw batch archive (Cloud Storage in production, a folder locally)."""

    def put(self, part: BatchPart) -> None:
        """Write the part under a name derived from its key; rewriting it is harmless."""
        ...
