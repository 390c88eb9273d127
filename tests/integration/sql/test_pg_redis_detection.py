"""Detection on the running statistics in a real redis-server, and its fallback to PostgreSQL."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import redis
from drift_monitor.adapters.redis_stats import RedisStatsStore
from drift_monitor.adapters.sql import SqlMonitorRepository, SqlRepository
from drift_monitor.config import Settings
from drift_monitor.domain.batch import BatchPart
from drift_monitor.service.detection import run_detection
from sqlalchemy import Engine

pytestmark = pytest.mark.integration

BUCKET = 3600


def rows(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, 8)) * np.linspace(1, 0.2, 8)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_sketch_path_then_fallback_after_a_flush(
    pg_engine: Engine, redis_client: redis.Redis, key_prefix: str
) -> None:
    repo, monitor = SqlRepository(pg_engine), SqlMonitorRepository(pg_engine)
    stats = RedisStatsStore(
        redis_client, key_prefix=key_prefix, bucket_seconds=BUCKET, retention_seconds=7 * 86_400
    )
    hour = datetime.fromtimestamp(time.time() // BUCKET * BUCKET, UTC)  # the hour started
    parts = [
        BatchPart("m", "base", 0, 1, 0, hour - timedelta(days=2), rows(2500, 1)),
        BatchPart("m", "a", 0, 1, 0, hour - timedelta(minutes=50), rows(150, 2)),
        BatchPart("m", "b", 0, 1, 0, hour - timedelta(minutes=20), rows(150, 3)),
    ]
    for p in parts:
        repo.save_part(p)
        stats.fold(p)

    def detect(now: datetime) -> dict:
        outcome = run_detection(
            "m",
            repository=repo,
            monitor=monitor,
            stats=stats,
            alerting=None,
            metrics=None,
            settings=Settings(),
            now=now,
        )
        assert outcome.status in ("ok", "drift"), outcome.error
        return outcome.to_dict()

    # at the hour: the last hour's bucket closed, the window is that bucket, scored in full
    doc = detect(hour)
    assert (doc["source"], doc["source_reason"]) == ("sketch", None)
    assert doc["samples"]["current"] == 300 and doc["samples"]["current_used"] == 128
    assert doc["monitor"]["scored"] == 128 and doc["monitor"]["until"] == doc["checked_at"]

    # Redis loses the model's statistics: the run reads PostgreSQL and says why
    keys = list(redis_client.scan_iter(match=f"{key_prefix}:*", count=1000))
    redis_client.delete(*keys)
    later = hour + timedelta(seconds=1)
    doc = detect(later)
    assert doc["source"] == "sql"
    assert doc["source_reason"] == (
        "the running statistics hold 0 of the 300 vectors in the current window's buckets"
    )
    assert doc["samples"]["current"] == 300 and doc["monitor"]["until"] == doc["checked_at"]
    assert doc["monitor"]["scored"] == 0  # nothing arrived since the previous run
