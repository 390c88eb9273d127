"""make_engine: which database, pool settings, SQLite pragmas, error translation."""

from __future__ import annotations

from pathlib import Path

import pytest
from drift_monitor.adapters.sql import database_url, make_engine
from drift_monitor.adapters.sql.engine import POOL_SIZE, translate_errors
from drift_monitor.config import ConfigError, Settings
from drift_monitor.domain.errors import TransientError
from sqlalchemy import exc, text


def test_embedded_default_is_sqlite_file_in_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "nested" / "data"
    settings = Settings(data_dir=data_dir)
    assert database_url(settings) == f"sqlite:///{data_dir.resolve() / 'drift-monitor.db'}"
    engine = make_engine(settings)
    try:
        assert data_dir.is_dir()  # created
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10_000
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert (data_dir / "drift-monitor.db").is_file()
    finally:
        engine.dispose()


def test_database_url_wins_over_data_dir(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'x' / 'y.db'}", data_dir=tmp_path)
    engine = make_engine(settings)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        assert (tmp_path / "x" / "y.db").is_file()
        assert not (tmp_path / "drift-monitor.db").exists()
    finally:
        engine.dispose()


def test_sqlite_transaction_spans_reads_and_writes(tmp_path: Path) -> None:
    # pysqlite alone would run the SELECT outside any transaction; our BEGIN makes the
    # rollback undo the whole block.
    engine = make_engine(Settings(data_dir=tmp_path))
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
        with pytest.raises(RuntimeError), engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))
            assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 1
            raise RuntimeError("abort")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 0
    finally:
        engine.dispose()


def test_postgres_url_gets_small_pre_pinged_pool() -> None:
    engine = make_engine(Settings(database_url="postgresql+pg8000://u:p@127.0.0.1:5/db"))
    assert engine.dialect.driver == "pg8000"
    assert engine.pool.size() == POOL_SIZE  # type: ignore[attr-defined]
    assert engine.pool._pre_ping  # type: ignore[attr-defined]
    engine.dispose()


def test_cloud_sql_connector_selected_without_connecting() -> None:
    settings = Settings(
        instance_connection_name="proj:region:inst",
        db_user="svc@proj.iam",
        db_iam_auth=True,
        db_name="drift",
        database_url="sqlite:///ignored.db",
    )
    engine = make_engine(settings)  # lazy: no credentials needed until the first query
    assert engine.dialect.name == "postgresql" and engine.dialect.driver == "pg8000"
    engine.dispose()


def test_cloud_sql_needs_credentials() -> None:
    with pytest.raises(ConfigError, match="DB_USER"):
        make_engine(Settings(instance_connection_name="p:r:i"))
    with pytest.raises(ConfigError, match="DB_PASSWORD"):
        make_engine(Settings(instance_connection_name="p:r:i", db_user="u"))


def test_translate_errors() -> None:
    with pytest.raises(TransientError, match="while testing: boom"), translate_errors("testing"):
        raise exc.OperationalError("SELECT 1", {}, Exception("boom"))
    with pytest.raises(TransientError), translate_errors("testing"):
        raise exc.InterfaceError("SELECT 1", {}, Exception("gone"))
    # a wrong statement is a bug, not a transient fault
    with pytest.raises(exc.ProgrammingError), translate_errors("testing"):
        raise exc.ProgrammingError("SELEC 1", {}, Exception("syntax"))
