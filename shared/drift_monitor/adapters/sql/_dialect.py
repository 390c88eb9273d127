"""The few statements that differ between PostgreSQL and SQLite, and JSON clean-up."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite

SUPPORTED_DIALECTS = ("postgresql", "sqlite")


def insert(conn: Connection, table: Table) -> postgresql.Insert | sqlite.Insert:
    """An ``INSERT`` that supports ``on_conflict_do_nothing`` / ``on_conflict_do_update``.

    PostgreSQL renders ``INSERT ... ON CONFLICT``, SQLite ``INSERT ... ON CONFLICT`` (the
    upsert clause, SQLite >= 3.24); both make insert-if-absent a single atomic statement.
    """
    name = conn.dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(
        f"database dialect {name!r} is not supported (use {' or '.join(SUPPORTED_DIALECTS)})"
    )


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types: numpy scalars and arrays converted, NaN/inf -> None.

    PostgreSQL's ``json`` type rejects the ``NaN`` token Python's encoder writes, and a drift
    report legitimately holds undefined p-values; ``null`` is the portable spelling.
    """
    return orjson.loads(
        orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
    )
