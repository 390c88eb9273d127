"""SqlRepository and SqlMonitorRepository on a real PostgreSQL server."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from drift_monitor.adapters.sql import (
    SqlMonitorRepository,
    SqlRepository,
    current_revision,
    head_revision,
    make_engine,
    sqlite_engine,
    upgrade,
)
from drift_monitor.adapters.sql.tables import batch_vectors, batches, metadata, models
from drift_monitor.config import Settings
from drift_monitor.domain.batch import BatchPart
from drift_monitor.domain.errors import TransientError, ValidationError
from sqlalchemy import Engine, func, inspect, select, text

pytestmark = pytest.mark.integration

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
EngineFactory = Callable[[], Engine]


def part(
    batch_id: str,
    *,
    model_id: str = "m",
    rows: int = 5,
    dim: int = 4,
    at: datetime = T0,
    seed: int = 0,
    index: int = 0,
    parts: int = 1,
) -> BatchPart:
    vectors = np.random.default_rng(seed).normal(size=(rows, dim)).astype(np.float32)
    return BatchPart(model_id, batch_id, index, parts, 0, at, vectors, {"seed": seed})


def counts(engine: Engine) -> tuple[int, ...]:
    with engine.connect() as conn:
        return tuple(
            int(conn.execute(select(func.count()).select_from(t)).scalar_one())
            for t in (models, batches, batch_vectors)
        )


def run_threads(target: Callable[[int], None], n: int) -> list[BaseException]:
    errors: list[BaseException] = []
    barrier = threading.Barrier(n)

    def wrapped(i: int) -> None:
        barrier.wait()
        try:
            target(i)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=wrapped, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_migrations_idempotent_and_match_tables(pg_engine: Engine) -> None:
    assert current_revision(pg_engine) == "0004"
    assert upgrade(pg_engine) == "0004"
    with pg_engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), metadata)
        storage = conn.execute(
            text(
                "SELECT attstorage FROM pg_attribute "
                "WHERE attrelid = 'batch_vectors'::regclass AND attname = 'data'"
            )
        ).scalar_one()
    assert diffs == []
    assert storage == "e"  # EXTERNAL: uncompressed, sliceable by substr
    columns = {c["name"]: c for c in inspect(pg_engine).get_columns("batches")}
    assert "TIMESTAMP" in str(columns["ts"]["type"]) and columns["ts"]["type"].timezone


def test_round_trip_bit_exact_and_utc(pg_engine: Engine) -> None:
    repo = SqlRepository(pg_engine)
    vectors = np.array([[0.1, -0.0, 1e-45, 3.4e38], [np.pi, -np.e, 1 / 3, 7]], dtype=np.float32)
    tz = timezone(timedelta(hours=-3))
    original = BatchPart("team/model", "b1", 0, 1, 0, T0.astimezone(tz), vectors, {"k": "v"})
    assert repo.save_part(original)
    (got,) = repo.iter_parts("team/model")
    assert got.vectors.tobytes() == vectors.tobytes()
    assert got.timestamp == T0 and got.timestamp.tzinfo == UTC
    assert got.metadata == {"k": "v"}
    with pg_engine.connect() as conn:
        data = conn.execute(select(batch_vectors.c.data)).scalar_one()
    assert data == vectors.astype("<f4").tobytes()
    assert repo.list_models()[0].last_batch_at == T0


def test_duplicate_and_mismatch_write_nothing(pg_engine: Engine) -> None:
    repo = SqlRepository(pg_engine)
    assert repo.save_part(part("b1", seed=1))
    assert not repo.save_part(part("b1", seed=2))
    assert counts(pg_engine) == (1, 1, 1)
    with pytest.raises(ValidationError) as caught:
        repo.save_part(part("b2", dim=7))
    assert (caught.value.field, caught.value.status) == ("embeddings", 422)
    assert counts(pg_engine) == (1, 1, 1)
    (stored,) = repo.iter_parts("m")
    assert stored.metadata == {"seed": 1}


def test_concurrent_redelivery_one_row_each(
    pg_engine: Engine, engine_factory: EngineFactory
) -> None:
    # six workers, each with its own engine (like separate function instances), all saving
    # the same 15 parts at the same moment
    parts = [part(f"b{i}", rows=50, dim=32, seed=i) for i in range(15)]
    repos = [SqlRepository(engine_factory()) for _ in range(6)]
    outcomes: list[bool] = []

    def worker(i: int) -> None:
        for p in parts:
            outcomes.append(repos[i].save_part(p))

    assert run_threads(worker, 6) == []
    assert outcomes.count(True) == 15 and outcomes.count(False) == 75
    assert counts(pg_engine) == (1, 15, 15)
    stored = {p.batch_id: p.vectors.tobytes() for p in SqlRepository(pg_engine).iter_parts("m")}
    assert stored == {p.batch_id: p.vectors.tobytes() for p in parts}


def test_concurrent_first_claims_agree(pg_engine: Engine, engine_factory: EngineFactory) -> None:
    repos = [SqlRepository(engine_factory()) for _ in range(6)]
    answers: list[int] = []

    def claim(i: int) -> None:
        answers.append(repos[i].claim_dimension("new-model", 100 + i))

    assert run_threads(claim, 6) == []
    assert len(set(answers)) == 1
    assert SqlRepository(pg_engine).model_dimension("new-model") == answers[0]


def test_sampling_on_postgres(pg_engine: Engine, tmp_path: Path) -> None:
    # Big parts (TOASTed out of line) and small ones; row r holds r in column 0.
    sizes = [3000, 1, 7, 2500, 40, 1, 1, 900]
    dim = 64
    lite = sqlite_engine(f"sqlite:///{tmp_path / 'same.db'}")
    upgrade(lite)
    pg, sq = SqlRepository(pg_engine), SqlRepository(lite)
    offset = 0
    for i, size in enumerate(sizes):
        vectors = np.random.default_rng(i).normal(size=(size, dim)).astype(np.float32)
        vectors[:, 0] = np.arange(offset, offset + size)
        p = BatchPart("m", f"b{i}", 0, 1, 0, T0 + timedelta(minutes=i), vectors)
        assert pg.save_part(p) and sq.save_part(p)
        offset += size
    n, m = offset, 250
    everything = np.concatenate([p.vectors for p in pg.iter_parts("m")])
    sample = pg.sample_vectors("m", None, None, m, seed=42)
    assert sample.shape == (m, dim) and sample.dtype == np.float32
    rows = sample[:, 0].astype(int)
    for j, r in enumerate(rows):
        assert (j * n) // m <= r <= ((j + 1) * n - 1) // m
    assert sample.tobytes() == everything[rows].tobytes()  # exact rows, cut by substr
    # the selection is computed in SQL with the same integer arithmetic on both backends
    assert sq.sample_vectors("m", None, None, m, seed=42).tobytes() == sample.tobytes()
    # window: parts 3..5 only
    window = pg.sample_vectors("m", T0 + timedelta(minutes=3), T0 + timedelta(minutes=6), 30, 1)
    lo = sum(sizes[:3])
    assert window.shape == (30, dim)
    assert ((window[:, 0] >= lo) & (window[:, 0] < lo + 2500 + 40 + 1)).all()
    assert pg.count_vectors("m", T0 + timedelta(minutes=3), T0 + timedelta(minutes=6)) == 2541
    lite.dispose()


def test_monitor_state_on_postgres(pg_engine: Engine, engine_factory: EngineFactory) -> None:
    monitor = SqlMonitorRepository(pg_engine)
    monitor.save_config("m", {"alpha": 0.01, "statistical_test": ["ks"]})
    monitor.save_config("m", {"alpha": 0.05})
    assert monitor.get_config("m") == {"alpha": 0.05}
    monitor.set_baseline("m", T0 - timedelta(days=7), T0, True, now=T0)
    baseline = monitor.get_baseline("m")
    assert baseline is not None and baseline.pinned and baseline.end == T0
    rid = monitor.add_result(
        {
            "model_id": "m",
            "checked_at": T0,
            "status": "insufficient_data",
            "drift_detected": False,
            "report": {"p_value": float("nan"), "scores": np.arange(2.0)},
            "n_current": 3,
        }
    )
    latest = monitor.latest_result("m")
    assert latest is not None and latest.id == rid
    assert latest.report == {"p_value": None, "scores": [0.0, 1.0]}
    assert latest.checked_at.tzinfo == UTC

    monitors = [SqlMonitorRepository(engine_factory()) for _ in range(6)]
    for expected, new in ((None, "triggered"), ("triggered", "resolved")):
        wins: list[bool] = []

        def race(
            i: int, expected: str | None = expected, new: str = new, wins: list[bool] = wins
        ) -> None:
            wins.append(monitors[i].transition_alert("m", "pagerduty", expected, new, "k", T0))

        assert run_threads(race, 6) == []
        assert sorted(wins) == [False] * 5 + [True]
    state = monitor.get_alert_state("m", "pagerduty")
    assert state is not None and state.state == "resolved" and state.last_sent_at == T0


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block exits


def test_unreachable_database_is_transient() -> None:
    url = f"postgresql+pg8000://postgres@127.0.0.1:{_closed_port()}/nothing"
    engine = make_engine(Settings(database_url=url))
    try:
        repo = SqlRepository(engine)
        with pytest.raises(TransientError, match="database unavailable"):
            repo.save_part(part("b1"))
        with pytest.raises(TransientError):
            repo.count_vectors("m")
        with pytest.raises(TransientError):
            SqlMonitorRepository(engine).transition_alert("m", "pd", None, "triggered", "k", T0)
        with pytest.raises(TransientError):
            upgrade(engine)
    finally:
        engine.dispose()


def test_concurrent_upgrades_from_empty_serialise(engine_factory: EngineFactory) -> None:
    """Cold-starting instances may all migrate at once: one does the work, none fails."""
    engines = [engine_factory() for _ in range(4)]
    barrier = threading.Barrier(len(engines))

    def migrate(engine: Engine) -> str | None:
        barrier.wait()
        return upgrade(engine)

    with ThreadPoolExecutor(len(engines)) as pool:
        reached = list(pool.map(migrate, engines))
    assert reached == [head_revision()] * len(engines)
