"""Batch retention on SQLite: what prune deletes, what it keeps, chunks, budget, idempotency."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from conftest import T0, make_part
from drift_monitor.adapters.sql import SqlMonitorRepository, SqlRepository, prune_batches
from drift_monitor.adapters.sql.tables import batch_vectors, batches
from drift_monitor.config import Settings
from drift_monitor.service.retention import prune_expired, retention_cutoff
from sqlalchemy import Engine, event, select

DAY = timedelta(days=1)


def stored(engine: Engine) -> tuple[set[tuple[str, str, int]], set[tuple[str, str, int]]]:
    """Keys in ``batches`` and in ``batch_vectors``."""
    with engine.connect() as conn:
        parts = {
            (r.model_id, r.batch_id, int(r.part))
            for r in conn.execute(select(batches.c.model_id, batches.c.batch_id, batches.c.part))
        }
        vectors = {
            (r.model_id, r.batch_id, int(r.part))
            for r in conn.execute(
                select(batch_vectors.c.model_id, batch_vectors.c.batch_id, batch_vectors.c.part)
            )
        }
    return parts, vectors


def save_days(
    repo: SqlRepository, days: range, *, model_id: str = "model-a", rows: int = 3
) -> None:
    """One part per day at ``T0 - day`` (batch id ``d<day>``)."""
    for day in days:
        repo.save_part(make_part(f"d{day}", model_id=model_id, rows=rows, at=T0 - day * DAY))


def test_old_parts_and_their_vectors_are_deleted_recent_kept(
    repo: SqlRepository, engine: Engine
) -> None:
    save_days(repo, range(0, 10), rows=3)
    # a batch of two parts, both old
    repo.save_part(make_part("split", rows=2, part=0, parts=2, at=T0 - 20 * DAY))
    repo.save_part(make_part("split", rows=4, part=1, parts=2, at=T0 - 20 * DAY))
    before = T0 - 5 * DAY

    report = repo.prune_report(before)

    assert (report.parts, report.vectors, report.models) == (4 + 2, 4 * 3 + 2 + 4, 1)
    assert report.complete and not report.dry_run
    parts, vectors = stored(engine)
    # ts < before goes, ts == before stays (the cut-off is exclusive)
    assert parts == {("model-a", f"d{day}", 0) for day in range(0, 6)}
    assert vectors == parts
    assert repo.count_vectors("model-a") == 6 * 3
    assert repo.model_dimension("model-a") == 4, "the model itself is kept"


def test_prune_is_idempotent(repo: SqlRepository) -> None:
    save_days(repo, range(0, 8))
    before = T0 - 3 * DAY
    assert repo.prune(before) == 4
    assert repo.prune(before) == 0
    assert repo.prune_report(before).vectors == 0
    assert repo.count_vectors("model-a") == 4 * 3


def test_pinned_baseline_is_kept_whatever_its_age(
    repo: SqlRepository, monitor: SqlMonitorRepository, engine: Engine
) -> None:
    save_days(repo, range(0, 100, 10))  # days 0, 10, ..., 90
    save_days(repo, range(0, 100, 10), model_id="model-b")
    # model-a pins [T0-75d, T0-45d): days 50, 60, 70 are inside; model-b has no baseline
    monitor.set_baseline("model-a", T0 - 75 * DAY, T0 - 45 * DAY, pinned=True, now=T0)

    deleted = repo.prune(T0 - 15 * DAY)

    parts, _ = stored(engine)
    kept_a = {b for m, b, _ in parts if m == "model-a"}
    kept_b = {b for m, b, _ in parts if m == "model-b"}
    assert kept_a == {"d0", "d10", "d50", "d60", "d70"}
    assert kept_b == {"d0", "d10"}, "one model's baseline protects nothing of another's"
    assert deleted == (8 - 3) + 8  # days 20..90 of each model, less model-a's pinned three
    # unpinning and moving the baseline releases the old range at the next prune
    monitor.set_baseline("model-a", T0 - 2 * DAY, T0 - DAY, pinned=True, now=T0)
    assert repo.prune(T0 - 15 * DAY) == 3
    assert {b for m, b, _ in stored(engine)[0] if m == "model-a"} == {"d0", "d10"}


def test_the_stored_rolling_baseline_window_is_kept(
    repo: SqlRepository, monitor: SqlMonitorRepository, engine: Engine
) -> None:
    # A rolling baseline frozen during a drift incident can fall behind the retention period.
    save_days(repo, range(0, 60, 10))
    monitor.set_baseline("model-a", T0 - 45 * DAY, T0 - 35 * DAY, pinned=False, now=T0)
    repo.prune(T0 - 15 * DAY)
    assert {b for _, b, _ in stored(engine)[0]} == {"d0", "d10", "d40"}


def test_boundaries_of_the_baseline_window(
    repo: SqlRepository, monitor: SqlMonitorRepository, engine: Engine
) -> None:
    start, end = T0 - 30 * DAY, T0 - 20 * DAY
    for name, at in (
        ("before-start", start - timedelta(microseconds=1)),
        ("at-start", start),
        ("before-end", end - timedelta(microseconds=1)),
        ("at-end", end),
    ):
        repo.save_part(make_part(name, at=at))
    monitor.set_baseline("model-a", start, end, pinned=True, now=T0)
    assert repo.prune(T0) == 2
    assert {b for _, b, _ in stored(engine)[0]} == {"at-start", "before-end"}


def test_chunks_bound_each_transaction(repo: SqlRepository, engine: Engine) -> None:
    save_days(repo, range(1, 12))  # 11 old parts
    statements: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def record(_c: object, _cur: object, statement: str, *_: object) -> None:
        if statement.lstrip().upper().startswith("DELETE FROM BATCHES WHERE BATCHES.MODEL_ID"):
            statements.append(statement)

    try:
        report = repo.prune_report(T0, batch_size=4)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert (report.parts, report.chunks) == (11, 3)  # 4 + 4 + 3
    assert len(statements) == 3
    assert stored(engine) == (set(), set())


def test_time_budget_stops_between_chunks_and_the_next_run_continues(
    repo: SqlRepository, engine: Engine
) -> None:
    save_days(repo, range(1, 11))  # 10 old parts
    # The fake clock advances one second per reading: one at the start, one before each chunk.
    ticks = iter(range(1000))

    first = prune_batches(
        engine, T0, batch_size=3, time_budget_seconds=2.5, monotonic=lambda: float(next(ticks))
    )

    assert (first.parts, first.chunks, first.complete) == (6, 2, False)
    assert len(stored(engine)[0]) == 4
    rest = repo.prune_report(T0, batch_size=3, time_budget_seconds=60)
    assert (rest.parts, rest.chunks, rest.complete) == (4, 2, True)
    assert stored(engine) == (set(), set())


def test_dry_run_counts_without_deleting(
    repo: SqlRepository, monitor: SqlMonitorRepository, engine: Engine
) -> None:
    save_days(repo, range(0, 10), rows=2)
    save_days(repo, range(0, 10), model_id="model-b", rows=5)
    monitor.set_baseline("model-b", T0 - 9 * DAY, T0 - 7 * DAY, pinned=True, now=T0)
    before = T0 - 4 * DAY
    snapshot = stored(engine)

    dry = repo.prune_report(before, dry_run=True)

    assert stored(engine) == snapshot
    assert dry.dry_run and dry.chunks == 0
    real = repo.prune_report(before)
    assert (dry.parts, dry.vectors, dry.models) == (real.parts, real.vectors, real.models)
    assert (real.parts, real.vectors, real.models) == (5 + 3, 5 * 2 + 3 * 5, 2)


def test_bad_arguments_are_refused(repo: SqlRepository) -> None:
    with pytest.raises(ValueError, match="naive"):
        repo.prune(datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="batch_size"):
        repo.prune(T0, batch_size=0)


def test_empty_database_prunes_nothing(repo: SqlRepository) -> None:
    report = repo.prune_report(T0)
    assert (report.parts, report.vectors, report.models, report.chunks) == (0, 0, 0, 0)
    assert report.complete


# ---- the service: cut-off from BATCH_RETENTION_DAYS -------------------------------------


def test_cutoff_is_now_minus_retention_and_zero_disables() -> None:
    assert retention_cutoff(Settings(batch_retention_days=30), T0) == T0 - 30 * DAY
    assert retention_cutoff(Settings(batch_retention_days=0), T0) is None


def test_prune_expired_uses_the_retention_period(repo: SqlRepository, engine: Engine) -> None:
    save_days(repo, range(0, 40, 5))  # days 0, 5, ..., 35
    result = prune_expired(repo, Settings(batch_retention_days=20), T0)
    assert result is not None and result.before == T0 - 20 * DAY
    assert {b for _, b, _ in stored(engine)[0]} == {"d0", "d5", "d10", "d15", "d20"}


def test_retention_zero_deletes_nothing(repo: SqlRepository, engine: Engine) -> None:
    save_days(repo, range(0, 400, 50))
    snapshot = stored(engine)
    assert prune_expired(repo, Settings(batch_retention_days=0), T0) is None
    assert stored(engine) == snapshot


def test_prune_expired_logs_the_counts(
    repo: SqlRepository, caplog: pytest.LogCaptureFixture
) -> None:
    save_days(repo, range(0, 40, 10))
    with caplog.at_level("INFO", logger="drift_monitor.service.retention"):
        prune_expired(repo, Settings(batch_retention_days=15), T0)
    (record,) = [r for r in caplog.records if r.name == "drift_monitor.service.retention"]
    fields = record.fields  # type: ignore[attr-defined]
    assert fields["parts"] == 2 and fields["vectors"] == 2 * 3 and fields["retention_days"] == 15
    assert fields["before"] == "2025-02-14T12:00:00Z"
