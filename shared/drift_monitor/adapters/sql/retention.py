"""Batch retention: delete stored batch parts (and their vectors) older than a cut-off.

Nothing else ever deletes batches, so without this the database grows with every ingest.
:func:`prune_batches` deletes parts with ``ts < before`` except those inside a model's stored
baseline window (``baselines`` table), in chunks of at most ``batch_size`` parts, one short
transaction per chunk, so a large backlog never holds one huge transaction or long locks:

* pinned baselines are kept whatever their age (an operator chose that reference on purpose);
* the stored window of a rolling baseline is kept too: it normally lies inside the retention
  period anyway (``BATCH_RETENTION_DAYS >= HISTORICAL_WINDOW_DAYS + 1``), but detection does not
  move it while a model is in drift, and deleting its data would turn an open incident into
  ``insufficient_data``.

The deletes are idempotent (a second run with the same cut-off deletes nothing) and safe
next to concurrent ingest and other prunes: on PostgreSQL each chunk claims its rows with
``SELECT ... FOR UPDATE SKIP LOCKED``, so two prunes take disjoint rows (no deadlock, no double
count) and never wait on a row an insert or another prune holds. SQLite has one writer at a time.
``docs/schema.md`` (Retention) describes it for operators.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    delete,
    exists,
    func,
    literal,
    select,
    tuple_,
)

from drift_monitor.adapters.sql.engine import translate_errors
from drift_monitor.adapters.sql.tables import baselines, batch_vectors, batches, models

# Parts deleted per transaction. A part holds at most one Pub/Sub message (<= 8 MiB of
# vectors), so a chunk frees at most ~800 MiB and keeps its row locks for well under a second
# on an ordinary instance; small enough for the WAL and for concurrent ingest, large enough
# that a backlog of millions of parts is worked off in a reasonable number of round trips.
PRUNE_CHUNK_PARTS = 100
MAX_CHUNK_PARTS = 10_000


@dataclass(frozen=True)
class PruneResult:
    """What one prune did (or, with ``dry_run``, would do)."""

    before: datetime
    parts: int  # rows deleted from ``batches`` (each with its ``batch_vectors`` row)
    vectors: int  # embeddings inside those parts (sum of their ``count``)
    models: int  # models that lost at least one part
    chunks: int  # delete transactions run (0 for a dry run)
    complete: bool  # False when the time budget ran out before every eligible part was gone
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "before": self.before.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "parts": self.parts,
            "vectors": self.vectors,
            "models": self.models,
            "chunks": self.chunks,
            "complete": self.complete,
            "dry_run": self.dry_run,
        }


def prune_batches(
    engine: Engine,
    before: datetime,
    *,
    batch_size: int = PRUNE_CHUNK_PARTS,
    time_budget_seconds: float | None = None,
    dry_run: bool = False,
    monotonic: Callable[[], float] = time.monotonic,
) -> PruneResult:
    """Delete batch parts with ``ts < before`` outside every stored baseline window.

    Parameters
    ----------
    engine:
        PostgreSQL or SQLite engine with the schema from :func:`upgrade`.
    before:
        Timezone-aware cut-off; parts stamped earlier are deleted.
    batch_size:
        Most parts deleted in one transaction (1 .. 10,000).
    time_budget_seconds:
        Stop starting new chunks once this much time has passed (``None``: run to the end).
        A chunk in progress always finishes, so the budget can be overrun by one chunk.
    dry_run:
        Count what would be deleted and delete nothing.
    monotonic:
        Clock for the budget; tests pass a fake.

    Returns
    -------
    PruneResult
        Counts of deleted parts and vectors; ``complete`` is False when the budget stopped it
        (the next run carries on where this one stopped).

    Raises
    ------
    ValueError
        ``before`` is naive, or ``batch_size`` is out of range.
    TransientError
        The database is unreachable or busy; what was deleted before stays deleted.
    """
    if before.tzinfo is None or before.utcoffset() is None:
        raise ValueError(f"naive cut-off {before.isoformat()} refused: give it a timezone")
    if not 1 <= batch_size <= MAX_CHUNK_PARTS:
        raise ValueError(f"batch_size must be between 1 and {MAX_CHUNK_PARTS}, got {batch_size}")
    before = before.astimezone(UTC)
    if dry_run:
        return _count(engine, before)
    deadline = None if time_budget_seconds is None else monotonic() + time_budget_seconds
    with translate_errors("listing models to prune"), engine.connect() as conn:
        model_ids = list(conn.execute(select(models.c.model_id).order_by(models.c.model_id)))
    parts = vectors = chunks = 0
    touched = 0
    for (model_id,) in model_ids:
        model_parts = 0
        while True:
            if deadline is not None and monotonic() >= deadline:
                touched += int(model_parts > 0)
                return PruneResult(before, parts, vectors, touched, chunks, complete=False)
            deleted, deleted_vectors = _delete_chunk(engine, model_id, before, batch_size)
            if deleted:
                chunks += 1
            parts += deleted
            vectors += deleted_vectors
            model_parts += deleted
            if deleted < batch_size:
                break
        touched += int(model_parts > 0)
    return PruneResult(before, parts, vectors, touched, chunks, complete=True)


def _expired(model_id: str | None, before: datetime) -> list[ColumnElement[bool]]:
    """Parts older than ``before`` and outside their model's stored baseline window."""
    protected = exists().where(
        baselines.c.model_id == batches.c.model_id,
        batches.c.ts >= baselines.c.start,
        batches.c.ts < baselines.c.end,
    )
    conditions = [batches.c.ts < before, ~protected]
    if model_id is not None:
        conditions.insert(0, batches.c.model_id == model_id)
    return conditions


def _delete_chunk(engine: Engine, model_id: str, before: datetime, limit: int) -> tuple[int, int]:
    """Delete up to ``limit`` of the model's oldest expired parts in one transaction."""
    # model_id first, then ts: the (model_id, ts) index finds the oldest parts directly.
    claim = (
        select(batches.c.batch_id, batches.c.part, batches.c["count"].label("rows"))
        .where(*_expired(model_id, before))
        .order_by(batches.c.ts, batches.c.batch_id, batches.c.part)
        .limit(limit)
        # PostgreSQL: lock the chosen rows, skipping rows another prune (or an insert of the
        # same key) holds; SQLite renders no locking clause and serialises writers anyway.
        .with_for_update(skip_locked=True)
    )
    with translate_errors("pruning old batches"), engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            # Take SQLite's write lock now, not when the first DELETE needs to upgrade the read
            # lock (which fails at once, without the busy timeout, if another writer got there).
            _touch(conn)
        rows = conn.execute(claim).all()
        if not rows:
            return 0, 0
        keys = [(row.batch_id, int(row.part)) for row in rows]
        # Vectors first: correct with or without the foreign key's ON DELETE CASCADE.
        conn.execute(
            delete(batch_vectors).where(
                batch_vectors.c.model_id == model_id,
                tuple_(batch_vectors.c.batch_id, batch_vectors.c.part).in_(keys),
            )
        )
        result = conn.execute(
            delete(batches).where(
                batches.c.model_id == model_id,
                tuple_(batches.c.batch_id, batches.c.part).in_(keys),
            )
        )
        if result.rowcount != len(keys):
            # Cannot happen while the rows are locked (PostgreSQL) or the file is (SQLite);
            # refuse to report counts that are not true.
            raise RuntimeError(
                f"pruning {model_id!r}: deleted {result.rowcount} of {len(keys)} claimed parts"
            )
        return len(keys), sum(int(row.rows) for row in rows)


def _touch(conn: Connection) -> None:
    # A write that matches nothing: SQLite takes the database write lock for the transaction.
    conn.execute(delete(batches).where(literal(False)))


def _count(engine: Engine, before: datetime) -> PruneResult:
    stmt = select(
        func.count(),
        func.coalesce(func.sum(batches.c["count"]), 0),
        func.count(func.distinct(batches.c.model_id)),
    ).where(*_expired(None, before))
    with translate_errors("counting old batches"), engine.connect() as conn:
        parts, vectors, touched = conn.execute(stmt).one()
    return PruneResult(before, int(parts), int(vectors), int(touched), 0, True, dry_run=True)
