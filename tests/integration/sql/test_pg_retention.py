"""Batch retention on a real PostgreSQL server: chunked deletes next to concurrent ingest and a
second concurrent prune, vectors gone with their batches, baselines kept."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import sqlalchemy as sa
from drift_monitor.adapters.sql import SqlMonitorRepository, SqlRepository
from drift_monitor.adapters.sql.tables import batch_vectors, batches
from drift_monitor.domain.batch import BatchPart
from sqlalchemy import Engine, select

pytestmark = pytest.mark.integration

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
BEFORE = T0 - 30 * DAY


def part(batch_id: str, at: datetime, *, model_id: str = "m", rows: int = 3) -> BatchPart:
    vectors = np.random.default_rng(len(batch_id)).normal(size=(rows, 4)).astype(np.float32)
    return BatchPart(model_id, batch_id, 0, 1, 0, at, vectors, {})


def keys(engine: Engine, table: sa.Table) -> set[tuple[str, str]]:
    with engine.connect() as conn:
        return {
            (r.model_id, r.batch_id)
            for r in conn.execute(select(table.c.model_id, table.c.batch_id))
        }


def old_time(i: int) -> datetime:
    return BEFORE - DAY - timedelta(minutes=i)


def test_prune_deletes_vectors_and_keeps_baselines(database: Engine) -> None:
    repo = SqlRepository(database)
    monitor = SqlMonitorRepository(database)
    for i in range(25):
        repo.save_part(part(f"old-{i}", old_time(i)))
    repo.save_part(part("pinned", T0 - 200 * DAY))
    repo.save_part(part("recent", T0 - DAY))
    monitor.set_baseline("m", T0 - 201 * DAY, T0 - 199 * DAY, pinned=True, now=T0)

    report = repo.prune_report(BEFORE, batch_size=7)

    assert (report.parts, report.vectors, report.chunks, report.complete) == (25, 75, 4, True)
    expected = {("m", "pinned"), ("m", "recent")}
    assert keys(database, batches) == expected
    assert keys(database, batch_vectors) == expected, "vectors of deleted batches must go too"
    assert repo.prune(BEFORE) == 0, "idempotent"
    assert repo.prune_report(BEFORE, dry_run=True).parts == 0


def test_prune_next_to_concurrent_ingest_and_a_second_prune(database: Engine) -> None:
    """Two pruners with small chunks race two writers; nothing errors, nothing is counted twice,
    nothing recent is lost and no vector row is orphaned."""
    # a separate engine per thread, as separate function instances would have
    engines = [sa.create_engine(database.url) for _ in range(4)]
    seeder = SqlRepository(engines[0])
    n_old = 120
    for i in range(n_old):
        seeder.save_part(part(f"old-{i}", old_time(i), model_id=f"m{i % 3}"))
    errors: list[BaseException] = []
    deleted: list[int] = []
    written: list[str] = []
    start = threading.Barrier(4)
    lock = threading.Lock()

    def prune(engine: Engine) -> None:
        repo = SqlRepository(engine)
        start.wait()
        for _ in range(3):
            result = repo.prune_report(BEFORE, batch_size=5)
            with lock:
                deleted.append(result.parts)

    def ingest(engine: Engine, name: str) -> None:
        repo = SqlRepository(engine)
        start.wait()
        for i in range(40):
            batch_id = f"{name}-{i}"
            # recent traffic, plus late arrivals that are already past retention
            at = T0 - timedelta(minutes=i) if i % 4 else old_time(1000 + i)
            repo.save_part(part(batch_id, at, model_id=f"m{i % 3}"))
            with lock:
                written.append(batch_id)

    def guarded(target: Callable[..., None], *args: object) -> threading.Thread:
        def body() -> None:
            try:
                target(*args)
            except BaseException as error:
                errors.append(error)

        return threading.Thread(target=body)

    threads = [
        guarded(prune, engines[0]),
        guarded(prune, engines[1]),
        guarded(ingest, engines[2], "w1"),
        guarded(ingest, engines[3], "w2"),
    ]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors
        late_old = sum(1 for b in written if int(b.split("-")[1]) % 4 == 0)
        final = SqlRepository(database).prune(BEFORE)
        # every old part deleted exactly once, by one of the racing pruners or the final pass
        assert sum(deleted) + final == n_old + late_old
        remaining = keys(database, batches)
        recent = {b for b in written if int(b.split("-")[1]) % 4}
        assert {b for _, b in remaining} == recent
        assert keys(database, batch_vectors) == remaining
    finally:
        for engine in engines:
            engine.dispose()
