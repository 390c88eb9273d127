"""Claims of (model, schedule slot) for the detection fan-out, in SQL.

A claim is an insert-if-absent on the primary key ``(model_id, slot)``: of any number of
deliveries of the same request, concurrent or not, exactly one gets ``True``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Engine, delete

from drift_monitor.adapters.sql import _dialect
from drift_monitor.adapters.sql.engine import translate_errors
from drift_monitor.adapters.sql.tables import detection_claims


def _utcnow() -> datetime:
    return datetime.now(UTC)


class SqlDetectionClaims:
    """:class:`~drift_monitor.service.detect_fanout.Claims` on PostgreSQL or SQLite."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self._engine = engine
        self._clock = clock

    def claim(self, model_id: str, slot: datetime) -> bool:
        """True if this call took the check of ``model_id`` for ``slot``; False if taken."""
        with translate_errors("claiming a detection slot"), self._engine.begin() as conn:
            result = conn.execute(
                _dialect.insert(conn, detection_claims)
                .values(model_id=model_id, slot=slot, claimed_at=self._clock())
                .on_conflict_do_nothing(index_elements=["model_id", "slot"])
            )
            return bool(result.rowcount == 1)

    def release(self, model_id: str, slot: datetime) -> None:
        """Give a claim back (the check failed before its result was stored)."""
        with translate_errors("releasing a detection slot"), self._engine.begin() as conn:
            conn.execute(
                delete(detection_claims).where(
                    detection_claims.c.model_id == model_id, detection_claims.c.slot == slot
                )
            )

    def prune(self, before: datetime) -> int:
        """Delete claims of slots before ``before``; return how many."""
        with translate_errors("pruning detection claims"), self._engine.begin() as conn:
            result = conn.execute(delete(detection_claims).where(detection_claims.c.slot < before))
            return int(result.rowcount)
