"""Each model's vector dimension: the database is the record, the fast registry a cache of it.

In production the ingest and statistics functions check dimensions against Redis, which can be
flushed, fail over empty or be evicted. PostgreSQL records each model's dimension with its first
stored batch, so a cache miss is answered from there (and the cache refilled) before a new
model's dimension is ever claimed; otherwise, after a flush, the first batch of any width would
claim the model in Redis and every correct batch after it would be refused.
"""

from __future__ import annotations

from typing import Protocol

from drift_monitor.service.ports import DimensionRegistry


class DimensionRecord(Protocol):
    """The durable side (:class:`~drift_monitor.service.ports.BatchRepository` has it)."""

    def model_dimension(self, model_id: str) -> int | None: ...


class OverwritableRegistry(DimensionRegistry, Protocol):
    def set_dimension(self, model_id: str, dimension: int) -> None: ...


class DurableDimensions:
    """A :class:`~drift_monitor.service.ports.DimensionRegistry` that trusts ``record`` first.

    Parameters
    ----------
    cache
        The fast registry (Redis), claimed with ``SET NX`` for a brand-new model.
    record
        The database, which holds the dimension of every model that has a stored batch.
    """

    def __init__(self, cache: OverwritableRegistry, record: DimensionRecord) -> None:
        self.cache = cache
        self.record = record

    def model_dimension(self, model_id: str) -> int | None:
        cached = self.cache.model_dimension(model_id)
        if cached is not None:
            return cached
        recorded = self.record.model_dimension(model_id)
        if recorded is None:
            return None
        self.cache.set_dimension(model_id, recorded)
        return recorded

    def claim_dimension(self, model_id: str, dimension: int) -> int:
        known = self.model_dimension(model_id)
        if known is not None:
            return known
        return self.cache.claim_dimension(model_id, dimension)

    def restore(self, model_id: str) -> int | None:
        """Overwrite the cached dimension with the recorded one (after a flush or a bad claim)."""
        recorded = self.record.model_dimension(model_id)
        if recorded is not None:
            self.cache.set_dimension(model_id, recorded)
        return recorded
