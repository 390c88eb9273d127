"""SQL storage (PostgreSQL via pg8000 / Cloud SQL connector, SQLite for the embedded mode).

Public surface::

    engine = make_engine(settings)          # DATABASE_URL, Cloud SQL connector, or SQLite file
    upgrade(engine)                         # Alembic migrations to head, idempotent
    SqlRepository(engine)                   # batches + vectors: BatchRepository, DimensionRegistry
    SqlRepository(engine).prune(before)     # retention: delete old batches (retention.py)
    SqlMonitorRepository(engine)            # configs, baselines, drift results, alert state
"""

from drift_monitor.adapters.sql.engine import database_url, make_engine, sqlite_engine
from drift_monitor.adapters.sql.monitor import SqlMonitorRepository
from drift_monitor.adapters.sql.records import AlertState, Baseline, DriftResult, ModelRow
from drift_monitor.adapters.sql.repository import SqlRepository
from drift_monitor.adapters.sql.retention import PruneResult, prune_batches
from drift_monitor.adapters.sql.schema import current_revision, head_revision, upgrade

__all__ = [
    "AlertState",
    "Baseline",
    "DriftResult",
    "ModelRow",
    "PruneResult",
    "SqlMonitorRepository",
    "SqlRepository",
    "current_revision",
    "database_url",
    "head_revision",
    "make_engine",
    "prune_batches",
    "sqlite_engine",
    "upgrade",
]
