"""Rebuild a model's running statistics from the durable batch store.

Redis (Memorystore) is a cache of statistics: if it is flushed, fails over empty or a bug
corrupts it, the statistics are recomputed from the batches PostgreSQL kept. Folding is
idempotent per part, so a rebuild may run while the subscribers keep folding new parts.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Protocol, runtime_checkable

from drift_monitor.service.dimensions import DurableDimensions
from drift_monitor.service.ports import BatchRepository, DimensionRegistry, StatsStore

log = logging.getLogger(__name__)


@runtime_checkable
class RangedStatsStore(Protocol):
    """A statistics store that can clear whole buckets in a time range (both ours can)."""

    def fold(self, part: object) -> bool: ...

    def clear(
        self, model_id: str, start: datetime | None = None, end: datetime | None = None
    ) -> None: ...

    def align(
        self, start: datetime | None, end: datetime | None
    ) -> tuple[datetime | None, datetime | None]: ...


def rebuild_stats(
    model_id: str,
    repository: BatchRepository,
    store: StatsStore,
    start: datetime | None = None,
    end: datetime | None = None,
    registry: DimensionRegistry | None = None,
) -> int:
    """Clear the model's statistics in ``[start, end)`` and fold the stored parts again.

    A cached dimension registry (:class:`DurableDimensions`) is first restored from the
    database, so a rebuild also repairs the model's dimension after a flush.

    Buckets are indivisible, so the range is first widened to whole buckets
    (``store.align``) and every part in the widened range is refolded; without ``start`` and
    ``end`` the model's statistics, bin edges included, are rebuilt from scratch (the bin
    edges are then fixed again by the oldest part still inside the retention window).

    Parameters
    ----------
    model_id
        The model to rebuild.
    repository
        Durable batches (``iter_parts`` yields them oldest first).
    store
        The statistics store to rebuild.
    start, end
        Optional time range; parts older than the store's retention are skipped.
    registry
        The ingest dimension registry; restored from ``repository`` when it is a cache.

    Returns
    -------
    int
        Number of vectors folded.
    """
    if isinstance(registry, DurableDimensions):
        registry.restore(model_id)
    if isinstance(store, RangedStatsStore):
        start, end = store.align(start, end)
        store.clear(model_id, start, end)
    elif start is None and end is None:
        store.clear(model_id)
    else:
        raise TypeError(f"{type(store).__name__} cannot clear a time range")
    parts = vectors = 0
    for part in repository.iter_parts(model_id, start, end):
        if store.fold(part):
            parts += 1
            vectors += part.count
    log.info(
        "statistics rebuilt",
        extra={"fields": {"model_id": model_id, "parts": parts, "vectors": vectors}},
    )
    return vectors
