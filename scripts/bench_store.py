"""A throwaway detection store for the detection benchmarks (not part of the test suite).

Importing this module first pins BLAS to one thread (before numpy loads), so benchmark ratios
do not depend on how many threads a neighbour leaves free.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import tempfile  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from dataclasses import dataclass, replace  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from drift_monitor.adapters.sql import (  # noqa: E402
    SqlMonitorRepository,
    SqlRepository,
    make_engine,
    upgrade,
)
from drift_monitor.config import Settings  # noqa: E402


@dataclass
class BenchStore:
    settings: Settings
    engine: Any
    repo: SqlRepository
    monitor: SqlMonitorRepository


@contextmanager
def temporary_store(database_url: str | None, prefix: str) -> Iterator[BenchStore]:
    """Migrated SQLite in a temporary folder, or the schema upgraded at ``database_url``."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        settings = replace(
            Settings.from_env({"DRIFT_MONITOR_ENV": "test"}),
            data_dir=Path(tmp),
            database_url=database_url,
        )
        engine = make_engine(settings)
        upgrade(engine)
        try:
            yield BenchStore(settings, engine, SqlRepository(engine), SqlMonitorRepository(engine))
        finally:
            engine.dispose()
