"""Running statistics and model dimensions in Redis (Memorystore in production).

Keys of one model (``P`` = ``key_prefix``; the ``{model_id}`` hash tag keeps a model's keys
in one slot, so the multi-key transactions also work on a Redis Cluster):

* ``P:{model_id}:edges`` — the model's fixed histogram bin edges
  (:func:`~drift_monitor.domain.sketch.edges_to_bytes`);
* ``P:{model_id}:b:<epoch>`` — the :class:`RunningStats` of the bucket starting at ``<epoch>``
  (:meth:`RunningStats.to_bytes`);
* ``P:{model_id}:s:<epoch>`` — that bucket's Bloom filter of folded part keys (a bitmap);
* ``P:{model_id}:index`` — sorted set of live bucket starts.

Every key has an absolute expiry (bucket end + retention; the edges and index keys follow the
newest bucket), so memory per model is bounded by ``max_buckets x bucket size`` whatever the
traffic; nothing grows with the number of batches.

:meth:`RedisStatsStore.fold` is an optimistic transaction (``WATCH`` the edges, bucket and
seen keys; check the part's bits; ``MULTI``: write the merged sketch and set the bits;
``EXEC``; retry if another writer got in between), so concurrent subscribers neither lose an
update nor fold a part twice.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.exceptions import WatchError

from drift_monitor.domain.batch import BatchPart
from drift_monitor.domain.errors import TransientError
from drift_monitor.domain.sketch import (
    SKETCH_HEADER_SIZE,
    Float32Array,
    RunningStats,
    edges_from_bytes,
    edges_to_bytes,
    sketch_count,
)
from drift_monitor.domain.stats_buckets import (
    DEFAULT_BINS,
    DEFAULT_MAX_FUTURE_SECONDS,
    DEFAULT_RESERVOIR_SIZE,
    DEFAULT_SEEN_BITS,
    DEFAULT_SEEN_HASHES,
    BucketInfo,
    BucketPolicy,
    SeenFilter,
)

log = logging.getLogger(__name__)

DEFAULT_RETENTION_SECONDS = 7 * 86_400


@contextmanager
def _transient() -> Iterator[None]:
    """Redis unreachable or slow is a fault that may pass: let Pub/Sub redeliver."""
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError) as exc:
        raise TransientError(f"Redis unavailable: {exc}") from exc


class RedisStatsStore:
    """Per-model, per-time-bucket running statistics in Redis.

    Parameters
    ----------
    client
        A ``redis.Redis`` client returning bytes (``decode_responses=False``).
    bucket_seconds
        Width of a time bucket (``STATS_BUCKET_SECONDS``).
    retention_seconds
        How long a bucket is kept after it ends.
    bins, reservoir_size
        Histogram bins per dimension and bottom-k sample size per bucket.
    key_prefix
        Prefix of every key (tests use a unique one each).
    seen_bits, seen_hashes
        Geometry of the per-bucket Bloom filter of folded part keys.
    max_future_seconds
        Parts dated further ahead are refused (pass the ingest's ``MAX_FUTURE_SECONDS``).
    max_retries
        Optimistic-transaction attempts before giving up with :class:`TransientError`.
    clock
        Epoch seconds "now", used to decide which buckets are expired.
    """

    def __init__(
        self,
        client: redis.Redis[bytes],
        *,
        bucket_seconds: int,
        retention_seconds: int = DEFAULT_RETENTION_SECONDS,
        bins: int = DEFAULT_BINS,
        reservoir_size: int = DEFAULT_RESERVOIR_SIZE,
        key_prefix: str = "edm",
        seen_bits: int = DEFAULT_SEEN_BITS,
        seen_hashes: int = DEFAULT_SEEN_HASHES,
        max_future_seconds: int = DEFAULT_MAX_FUTURE_SECONDS,
        max_retries: int = 100,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.policy = BucketPolicy(
            bucket_seconds=bucket_seconds,
            retention_seconds=retention_seconds,
            bins=bins,
            reservoir_size=reservoir_size,
            seen=SeenFilter(seen_bits, seen_hashes),
            max_future_seconds=max_future_seconds,
        )
        self.prefix = key_prefix
        self.max_retries = max_retries
        self._clock = clock

    def _pipeline(self) -> Any:
        # In WATCH mode a pipeline runs commands immediately and returns their results, which
        # the redis stubs cannot express; treat it as Any.
        return self.client.pipeline(transaction=True)

    # ------------------------------------------------------------------ keys
    def _key(self, model_id: str, suffix: str) -> str:
        return f"{self.prefix}:{{{model_id}}}:{suffix}"

    def _bucket_key(self, model_id: str, bucket: int) -> str:
        return self._key(model_id, f"b:{bucket}")

    def _seen_key(self, model_id: str, bucket: int) -> str:
        return self._key(model_id, f"s:{bucket}")

    # ------------------------------------------------------------------ StatsStore
    def fold(self, part: BatchPart) -> bool:
        """Merge ``part`` into its bucket atomically.

        Returns False, writing nothing, when the part's key was folded into that bucket
        before (a redelivery) or when its bucket has already expired. Raises
        :class:`TransientError` when Redis is unreachable, and
        :class:`~drift_monitor.domain.errors.ValidationError` when the part's dimension
        differs from the model's statistics or it is dated too far in the future.
        """
        now = self._clock()
        bucket = self.policy.check_fresh(part, now)
        if bucket is None:
            log.info(
                "part older than the statistics retention; not folded",
                extra={"fields": {"model_id": part.model_id, "batch_id": part.batch_id}},
            )
            return False
        edges_key = self._key(part.model_id, "edges")
        index_key = self._key(part.model_id, "index")
        bucket_key = self._bucket_key(part.model_id, bucket)
        seen_key = self._seen_key(part.model_id, bucket)
        expires = self.policy.expires_at(bucket)
        offsets = self.policy.seen.offsets(part.key)
        get_bits: list[Any] = []
        set_bits: list[Any] = []
        for off in offsets:
            get_bits += ["GET", "u1", off]
            set_bits += ["SET", "u1", off, 1]
        # The part's own sketch only depends on the edges: compute it once per edges value.
        cached: tuple[bytes, RunningStats] | None = None

        with _transient():
            for attempt in range(self.max_retries):
                with self._pipeline() as pipe:
                    try:
                        pipe.watch(edges_key, bucket_key, seen_key)
                        edges_blob = pipe.get(edges_key)
                        new_edges = edges_blob is None
                        if edges_blob is None:
                            edges_blob = edges_to_bytes(self.policy.edges_for(part))
                        if cached is None or cached[0] != edges_blob:
                            cached = (
                                edges_blob,
                                self.policy.sketch(part, edges_from_bytes(edges_blob)),
                            )
                        bits = pipe.execute_command("BITFIELD", seen_key, *get_bits)
                        if all(bits):
                            pipe.unwatch()
                            return False
                        current = pipe.get(bucket_key)
                        sketch = cached[1]
                        merged = sketch if current is None else _load(current).merge(sketch)
                        pipe.multi()
                        if new_edges:
                            pipe.set(edges_key, edges_blob)
                        pipe.set(bucket_key, merged.to_bytes())
                        if current is None:
                            # Allocate the whole filter at once: grown bit by bit, Redis would
                            # over-allocate the string (up to twice its size).
                            pipe.set(seen_key, bytes(self.policy.seen.bits // 8))
                        pipe.execute_command("BITFIELD", seen_key, *set_bits)
                        pipe.zadd(index_key, {str(bucket): bucket})
                        pipe.zremrangebyscore(index_key, "-inf", f"({self.policy.oldest_live(now)}")
                        pipe.expireat(bucket_key, expires)
                        pipe.expireat(seen_key, expires)
                        # The edges and index live as long as the newest bucket: GT never
                        # shortens, and a key without expiry gets one (first fold).
                        for key in (edges_key, index_key):
                            pipe.execute_command("EXPIREAT", key, expires, "GT")
                            pipe.execute_command("EXPIREAT", key, expires, "NX")
                        pipe.execute()
                        return True
                    except WatchError:
                        # Another fold or a clear touched our keys: back off a little, retry.
                        time.sleep(random.uniform(0, 0.002 * min(attempt + 1, 10)))
        raise TransientError(
            f"statistics of {part.model_id!r} too contended: gave up after "
            f"{self.max_retries} attempts"
        )

    def clear(
        self, model_id: str, start: datetime | None = None, end: datetime | None = None
    ) -> None:
        """Delete the model's statistics; with ``start``/``end`` only the buckets overlapping
        ``[start, end)`` (the bin edges are then kept, so refolded buckets still merge)."""
        index_key = self._key(model_id, "index")
        whole = start is None and end is None
        lo, hi = self.policy.bounds(start, end)
        with _transient(), self._pipeline() as pipe:
            while True:
                try:
                    pipe.watch(index_key)
                    members = [int(m) for m in pipe.zrangebyscore(index_key, lo, hi)]
                    doomed = [b for b in members if b < hi]  # hi is exclusive
                    pipe.multi()
                    keys = [self._bucket_key(model_id, b) for b in doomed]
                    keys += [self._seen_key(model_id, b) for b in doomed]
                    if whole:
                        keys += [index_key, self._key(model_id, "edges")]
                    elif doomed:
                        pipe.zrem(index_key, *[str(b) for b in doomed])
                    if keys:
                        pipe.delete(*keys)
                    pipe.execute()
                    return
                except WatchError:
                    continue

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
        lo, hi = self.policy.bounds(start, end)
        lo = max(lo, self.policy.oldest_live(self._clock()))
        with _transient():
            members = self.client.zrangebyscore(self._key(model_id, "index"), lo, hi)
            chosen = [b for b in (int(m) for m in members) if b < hi]
            if not chosen:
                return None
            blobs = self.client.mget([self._bucket_key(model_id, b) for b in chosen])
        return RunningStats.merge_all([_load(b) for b in blobs if b is not None])

    def read_buckets(
        self, model_id: str, start: datetime | None = None, end: datetime | None = None
    ) -> list[tuple[BucketInfo, RunningStats]]:
        """Each bucket overlapping ``[start, end)`` on its own, oldest first (one round trip)."""
        lo, hi = self.policy.bounds(start, end)
        lo = max(lo, self.policy.oldest_live(self._clock()))
        with _transient():
            members = self.client.zrangebyscore(self._key(model_id, "index"), lo, hi)
            chosen = sorted(b for b in (int(m) for m in members) if b < hi)
            if not chosen:
                return []
            blobs = self.client.mget([self._bucket_key(model_id, b) for b in chosen])
        out = []
        for b, blob in zip(chosen, blobs, strict=True):
            if blob is not None:
                sketch = _load(blob)
                out.append((self.policy.info(b, sketch.count), sketch))
        return out

    def buckets(self, model_id: str) -> list[BucketInfo]:
        """The model's live buckets, oldest first, with their vector counts."""
        lo = self.policy.oldest_live(self._clock())
        with _transient():
            members = [
                int(m) for m in self.client.zrangebyscore(self._key(model_id, "index"), lo, "+inf")
            ]
            pipe: Any = self.client.pipeline(transaction=False)
            for b in members:
                pipe.getrange(self._bucket_key(model_id, b), 0, SKETCH_HEADER_SIZE - 1)
            heads = pipe.execute()
        return [
            self.policy.info(b, sketch_count(head))
            for b, head in zip(members, heads, strict=True)
            if head
        ]

    def edges(self, model_id: str) -> Float32Array | None:
        """The model's fixed histogram bin edges, if any part was folded."""
        with _transient():
            blob = self.client.get(self._key(model_id, "edges"))
        return None if blob is None else edges_from_bytes(blob)

    def key_count(self, model_id: str) -> int:
        """How many Redis keys the model uses (for memory checks)."""
        with _transient():
            return sum(1 for _ in self.client.scan_iter(match=self._key(model_id, "*"), count=1000))


def _load(blob: Any) -> RunningStats:
    return RunningStats.from_bytes(bytes(blob))


class RedisDimensionRegistry:
    """Each model's established vector dimension, claimed atomically with ``SET NX``."""

    def __init__(self, client: redis.Redis[bytes], *, key_prefix: str = "edm") -> None:
        self.client = client
        self.prefix = key_prefix

    def _key(self, model_id: str) -> str:
        return f"{self.prefix}:{{{model_id}}}:dimension"

    def claim_dimension(self, model_id: str, dimension: int) -> int:
        """Record ``dimension`` if the model has none yet; return the model's dimension."""
        key = self._key(model_id)
        with _transient():
            if self.client.set(key, dimension, nx=True):
                return dimension
            current = self.client.get(key)
        if current is None:  # deleted between the two commands: claim again
            return self.claim_dimension(model_id, dimension)
        return int(current)

    def model_dimension(self, model_id: str) -> int | None:
        with _transient():
            current = self.client.get(self._key(model_id))
        return None if current is None else int(current)

    def set_dimension(self, model_id: str, dimension: int) -> None:
        """Record ``dimension`` whatever is cached (the database's value, restored)."""
        with _transient():
            self.client.set(self._key(model_id), dimension)
