"""Shared fixtures: where the real services are, and where the repository and its data live.

``scripts/test`` starts the services (``scripts/services.py``) and exports their addresses; the
fixtures below read them. Without them a test that needs a service is skipped, unless
``DRIFT_MONITOR_REQUIRE_SERVICES=1`` (set by ``scripts/test`` and CI), where a missing
service is a failure: a run that silently skipped its integration tests must not look green.

Area-specific fixtures belong in the conftest.py of that area's test folder.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa

# Google auth libraries look for the GCE metadata server when no credentials are configured;
# point them at a closed loopback port so a test can never hang on (or leak to) the network.
os.environ["NO_GCE_CHECK"] = "true"
os.environ["GCE_METADATA_HOST"] = "127.0.0.1:9"
os.environ["GCE_METADATA_IP"] = "127.0.0.1:9"
os.environ["GOOGLE_CLOUD_PROJECT"] = "test-project"

REPO_ROOT = Path(__file__).resolve().parent.parent


def services_required() -> bool:
    return os.environ.get("DRIFT_MONITOR_REQUIRE_SERVICES", "").strip().lower() in (
        "1",
        "true",
        "yes",
    )


def service_env(name: str, what: str, service: str) -> str:
    """Return the environment variable ``name`` or skip (fail when services are required)."""
    value = os.environ.get(name, "").strip()
    if value:
        return value
    # scripts/services.py says why a service it was asked for is absent (not installed).
    missing = json.loads(os.environ.get("DRIFT_SERVICES_MISSING", "") or "{}")
    if service in missing:
        message = f"{what} is not available: {missing[service]}"
    else:
        message = (
            f"{what} is not available: {name} is unset. Run the tests through ./scripts/test, "
            "or start the services with `python scripts/services.py up --env-file F` and "
            "export the variables in F."
        )
    if services_required():
        pytest.fail(
            f"{message} (DRIFT_MONITOR_REQUIRE_SERVICES=1: failing instead of skipping)",
            pytrace=False,
        )
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """SQLAlchemy URL of a throwaway PostgreSQL database (``postgresql+pg8000://...``)."""
    return service_env("TEST_DATABASE_URL", "PostgreSQL", "pg")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """``redis://127.0.0.1:PORT/0`` of a throwaway Redis server."""
    return service_env("TEST_REDIS_URL", "Redis", "redis")


@pytest.fixture(scope="session")
def pubsub_emulator_host() -> str:
    """``127.0.0.1:PORT`` of the Pub/Sub emulator; also left in ``PUBSUB_EMULATOR_HOST``."""
    return service_env("PUBSUB_EMULATOR_HOST", "The Pub/Sub emulator", "pubsub")


@pytest.fixture(scope="session")
def pushgateway_url() -> str:
    """``http://127.0.0.1:PORT`` of a Prometheus Pushgateway."""
    return service_env("TEST_PUSHGATEWAY_URL", "The Prometheus Pushgateway", "pushgateway")


@pytest.fixture(scope="session")
def gcs_emulator_host() -> str:
    """``http://127.0.0.1:PORT`` of gcp-storage-emulator; also in ``STORAGE_EMULATOR_HOST``."""
    return service_env("STORAGE_EMULATOR_HOST", "The Cloud Storage emulator", "gcs")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The team's real embedding files (``REPO/../shared/data``); skip when absent."""
    path = REPO_ROOT.parent / "shared" / "data"
    if not path.is_dir():
        pytest.skip(f"shared embedding data not found at {path} (expected REPO/../shared/data)")
    return path


# --- per-test isolation on the shared services -----------------------------------------------


@pytest.fixture
def pg_database(postgres_url: str) -> Iterator[str]:
    """URL of an empty database with a unique name (dropped afterwards), so runs never collide."""
    base = sa.make_url(postgres_url)
    name = f"test_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture
def database(pg_database: str) -> Iterator[sa.Engine]:
    """An engine on a fresh database with the schema migrated."""
    from drift_monitor.adapters.sql import upgrade

    engine = sa.create_engine(pg_database)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def key_prefix(redis_client: redis.Redis) -> Iterator[str]:
    """A Redis key prefix no other test uses; its keys are deleted afterwards."""
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    yield prefix
    keys = list(redis_client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        redis_client.delete(*keys)
