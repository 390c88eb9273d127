"""Detection on the running statistics: the sketch window, whole-bucket scoring, SQL fallback."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from drift_monitor import bootstrap
from drift_monitor.adapters.memory_stats import MemoryStatsStore
from drift_monitor.config import ConfigError, Settings
from drift_monitor.domain.batch import BatchPart
from drift_monitor.service import window_source
from drift_monitor.service.detection import DetectionOutcome, run_detection

H = 3600
NOW = datetime(2024, 6, 1, 12, 30, tzinfo=UTC)  # half-way through the 12:00 bucket


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now.timestamp()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def stats(clock: Clock) -> MemoryStatsStore:
    return MemoryStatsStore(bucket_seconds=H, retention_seconds=7 * 86_400, clock=clock)


def add(batches: Any, stats: Any, ts: datetime, n: int, *, seed: int, name: str,
        shift: float = 0.0, fold: bool = True) -> None:  # fmt: skip
    data = np.random.default_rng(seed).normal(shift, 1.0, size=(n, 4)).astype(np.float32)
    batches.add("m", ts, data)
    if fold:
        part = BatchPart("m", name, 0, 1, 0, ts, data, {})
        assert stats.fold(part)


def seed_model(batches: Any, stats: Any) -> None:
    add(batches, stats, NOW - timedelta(days=2), 600, seed=1, name="base")
    # 10:00, 11:00 and 12:00 buckets (the last one still open at NOW)
    for i, ts in enumerate(NOW - timedelta(minutes=m) for m in (140, 80, 20)):
        add(batches, stats, ts, 300, seed=10 + i, name=f"cur{i}")


def detect(batches: Any, monitor: Any, engine: Any, settings: Settings, stats: Any,
           now: datetime = NOW) -> DetectionOutcome:  # fmt: skip
    return run_detection(
        "m",
        repository=batches,
        monitor=monitor,
        stats=stats,
        alerting=None,
        metrics=None,
        settings=settings,
        now=now,
        compare=engine,
    )


def test_sketch_window_is_the_merged_buckets_sample(batches, monitor, engine, settings, stats):
    seed_model(batches, stats)
    outcome = detect(batches, monitor, engine, settings, stats)
    doc = outcome.to_dict()
    assert doc["source"] == "sketch" and doc["source_reason"] is None
    # [11:30, 12:30) overlaps the 11:00 and 12:00 buckets: all 600 vectors, a 128-row sample
    assert doc["windows"]["current"]["start"] == "2024-06-01T11:00:00Z"
    assert outcome.n_current == 600
    assert engine.calls[-1]["n_cur"] == 128
    # the first run scores from the window's start (11:30) in whole buckets: no bucket started
    # and closed since; the watermark passes the rest of the 11:00 bucket (skipped)
    assert doc["monitor"]["scored"] == 0
    assert doc["monitor"]["until"] == "2024-06-01T12:00:00Z"


def test_buckets_are_scored_once_after_they_close(batches, monitor, engine, settings, stats,
                                                  clock):  # fmt: skip
    seed_model(batches, stats)
    detect(batches, monitor, engine, settings, stats)
    later = NOW + timedelta(minutes=20)  # 12:50: the 12:00 bucket is still open
    clock.now = later
    assert detect(batches, monitor, engine, settings, stats, later).monitor["scored"] == 0
    after = NOW + timedelta(minutes=40)  # 13:10: the 12:00 bucket closed
    clock.now = after
    outcome = detect(batches, monitor, engine, settings, stats, after)
    assert outcome.source == "sketch"
    assert outcome.monitor["scored"] == 128  # the bucket's own sample (300 vectors in it)
    assert outcome.monitor["until"] == "2024-06-01T13:00:00Z"
    # a late part folded into the scored bucket is never scored (missed, not counted twice)
    add(batches, stats, NOW, 50, seed=99, name="late")
    again = NOW + timedelta(minutes=45)
    clock.now = again
    outcome = detect(batches, monitor, engine, settings, stats, again)
    assert outcome.source == "sketch" and outcome.monitor["scored"] == 0


def test_flushed_statistics_fall_back_to_sql_and_say_so(batches, monitor, engine, settings,
                                                        stats):  # fmt: skip
    seed_model(batches, stats)
    stats.clear("m")
    outcome = detect(batches, monitor, engine, settings, stats)
    doc = outcome.to_dict()
    assert doc["source"] == "sql"
    assert "hold 0 of the 600 vectors" in doc["source_reason"]
    assert doc["windows"]["current"]["start"] == "2024-06-01T11:30:00Z"
    assert outcome.n_current == 300  # the exact window
    assert doc["monitor"]["scored"] == 300 and doc["monitor"]["until"] == "2024-06-01T12:30:00Z"


def test_partly_lost_bucket_falls_back(batches, monitor, engine, settings, stats):
    seed_model(batches, stats)
    add(batches, stats, NOW - timedelta(minutes=5), 100, seed=5, name="lost", fold=False)
    outcome = detect(batches, monitor, engine, settings, stats)
    assert outcome.source == "sql" and "hold 600 of the 700" in (outcome.source_reason or "")


def test_sketch_mode_reads_what_the_statistics_hold(batches, monitor, engine, settings, stats):
    seed_model(batches, stats)
    stats.clear("m")
    outcome = detect(batches, monitor, engine, replace(settings, detection_source="sketch"), stats)
    assert outcome.source == "sketch" and outcome.n_current == 0
    assert outcome.status == "insufficient_data"


def test_sql_mode_and_short_windows_read_sql(batches, monitor, engine, settings, stats):
    seed_model(batches, stats)
    outcome = detect(batches, monitor, engine, replace(settings, detection_source="sql"), stats)
    assert (outcome.source, outcome.source_reason) == ("sql", "DETECTION_SOURCE=sql")
    monitor.configs["m"] = {"current_window_minutes": 30}
    outcome = detect(batches, monitor, engine, settings, stats, NOW + timedelta(minutes=5))
    assert outcome.source == "sql"
    assert "shorter than a statistics bucket" in (outcome.source_reason or "")


def test_no_store_reads_sql(batches, monitor, engine, settings):
    batches.add("m", NOW, np.zeros((3, 4), np.float32))
    outcome = detect(batches, monitor, engine, settings, None)
    assert (outcome.source, outcome.source_reason) == ("sql", "no running-statistics store")


def test_a_store_failure_reads_sql(batches, monitor, engine, settings, stats):
    seed_model(batches, stats)

    class Broken:
        policy = stats.policy

        def read_buckets(self, *args: Any) -> Any:
            raise ConnectionError("redis is down")

    outcome = detect(batches, monitor, engine, settings, Broken())
    assert outcome.source == "sql"
    assert outcome.source_reason == "running statistics unavailable: ConnectionError: redis is down"
    assert outcome.status in ("ok", "drift")


def test_sql_then_sketch_never_scores_a_vector_twice(batches, monitor, engine, settings, stats,
                                                    clock):  # fmt: skip
    seed_model(batches, stats)
    sql = replace(settings, detection_source="sql")
    first = detect(batches, monitor, engine, sql, stats)
    assert first.monitor["until"] == "2024-06-01T12:30:00Z"
    after = NOW + timedelta(hours=1)  # 13:30: the 12:00 bucket closed, scored up to 12:30 by SQL
    clock.now = after
    outcome = detect(batches, monitor, engine, settings, stats, after)
    assert outcome.source == "sketch"
    assert outcome.monitor["scored"] == 0  # its remainder is missed, not scored again
    assert outcome.monitor["until"] == "2024-06-01T13:00:00Z"


def test_arrived_rows_are_the_smallest_priorities_when_capped(stats):
    ts = datetime(2024, 6, 1, 9, 0, tzinfo=UTC)
    rng = np.random.default_rng(0)
    for h in range(3):
        part = BatchPart("m", f"b{h}", 0, 1, 0, ts + timedelta(hours=h),
                         rng.normal(size=(200, 4)).astype(np.float32), {})  # fmt: skip
        stats.fold(part)
    chosen = stats.read_buckets("m", ts, ts + timedelta(hours=3))
    view = window_source.SketchWindow(ts, [], chosen, ts, max_rows=300)
    rows = view.arrived()
    keys = np.sort(np.concatenate([s.reservoir_keys for _, s in chosen]))[:300]
    expected = {
        k: r.tobytes()
        for _, s in chosen
        for k, r in zip(s.reservoir_keys, s.reservoir, strict=True)
    }
    assert sorted(r.tobytes() for r in rows) == sorted(expected[k] for k in keys)


def test_detection_source_setting_is_validated():
    assert Settings.from_env({}).detection_source == "auto"
    assert Settings.from_env({"DETECTION_SOURCE": "SQL"}).detection_source == "sql"
    with pytest.raises(ConfigError, match="DETECTION_SOURCE"):
        Settings.from_env({"DETECTION_SOURCE": "redis"})


def test_reservoir_size_setting_reaches_the_store_and_the_window(
    tmp_path, batches, monitor, engine, settings
):
    configured = Settings.from_env(
        {"STATS_RESERVOIR_SIZE": "512", "DRIFT_MONITOR_DATA_DIR": str(tmp_path)}
    )
    container = bootstrap.build(configured, embedded=True)
    try:
        assert container.stats.policy.reservoir_size == 512
    finally:
        container.engine.dispose()
    with pytest.raises(ConfigError, match="STATS_RESERVOIR_SIZE"):
        Settings.from_env({"STATS_RESERVOIR_SIZE": "8"})
    # a larger sample per bucket: the window's 600 vectors are tested, the closed bucket's
    # 300 scored
    clock = Clock()
    big = MemoryStatsStore(
        bucket_seconds=H, retention_seconds=7 * 86_400, reservoir_size=1024, clock=clock
    )
    seed_model(batches, big)
    detect(batches, monitor, engine, settings, big)
    assert engine.calls[-1]["n_cur"] == 600
    clock.now = NOW + timedelta(minutes=40)
    outcome = detect(batches, monitor, engine, settings, big, clock.now)
    assert outcome.monitor["scored"] == 300
