"""Migrations: upgrade from empty, idempotent, match the tables module, ship in the package."""

from __future__ import annotations

import tomllib
from pathlib import Path, PurePosixPath

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from drift_monitor.adapters.sql import current_revision, head_revision, sqlite_engine, upgrade
from drift_monitor.adapters.sql.schema import MIGRATIONS_DIR, alembic_config
from drift_monitor.adapters.sql.tables import metadata
from sqlalchemy import inspect

EXPECTED_TABLES = {
    "alembic_version",
    "models",
    "batches",
    "batch_vectors",
    "model_configs",
    "baselines",
    "drift_results",
    "alert_state",
    "detection_state",
    "detection_claims",
}


def test_upgrade_from_empty_and_again(tmp_path: Path) -> None:
    engine = sqlite_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    assert current_revision(engine) is None
    assert upgrade(engine) == head_revision() == "0004"
    assert set(inspect(engine).get_table_names()) == EXPECTED_TABLES
    assert upgrade(engine) == "0004"  # second run: nothing to do, no error
    assert set(inspect(engine).get_table_names()) == EXPECTED_TABLES


def test_step_by_step_and_down_again(tmp_path: Path) -> None:
    engine = sqlite_engine(f"sqlite:///{tmp_path / 'steps.db'}")
    assert upgrade(engine, "0001") == "0001"
    assert "drift_results" not in inspect(engine).get_table_names()
    assert upgrade(engine) == "0004"
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "base")
    assert current_revision(engine) is None
    assert set(inspect(engine).get_table_names()) == {"alembic_version"}
    assert upgrade(engine) == "0004"


def test_tables_module_matches_migrations(tmp_path: Path) -> None:
    engine = sqlite_engine(f"sqlite:///{tmp_path / 'check.db'}")
    upgrade(engine)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []


def test_compare_detects_drift(tmp_path: Path) -> None:
    # the check above must be able to fail: a table the migrations lack is reported
    from sqlalchemy import Column, Integer, MetaData, Table

    engine = sqlite_engine(f"sqlite:///{tmp_path / 'drift.db'}")
    upgrade(engine)
    extra = MetaData()
    for table in metadata.tables.values():
        table.to_metadata(extra)
    Table("not_migrated", extra, Column("id", Integer, primary_key=True))
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), extra)
    assert [d[0] for d in diffs] == ["add_table"]


def test_migration_files_are_package_data(repo_root: Path) -> None:
    pyproject = tomllib.loads((repo_root / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["drift_monitor"]
    package_dir = MIGRATIONS_DIR.parent
    needed = [MIGRATIONS_DIR / "env.py", *sorted((MIGRATIONS_DIR / "versions").glob("*.py"))]
    assert len(needed) >= 3
    for path in needed:
        relative = PurePosixPath(path.relative_to(package_dir).as_posix())
        # setuptools globs: '*' stays within one path segment, as in PurePath.match
        assert any(
            relative.match(g) and len(relative.parts) == len(PurePosixPath(g).parts) for g in globs
        ), f"{relative} is not covered by package-data {globs}"
