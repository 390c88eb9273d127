"""Alembic environment for the monitor's schema.

Run programmatically by :func:`drift_monitor.adapters.sql.upgrade` (``drift-monitor migrate``),
which passes an open connection in ``config.attributes["connection"]``; no ``alembic.ini`` is
needed at run time. Without one (the ``alembic`` command line, e.g. to autogenerate a new
revision) the database comes from the environment, exactly as the functions connect.
"""

from __future__ import annotations

from alembic import context
from drift_monitor.adapters.sql.tables import metadata
from sqlalchemy import Connection

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things in place; batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from drift_monitor.adapters.sql.engine import make_engine
    from drift_monitor.config import Settings

    engine = make_engine(Settings.from_env())
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run drift-monitor migrate")
run_migrations_online()
