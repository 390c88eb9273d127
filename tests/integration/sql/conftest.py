"""A fresh PostgreSQL database per test (created from ``postgres_url``, dropped afterwards)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from drift_monitor.adapters.sql import make_engine, upgrade
from drift_monitor.config import Settings
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool


@pytest.fixture
def pg_database(postgres_url: str) -> Iterator[str]:
    """URL of an empty database with a unique name, so parallel runs never collide."""
    base = make_url(postgres_url)
    name = f"sqltest_{uuid.uuid4().hex[:16]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


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
