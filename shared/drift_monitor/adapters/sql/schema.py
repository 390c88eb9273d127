"""Apply the Alembic migrations shipped in ``drift_monitor/migrations`` programmatically."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

from drift_monitor.adapters.sql.engine import translate_errors

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent.parent / "migrations"
# Any fixed 64-bit number: the PostgreSQL advisory lock that serialises concurrent upgrades.
MIGRATION_LOCK_KEY = 0x45444D_6D6967  # "EDM" "mig"


def alembic_config() -> Config:
    """An Alembic configuration pointing at the packaged migrations (no ``alembic.ini``)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    """The newest revision the package ships."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None before the first migration."""
    with translate_errors("reading the schema revision"), engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Migrate the database to ``revision`` (default: the newest); return the revision reached.

    Idempotent: at the target revision it does nothing. Runs in one transaction (PostgreSQL
    and SQLite both have transactional DDL), so a failed migration leaves the schema as it was.
    Concurrent callers on PostgreSQL (several cold-starting function instances, a deploy step)
    are serialised by a transaction-scoped advisory lock: the first migrates, the others wait,
    then find the schema at the target and do nothing.
    """
    config = alembic_config()
    with translate_errors("migrating the schema"), engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
    return current_revision(engine)
