"""Where a detection run's vectors come from: the running statistics, or SQL.

A run needs two things beside the baseline (which is always sampled from SQL, once per
baseline refresh, and kept with the monitor state):

* the **current window** for the instant check: how many vectors it holds and a sample of
  them;
* the vectors that **arrived** since the monitor's watermark, to be scored once each for the
  evidence, and where the watermark moves to.

:class:`SketchWindow` reads both from the per-bucket running statistics
(:mod:`drift_monitor.adapters.redis_stats`; in-process :mod:`~drift_monitor.adapters.memory_stats`):

* the current window is the buckets overlapping ``[now - current_window_minutes, now)``
  (whole buckets, so it spans between one window and one window plus a bucket); its count is
  the buckets' exact count and its sample is the merged bottom-k sample, uniform without
  replacement over the buckets' vectors (at most ``k`` = the reservoir size rows);
* the arrived vectors are the bottom-k samples of the buckets that **closed** (ended by
  ``now``) and started at or after the watermark, each bucket's own sample (so every vector is
  scored while a bucket holds at most ``k``); more than ``max_rows`` are cut to the
  ``max_rows`` of smallest priority. The watermark then moves to the end of the last of those
  buckets: it moves in whole buckets, and a bucket is scored once, after it closed. Which rows
  a sample holds depends only on their hashed identity, never on their values, so the scored
  vectors are a value-independent subsample of the arrivals, which keeps the sequential
  e-detector valid. A part folded into a bucket after that bucket was scored (a late part) is
  never scored: it is missed, not counted twice. So are the rest of a bucket that a SQL run
  scored in part (its watermark is mid-bucket; the next sketch run starts at the next bucket).

:class:`SqlWindow` is the exact-window path: counts and stratified uniform samples of at most
``max_rows`` rows from SQL; the arrived vectors are those with ``since <= ts < now`` and the
watermark moves to ``now``.

:func:`open_window` chooses, per run, following ``DETECTION_SOURCE``:

* ``sql`` — always SQL;
* ``sketch`` — always the running statistics (whatever they hold);
* ``auto`` (default) — the running statistics, unless they cannot serve this run, then SQL for
  this run with the reason: no statistics store, a current window shorter than a bucket, the
  store failing, or the store holding fewer than :data:`COMPLETE_SHARE` of the vectors SQL
  holds for the same buckets (Redis flushed, failed over, or the buckets expired). SQL is
  counted before the store is read, so traffic arriving in between never looks like a loss.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import numpy as np

from drift_monitor.domain.sketch import RunningStats
from drift_monitor.domain.stats_buckets import BucketInfo, BucketPolicy

logger = logging.getLogger(__name__)

SOURCES = ("auto", "sketch", "sql")
# The running statistics serve a run only if they hold at least this share of the vectors SQL
# holds in the same buckets (a small shortfall is the stats subscriber a moment behind).
COMPLETE_SHARE = 0.95

Array = np.ndarray[Any, Any]


class Batches(Protocol):
    """The SQL batch repository, as far as windows go."""

    def count_vectors(self, model_id: str, start: datetime, end: datetime) -> int: ...

    def sample_vectors(
        self, model_id: str, start: datetime, end: datetime, max_rows: int, seed: int
    ) -> Array: ...


class Buckets(Protocol):
    """The running-statistics store, as far as windows go."""

    policy: BucketPolicy

    def read_buckets(
        self, model_id: str, start: datetime | None = None, end: datetime | None = None
    ) -> list[tuple[BucketInfo, RunningStats]]: ...


class View(Protocol):
    """One run's window: what it holds and where the watermark moves once it is scored."""

    @property
    def source(self) -> str: ...  # "sketch" or "sql"

    @property
    def reason(self) -> str | None: ...  # why SQL

    @property
    def start(self) -> datetime: ...  # the current window the instant check sees: [start, now)

    @property
    def n_current(self) -> int: ...

    @property
    def watermark(self) -> datetime: ...

    def sample(self) -> Array: ...

    def arrived(self) -> Array: ...


@dataclass
class SqlWindow:
    """The exact window ``[start, now)`` and arrivals ``[since, now)`` sampled from SQL."""

    repository: Batches
    model_id: str
    start: datetime
    now: datetime
    since: datetime
    max_rows: int
    seed: int
    reason: str | None = None
    source: str = "sql"
    n_current: int = 0
    _sample: Array | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.n_current = int(self.repository.count_vectors(self.model_id, self.start, self.now))

    @property
    def watermark(self) -> datetime:
        return self.now

    def sample(self) -> Array:
        if self._sample is None:
            self._sample = self.repository.sample_vectors(
                self.model_id, self.start, self.now, self.max_rows, self.seed + 1
            )
        return self._sample

    def arrived(self) -> Array:
        if self._sample is not None and self.since == self.start:
            return self._sample  # the same range: one read serves both
        return self.repository.sample_vectors(
            self.model_id, self.since, self.now, self.max_rows, self.seed + 2
        )


@dataclass
class SketchWindow:
    """The current window and the arrivals from per-bucket running statistics."""

    start: datetime
    current: Sequence[tuple[BucketInfo, RunningStats]]
    closed: Sequence[tuple[BucketInfo, RunningStats]]
    watermark: datetime
    max_rows: int
    reason: str | None = None
    source: str = "sketch"

    @property
    def n_current(self) -> int:
        return sum(info.count for info, _ in self.current)

    def sample(self) -> Array:
        """The merged buckets' bottom-k sample (what ``RunningStats.merge`` keeps)."""
        if not self.current:
            return np.zeros((0, 0), dtype=np.float32)
        k = min(self.max_rows, max(s.reservoir_size for _, s in self.current))
        return _bottom([s for _, s in self.current], k)

    def arrived(self) -> Array:
        """Each closed bucket's own sample, at most ``max_rows`` rows of smallest priority."""
        if not self.closed:
            return np.zeros((0, 0), dtype=np.float32)
        return _bottom([s for _, s in self.closed], self.max_rows)


def _bottom(sketches: Sequence[RunningStats], k: int) -> Array:
    """The ``k`` rows of smallest priority among the sketches' samples."""
    keys = np.concatenate([s.reservoir_keys for s in sketches])
    rows = np.concatenate([s.reservoir for s in sketches])
    _, first = np.unique(keys, return_index=True)  # sorted by priority, a shared row once
    return rows[first[:k]]


def open_window(
    mode: str,
    stats: Buckets | None,
    repository: Batches,
    model_id: str,
    *,
    start: datetime,
    now: datetime,
    since: datetime,
    max_rows: int,
    seed: int,
) -> View:
    """The source of this run's current window ``[start, now)`` and arrivals since ``since``.

    ``mode`` is ``DETECTION_SOURCE``; see the module docstring for the rules. ``seed`` makes
    the SQL samples reproducible (the sketch samples are fixed by the rows' identities).
    """
    if mode not in SOURCES:
        raise ValueError(f"detection source {mode!r} must be one of {', '.join(SOURCES)}")

    def sql(reason: str | None) -> SqlWindow:
        return SqlWindow(repository, model_id, start, now, since, max_rows, seed, reason)

    if mode == "sql":
        return sql("DETECTION_SOURCE=sql")
    if stats is None or not hasattr(stats, "read_buckets"):
        if mode == "sketch":
            raise RuntimeError("DETECTION_SOURCE=sketch but there is no running-statistics store")
        return sql("no running-statistics store")
    policy = stats.policy
    if mode == "auto" and (now - start).total_seconds() < policy.bucket_seconds:
        return sql(
            f"the current window is shorter than a statistics bucket "
            f"({policy.bucket_seconds} s, STATS_BUCKET_SECONDS)"
        )
    lo, hi = policy.align(start, now)  # the current window's whole buckets
    assert lo is not None and hi is not None
    # Closed buckets that started at or after the watermark; the watermark's own bucket was
    # (partly) scored already when the watermark is not on a bucket boundary.
    first = policy.floor(since.timestamp())
    if first < since.timestamp():
        first += policy.bucket_seconds
    scored_from = datetime.fromtimestamp(first, since.tzinfo)
    closed_until = datetime.fromtimestamp(policy.floor(now.timestamp()), now.tzinfo)
    expected: tuple[int, int] | None = None
    if mode == "auto":
        # SQL first: whatever arrives while the store is read only adds to the store's side.
        expected = (
            int(repository.count_vectors(model_id, lo, hi)),
            int(repository.count_vectors(model_id, scored_from, closed_until))
            if scored_from < closed_until
            else 0,
        )
    try:
        current = stats.read_buckets(model_id, start, now)
        closed = (
            [
                (info, s)
                for info, s in stats.read_buckets(model_id, scored_from, closed_until)
                if info.end <= now
            ]
            if scored_from < closed_until
            else []
        )
    except Exception as exc:
        if mode == "sketch":
            raise
        logger.warning(
            "running statistics unavailable; detection reads SQL",
            extra={"fields": {"model_id": model_id, "error": f"{type(exc).__name__}: {exc}"}},
        )
        return sql(f"running statistics unavailable: {type(exc).__name__}: {exc}")
    if expected is not None:
        for what, have, want in (
            ("the current window's buckets", sum(i.count for i, _ in current), expected[0]),
            ("the buckets to score", sum(i.count for i, _ in closed), expected[1]),
        ):
            if have < COMPLETE_SHARE * want:
                return sql(f"the running statistics hold {have} of the {want} vectors in {what}")
    # Every closed bucket after the watermark was read (in auto mode SQL agreed on their
    # counts), so the watermark passes all of them, including those that held nothing.
    watermark = max(closed_until, since)
    window_start = current[0][0].start if current else start
    return SketchWindow(
        start=min(window_start, start),
        current=current,
        closed=closed,
        watermark=watermark,
        max_rows=max_rows,
    )
