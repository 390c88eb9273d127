"""Rebuilding statistics from the batch repository."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from drift_monitor.adapters.memory_stats import MemoryStatsStore
from drift_monitor.cli import build_parser
from drift_monitor.domain.batch import BatchPart
from drift_monitor.service.rebuild import rebuild_stats

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


class FakeRepository:
    """Parts in memory, served oldest first like the SQL repository."""

    def __init__(self) -> None:
        self.parts: dict[tuple[str, str], BatchPart] = {}

    def save_part(self, part: BatchPart) -> bool:
        return self.parts.setdefault((part.model_id, part.key), part) is part

    def claim_dimension(self, model_id: str, dimension: int) -> int:
        return dimension

    def model_dimension(self, model_id: str) -> int | None:
        return None

    def iter_parts(
        self, model_id: str, start: datetime | None = None, end: datetime | None = None
    ) -> Iterator[BatchPart]:
        chosen = [
            p for (m, _), p in self.parts.items()
            if m == model_id and (start is None or p.timestamp >= start)
            and (end is None or p.timestamp < end)
        ]  # fmt: skip
        yield from sorted(chosen, key=lambda p: (p.timestamp, p.batch_id, p.part))


def _part(i: int, ts: datetime, model: str = "m") -> BatchPart:
    rng = np.random.default_rng(i)
    return BatchPart(model, f"b{i}", 0, 1, 0, ts, rng.normal(size=(10 + i, 4)).astype(np.float32))


def _store() -> MemoryStatsStore:
    now = (T0 + timedelta(hours=6)).timestamp()
    return MemoryStatsStore(
        bucket_seconds=3600, retention_seconds=86_400, bins=6, reservoir_size=8,
        clock=lambda: now,
    )  # fmt: skip


def _filled() -> tuple[FakeRepository, MemoryStatsStore, list[BatchPart]]:
    repo, store = FakeRepository(), _store()
    parts = [_part(i, T0 + timedelta(minutes=25 * i)) for i in range(10)]
    parts.append(_part(99, T0, model="other"))
    for p in parts:  # the subscribers' work: persist and fold every part
        repo.save_part(p)
        store.fold(p)
    return repo, store, parts


def test_rebuild_after_loss_restores_identical_statistics() -> None:
    repo, store, parts = _filled()
    original = store.read("m")
    assert original is not None
    store.clear("m")  # Redis lost everything for this model
    assert store.read("m") is None
    folded = rebuild_stats("m", repo, store)
    assert folded == sum(p.count for p in parts if p.model_id == "m")
    rebuilt = store.read("m")
    assert rebuilt is not None and rebuilt.equals(original)
    assert store.read("other") is not None  # other models untouched


def test_rebuild_of_a_range_replaces_whole_buckets_only() -> None:
    repo, store, parts = _filled()
    original = store.read("m")
    assert original is not None
    before = [(b.start, b.count) for b in store.buckets("m")]
    # a mid-bucket range: the buckets it touches are rebuilt whole
    folded = rebuild_stats(
        "m", repo, store, T0 + timedelta(minutes=70), T0 + timedelta(minutes=130)
    )
    in_range = [p for p in parts if p.model_id == "m"
                and T0 + timedelta(hours=1) <= p.timestamp < T0 + timedelta(hours=3)]  # fmt: skip
    assert folded == sum(p.count for p in in_range) and folded > 0
    assert [(b.start, b.count) for b in store.buckets("m")] == before
    after = store.read("m")
    assert after is not None and after.equals(original)


def test_rebuild_skips_nothing_new_but_counts_only_folded() -> None:
    repo, store, _ = _filled()
    # rebuilding twice in a row gives the same statistics and folds the same amount
    first = rebuild_stats("m", repo, store)
    snapshot = store.read("m")
    assert rebuild_stats("m", repo, store) == first
    again = store.read("m")
    assert snapshot is not None and again is not None and again.equals(snapshot)


def test_cli_parses_rebuild_arguments() -> None:
    args = build_parser().parse_args(
        ["rebuild-stats", "team/model-1", "--start", "2024-05-01T00:00:00Z"]
    )
    assert args.model_id == "team/model-1"
    assert args.start == datetime(2024, 5, 1, tzinfo=UTC) and args.end is None
    with pytest.raises(SystemExit):
        build_parser().parse_args(["rebuild-stats", "m", "--start", "2024-05-01T00:00:00"])
    assert isinstance(args, argparse.Namespace)
