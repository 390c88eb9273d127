"""Functions that use the database migrate the schema on first use, once per process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from drift_monitor import bootstrap
from drift_monitor.adapters.sql import current_revision, head_revision
from drift_monitor.config import ConfigError, Settings


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[bootstrap.Container]:
    c = bootstrap.build(Settings(data_dir=tmp_path, environment="test"), embedded=True)
    bootstrap.set_container(c)
    yield c
    bootstrap.set_container(None)


def test_first_use_migrates_then_reuses(
    embedded: bootstrap.Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert current_revision(embedded.engine) is None and not embedded.ready
    calls: list[int] = []
    migrate = embedded.migrate
    monkeypatch.setattr(embedded, "migrate", lambda: (calls.append(1), migrate())[1])
    assert bootstrap.sql_container() is embedded
    assert bootstrap.sql_container() is embedded
    assert calls == [1]
    assert embedded.ready and current_revision(embedded.engine) == head_revision()


def test_failed_migration_is_retried_on_next_use(
    embedded: bootstrap.Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts: list[int] = []
    migrate = embedded.migrate

    def flaky() -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("database restarting")
        migrate()

    monkeypatch.setattr(embedded, "migrate", flaky)
    with pytest.raises(ConnectionError):
        bootstrap.sql_container()
    assert not embedded.ready
    assert bootstrap.sql_container().ready and len(attempts) == 2


def test_db_ip_type_defaults_to_private_and_is_validated() -> None:
    assert Settings.from_env({}).db_ip_type == "private"
    assert Settings.from_env({"DB_IP_TYPE": "PSC"}).db_ip_type == "psc"
    with pytest.raises(ConfigError, match="DB_IP_TYPE"):
        Settings.from_env({"DB_IP_TYPE": "vpn"})
