"""Detection's durable state: per-model configuration, baselines, results and alert state.

The alert state is what keeps paging honest across restarts and concurrent detection runs:
:meth:`SqlMonitorRepository.transition_alert` is a compare-and-set, so of two runs that both
decide to trigger, exactly one wins the transition and sends the page.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Row, or_, select, update

from drift_monitor.adapters.sql import _dialect
from drift_monitor.adapters.sql.engine import translate_errors
from drift_monitor.adapters.sql.records import (
    AlertState,
    Baseline,
    DriftResult,
    StoredDetectionState,
)
from drift_monitor.adapters.sql.tables import (
    ALERT_STATES,
    RESULT_STATUSES,
    alert_state,
    baselines,
    detection_state,
    drift_results,
    model_configs,
)
from drift_monitor.domain.errors import ValidationError

Clock = Callable[[], datetime]

_RESULT_FIELDS = (
    "baseline_start",
    "baseline_end",
    "current_start",
    "current_end",
)
HISTORY_LIMIT_MAX = 10_000


def _utcnow() -> datetime:
    return datetime.now(UTC)


class SqlMonitorRepository:
    """Configuration, baselines, drift results and alert state on PostgreSQL or SQLite.

    Parameters
    ----------
    engine:
        From :func:`drift_monitor.adapters.sql.make_engine`, schema from :func:`upgrade`.
    clock:
        Default for the ``now`` arguments; tests pass a fake.

    Transient database faults surface as :class:`~drift_monitor.domain.errors.TransientError`.
    """

    def __init__(self, engine: Engine, *, clock: Clock = _utcnow) -> None:
        self._engine = engine
        self._clock = clock

    # ---- configuration --------------------------------------------------------------------

    def get_config(self, model_id: str) -> dict[str, Any] | None:
        """The stored configuration document, or None if the model has none."""
        stmt = select(model_configs.c.config).where(model_configs.c.model_id == model_id)
        with translate_errors("reading a model configuration"), self._engine.connect() as conn:
            value = conn.execute(stmt).scalar_one_or_none()
        return None if value is None else dict(value)

    def save_config(
        self, model_id: str, config: Mapping[str, Any], now: datetime | None = None
    ) -> None:
        """Replace the model's configuration document (upsert; the caller validated it)."""
        document = _dialect.jsonable(dict(config))
        stamp = now or self._clock()
        with translate_errors("saving a model configuration"), self._engine.begin() as conn:
            stmt = _dialect.insert(conn, model_configs).values(
                model_id=model_id, config=document, updated_at=stamp
            )
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["model_id"],
                    set_={"config": stmt.excluded.config, "updated_at": stmt.excluded.updated_at},
                )
            )

    # ---- baselines ------------------------------------------------------------------------

    def get_baseline(self, model_id: str) -> Baseline | None:
        """The model's baseline window, or None if none was set."""
        stmt = select(baselines).where(baselines.c.model_id == model_id)
        with translate_errors("reading a baseline"), self._engine.connect() as conn:
            row = conn.execute(stmt).one_or_none()
        if row is None:
            return None
        return Baseline(
            model_id=row.model_id,
            start=row.start,
            end=row.end,
            pinned=bool(row.pinned),
            updated_at=row.updated_at,
        )

    def set_baseline(
        self,
        model_id: str,
        start: datetime,
        end: datetime,
        pinned: bool,
        now: datetime | None = None,
    ) -> Baseline:
        """Set (replace) the model's baseline window ``[start, end)``.

        Raises
        ------
        ValidationError
            ``field="end"``, 422, when ``end`` is not after ``start``.
        """
        if not end > start:
            raise ValidationError(
                "end", f"baseline end {end.isoformat()} must be after start {start.isoformat()}"
            )
        stamp = now or self._clock()
        with translate_errors("saving a baseline"), self._engine.begin() as conn:
            stmt = _dialect.insert(conn, baselines).values(
                model_id=model_id, start=start, end=end, pinned=pinned, updated_at=stamp
            )
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["model_id"],
                    set_={
                        "start": stmt.excluded.start,
                        "end": stmt.excluded.end,
                        "pinned": stmt.excluded.pinned,
                        "updated_at": stmt.excluded.updated_at,
                    },
                )
            )
        return Baseline(model_id, start.astimezone(UTC), end.astimezone(UTC), pinned, stamp)

    # ---- results --------------------------------------------------------------------------

    def add_result(self, result: Mapping[str, Any]) -> int:
        """Store one detection run; return its id.

        ``result`` holds ``model_id``, ``checked_at``, ``status`` (one of
        :data:`~drift_monitor.adapters.sql.tables.RESULT_STATUSES`), ``drift_detected`` and
        ``report`` (a JSON-able dict: numpy values are converted, NaN/inf stored as null), and
        optionally ``baseline_start``, ``baseline_end``, ``current_start``, ``current_end``,
        ``n_baseline``, ``n_current``.
        """
        status = result.get("status")
        if status not in RESULT_STATUSES:
            raise ValidationError("status", f"must be one of {RESULT_STATUSES}, got {status!r}")
        values: dict[str, Any] = {
            "model_id": result["model_id"],
            "checked_at": result["checked_at"],
            "status": status,
            "drift_detected": bool(result["drift_detected"]),
            "report": _dialect.jsonable(dict(result.get("report") or {})),
            "n_baseline": int(result.get("n_baseline") or 0),
            "n_current": int(result.get("n_current") or 0),
        }
        for name in _RESULT_FIELDS:
            values[name] = result.get(name)
        with translate_errors("storing a drift result"), self._engine.begin() as conn:
            new_id = conn.execute(
                drift_results.insert().values(**values).returning(drift_results.c.id)
            ).scalar_one()
        return int(new_id)

    def latest_result(self, model_id: str) -> DriftResult | None:
        """The newest result (by ``checked_at``, then id) or None."""
        rows = self.history(model_id, limit=1)
        return rows[0] if rows else None

    def history(
        self, model_id: str, since: datetime | None = None, limit: int = 100
    ) -> list[DriftResult]:
        """Results with ``checked_at >= since``, newest first, at most ``limit`` (<= 10000)."""
        if not 1 <= limit <= HISTORY_LIMIT_MAX:
            raise ValidationError("limit", f"must be between 1 and {HISTORY_LIMIT_MAX}")
        stmt = select(drift_results).where(drift_results.c.model_id == model_id)
        if since is not None:
            stmt = stmt.where(drift_results.c.checked_at >= since)
        stmt = stmt.order_by(drift_results.c.checked_at.desc(), drift_results.c.id.desc()).limit(
            limit
        )
        with translate_errors("reading drift results"), self._engine.connect() as conn:
            rows = conn.execute(stmt).all()
        return [_result(row) for row in rows]

    # ---- alert state ----------------------------------------------------------------------

    def get_alert_state(self, model_id: str, channel: str) -> AlertState | None:
        """The model's alert state on ``channel``, or None if no alert was ever recorded."""
        stmt = select(alert_state).where(
            alert_state.c.model_id == model_id, alert_state.c.channel == channel
        )
        with translate_errors("reading alert state"), self._engine.connect() as conn:
            row = conn.execute(stmt).one_or_none()
        if row is None:
            return None
        return AlertState(
            model_id=row.model_id,
            channel=row.channel,
            dedup_key=row.dedup_key,
            state=row.state,
            last_sent_at=row.last_sent_at,
            updated_at=row.updated_at,
        )

    def transition_alert(
        self,
        model_id: str,
        channel: str,
        expected_state: str | None,
        new_state: str,
        dedup_key: str,
        now: datetime,
        *,
        sent_before: datetime | None = None,
    ) -> bool:
        """Compare-and-set the alert state; True if this call made the transition.

        The row moves to ``new_state`` (with ``dedup_key``, ``last_sent_at = updated_at =
        now``) only if its current state is ``expected_state`` (``None``: no row yet) and,
        when ``sent_before`` is given, its ``last_sent_at`` is missing or earlier than it —
        which is how a cooldown is made atomic (``sent_before = now - cooldown``). It is one
        conditional ``UPDATE`` (or insert-if-absent), so of concurrent callers expecting the
        same state exactly one gets True; the caller sends the page only then.
        """
        if new_state not in ALERT_STATES:
            raise ValidationError("state", f"must be one of {ALERT_STATES}, got {new_state!r}")
        if expected_state is not None and expected_state not in ALERT_STATES:
            raise ValidationError("state", f"expected state must be None or one of {ALERT_STATES}")
        with translate_errors("updating alert state"), self._engine.begin() as conn:
            if expected_state is None:
                result = conn.execute(
                    _dialect.insert(conn, alert_state)
                    .values(
                        model_id=model_id,
                        channel=channel,
                        dedup_key=dedup_key,
                        state=new_state,
                        last_sent_at=now,
                        updated_at=now,
                    )
                    .on_conflict_do_nothing(index_elements=["model_id", "channel"])
                )
            else:
                stmt = (
                    update(alert_state)
                    .where(
                        alert_state.c.model_id == model_id,
                        alert_state.c.channel == channel,
                        alert_state.c.state == expected_state,
                    )
                    .values(state=new_state, dedup_key=dedup_key, last_sent_at=now, updated_at=now)
                )
                if sent_before is not None:
                    stmt = stmt.where(
                        or_(
                            alert_state.c.last_sent_at.is_(None),
                            alert_state.c.last_sent_at < sent_before,
                        )
                    )
                result = conn.execute(stmt)
            return result.rowcount == 1

    # ---- sequential detection state -------------------------------------------------------

    def get_detection_state(self, model_id: str) -> StoredDetectionState | None:
        """The model's stored monitor state (evidence, calibration scores), or None."""
        stmt = select(detection_state).where(detection_state.c.model_id == model_id)
        with translate_errors("reading detection state"), self._engine.connect() as conn:
            row = conn.execute(stmt).one_or_none()
        if row is None:
            return None
        return StoredDetectionState(
            model_id=row.model_id,
            version=int(row.version),
            state=dict(row.state or {}),
            reference=bytes(row.reference),
            calibration=bytes(row.calibration),
            updated_at=row.updated_at,
        )

    def save_detection_state(
        self,
        model_id: str,
        expected_version: int | None,
        state: Mapping[str, Any],
        reference: bytes | None,
        calibration: bytes,
        now: datetime,
    ) -> bool:
        """Compare-and-set the monitor state; True if this call stored it.

        ``reference`` (the fitted baseline's vectors, a few MB) is written only when given:
        ``None`` keeps the stored one, so an ordinary run writes a few kB.

        Stored only if the row's ``version`` still equals ``expected_version`` (``None``: no
        row yet); the new version is ``expected_version + 1``. Of two concurrent runs that
        read the same state, exactly one saves; the other must not report its evidence as
        stored (the detection service re-reads and runs again).
        """
        document = _dialect.jsonable(dict(state))
        with translate_errors("saving detection state"), self._engine.begin() as conn:
            if expected_version is None:
                result = conn.execute(
                    _dialect.insert(conn, detection_state)
                    .values(
                        model_id=model_id,
                        version=1,
                        state=document,
                        reference=reference or b"",
                        calibration=calibration,
                        updated_at=now,
                    )
                    .on_conflict_do_nothing(index_elements=["model_id"])
                )
            else:
                result = conn.execute(
                    update(detection_state)
                    .where(
                        detection_state.c.model_id == model_id,
                        detection_state.c.version == expected_version,
                    )
                    .values(
                        version=expected_version + 1,
                        state=document,
                        calibration=calibration,
                        updated_at=now,
                        **({} if reference is None else {"reference": reference}),
                    )
                )
            return result.rowcount == 1


def _result(row: Row[Any]) -> DriftResult:
    return DriftResult(
        id=int(row.id),
        model_id=row.model_id,
        checked_at=row.checked_at,
        status=row.status,
        drift_detected=bool(row.drift_detected),
        report=dict(row.report or {}),
        baseline_start=row.baseline_start,
        baseline_end=row.baseline_end,
        current_start=row.current_start,
        current_end=row.current_end,
        n_baseline=int(row.n_baseline),
        n_current=int(row.n_current),
    )
