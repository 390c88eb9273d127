"""SQLite-backed fixtures for the SQL adapter's unit tests: one fresh database file per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from drift_monitor.adapters.sql import SqlMonitorRepository, SqlRepository, sqlite_engine, upgrade
from drift_monitor.domain.batch import BatchPart
from sqlalchemy import Engine

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = sqlite_engine(f"sqlite:///{tmp_path / 'db' / 'drift-monitor.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def repo(engine: Engine, clock: FakeClock) -> SqlRepository:
    return SqlRepository(engine, clock=clock)


@pytest.fixture
def monitor(engine: Engine, clock: FakeClock) -> SqlMonitorRepository:
    return SqlMonitorRepository(engine, clock=clock)


def make_part(
    batch_id: str = "b1",
    *,
    model_id: str = "model-a",
    rows: int = 5,
    dim: int = 4,
    part: int = 0,
    parts: int = 1,
    at: datetime = T0,
    seed: int = 0,
    metadata: dict[str, Any] | None = None,
) -> BatchPart:
    vectors = np.random.default_rng(seed).normal(size=(rows, dim)).astype(np.float32)
    return BatchPart(
        model_id=model_id,
        batch_id=batch_id,
        part=part,
        parts=parts,
        row_offset=0,
        timestamp=at,
        vectors=vectors,
        metadata=metadata or {},
    )


@pytest.fixture
def part_factory() -> Callable[..., BatchPart]:
    return make_part
