"""In-process statistics store: bucketing, ranges, idempotency, expiry, concurrency."""

from __future__ import annotations

import threading
import zlib
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from drift_monitor.adapters.memory_stats import MemoryDimensionRegistry, MemoryStatsStore
from drift_monitor.domain.batch import BatchPart
from drift_monitor.domain.errors import ValidationError
from drift_monitor.domain.sketch import RunningStats, row_priorities

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)  # aligned to the hour


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now.timestamp()

    def __call__(self) -> float:
        return self.now


def make_part(batch: str, ts: datetime, rows: int = 20, d: int = 6, seed: int = 0, part: int = 0,
              model: str = "m") -> BatchPart:  # fmt: skip
    rng = np.random.default_rng(zlib.crc32(f"{model}/{batch}#{part}/{seed}".encode()))
    return BatchPart(model, batch, part, 1, 0, ts, rng.normal(size=(rows, d)).astype(np.float32))


def expected(parts: list[BatchPart], edges: np.ndarray, k: int) -> RunningStats:
    data = np.concatenate([p.vectors for p in parts])
    prio = np.concatenate([row_priorities(p.key, p.count) for p in parts])
    return RunningStats.from_vectors(data, edges=edges, reservoir_size=k, priorities=prio)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0 + timedelta(hours=5))


@pytest.fixture
def store(clock: FakeClock) -> MemoryStatsStore:
    return MemoryStatsStore(
        bucket_seconds=3600, retention_seconds=24 * 3600, bins=8, reservoir_size=16, clock=clock
    )


def test_fold_then_read_equals_sketch_of_all_data(store: MemoryStatsStore) -> None:
    parts = [make_part(f"b{i}", T0 + timedelta(minutes=37 * i)) for i in range(7)]
    assert all(store.fold(p) for p in parts)
    edges = store.edges("m")
    assert edges is not None
    got = store.read("m")
    assert got is not None
    assert got.equals(expected(parts, edges, 16))
    assert sum(b.count for b in store.buckets("m")) == 140


def test_redelivery_folds_nothing_twice(store: MemoryStatsStore) -> None:
    p = make_part("b1", T0)
    assert store.fold(p) is True
    before = store.read("m")
    assert store.fold(p) is False
    assert store.fold(make_part("b1", T0)) is False  # same key, rebuilt object
    after = store.read("m")
    assert before is not None and after is not None and after.equals(before)
    # a different part of the same batch is new
    assert store.fold(make_part("b1", T0, part=1)) is True


def test_bucketing_by_timestamp_and_range_reads(store: MemoryStatsStore) -> None:
    a = make_part("a", T0 + timedelta(minutes=5))
    b = make_part("b", T0 + timedelta(minutes=59, seconds=59))
    c = make_part("c", T0 + timedelta(hours=1))
    d = make_part("d", T0 + timedelta(hours=3, minutes=30))
    for p in (a, b, c, d):
        store.fold(p)
    info = store.buckets("m")
    assert [(x.start, x.count) for x in info] == [
        (T0, 40), (T0 + timedelta(hours=1), 20), (T0 + timedelta(hours=3), 20),
    ]  # fmt: skip
    assert info[0].end == T0 + timedelta(hours=1)
    edges = store.edges("m")
    assert edges is not None
    # whole buckets overlapping [start, end)
    r = store.read("m", T0 + timedelta(minutes=30), T0 + timedelta(hours=1))
    assert r is not None and r.equals(expected([a, b], edges, 16))
    r = store.read("m", T0 + timedelta(minutes=30), T0 + timedelta(hours=1, seconds=1))
    assert r is not None and r.equals(expected([a, b, c], edges, 16))
    r = store.read("m", start=T0 + timedelta(hours=2))
    assert r is not None and r.equals(expected([d], edges, 16))
    assert store.read("m", T0 + timedelta(hours=2), T0 + timedelta(hours=3)) is None
    assert store.read("other") is None


def test_expiry_bounds_buckets(store: MemoryStatsStore, clock: FakeClock) -> None:
    for h in range(60):
        clock.now = (T0 + timedelta(hours=h, minutes=1)).timestamp()
        store.fold(make_part(f"h{h}", T0 + timedelta(hours=h)))
        assert len(store.buckets("m")) <= store.policy.max_buckets()
    # retention 24 h: the bucket of hour 59 and the 24 full hours before it remain
    assert len(store.buckets("m")) == 25
    # a part whose bucket already expired is not folded
    assert store.fold(make_part("old", T0)) is False
    # once every bucket expired, the edges are forgotten and a new part fixes new ones
    clock.now += 30 * 3600
    assert store.buckets("m") == [] and store.read("m") is None
    fresh = make_part("new", datetime.fromtimestamp(clock.now, UTC), d=6, seed=9)
    assert store.fold(fresh)
    assert store.read("m") is not None


def test_far_future_part_is_refused(store: MemoryStatsStore, clock: FakeClock) -> None:
    with pytest.raises(ValidationError) as err:
        store.fold(make_part("f", datetime.fromtimestamp(clock.now, UTC) + timedelta(days=3)))
    assert err.value.field == "timestamp"


def test_dimension_mismatch_is_a_validation_error(store: MemoryStatsStore) -> None:
    store.fold(make_part("a", T0, d=6))
    with pytest.raises(ValidationError) as err:
        store.fold(make_part("b", T0, d=5))
    assert err.value.field == "embeddings"


def test_clear_whole_and_range(store: MemoryStatsStore) -> None:
    parts = [make_part(f"p{h}", T0 + timedelta(hours=h)) for h in range(4)]
    for p in parts:
        store.fold(p)
    edges = store.edges("m")
    store.clear("m", T0 + timedelta(hours=1, minutes=10), T0 + timedelta(hours=2, minutes=1))
    assert [b.start for b in store.buckets("m")] == [T0, T0 + timedelta(hours=3)]
    assert np.array_equal(store.edges("m"), edges)
    # cleared keys can be folded again (that is what a rebuild does)
    assert store.fold(parts[1]) and store.fold(parts[2])
    got = store.read("m")
    assert got is not None and got.equals(expected(parts, edges, 16))
    store.clear("m")
    assert store.read("m") is None and store.edges("m") is None and store.buckets("m") == []


def test_concurrent_folds_count_exactly(store: MemoryStatsStore) -> None:
    parts = [make_part(f"c{i}", T0 + timedelta(minutes=i % 90), rows=5) for i in range(40)]
    barrier = threading.Barrier(4)
    results: list[bool] = []
    lock = threading.Lock()

    def worker(seed: int) -> None:
        order = np.random.default_rng(seed).permutation(len(parts))
        barrier.wait()
        for i in order:  # every thread folds every part: each must count once
            ok = store.fold(parts[i])
            with lock:
                results.append(ok)

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 40
    got = store.read("m")
    edges = store.edges("m")
    assert got is not None and edges is not None
    assert got.equals(expected(parts, edges, 16))


def test_memory_dimension_registry() -> None:
    reg = MemoryDimensionRegistry()
    assert reg.model_dimension("m") is None
    assert reg.claim_dimension("m", 384) == 384
    assert reg.claim_dimension("m", 768) == 384
    assert reg.model_dimension("m") == 384
