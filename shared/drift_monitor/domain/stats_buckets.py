"""How running statistics are cut into time buckets: the rules both statistics stores share.

The Redis store and its in-process twin keep, per model, one :class:`RunningStats` per
time bucket plus a fixed-size "seen" filter of the part keys folded into that bucket. Everything
that decides *what* to store lives here, so the two stores only differ in *where* they store it:

* :meth:`BucketPolicy.bucket_of` — parts go to the epoch-aligned bucket that contains their
  timestamp (``floor(ts / bucket_seconds) * bucket_seconds``), so any process computes the same
  bucket for the same part;
* :meth:`BucketPolicy.expires_at` — a bucket lives until ``bucket end + retention``;
* :meth:`BucketPolicy.edges_for` — a model's bin edges are fixed by the first part folded for it
  (:func:`~drift_monitor.domain.sketch.reference_edges`) and kept until its statistics are
  cleared;
* :class:`SeenFilter` — the part keys folded into a bucket, as a Bloom filter of
  ``seen_bits`` bits. A key folded before is always recognised (no false negatives, so a
  redelivered part never counts twice); a new key is mistaken for a repeat with probability
  ``(1 - exp(-h n / m)) ** h`` after ``n`` parts in the bucket (see docs/running-statistics.md).
  Its size does not grow with traffic, which keeps memory per model bounded.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from drift_monitor.domain.batch import BatchPart
from drift_monitor.domain.errors import ValidationError
from drift_monitor.domain.sketch import (
    SKETCH_HEADER_SIZE,
    Float32Array,
    RunningStats,
    reference_edges,
)

DEFAULT_BINS = 16
DEFAULT_RESERVOIR_SIZE = 128
# 128 KiB less 64 bytes: with Redis' string header the filter fits jemalloc's 128 KiB size class
# exactly (a round 2**20 bits would be rounded up to a 160 KiB allocation).
DEFAULT_SEEN_BITS = (128 * 1024 - 64) * 8
DEFAULT_SEEN_HASHES = 10
DEFAULT_MAX_FUTURE_SECONDS = 3600


@dataclass(frozen=True)
class BucketInfo:
    """One stored bucket: its time span ``[start, end)`` and how many vectors it holds."""

    start: datetime
    end: datetime
    count: int


@dataclass(frozen=True)
class SeenFilter:
    """Bloom filter geometry for the part keys of one bucket."""

    bits: int = DEFAULT_SEEN_BITS
    hashes: int = DEFAULT_SEEN_HASHES

    def __post_init__(self) -> None:
        if not 8 <= self.bits <= 2**32 or self.bits % 8:
            raise ValueError("seen filter bits must be a multiple of 8 in [8, 2**32]")
        if not 1 <= self.hashes <= 64:
            raise ValueError("seen filter hashes must be in [1, 64]")

    def offsets(self, key: str) -> list[int]:
        """Bit offsets of ``key`` (Kirsch-Mitzenmacher double hashing of one BLAKE2b digest)."""
        digest = hashlib.blake2b(key.encode(), digest_size=16).digest()
        h1 = int.from_bytes(digest[:8], "little")
        h2 = int.from_bytes(digest[8:], "little") | 1
        return [(h1 + i * h2) % self.bits for i in range(self.hashes)]

    def false_positive_rate(self, parts: int) -> float:
        """Chance that a new key looks seen after ``parts`` distinct keys were added."""
        return (1.0 - math.exp(-self.hashes * parts / self.bits)) ** self.hashes


@dataclass(frozen=True)
class BucketPolicy:
    """Bucket width, retention and the fixed sizes of what each bucket holds."""

    bucket_seconds: int
    retention_seconds: int
    bins: int = DEFAULT_BINS
    reservoir_size: int = DEFAULT_RESERVOIR_SIZE
    seen: SeenFilter = SeenFilter()
    max_future_seconds: int = DEFAULT_MAX_FUTURE_SECONDS

    def __post_init__(self) -> None:
        if self.bucket_seconds < 1:
            raise ValueError("bucket_seconds must be >= 1")
        if self.retention_seconds < 1:
            raise ValueError("retention_seconds must be >= 1")
        if self.bins < 1:
            raise ValueError("bins must be >= 1")
        if self.reservoir_size < 0:
            raise ValueError("reservoir_size must be >= 0")

    # ------------------------------------------------------------------ time
    def bucket_of(self, timestamp: datetime) -> int:
        """Epoch second at which the bucket holding ``timestamp`` starts."""
        return self.floor(timestamp.timestamp())

    def floor(self, epoch: float) -> int:
        return math.floor(epoch / self.bucket_seconds) * self.bucket_seconds

    def expires_at(self, bucket: int) -> int:
        """Epoch second after which the bucket starting at ``bucket`` is dropped."""
        return bucket + self.bucket_seconds + self.retention_seconds

    def oldest_live(self, now: float) -> int:
        """Start of the oldest bucket that has not expired at ``now``."""
        return self.floor(now - self.retention_seconds - self.bucket_seconds) + (
            self.bucket_seconds
        )

    def check_fresh(self, part: BatchPart, now: float) -> int | None:
        """Bucket of ``part``, or None if it has already expired (nothing to fold).

        A part dated further ahead than the retention window is refused: it would create a
        bucket that outlives the retention bound.
        """
        bucket = self.bucket_of(part.timestamp)
        if self.expires_at(bucket) <= now:
            return None
        if bucket > now + self.max_future_seconds:
            raise ValidationError(
                "timestamp",
                f"is more than {self.max_future_seconds} s in the future; statistics refuse it",
                422,
            )
        return bucket

    def select(
        self, buckets: Iterable[int], start: datetime | None, end: datetime | None
    ) -> list[int]:
        """The buckets that overlap ``[start, end)`` (whole buckets: they are indivisible)."""
        lo, hi = self.bounds(start, end)
        return sorted(b for b in buckets if lo <= b < hi)

    def bounds(self, start: datetime | None, end: datetime | None) -> tuple[float, float]:
        """Bucket-start bounds ``lo <= b < hi`` matching :meth:`select`."""
        lo = -math.inf if start is None else float(self.floor(start.timestamp()))
        hi = math.inf if end is None else end.timestamp()
        return lo, hi

    def align(
        self, start: datetime | None, end: datetime | None
    ) -> tuple[datetime | None, datetime | None]:
        """Widen ``[start, end)`` to whole buckets (what :meth:`select` touches)."""
        a = None if start is None else _utc(self.floor(start.timestamp()))
        if end is None:
            b = None
        else:
            e = end.timestamp()
            top = self.floor(e)
            b = _utc(top if top == e else top + self.bucket_seconds)
        return a, b

    def info(self, bucket: int, count: int) -> BucketInfo:
        return BucketInfo(_utc(bucket), _utc(bucket + self.bucket_seconds), count)

    # ------------------------------------------------------------------ contents
    def edges_for(self, part: BatchPart) -> Float32Array:
        """Bin edges for a model whose first folded part is ``part``."""
        if part.count == 0:
            raise ValidationError("embeddings", "an empty part cannot fix histogram bins", 422)
        return reference_edges(part.vectors, self.bins)

    def sketch(self, part: BatchPart, edges: Float32Array) -> RunningStats:
        """The sketch of one part on the model's edges."""
        if edges.shape[0] != part.dimension:
            raise ValidationError(
                "embeddings",
                f"dimension {part.dimension} does not match the model's statistics "
                f"dimension {edges.shape[0]}",
                422,
            )
        return RunningStats.from_vectors(
            part.vectors, edges=edges, reservoir_size=self.reservoir_size, key=part.key
        )

    def bucket_bytes(self, dimension: int, *, hist_item_bytes: int = 4) -> int:
        """Upper bound of one bucket's stored size: sketch plus seen filter (no overhead)."""
        b1 = self.bins + 1
        k = self.reservoir_size
        sketch = (
            SKETCH_HEADER_SIZE
            + 16 * dimension
            + 4 * dimension * b1
            + hist_item_bytes * dimension * (b1 + 1)
        )
        return sketch + k * (8 + 4 * dimension) + self.seen.bits // 8

    def max_buckets(self) -> int:
        """Most live buckets a model can have: the retention window, the current bucket and
        the few future buckets that :meth:`check_fresh` lets through."""
        return (self.retention_seconds + self.max_future_seconds) // self.bucket_seconds + 2


def set_bits(bitmap: bytearray, offsets: Iterable[int]) -> None:
    for off in offsets:
        bitmap[off >> 3] |= 0x80 >> (off & 7)  # Redis bit order: MSB first


def all_bits_set(bitmap: bytearray, offsets: Iterable[int]) -> bool:
    return all(bitmap[off >> 3] & (0x80 >> (off & 7)) for off in offsets)


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)
