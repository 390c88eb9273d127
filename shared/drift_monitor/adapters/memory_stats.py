"""In-process twins of the Redis statistics store and dimension registry.

Used by the embedded local mode (``drift-monitor serve`` without REDIS_URL) and by unit tests.
Same semantics as :mod:`drift_monitor.adapters.redis_stats`: the bucket, expiry and
deduplication rules come from :class:`~drift_monitor.domain.stats_buckets.BucketPolicy`; only
the storage differs (dictionaries under a lock instead of Redis keys).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from drift_monitor.domain.batch import BatchPart
from drift_monitor.domain.sketch import Float32Array, RunningStats
from drift_monitor.domain.stats_buckets import (
    DEFAULT_BINS,
    DEFAULT_MAX_FUTURE_SECONDS,
    DEFAULT_RESERVOIR_SIZE,
    DEFAULT_SEEN_BITS,
    DEFAULT_SEEN_HASHES,
    BucketInfo,
    BucketPolicy,
    SeenFilter,
    all_bits_set,
    set_bits,
)


@dataclass
class _Bucket:
    stats: RunningStats
    seen: bytearray


@dataclass
class _Model:
    edges: Float32Array | None = None
    # The edges are forgotten once every bucket folded on them has expired (as the Redis
    # store's edges key expires), so a model that went quiet starts afresh.
    edges_until: float | None = None
    buckets: dict[int, _Bucket] = field(default_factory=dict)


class MemoryStatsStore:
    """Per-model, per-time-bucket running statistics held in this process.

    Parameters
    ----------
    bucket_seconds, retention_seconds
        Bucket width and how long a bucket is kept after it ends.
    bins, reservoir_size
        Histogram bins per dimension and bottom-k sample size per bucket.
    seen_bits, seen_hashes
        Geometry of the per-bucket Bloom filter of folded part keys.
    max_future_seconds
        Parts dated further ahead are refused (pass the ingest's ``MAX_FUTURE_SECONDS``).
    clock
        Epoch seconds "now" (tests pass a fake clock to exercise expiry).
    """

    def __init__(
        self,
        *,
        bucket_seconds: int,
        retention_seconds: int,
        bins: int = DEFAULT_BINS,
        reservoir_size: int = DEFAULT_RESERVOIR_SIZE,
        seen_bits: int = DEFAULT_SEEN_BITS,
        seen_hashes: int = DEFAULT_SEEN_HASHES,
        max_future_seconds: int = DEFAULT_MAX_FUTURE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.policy = BucketPolicy(
            bucket_seconds=bucket_seconds,
            retention_seconds=retention_seconds,
            bins=bins,
            reservoir_size=reservoir_size,
            seen=SeenFilter(seen_bits, seen_hashes),
            max_future_seconds=max_future_seconds,
        )
        self._clock = clock
        self._lock = threading.Lock()
        self._models: dict[str, _Model] = {}

    # ------------------------------------------------------------------ StatsStore
    def fold(self, part: BatchPart) -> bool:
        """Merge ``part`` into its bucket; False if its key was folded before or it expired."""
        now = self._clock()
        bucket = self.policy.check_fresh(part, now)
        if bucket is None:
            return False
        offsets = self.policy.seen.offsets(part.key)
        sketch: RunningStats | None = None
        while True:
            with self._lock:
                model = self._models.setdefault(part.model_id, _Model())
                self._expire(model, now)
                if model.edges is None:
                    model.edges = self.policy.edges_for(part)
                edges = model.edges
                slot = model.buckets.get(bucket)
                if slot is not None and all_bits_set(slot.seen, offsets):
                    return False
                if sketch is not None and sketch.edges is edges:
                    if slot is None:
                        slot = _Bucket(sketch, bytearray(self.policy.seen.bits // 8))
                        model.buckets[bucket] = slot
                    else:
                        slot.stats = slot.stats.merge(sketch)
                    set_bits(slot.seen, offsets)
                    model.edges_until = max(
                        model.edges_until or 0.0, float(self.policy.expires_at(bucket))
                    )
                    return True
            # Summarise outside the lock (the expensive part), then check again: the model's
            # edges may have been reset by a concurrent clear().
            sketch = self.policy.sketch(part, edges)
            sketch.edges = edges

    def clear(
        self, model_id: str, start: datetime | None = None, end: datetime | None = None
    ) -> None:
        """Drop the model's statistics; with ``start``/``end`` only the buckets overlapping
        ``[start, end)`` (the bin edges are then kept, so refolded buckets still merge)."""
        with self._lock:
            if start is None and end is None:
                self._models.pop(model_id, None)
                return
            model = self._models.get(model_id)
            if model is None:
                return
            for b in self.policy.select(model.buckets, start, end):
                del model.buckets[b]

    def align(
        self, start: datetime | None, end: datetime | None
    ) -> tuple[datetime | None, datetime | None]:
        """``[start, end)`` widened to whole buckets (what :meth:`clear` and :meth:`read` touch)."""
        return self.policy.align(start, end)

    # ------------------------------------------------------------------ reads
    def read(
        self, model_id: str, start: datetime | None = None, end: datetime | None = None
    ) -> RunningStats | None:
        """Merge of the buckets overlapping ``[start, end)``; None when there are none."""
        with self._lock:
            model = self._models.get(model_id)
            if model is None:
                return None
            self._expire(model, self._clock())
            chosen = [model.buckets[b].stats for b in self.policy.select(model.buckets, start, end)]
        return RunningStats.merge_all(chosen)

    def read_buckets(
        self, model_id: str, start: datetime | None = None, end: datetime | None = None
    ) -> list[tuple[BucketInfo, RunningStats]]:
        """Each bucket overlapping ``[start, end)`` on its own, oldest first."""
        with self._lock:
            model = self._models.get(model_id)
            if model is None:
                return []
            self._expire(model, self._clock())
            return [
                (self.policy.info(b, model.buckets[b].stats.count), model.buckets[b].stats)
                for b in self.policy.select(model.buckets, start, end)
            ]

    def buckets(self, model_id: str) -> list[BucketInfo]:
        """The model's live buckets, oldest first."""
        with self._lock:
            model = self._models.get(model_id)
            if model is None:
                return []
            self._expire(model, self._clock())
            return [
                self.policy.info(b, model.buckets[b].stats.count) for b in sorted(model.buckets)
            ]

    def edges(self, model_id: str) -> Float32Array | None:
        """The model's fixed histogram bin edges, if any part was folded."""
        with self._lock:
            model = self._models.get(model_id)
            return None if model is None or model.edges is None else np.array(model.edges)

    def _expire(self, model: _Model, now: float) -> None:
        for b in [b for b in model.buckets if self.policy.expires_at(b) <= now]:
            del model.buckets[b]
        if model.edges_until is not None and model.edges_until <= now:
            model.edges, model.edges_until = None, None


class MemoryDimensionRegistry:
    """Thread-safe in-process twin of ``redis_stats.RedisDimensionRegistry``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._dims: dict[str, int] = {}

    def claim_dimension(self, model_id: str, dimension: int) -> int:
        """Record ``dimension`` if the model has none yet; return the model's dimension."""
        with self._lock:
            return self._dims.setdefault(model_id, dimension)

    def model_dimension(self, model_id: str) -> int | None:
        with self._lock:
            return self._dims.get(model_id)

    def set_dimension(self, model_id: str, dimension: int) -> None:
        """Record ``dimension`` whatever is held (the database's value, restored)."""
        with self._lock:
            self._dims[model_id] = dimension
