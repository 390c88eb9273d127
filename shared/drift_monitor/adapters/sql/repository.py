"""Batches and their vectors in SQL: ``BatchRepository`` and ``DimensionRegistry`` for real.

Every write is idempotent on ``(model_id, batch_id, part)`` because Pub/Sub delivers at least
once: :meth:`SqlRepository.save_part` inserts the batch row with insert-if-absent semantics and
writes the vectors only when that insert created the row, all in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Engine,
    Integer,
    LargeBinary,
    Row,
    Select,
    and_,
    cast,
    func,
    literal,
    literal_column,
    select,
    tuple_,
)

from drift_monitor.adapters.sql import _dialect
from drift_monitor.adapters.sql.engine import translate_errors
from drift_monitor.adapters.sql.records import ModelRow
from drift_monitor.adapters.sql.retention import PRUNE_CHUNK_PARTS, PruneResult, prune_batches
from drift_monitor.adapters.sql.tables import batch_vectors, batches, models
from drift_monitor.domain.batch import BatchPart
from drift_monitor.domain.errors import ValidationError

if TYPE_CHECKING:
    from drift_monitor.service.ports import BatchRepository, DimensionRegistry

Clock = Callable[[], datetime]
Float32Array = npt.NDArray[np.float32]

# Little-endian float32 whatever the host: the stored bytes are the wire format's bytes.
STORED_DTYPE = np.dtype("<f4")

# Parts per page when iterating (a part holds at most one Pub/Sub message, <= 8 MiB).
ITER_PAGE_PARTS = 16
# Parts per statement when fetching blobs by key (well under every driver's parameter limit).
FETCH_CHUNK_PARTS = 200

# Per-stratum offsets for sampling are an integer hash computed inside the database: two
# rounds of x -> (x*x + b) mod p for the Mersenne prime p = 2^31 - 1, keyed by the seed. The
# squaring matters: a linear map would shift every stratum's offset together (a near-fixed
# pattern, like systematic sampling). Intermediates stay below 2^62, inside 64-bit integers.
_HASH_PRIME = 2_147_483_647


def _utcnow() -> datetime:
    return datetime.now(UTC)


def encode_vectors(vectors: npt.NDArray[Any]) -> bytes:
    """Row-major little-endian float32 bytes of a ``(count, dimension)`` array."""
    return np.ascontiguousarray(vectors, dtype=STORED_DTYPE).tobytes()


def decode_vectors(data: bytes, dimension: int) -> Float32Array:
    """Inverse of :func:`encode_vectors`: a writable native float32 ``(count, dimension)``."""
    flat = np.frombuffer(data, dtype=STORED_DTYPE)
    if dimension <= 0 or flat.size % dimension:
        raise ValueError(f"{len(data)} bytes are not whole float32 rows of dimension {dimension}")
    return flat.reshape(-1, dimension).astype(np.float32)


class SqlRepository:
    """Batch storage on PostgreSQL or SQLite (the schema from :func:`upgrade`).

    Parameters
    ----------
    engine:
        From :func:`drift_monitor.adapters.sql.make_engine`.
    clock:
        Returns the current tz-aware time (``received_at``, ``created_at``); tests pass a fake.

    Transient database faults surface as :class:`~drift_monitor.domain.errors.TransientError`.
    """

    def __init__(self, engine: Engine, *, clock: Clock = _utcnow) -> None:
        self._engine = engine
        self._clock = clock

    @property
    def engine(self) -> Engine:
        return self._engine

    # ---- writes ---------------------------------------------------------------------------

    def save_part(self, part: BatchPart) -> bool:
        """Store one part and its vectors in one transaction.

        Returns
        -------
        bool
            True if this call stored the part; False if ``(model_id, batch_id, part)`` was
            stored before (a redelivery), in which case nothing is written. Two workers saving
            the same part at once store it exactly once and neither raises.

        Raises
        ------
        ValidationError
            ``field="embeddings"``, status 422, when the part's dimension differs from the
            model's established dimension (or the part is empty); nothing is written.
        TransientError
            The database is unreachable or busy; retrying later is safe.
        """
        _check_part(part)
        data = encode_vectors(part.vectors)
        metadata = _dialect.jsonable(part.metadata or {})
        now = self._clock()
        with translate_errors("saving a batch part"), self._engine.begin() as conn:
            # The first statement writes, so SQLite takes its write lock here (waiting on the
            # busy timeout) instead of failing later when a read lock would need upgrading.
            established = _claim(conn, part.model_id, part.dimension, now)
            if established != part.dimension:
                raise _dimension_mismatch(part.model_id, established, part.dimension)
            inserted = conn.execute(
                _dialect.insert(conn, batches)
                .values(
                    model_id=part.model_id,
                    batch_id=part.batch_id,
                    part=part.part,
                    parts=part.parts,
                    row_offset=part.row_offset,
                    ts=part.timestamp,
                    count=part.count,
                    dimension=part.dimension,
                    metadata=metadata,
                    received_at=now,
                )
                .on_conflict_do_nothing(index_elements=["model_id", "batch_id", "part"])
            )
            if inserted.rowcount != 1:
                return False
            conn.execute(
                batch_vectors.insert().values(
                    model_id=part.model_id, batch_id=part.batch_id, part=part.part, data=data
                )
            )
        return True

    def claim_dimension(self, model_id: str, dimension: int) -> int:
        """Record ``dimension`` for ``model_id`` unless it has one; return the established one.

        Atomic: of two concurrent first claims with different dimensions exactly one wins and
        both callers get the winner's value.
        """
        if dimension <= 0:
            raise ValidationError("embeddings", f"dimension must be positive, got {dimension}")
        with translate_errors("claiming a model dimension"), self._engine.begin() as conn:
            return _claim(conn, model_id, dimension, self._clock())

    def prune(
        self,
        before: datetime,
        *,
        batch_size: int = PRUNE_CHUNK_PARTS,
        time_budget_seconds: float | None = None,
    ) -> int:
        """Delete parts stamped before ``before`` and their vectors; return the parts deleted.

        Parts inside a model's stored baseline window (pinned, whatever its age, or rolling)
        are kept. Deletes run in chunks of at most ``batch_size`` parts, one transaction
        each; idempotent. See :func:`~drift_monitor.adapters.sql.retention.prune_batches`.
        """
        return self.prune_report(
            before, batch_size=batch_size, time_budget_seconds=time_budget_seconds
        ).parts

    def prune_report(
        self,
        before: datetime,
        *,
        batch_size: int = PRUNE_CHUNK_PARTS,
        time_budget_seconds: float | None = None,
        dry_run: bool = False,
    ) -> PruneResult:
        """:meth:`prune` with the full counts (parts, vectors, models, chunks, complete)."""
        return prune_batches(
            self._engine,
            before,
            batch_size=batch_size,
            time_budget_seconds=time_budget_seconds,
            dry_run=dry_run,
        )

    # ---- reads ----------------------------------------------------------------------------

    def model_dimension(self, model_id: str) -> int | None:
        """The model's established dimension, or None for a model never seen."""
        with translate_errors("reading a model dimension"), self._engine.connect() as conn:
            value = conn.execute(
                select(models.c.dimension).where(models.c.model_id == model_id)
            ).scalar_one_or_none()
        return None if value is None else int(value)

    def list_models(self) -> list[ModelRow]:
        """Every model with stored data, by id, with its newest batch timestamp."""
        last = (
            select(func.max(batches.c.ts))
            .where(batches.c.model_id == models.c.model_id)
            .scalar_subquery()
        )
        stmt = select(
            models.c.model_id, models.c.dimension, models.c.created_at, last.label("last")
        ).order_by(models.c.model_id)
        with translate_errors("listing models"), self._engine.connect() as conn:
            rows = conn.execute(stmt).all()
        return [
            ModelRow(
                model_id=row.model_id,
                dimension=int(row.dimension),
                created_at=row.created_at,
                last_batch_at=_as_utc(row.last),
            )
            for row in rows
        ]

    def count_vectors(
        self, model_id: str, start: datetime | None = None, end: datetime | None = None
    ) -> int:
        """Number of stored vectors (rows) with ``start <= timestamp < end``."""
        stmt = select(func.coalesce(func.sum(batches.c.count), 0)).where(
            *_window(model_id, start, end)
        )
        with translate_errors("counting vectors"), self._engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    def iter_parts(
        self, model_id: str, start: datetime | None = None, end: datetime | None = None
    ) -> Iterator[BatchPart]:
        """Stored parts with ``start <= timestamp < end``, oldest first.

        Reads in pages of :data:`ITER_PAGE_PARTS` parts (keyset pagination on
        ``(ts, batch_id, part)``), each page in its own short transaction: memory stays bounded
        and no connection is held while the caller works on a page.
        """
        after: tuple[datetime, str, int] | None = None
        while True:
            stmt = (
                select(
                    batches.c.batch_id,
                    batches.c.part,
                    batches.c.parts,
                    batches.c.row_offset,
                    batches.c.ts,
                    batches.c.dimension,
                    batches.c["metadata"],
                    batch_vectors.c.data,
                )
                .join_from(batches, batch_vectors, _vectors_of_batch())
                .where(*_window(model_id, start, end))
                .order_by(batches.c.ts, batches.c.batch_id, batches.c.part)
                .limit(ITER_PAGE_PARTS)
            )
            if after is not None:
                key = tuple_(batches.c.ts, batches.c.batch_id, batches.c.part)
                stmt = stmt.where(key > tuple_(*_typed_key(after)))
            with translate_errors("reading batch parts"), self._engine.connect() as conn:
                rows = conn.execute(stmt).all()
            for row in rows:
                yield BatchPart(
                    model_id=model_id,
                    batch_id=row.batch_id,
                    part=int(row.part),
                    parts=int(row.parts),
                    row_offset=int(row.row_offset),
                    timestamp=row.ts,
                    vectors=decode_vectors(row.data, int(row.dimension)),
                    metadata=dict(row.metadata or {}),
                )
            if len(rows) < ITER_PAGE_PARTS:
                return
            last = rows[-1]
            after = (last.ts, last.batch_id, int(last.part))

    def sample_vectors(
        self,
        model_id: str,
        start: datetime | None,
        end: datetime | None,
        max_rows: int,
        seed: int,
    ) -> Float32Array:
        """A seeded sample of at most ``max_rows`` vectors with ``start <= timestamp < end``.

        When the window holds ``N <= max_rows`` vectors all of them are returned. Otherwise
        exactly ``m = max_rows`` distinct rows are drawn by stratified sampling over the
        window's rows in time order (``docs/schema.md``): row positions ``0..N-1`` are cut into
        ``m`` strata of ``floor(N/m)`` or ``ceil(N/m)`` consecutive rows and one position is
        picked in each, at a pseudo-random offset derived from ``seed``. Every row's inclusion
        probability is about ``m/N`` (exactly, when ``m`` divides ``N``) and the sample covers
        the window evenly in time.

        The database does the selection: it accumulates the parts' row counts in time order
        (a window function over the ``(model_id, ts)`` index, reading no vector data), keeps
        the parts that contain a chosen position and returns only the chosen rows; PostgreSQL
        cuts each row out of its part with ``substr`` (storage ``EXTERNAL`` lets it fetch only
        the needed TOAST chunks), SQLite reads the chosen rows' bytes by incremental blob I/O
        (:func:`_sample_by_blob`). So the work is bounded by ``m`` rows plus a scan of the
        window's part metadata.

        Returns
        -------
        numpy.ndarray
            float32 ``(n, dimension)`` in time order, ``n = min(N, max_rows)``; ``(0, d)``
            (``d = 0`` for an unknown model) when the window is empty.
        """
        if max_rows <= 0:
            raise ValueError(f"max_rows must be positive, got {max_rows}")
        dimension = self.model_dimension(model_id)
        if dimension is None:
            return np.empty((0, 0), dtype=np.float32)
        total = self.count_vectors(model_id, start, end)
        if total == 0:
            return np.empty((0, dimension), dtype=np.float32)
        if total <= max_rows:
            return self._read_window(model_id, start, end, dimension)
        if total * max_rows >= 2**62:
            raise ValueError(f"window of {total} rows is too large to sample {max_rows} of")
        rng = np.random.default_rng(seed)
        keys = tuple(int(v) for v in rng.integers(0, _HASH_PRIME, size=3))
        positions = _positions(model_id, start, end, total, max_rows, keys)
        with translate_errors("sampling vectors"), self._engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                return _sample_by_substr(conn, model_id, positions, dimension)
            return _sample_by_blob(conn, model_id, positions, dimension)

    def _read_window(
        self, model_id: str, start: datetime | None, end: datetime | None, dimension: int
    ) -> Float32Array:
        stmt = (
            select(batch_vectors.c.data)
            .join_from(batches, batch_vectors, _vectors_of_batch())
            .where(*_window(model_id, start, end))
            .order_by(batches.c.ts, batches.c.batch_id, batches.c.part)
        )
        with translate_errors("reading vectors"), self._engine.connect() as conn:
            blobs = conn.execute(stmt).scalars().all()
        return _stack([decode_vectors(blob, dimension) for blob in blobs], dimension)


# ---- helpers ------------------------------------------------------------------------------


def _check_part(part: BatchPart) -> None:
    vectors = part.vectors
    if vectors.ndim != 2 or vectors.shape[0] == 0 or vectors.shape[1] == 0:
        raise ValidationError(
            "embeddings", f"a stored part needs a non-empty 2-d array, got shape {vectors.shape}"
        )
    if not 0 <= part.part < part.parts:
        raise ValidationError("part", f"part {part.part} is outside 0..{part.parts - 1}")


def _dimension_mismatch(model_id: str, established: int, got: int) -> ValidationError:
    return ValidationError(
        "embeddings",
        f"model {model_id!r} has dimension {established}; this batch has dimension {got}",
        422,
    )


def _claim(conn: Connection, model_id: str, dimension: int, now: datetime) -> int:
    conn.execute(
        _dialect.insert(conn, models)
        .values(model_id=model_id, dimension=dimension, created_at=now)
        .on_conflict_do_nothing(index_elements=["model_id"])
    )
    return int(
        conn.execute(select(models.c.dimension).where(models.c.model_id == model_id)).scalar_one()
    )


def _window(
    model_id: str, start: datetime | None, end: datetime | None
) -> list[ColumnElement[bool]]:
    conditions = [batches.c.model_id == model_id]
    if start is not None:
        conditions.append(batches.c.ts >= start)
    if end is not None:
        conditions.append(batches.c.ts < end)
    return conditions


def _vectors_of_batch() -> ColumnElement[bool]:
    return and_(
        batch_vectors.c.model_id == batches.c.model_id,
        batch_vectors.c.batch_id == batches.c.batch_id,
        batch_vectors.c.part == batches.c.part,
    )


def _typed_key(key: tuple[datetime, str, int]) -> tuple[Any, Any, Any]:
    # Bind the timestamp through the column's type so SQLite compares UTC text with UTC text.
    ts, batch_id, part = key
    return (
        literal(ts, batches.c.ts.type),
        literal(batch_id, batches.c.batch_id.type),
        literal(part, batches.c.part.type),
    )


def _as_utc(value: Any) -> datetime | None:
    # Aggregates (max(ts)) lose the column type on SQLite and come back as text.
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise TypeError(f"expected a timestamp, got {value!r}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _positions(
    model_id: str,
    start: datetime | None,
    end: datetime | None,
    total: int,
    m: int,
    keys: tuple[int, ...],
) -> Select[Any]:
    """The chosen row positions: ``(batch_id, part, row, p)``, one per stratum, ``p`` ascending.

    Rows are numbered ``0..N-1`` in ``(ts, batch_id, part)`` order, a part covering
    ``[lo, hi)``. Stratum ``j`` (``0 <= j < m``) is the rows ``[a_j, a_{j+1})`` with
    ``a_j = floor(j*N/m)``: the strata partition the rows, each holding ``floor(N/m)`` or
    ``ceil(N/m)`` of them, so no row can be drawn twice. Stratum ``j`` picks
    ``p_j = a_j + o_j mod (a_{j+1} - a_j)``, where ``o_j`` is a keyed hash of ``j``: about
    uniform over its rows (exactly ``m/N`` per row when ``m`` divides ``N``; otherwise
    ``1/floor(N/m)`` or ``1/ceil(N/m)``, the two sizes spread evenly over the window).
    A part only needs the strata ``floor(lo*m/N) .. floor((hi*m - 1)/N)`` that overlap it,
    generated per part by a recursive CTE, so the database evaluates about ``m + parts``
    candidates. All arithmetic is on non-negative 64-bit integers (portable division).
    """
    big = BigInteger()
    n_ = literal(total, big)
    m_ = literal(m, big)
    running = func.sum(batches.c["count"]).over(
        order_by=(batches.c.ts, batches.c.batch_id, batches.c.part), rows=(None, 0)
    )
    parts = (
        select(
            batches.c.batch_id,
            batches.c.part,
            cast(running - batches.c["count"], big).label("lo"),
            cast(running, big).label("hi"),
        )
        .where(*_window(model_id, start, end))
        .cte("window_parts")
    )
    first = select(
        parts.c.batch_id,
        parts.c.part,
        parts.c.lo,
        parts.c.hi,
        cast(parts.c.lo * m_ // n_, big).label("j"),
        cast((parts.c.hi * m_ - 1) // n_, big).label("j_last"),
    ).cte("strata", recursive=True)
    strata = first.union_all(
        select(
            first.c.batch_id,
            first.c.part,
            first.c.lo,
            first.c.hi,
            cast(first.c.j + 1, big),
            first.c.j_last,
        ).where(first.c.j < first.c.j_last)
    )
    prime = literal(_HASH_PRIME, big)
    mixed: ColumnElement[Any] = (strata.c.j + literal(keys[0], big)) % prime
    for key in keys[1:]:
        mixed = (mixed * mixed + literal(key, big)) % prime
    candidates = select(
        strata.c.batch_id,
        strata.c.part,
        strata.c.lo,
        strata.c.hi,
        cast(
            strata.c.j * n_ // m_ + mixed % ((strata.c.j + 1) * n_ // m_ - strata.c.j * n_ // m_),
            big,
        ).label("p"),
    ).subquery("candidates")
    return (
        select(
            candidates.c.batch_id,
            candidates.c.part,
            cast(candidates.c.p - candidates.c.lo, big).label("row"),
            candidates.c.p,
        )
        .where(candidates.c.p >= candidates.c.lo, candidates.c.p < candidates.c.hi)
        .order_by(candidates.c.p)
    )


def _sample_by_substr(
    conn: Connection, model_id: str, positions: Select[Any], dimension: int
) -> Float32Array:
    """One statement: the chosen rows' bytes, cut out of their parts by the database."""
    chosen = positions.subquery("chosen")
    row_bytes = 4 * dimension
    piece = func.substr(
        batch_vectors.c.data,
        cast(chosen.c.row * row_bytes + 1, Integer),
        literal(row_bytes, Integer()),
        type_=LargeBinary(),
    )
    stmt = (
        select(piece)
        .select_from(chosen)
        .join(
            batch_vectors,
            and_(
                batch_vectors.c.model_id == model_id,
                batch_vectors.c.batch_id == chosen.c.batch_id,
                batch_vectors.c.part == chosen.c.part,
            ),
        )
        .order_by(chosen.c.p)
    )
    pieces = conn.execute(stmt).scalars().all()
    return decode_vectors(b"".join(pieces), dimension)


def _sample_by_blob(
    conn: Connection, model_id: str, positions: Select[Any], dimension: int
) -> Float32Array:
    """SQLite: chosen positions first, then only the chosen rows' bytes of each part.

    SQLite's ``substr`` would load the whole blob first; its incremental blob I/O
    (``sqlite3.Connection.blobopen``) reads just the pages holding the requested bytes. In a
    database created with ``auto_vacuum`` (every database this package creates,
    :func:`~drift_monitor.adapters.sql.engine.sqlite_engine`), seeking inside a blob follows
    the pointer map instead of reading every overflow page before the offset, so the cost is
    about one page per chosen row whatever the size of the parts and of the window.
    """
    chosen: Sequence[Row[Any]] = conn.execute(positions).all()
    keys = list(dict.fromkeys((row.batch_id, int(row.part)) for row in chosen))
    rowids: dict[tuple[str, int], int] = {}
    rowid: ColumnElement[int] = literal_column("batch_vectors.rowid")
    for i in range(0, len(keys), FETCH_CHUNK_PARTS):
        chunk = keys[i : i + FETCH_CHUNK_PARTS]
        stmt = select(batch_vectors.c.batch_id, batch_vectors.c.part, rowid).where(
            batch_vectors.c.model_id == model_id,
            tuple_(batch_vectors.c.batch_id, batch_vectors.c.part).in_(chunk),
        )
        for batch_id, part, found in conn.execute(stmt):
            rowids[(batch_id, int(part))] = int(found)
    raw: Any = conn.connection.driver_connection  # sqlite3.Connection
    row_bytes = 4 * dimension
    out = np.empty((len(chosen), dimension), dtype=np.float32)
    # Read part by part, rows in stored order, into the output slots in sample order.
    order = sorted(range(len(chosen)), key=lambda i: (rowids[_key(chosen[i])], chosen[i].row))
    current: int | None = None
    blob: Any = None
    try:
        for i in order:
            target = rowids[_key(chosen[i])]
            if target != current:
                if blob is not None:
                    blob.close()
                blob = raw.blobopen(batch_vectors.name, "data", target, readonly=True)
                current = target
            blob.seek(int(chosen[i].row) * row_bytes)
            out[i] = np.frombuffer(blob.read(row_bytes), dtype=STORED_DTYPE)
    finally:
        if blob is not None:
            blob.close()
    return out


def _key(row: Row[Any]) -> tuple[str, int]:
    return (row.batch_id, int(row.part))


def _stack(arrays: list[Float32Array], dimension: int) -> Float32Array:
    if not arrays:
        return np.empty((0, dimension), dtype=np.float32)
    return np.ascontiguousarray(np.concatenate(arrays, axis=0), dtype=np.float32)


if TYPE_CHECKING:

    def _implements_ports(repo: SqlRepository) -> tuple[BatchRepository, DimensionRegistry]:
        return repo, repo  # mypy checks SqlRepository against both protocols here
