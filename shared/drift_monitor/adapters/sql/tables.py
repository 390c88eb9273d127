"""The SQL schema, as SQLAlchemy Core tables. ``docs/schema.md`` explains each table.

The Alembic migrations in ``drift_monitor/migrations/versions`` create exactly these tables; a
unit test compares the two (autogenerate's ``compare_metadata`` finds no difference) on SQLite
and PostgreSQL, so a change here without a migration fails the build.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
)
from sqlalchemy.types import TypeDecorator

# Stable constraint names, so migrations can refer to them and both backends agree.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

MODEL_ID_LENGTH = 128  # domain.batch.MODEL_ID_PATTERN allows 1-128 characters
BATCH_ID_LENGTH = 128  # ingest generates ids within domain.batch.BATCH_ID_PATTERN


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that always goes in and comes out as a timezone-aware UTC ``datetime``.

    PostgreSQL stores it as ``timestamptz``. SQLite has no timestamp type: SQLAlchemy writes
    ISO-like text there and drops the offset, so the value is converted to UTC first; text of
    one fixed format in one zone sorts and compares correctly. A naive ``datetime`` is refused
    instead of guessed at.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} refused: give it a timezone")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime from the database, got {value!r}")
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
AutoId = BigInteger().with_variant(Integer(), "sqlite")


def _model_id(name: str = "model_id") -> Column[str]:
    return Column(name, String(MODEL_ID_LENGTH), nullable=False)


# ---- ingest (migration 0001) -------------------------------------------------------------

models = Table(
    "models",
    metadata,
    _model_id(),
    Column("dimension", Integer, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("model_id"),
    CheckConstraint("dimension > 0", name="dimension_positive"),
)

batches = Table(
    "batches",
    metadata,
    _model_id(),
    Column("batch_id", String(BATCH_ID_LENGTH), nullable=False),
    Column("part", Integer, nullable=False),
    Column("parts", Integer, nullable=False),
    Column("row_offset", BigInteger, nullable=False),
    Column("ts", UTCDateTime(), nullable=False),
    Column("count", Integer, nullable=False),
    Column("dimension", Integer, nullable=False),
    Column("metadata", JSON, nullable=False),
    Column("received_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("model_id", "batch_id", "part"),
    ForeignKeyConstraint(["model_id"], ["models.model_id"], ondelete="CASCADE"),
    CheckConstraint("part >= 0 AND part < parts", name="part_in_range"),
    CheckConstraint("count > 0", name="count_positive"),
    # Window queries (count, sample, iterate) scan one model's parts in time order.
    Index(None, "model_id", "ts"),
)

batch_vectors = Table(
    "batch_vectors",
    metadata,
    _model_id(),
    Column("batch_id", String(BATCH_ID_LENGTH), nullable=False),
    Column("part", Integer, nullable=False),
    # count * dimension little-endian float32 values, row-major: 4 bytes per value, exact.
    Column("data", LargeBinary, nullable=False),
    PrimaryKeyConstraint("model_id", "batch_id", "part"),
    ForeignKeyConstraint(
        ["model_id", "batch_id", "part"],
        ["batches.model_id", "batches.batch_id", "batches.part"],
        ondelete="CASCADE",
    ),
)

# ---- monitoring (migration 0002) ---------------------------------------------------------

RESULT_STATUSES = ("ok", "drift", "insufficient_data", "error")
ALERT_STATES = ("triggered", "resolved")

model_configs = Table(
    "model_configs",
    metadata,
    _model_id(),
    Column("config", JSON, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("model_id"),
)

baselines = Table(
    "baselines",
    metadata,
    _model_id(),
    Column("start", UTCDateTime(), nullable=False),
    Column("end", UTCDateTime(), nullable=False),
    Column("pinned", Boolean, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("model_id"),
    CheckConstraint('"start" < "end"', name="window_ordered"),
)

drift_results = Table(
    "drift_results",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    _model_id(),
    Column("checked_at", UTCDateTime(), nullable=False),
    Column("status", String(32), nullable=False),
    Column("drift_detected", Boolean, nullable=False),
    Column("report", JSON, nullable=False),
    Column("baseline_start", UTCDateTime(), nullable=True),
    Column("baseline_end", UTCDateTime(), nullable=True),
    Column("current_start", UTCDateTime(), nullable=True),
    Column("current_end", UTCDateTime(), nullable=True),
    Column("n_baseline", BigInteger, nullable=False),
    Column("n_current", BigInteger, nullable=False),
    CheckConstraint("status IN ('ok', 'drift', 'insufficient_data', 'error')", name="status_known"),
    # latest result and history: newest first for one model
    Index(None, "model_id", "checked_at"),
)

alert_state = Table(
    "alert_state",
    metadata,
    _model_id(),
    Column("channel", String(64), nullable=False),
    Column("dedup_key", String(255), nullable=False),
    Column("state", String(16), nullable=False),
    Column("last_sent_at", UTCDateTime(), nullable=True),
    Column("updated_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("model_id", "channel"),
    CheckConstraint("state IN ('triggered', 'resolved')", name="state_known"),
)

# ---- sequential detection (migration 0003) -----------------------------------------------

detection_state = Table(
    "detection_state",
    metadata,
    _model_id(),
    # Optimistic concurrency: a run saves only if the version it read is still stored.
    Column("version", BigInteger, nullable=False),
    # The monitor's evidence, alarm and schedule (drift.sequential.MonitorState.to_document
    # plus the detection service's fields: watermark, baseline fitted, interval estimate).
    Column("state", JSON, nullable=False),
    # The fitted baseline: its fitting vectors (float32, row-major, ``fit_rows`` x dimension)
    # and the sorted novelty scores of its calibration vectors (float32).
    Column("reference", LargeBinary, nullable=False),
    Column("calibration", LargeBinary, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("model_id"),
)

# ---- detection fan-out (migration 0004) ------------------------------------------------------

# One row per (model, schedule slot) whose check a detect worker has taken on: a redelivered
# request for the same slot finds it and does not run the model again. Old slots are pruned.
detection_claims = Table(
    "detection_claims",
    metadata,
    _model_id(),
    Column("slot", UTCDateTime(), nullable=False),
    Column("claimed_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("model_id", "slot"),
    Index(None, "slot"),
)
