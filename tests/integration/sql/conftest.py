"""A fresh PostgreSQL database per test (created from ``postgres_url``, dropped afterwards)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from drift_monitor.adapters.sql import make_engine, upgrade
from drift_monitor.config import Settings
from sqlalchemy import Engine


@pytest.fixture
def engine_factory(pg_database: str) -> Iterator[Callable[[], Engine]]:
    """Engines on the test database built the way production builds them (``make_engine``)."""
    engines: list[Engine] = []

    def make() -> Engine:
        engine = make_engine(Settings(database_url=pg_database))
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.dispose()


@pytest.fixture
def pg_engine(engine_factory: Callable[[], Engine]) -> Engine:
    engine = engine_factory()
    upgrade(engine)
    return engine
