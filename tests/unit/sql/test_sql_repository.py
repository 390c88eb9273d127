"""SqlRepository on SQLite: round trips, idempotency, dimensions, windows and sampling."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from drift_monitor.adapters.sql import SqlRepository, sqlite_engine
from drift_monitor.adapters.sql.repository import ITER_PAGE_PARTS
from drift_monitor.adapters.sql.tables import batch_vectors, batches, models
from drift_monitor.domain.batch import BatchPart
from drift_monitor.domain.errors import TransientError, ValidationError
from sqlalchemy import Engine, func, select

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
PartFactory = Callable[..., BatchPart]


def table_counts(engine: Engine) -> tuple[int, int, int]:
    with engine.connect() as conn:
        return tuple(  # type: ignore[return-value]
            int(conn.execute(select(func.count()).select_from(t)).scalar_one())
            for t in (models, batches, batch_vectors)
        )


def test_parts_round_trip_bit_exact(repo: SqlRepository, part_factory: PartFactory) -> None:
    vectors = np.array(
        [[0.1, -0.0, np.float32(1e-45), 3.4e38], [np.pi, -np.e, 1 / 3, 7.0]], dtype=np.float32
    )
    tz = timezone(timedelta(hours=5, minutes=30))
    first = BatchPart("m/v1", "b1", 0, 2, 0, T0.astimezone(tz), vectors, {"source": "x", "n": 2})
    second = part_factory("b1", model_id="m/v1", part=1, parts=2, rows=3, dim=4, seed=7)
    assert repo.save_part(first)
    assert repo.save_part(second)

    got = list(repo.iter_parts("m/v1"))
    assert [(p.batch_id, p.part, p.parts) for p in got] == [("b1", 0, 2), ("b1", 1, 2)]
    assert got[0].vectors.dtype == np.float32
    assert got[0].vectors.tobytes() == vectors.tobytes()  # bit-exact, -0.0 and subnormal kept
    assert got[1].vectors.tobytes() == second.vectors.tobytes()
    assert got[0].metadata == {"source": "x", "n": 2}
    # stored instant preserved, handed back as UTC
    assert got[0].timestamp == T0 and got[0].timestamp.tzinfo == UTC


def test_vectors_stored_as_little_endian_float32_blob(
    repo: SqlRepository, engine: Engine, part_factory: PartFactory
) -> None:
    part = part_factory("b1", rows=3, dim=5)
    repo.save_part(part)
    with engine.connect() as conn:
        data = conn.execute(select(batch_vectors.c.data)).scalar_one()
    assert isinstance(data, bytes)
    assert len(data) == 3 * 5 * 4
    assert data == part.vectors.astype("<f4").tobytes()


def test_duplicate_part_writes_nothing(
    repo: SqlRepository, engine: Engine, part_factory: PartFactory
) -> None:
    original = part_factory("b1", seed=1, metadata={"v": 1})
    assert repo.save_part(original) is True
    before = table_counts(engine)
    redelivery = part_factory("b1", seed=2, metadata={"v": 2})  # same key, other content
    assert repo.save_part(redelivery) is False
    assert table_counts(engine) == before == (1, 1, 1)
    (stored,) = repo.iter_parts("model-a")
    assert stored.vectors.tobytes() == original.vectors.tobytes()
    assert stored.metadata == {"v": 1}


def test_same_batch_id_in_other_model_or_part_is_not_a_duplicate(
    repo: SqlRepository, part_factory: PartFactory
) -> None:
    assert repo.save_part(part_factory("b1", model_id="a", part=0, parts=2))
    assert repo.save_part(part_factory("b1", model_id="a", part=1, parts=2))
    assert repo.save_part(part_factory("b1", model_id="b"))
    assert repo.count_vectors("a") == 10
    assert repo.count_vectors("b") == 5


def test_concurrent_redelivery_stores_each_part_once(
    engine: Engine, part_factory: PartFactory
) -> None:
    repo = SqlRepository(engine)
    parts = [part_factory(f"b{i}", rows=4, seed=i) for i in range(12)]
    results: list[bool] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(6)

    def worker() -> None:
        barrier.wait()
        for part in parts:
            try:
                stored = repo.save_part(part)
            except BaseException as error:
                with lock:
                    errors.append(error)
            else:
                with lock:
                    results.append(stored)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert results.count(True) == len(parts)
    assert results.count(False) == len(parts) * 5
    assert table_counts(engine) == (1, 12, 12)


def test_claim_dimension_first_claim_wins(repo: SqlRepository) -> None:
    assert repo.model_dimension("m") is None
    assert repo.claim_dimension("m", 384) == 384
    assert repo.claim_dimension("m", 768) == 384
    assert repo.model_dimension("m") == 384
    assert repo.model_dimension("other") is None


def test_concurrent_dimension_claims_agree(engine: Engine) -> None:
    repo = SqlRepository(engine)
    answers: list[int] = []
    barrier = threading.Barrier(8)

    def claim(dim: int) -> None:
        barrier.wait()
        answers.append(repo.claim_dimension("m", dim))

    threads = [threading.Thread(target=claim, args=(d,)) for d in range(1, 9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == 8 and len(set(answers)) == 1
    assert repo.model_dimension("m") == answers[0]


def test_mismatched_dimension_rejected_and_nothing_written(
    repo: SqlRepository, engine: Engine, part_factory: PartFactory
) -> None:
    repo.save_part(part_factory("b1", dim=4))
    before = table_counts(engine)
    with pytest.raises(ValidationError) as caught:
        repo.save_part(part_factory("b2", dim=3))
    assert caught.value.field == "embeddings"
    assert caught.value.status == 422
    assert "dimension 4" in caught.value.message and "dimension 3" in caught.value.message
    assert table_counts(engine) == before
    assert repo.count_vectors("model-a") == 5


def test_claimed_dimension_applies_to_first_part(
    repo: SqlRepository, engine: Engine, part_factory: PartFactory
) -> None:
    repo.claim_dimension("model-a", 8)
    with pytest.raises(ValidationError):
        repo.save_part(part_factory("b1", dim=4))
    assert table_counts(engine) == (1, 0, 0)


def test_empty_part_rejected(repo: SqlRepository, engine: Engine) -> None:
    empty = BatchPart("m", "b1", 0, 1, 0, T0, np.empty((0, 4), dtype=np.float32))
    with pytest.raises(ValidationError) as caught:
        repo.save_part(empty)
    assert caught.value.field == "embeddings"
    assert table_counts(engine) == (0, 0, 0)


def test_naive_timestamp_refused(repo: SqlRepository, part_factory: PartFactory) -> None:
    with pytest.raises(Exception, match="naive datetime"):
        repo.save_part(part_factory("b1", at=datetime(2025, 1, 1)))


def test_window_is_half_open(repo: SqlRepository, part_factory: PartFactory) -> None:
    for i in range(5):
        repo.save_part(part_factory(f"b{i}", rows=i + 1, at=T0 + timedelta(minutes=i), seed=i))
    start, end = T0 + timedelta(minutes=1), T0 + timedelta(minutes=3)
    assert repo.count_vectors("model-a", start, end) == 2 + 3
    assert [p.batch_id for p in repo.iter_parts("model-a", start, end)] == ["b1", "b2"]
    assert repo.count_vectors("model-a") == 15
    assert repo.count_vectors("model-a", start=end) == 4 + 5
    assert repo.count_vectors("model-a", end=start) == 1
    assert repo.count_vectors("nobody") == 0
    # the same instants written in another zone select the same rows
    tz = timezone(timedelta(hours=-7))
    assert repo.count_vectors("model-a", start.astimezone(tz), end.astimezone(tz)) == 5


def test_iter_parts_pages_through_ties(repo: SqlRepository, part_factory: PartFactory) -> None:
    # more parts than one page, many sharing a timestamp: keyset paging must not skip or repeat
    n = ITER_PAGE_PARTS * 2 + 3
    for i in range(n):
        repo.save_part(part_factory(f"b{i:03d}", rows=1, at=T0 + timedelta(seconds=i // 7)))
    got = [p.batch_id for p in repo.iter_parts("model-a")]
    assert got == [f"b{i:03d}" for i in range(n)]


def test_list_models(repo: SqlRepository, part_factory: PartFactory) -> None:
    assert repo.list_models() == []
    repo.save_part(part_factory("b1", model_id="zeta", at=T0))
    repo.save_part(part_factory("b2", model_id="zeta", at=T0 + timedelta(hours=1)))
    repo.claim_dimension("alpha", 16)
    rows = repo.list_models()
    assert [(r.model_id, r.dimension) for r in rows] == [("alpha", 16), ("zeta", 4)]
    assert rows[0].last_batch_at is None
    assert rows[1].last_batch_at == T0 + timedelta(hours=1)
    assert rows[1].last_batch_at.tzinfo == UTC
    assert rows[1].created_at.tzinfo == UTC


# ---- sampling ------------------------------------------------------------------------------


def _fill(repo: SqlRepository, sizes: list[int], dim: int = 3) -> np.ndarray:
    """Parts of the given sizes one minute apart; row r of the window has value r in column 0."""
    offset = 0
    for i, size in enumerate(sizes):
        vectors = np.zeros((size, dim), dtype=np.float32)
        vectors[:, 0] = np.arange(offset, offset + size)
        vectors[:, 1] = i
        repo.save_part(BatchPart("m", f"b{i:04d}", 0, 1, 0, T0 + timedelta(minutes=i), vectors))
        offset += size
    return np.arange(offset)


def test_sample_returns_whole_window_when_small(repo: SqlRepository) -> None:
    _fill(repo, [3, 1, 4])
    sample = repo.sample_vectors("m", None, None, 100, seed=1)
    assert sample.dtype == np.float32 and sample.shape == (8, 3)
    assert sample[:, 0].tolist() == list(range(8))  # time order


def test_sample_is_bounded_stratified_and_seeded(repo: SqlRepository) -> None:
    sizes = [1, 30, 2, 7, 1, 1, 50, 3, 9, 17, 1, 4, 25, 6, 2, 40]
    n = len(_fill(repo, sizes))
    m = 20
    sample = repo.sample_vectors("m", None, None, m, seed=123)
    assert sample.shape == (m, 3)
    positions = sample[:, 0].astype(int)
    assert len(set(positions)) == m  # no row twice
    assert positions.tolist() == sorted(positions.tolist())  # time order
    # one row per stratum j: floor(j*N/m) <= p_j <= floor(((j+1)*N - 1)/m)
    for j, p in enumerate(positions):
        assert (j * n) // m <= p <= ((j + 1) * n - 1) // m
    again = repo.sample_vectors("m", None, None, m, seed=123)
    assert again.tobytes() == sample.tobytes()
    other = repo.sample_vectors("m", None, None, m, seed=124)
    assert other.tobytes() != sample.tobytes()


def test_sample_rows_are_equally_likely(repo: SqlRepository) -> None:
    # 200 rows in parts of very different sizes; 10 drawn per seed. Each row should be drawn
    # m/N = 1/20 of the time: 15 times in 300 seeds (binomial sd ~3.8).
    n = len(_fill(repo, [1, 60, 3, 3, 90, 1, 2, 40]))
    m, seeds = 10, 300
    hits = np.zeros(n, dtype=int)
    for seed in range(seeds):
        hits[repo.sample_vectors("m", None, None, m, seed)[:, 0].astype(int)] += 1
    expected = seeds * m / n
    assert hits.sum() == seeds * m
    assert hits.min() >= expected - 15 and hits.max() <= expected + 15
    # Independent strata give a chi-square near n - 1 = 199 (sd ~20). Offsets that move
    # together across strata (a linear hash) inflate it: such a hash scored 341 here.
    chi2 = float(((hits - expected) ** 2 / expected).sum())
    assert chi2 < 1.4 * (n - 1)


def test_sample_never_draws_a_row_twice_when_the_window_barely_exceeds_it(
    repo: SqlRepository,
) -> None:
    # N barely above m (a 7-day baseline of 20,000 vectors sampled to 18,000): strata of real
    # length N/m used to let neighbouring strata pick the row on their boundary (15 % of a
    # baseline sample came back twice). Integer strata partition the rows.
    n = len(_fill(repo, [7, 40, 13, 25, 1, 60, 31, 29] * 4))  # 824 rows
    m = 800
    hits = np.zeros(n, dtype=int)
    for seed in range(40):
        positions = repo.sample_vectors("m", None, None, m, seed)[:, 0].astype(int).tolist()
        assert len(positions) == m and len(set(positions)) == m
        assert positions == sorted(positions)
        hits[positions] += 1
    # every row is drawn with probability 1/floor(N/m) = 1 or 1/ceil(N/m) = 1/2
    assert hits.min() >= 8 and hits.max() == 40
    assert abs(hits.sum() / (40 * n) - m / n) < 1e-12


def test_sample_respects_window(repo: SqlRepository) -> None:
    _fill(repo, [10] * 10)  # part i holds rows 10i..10i+9 at T0 + i minutes
    start, end = T0 + timedelta(minutes=3), T0 + timedelta(minutes=7)
    for seed in range(20):
        sample = repo.sample_vectors("m", start, end, 7, seed)
        assert sample.shape == (7, 3)
        assert set(sample[:, 1].astype(int)) <= {3, 4, 5, 6}
    whole = repo.sample_vectors("m", start, end, 40, 0)
    assert sorted(whole[:, 0].astype(int).tolist()) == list(range(30, 70))


def test_sample_of_big_parts(repo: SqlRepository) -> None:
    # parts far larger than the stride: several strata inside one part
    _fill(repo, [500, 700])
    sample = repo.sample_vectors("m", None, None, 12, seed=5)
    positions = sample[:, 0].astype(int)
    assert len(set(positions)) == 12
    assert (positions < 500).sum() == 5 and (positions >= 500).sum() == 7


def test_sample_empty_and_unknown(repo: SqlRepository) -> None:
    assert repo.sample_vectors("ghost", None, None, 10, 0).shape == (0, 0)
    _fill(repo, [3])
    assert repo.sample_vectors("m", T0 + timedelta(days=1), None, 10, 0).shape == (0, 3)
    with pytest.raises(ValueError):
        repo.sample_vectors("m", None, None, 0, 0)


def test_unusable_database_is_transient(tmp_path: Path) -> None:
    path = tmp_path / "not-a-file.db"
    path.mkdir()  # SQLite cannot open a directory
    repo = SqlRepository(sqlite_engine(f"sqlite:///{path}"))
    with pytest.raises(TransientError, match="database unavailable"):
        repo.model_dimension("m")
    with pytest.raises(TransientError):
        repo.save_part(BatchPart("m", "b", 0, 1, 0, T0, np.ones((1, 2), dtype=np.float32)))


@pytest.mark.parametrize("pointer_map", [True, False])
def test_sample_cuts_exact_rows_out_of_multi_page_parts(tmp_path: Path, pointer_map: bool) -> None:
    # Parts of 1.5 MB span hundreds of overflow pages; each chosen row must come back whole
    # and right (every value encodes its row and column). A database created before the
    # pointer map was enabled (auto_vacuum off) samples the same rows, only slower.
    path = tmp_path / "db.sqlite"
    if not pointer_map:
        import sqlite3

        sqlite3.connect(path).execute("CREATE TABLE placeholder (x)").connection.close()
    engine = sqlite_engine(f"sqlite:///{path}")
    from drift_monitor.adapters.sql import upgrade

    upgrade(engine)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA auto_vacuum").scalar_one() == (2 if pointer_map else 0)
    repo = SqlRepository(engine)
    dim, sizes = 384, [1000, 1, 1000, 999]
    offset = 0
    for i, size in enumerate(sizes):
        rows = np.arange(offset, offset + size, dtype=np.float32)[:, None]
        vectors = rows * 1000 + np.arange(dim, dtype=np.float32)[None, :]
        repo.save_part(BatchPart("m", f"b{i}", 0, 1, 0, T0 + timedelta(minutes=i), vectors))
        offset += size
    for seed in range(3):
        sample = repo.sample_vectors("m", None, None, 50, seed)
        positions = sample[:, 0] / 1000
        assert positions.tolist() == sorted(set(positions.tolist())) and len(positions) == 50
        expected = positions[:, None] * 1000 + np.arange(dim, dtype=np.float32)[None, :]
        np.testing.assert_array_equal(sample, expected.astype(np.float32))
    engine.dispose()
