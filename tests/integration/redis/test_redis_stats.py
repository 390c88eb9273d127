"""RedisStatsStore against a real redis-server: correctness, idempotency, concurrency, bounds."""

from __future__ import annotations

import multiprocessing
import shutil
import socket
import subprocess
import threading
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import redis
from drift_monitor.adapters.memory_stats import MemoryStatsStore
from drift_monitor.adapters.redis_stats import RedisDimensionRegistry, RedisStatsStore
from drift_monitor.domain.batch import BatchPart
from drift_monitor.domain.errors import TransientError
from drift_monitor.domain.sketch import RunningStats, row_priorities
from drift_monitor.service.rebuild import rebuild_stats
from redis.backoff import NoBackoff
from redis.retry import Retry

pytestmark = pytest.mark.integration

D = 24
BUCKET = 3600


def now_floor() -> datetime:
    """Start of the current hour: recent enough that nothing expires during a test."""
    now = time.time()
    return datetime.fromtimestamp(now - now % BUCKET, UTC)


def clear_of_expiry(bucket_seconds: int, margin: float = 10.0) -> float:
    """The time now, after waiting out the last ``margin`` seconds of a bucket.

    Redis expires a bucket's keys on its own clock at a bucket boundary (``EXPIREAT``). A test
    that counts keys or reads TTLs must not straddle one, or the oldest bucket vanishes (or its
    TTL rounds to 0) between two looks.
    """
    now = time.time()
    left = bucket_seconds - now % bucket_seconds
    if left < margin:
        time.sleep(left + 0.05)
        now = time.time()
    return now


def make_part(
    batch: str, ts: datetime, rows: int = 30, part: int = 0, model: str = "m", parts: int = 1
) -> BatchPart:
    rng = np.random.default_rng(zlib.crc32(f"{model}/{batch}#{part}".encode()))
    vectors = (rng.normal(size=(rows, D)) + 3.0).astype(np.float32)
    return BatchPart(model, batch, part, parts, 0, ts, vectors)


def expected(parts: list[BatchPart], edges: np.ndarray, k: int) -> RunningStats:
    data = np.concatenate([p.vectors for p in parts])
    prio = np.concatenate([row_priorities(p.key, p.count) for p in parts])
    return RunningStats.from_vectors(data, edges=edges, reservoir_size=k, priorities=prio)


def make_store(client: redis.Redis, prefix: str, **kw: int) -> RedisStatsStore:
    opts = {
        "bucket_seconds": BUCKET,
        "retention_seconds": 6 * BUCKET,
        "bins": 8,
        "reservoir_size": 32,
    }
    opts.update(kw)
    return RedisStatsStore(client, key_prefix=prefix, **opts)


def test_fold_and_read_equal_the_sketch_of_all_data(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    store = make_store(redis_client, key_prefix)
    t0 = now_floor() - timedelta(hours=3)
    parts = [make_part(f"b{i}", t0 + timedelta(minutes=23 * i), rows=10 + i) for i in range(12)]
    assert all(store.fold(p) for p in parts)
    edges = store.edges("m")
    assert edges is not None and edges.shape == (D, 9)
    got = store.read("m")
    assert got is not None and got.equals(expected(parts, edges, 32))
    # bucketing by timestamp and range reads over whole buckets
    info = store.buckets("m")
    assert [b.start for b in info] == sorted(
        {t0 + timedelta(hours=(23 * i) // 60) for i in range(12)}
    )
    assert sum(b.count for b in info) == sum(p.count for p in parts)
    second_hour = [
        p for p in parts if t0 + timedelta(hours=1) <= p.timestamp < t0 + timedelta(hours=2)
    ]
    r = store.read("m", t0 + timedelta(hours=1, minutes=30), t0 + timedelta(hours=1, minutes=31))
    assert r is not None and r.equals(expected(second_hour, edges, 32))
    assert store.read("m", t0 - timedelta(hours=2), t0) is None
    # same semantics as the in-process twin
    twin = MemoryStatsStore(
        bucket_seconds=BUCKET, retention_seconds=6 * BUCKET, bins=8, reservoir_size=32
    )
    for p in parts:
        twin.fold(p)
    twin_stats = twin.read("m")
    assert twin_stats is not None and twin_stats.equals(got)
    assert [(b.start, b.count) for b in twin.buckets("m")] == [(b.start, b.count) for b in info]


def test_redelivery_folds_nothing_twice(redis_client: redis.Redis, key_prefix: str) -> None:
    store = make_store(redis_client, key_prefix)
    hour = now_floor()  # once: an hour boundary mid-test must not move the redelivery
    p = make_part("once", hour)
    assert store.fold(p) is True
    blob = redis_client.get(f"{key_prefix}:{{m}}:b:{int(hour.timestamp())}")
    for _ in range(3):
        assert store.fold(make_part("once", hour)) is False
    assert redis_client.get(f"{key_prefix}:{{m}}:b:{int(hour.timestamp())}") == blob
    stats = store.read("m")
    assert stats is not None and stats.count == p.count


def _fold_worker(url: str, prefix: str, batches: list[str], ts: float, seed: int) -> int:
    """Runs in a separate process: fold every given batch (in a shuffled order) with 3 threads."""
    client = redis.Redis.from_url(url)
    store = make_store(client, prefix)
    order = list(np.random.default_rng(seed).permutation(batches))
    folded = [0, 0, 0]

    def run(i: int) -> None:
        for b in order[i::3] + order:  # each thread also retries everything: duplicates galore
            if store.fold(make_part(str(b), datetime.fromtimestamp(ts, UTC), rows=7)):
                folded[i] += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    client.close()
    return sum(folded)


def test_concurrent_processes_count_exactly(
    redis_url: str, redis_client: redis.Redis, key_prefix: str
) -> None:
    batches = [f"c{i}" for i in range(30)]
    ts = now_floor().timestamp() + 60
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=3, mp_context=ctx) as pool:
        # overlapping assignments: every batch is sent by at least two processes
        jobs = [
            pool.submit(_fold_worker, redis_url, key_prefix, batches[:20], ts, 1),
            pool.submit(_fold_worker, redis_url, key_prefix, batches[10:], ts, 2),
            pool.submit(_fold_worker, redis_url, key_prefix, batches, ts, 3),
        ]
        successes = sum(j.result(timeout=300) for j in jobs)
    assert successes == len(batches)  # each part folded exactly once overall
    store = make_store(redis_client, key_prefix)
    got = store.read("m")
    edges = store.edges("m")
    assert got is not None and edges is not None
    parts = [make_part(b, datetime.fromtimestamp(ts, UTC), rows=7) for b in batches]
    assert got.count == 30 * 7
    assert got.equals(expected(parts, edges, 32))


def _model_bytes(client: redis.Redis, prefix: str) -> tuple[int, int]:
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    return len(keys), sum(int(client.memory_usage(k) or 0) for k in keys)


def test_memory_per_model_is_bounded(redis_client: redis.Redis, key_prefix: str) -> None:
    store = make_store(redis_client, key_prefix, bucket_seconds=60, retention_seconds=300)
    # the oldest live bucket expires at the next minute: start well clear of it
    start = clear_of_expiry(60)
    now = datetime.fromtimestamp(start - start % 60, UTC)
    # an hour of traffic arriving now: only the last retention window is kept
    for m in range(60):
        store.fold(make_part(f"t{m}", now - timedelta(minutes=59 - m), rows=5))
    keys, _ = _model_bytes(redis_client, key_prefix)
    live = len(store.buckets("m"))
    assert live <= store.policy.max_buckets() and live >= 5
    assert keys == 2 * live + 2  # bucket + seen filter per bucket, edges, index
    # heavy traffic into one bucket does not grow it: arrays and filter have fixed size
    for i in range(40):
        store.fold(make_part(f"heavy{i}", now, rows=5))
    _, used_40 = _model_bytes(redis_client, key_prefix)
    for i in range(40, 240):
        store.fold(make_part(f"heavy{i}", now, rows=5))
    keys_240, used_240 = _model_bytes(redis_client, key_prefix)
    assert keys_240 == keys and used_240 <= used_40 * 1.02
    per_bucket = store.policy.bucket_bytes(D)
    assert used_240 <= (live + 1) * per_bucket * 1.25
    # every key carries an expiry no later than bucket end + retention
    for k in redis_client.scan_iter(match=f"{key_prefix}:*"):
        ttl = redis_client.ttl(k)
        assert 0 < ttl <= 60 + 300 + 5, (k, ttl)


def test_buckets_expire_in_real_time(redis_client: redis.Redis, key_prefix: str) -> None:
    store = make_store(redis_client, key_prefix, bucket_seconds=1, retention_seconds=1)
    assert store.fold(make_part("short", datetime.now(UTC)))
    assert _model_bytes(redis_client, key_prefix)[0] == 4
    time.sleep(2.6)  # bucket end (<= 1 s) + retention (1 s) + slack
    assert _model_bytes(redis_client, key_prefix)[0] == 0
    assert store.read("m") is None and store.buckets("m") == []


def test_redis_loss_then_rebuild_gives_the_same_statistics(redis_url: str, tmp_path: Path) -> None:
    from drift_monitor.adapters.sql import SqlRepository, sqlite_engine, upgrade

    engine = sqlite_engine(f"sqlite:///{tmp_path / 'batches.db'}")
    upgrade(engine)
    repository = SqlRepository(engine)
    # A database of its own: this test flushes it to simulate Memorystore losing its data.
    client = redis.Redis.from_url(redis_url, db=9)
    client.flushdb()
    try:
        store = make_store(client, "edm")
        t0 = now_floor() - timedelta(hours=2)
        parts = [make_part(f"r{i}", t0 + timedelta(minutes=17 * i)) for i in range(9)]
        parts += [make_part("split", t0 + timedelta(minutes=5), part=j, parts=3) for j in range(3)]
        parts.sort(key=lambda p: (p.timestamp, p.batch_id, p.part))
        for p in parts:  # what the two subscribers do
            assert repository.save_part(p)
            assert store.fold(p)
        before = store.read("m")
        buckets_before = store.buckets("m")
        assert before is not None

        client.flushdb()
        assert store.read("m") is None

        folded = rebuild_stats("m", repository, store)
        assert folded == sum(p.count for p in parts)
        after = store.read("m")
        assert after is not None and after.equals(before)
        assert store.buckets("m") == buckets_before
        # redelivered messages after the rebuild still count once
        assert not any(store.fold(p) for p in parts)
    finally:
        client.flushdb()
        client.close()
        engine.dispose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_transient_error_when_redis_is_down(tmp_path: Path) -> None:
    port = _free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        # No client-side retries: the test is about what the store does once they are exhausted.
        client = redis.Redis(
            port=port, socket_timeout=2, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0)
        )
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        store = make_store(client, "down")
        registry = RedisDimensionRegistry(client, key_prefix="down")
        assert store.fold(make_part("up", now_floor()))
        assert registry.claim_dimension("m", D) == D
    finally:
        server.terminate()
        server.wait(timeout=10)
    with pytest.raises(TransientError):
        store.fold(make_part("while-down", now_floor()))
    with pytest.raises(TransientError):
        store.read("m")
    with pytest.raises(TransientError):
        store.clear("m")
    with pytest.raises(TransientError):
        registry.model_dimension("m")


def test_dimension_registry_claims_atomically(redis_client: redis.Redis, key_prefix: str) -> None:
    registry = RedisDimensionRegistry(redis_client, key_prefix=key_prefix)
    assert registry.model_dimension("team/m") is None
    results: list[int] = []
    barrier = threading.Barrier(8)

    def claim(dim: int) -> None:
        barrier.wait()
        results.append(registry.claim_dimension("team/m", dim))

    threads = [threading.Thread(target=claim, args=(d,)) for d in range(100, 108)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and results[0] in range(100, 108)
    assert registry.model_dimension("team/m") == results[0]


def test_clear_is_per_model_and_range(redis_client: redis.Redis, key_prefix: str) -> None:
    store = make_store(redis_client, key_prefix)
    t0 = now_floor() - timedelta(hours=3)
    a = [make_part(f"a{h}", t0 + timedelta(hours=h)) for h in range(3)]
    other = make_part("o", t0, model="other")
    for p in [*a, other]:
        store.fold(p)
    store.clear("m", t0 + timedelta(minutes=90), t0 + timedelta(minutes=91))
    assert [b.start for b in store.buckets("m")] == [t0, t0 + timedelta(hours=2)]
    assert store.fold(a[1]) is True  # a cleared bucket accepts its parts again
    edges = store.edges("m")
    got = store.read("m")
    assert got is not None and edges is not None and got.equals(expected(a, edges, 32))
    store.clear("m")
    assert store.read("m") is None and store.edges("m") is None
    assert list(redis_client.scan_iter(match=f"{key_prefix}:{{m}}:*")) == []
    assert store.read("other") is not None


def test_read_buckets_returns_each_bucket_like_the_twin(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    store = make_store(redis_client, key_prefix)
    twin = MemoryStatsStore(
        bucket_seconds=BUCKET, retention_seconds=6 * BUCKET, bins=8, reservoir_size=32
    )
    t0 = now_floor() - timedelta(hours=3)
    parts = [make_part(f"r{i}", t0 + timedelta(minutes=37 * i), rows=20 + i) for i in range(7)]
    for p in parts:
        assert store.fold(p) and twin.fold(p)
    got = store.read_buckets("m", t0 + timedelta(minutes=90), t0 + timedelta(hours=3))
    want = twin.read_buckets("m", t0 + timedelta(minutes=90), t0 + timedelta(hours=3))
    assert [info.start for info, _ in got] == [t0 + timedelta(hours=h) for h in (1, 2)]
    assert [info for info, _ in got] == [info for info, _ in want]
    for (info, sketch), (_, twin_sketch) in zip(got, want, strict=True):
        assert sketch.equals(twin_sketch)
        in_bucket = [p for p in parts if info.start <= p.timestamp < info.end]
        assert sketch.count == info.count == sum(p.count for p in in_bucket)
    assert store.read_buckets("m", t0 - timedelta(hours=2), t0) == []
