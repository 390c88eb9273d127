"""On real PostgreSQL and Redis: ``alembic upgrade head`` from the repository root, and the
dimension registry surviving a Redis flush (PostgreSQL is the record, Redis a cache)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import redis
import sqlalchemy as sa
from drift_monitor.adapters.redis_stats import RedisDimensionRegistry
from drift_monitor.adapters.sql import SqlRepository
from drift_monitor.domain.batch import BatchPart
from drift_monitor.domain.errors import ValidationError
from drift_monitor.domain.validation import IngestRequest, Limits
from drift_monitor.service.dimensions import DurableDimensions
from drift_monitor.service.ingest import validate_batch

pytestmark = pytest.mark.integration


def test_alembic_upgrade_head_from_the_repository_root(pg_database: str, repo_root: Path) -> None:
    env = {**os.environ, "DATABASE_URL": pg_database}
    alembic = Path(sys.executable).parent / "alembic"
    result = subprocess.run(
        [str(alembic), "upgrade", "head"], cwd=repo_root, env=env,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    heads = subprocess.run(
        [str(alembic), "heads"], cwd=repo_root, env=env, capture_output=True, text=True
    ).stdout.split()[0]
    engine = sa.create_engine(pg_database)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == heads
            assert conn.exec_driver_sql("SELECT count(*) FROM batches").scalar() == 0
    finally:
        engine.dispose()


def _request(width: int) -> IngestRequest:
    row = "[" + ",".join(["0.5"] * width) + "]"
    body = '{"model_id": "enc", "embeddings": [' + ",".join([row] * 3) + "]}"
    return IngestRequest(body=body.encode(), content_type="application/json")


def test_after_a_redis_flush_a_wrong_batch_cannot_lock_the_model(
    database: sa.Engine, redis_client: redis.Redis, key_prefix: str
) -> None:
    repository = SqlRepository(database)
    vectors = np.ones((4, 384), dtype=np.float32)
    assert repository.save_part(BatchPart("enc", "b1", 0, 1, 0, datetime.now(UTC), vectors, {}))
    cache = RedisDimensionRegistry(redis_client, key_prefix=key_prefix)
    registry = DurableDimensions(cache, repository)
    assert registry.model_dimension("enc") == 384
    for key in redis_client.scan_iter(match=f"{key_prefix}:*"):  # FLUSHALL, for our keys
        redis_client.delete(key)
    assert cache.model_dimension("enc") is None

    with pytest.raises(ValidationError, match="expects 384"):
        validate_batch(_request(8), limits=Limits(), registry=registry)
    assert registry.claim_dimension("enc", 8) == 384
    assert validate_batch(_request(384), limits=Limits(), registry=registry).dimension == 384

    cache.set_dimension("enc", 8)  # a bad claim left by older code: rebuild repairs it
    assert registry.restore("enc") == 384 and cache.model_dimension("enc") == 384
