"""Sequential detection state on real PostgreSQL: compare-and-set, and concurrent runs."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from drift_monitor.adapters.sql import SqlMonitorRepository, SqlRepository, upgrade
from drift_monitor.config import Settings
from drift_monitor.domain.batch import BatchPart
from drift_monitor.service.detection import run_detection
from sqlalchemy import Engine

pytestmark = pytest.mark.integration

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
EngineFactory = Callable[[], Engine]


def test_state_compare_and_set(pg_engine: Engine) -> None:
    monitor = SqlMonitorRepository(pg_engine)
    assert monitor.get_detection_state("m") is None
    assert monitor.save_detection_state("m", None, {"a": 1}, b"ref", b"cal", T0)
    assert not monitor.save_detection_state("m", None, {"a": 2}, b"x", b"y", T0)  # exists
    stored = monitor.get_detection_state("m")
    assert stored is not None and stored.version == 1 and stored.state == {"a": 1}
    assert (stored.reference, stored.calibration) == (b"ref", b"cal")
    # a save without a reference keeps the stored one
    assert monitor.save_detection_state("m", 1, {"a": 3}, None, b"cal2", T0)
    assert not monitor.save_detection_state("m", 1, {"a": 4}, None, b"", T0)  # stale
    stored = monitor.get_detection_state("m")
    assert stored is not None and stored.version == 2 and stored.state == {"a": 3}
    assert (stored.reference, stored.calibration) == (b"ref", b"cal2")


def rows(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, 8)) * np.linspace(1, 0.2, 8)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_concurrent_runs_count_each_vector_once(engine_factory: EngineFactory) -> None:
    """Eight runs of the same model at once: every run answers, the state advances once per
    save, and the vectors since the watermark are scored exactly once in all."""
    engine = engine_factory()
    upgrade(engine)
    repo = SqlRepository(engine)
    repo.claim_dimension("m", 8)
    for i, (at, n) in enumerate(
        [(T0 - timedelta(days=2), 1200), (T0 - timedelta(minutes=30), 150)]
    ):
        repo.save_part(BatchPart("m", f"b{i}", 0, 1, 0, at, rows(n, i), {}))
    settings = Settings(historical_window_days=7)
    first = run_detection("m", repository=repo, monitor=SqlMonitorRepository(engine),
                          alerting=None, metrics=None, settings=settings, now=T0)  # fmt: skip
    assert first.status == "ok", first.error
    repo.save_part(BatchPart("m", "late", 0, 1, 0, T0 + timedelta(minutes=5), rows(90, 9), {}))
    later = T0 + timedelta(minutes=10)
    barrier = threading.Barrier(8)

    def run(_: int) -> str:
        monitor = SqlMonitorRepository(engine_factory())
        barrier.wait()
        outcome = run_detection("m", repository=repo, monitor=monitor, alerting=None,
                                metrics=None, settings=settings, now=later)  # fmt: skip
        return outcome.status

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(run, range(8)))
    # each run either saved first or re-read and found nothing new (or lost twice: error)
    assert set(statuses) <= {"ok", "insufficient_data", "error"}
    assert statuses.count("ok") >= 1
    stored = SqlMonitorRepository(engine).get_detection_state("m")
    assert stored is not None
    # 150 vectors at the first run, then the 90 late ones exactly once
    assert stored.state["monitor"]["total_scored"] == 150 + 90
