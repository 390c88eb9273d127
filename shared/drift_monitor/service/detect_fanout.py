"""Detection fanned out over Pub/Sub: one message per model per scheduled tick.

The scheduled tick (:func:`publish_tick`) publishes one :class:`DetectRequest` per model to
the detect topic; each delivery runs one model (:func:`run_requested`) through the same
per-model path as the sequential run (``detection.run_detection``), so many workers check
many models in parallel and no single process needs a time budget over all of them.

Every request names its schedule slot (the tick time rounded down to ``slot_seconds``), and
the model is checked *as of* that slot. A worker first claims ``(model, slot)``; a redelivered
or duplicated request finds the claim and runs nothing, so a model is checked at most once per
slot (a worker that dies mid-check leaves its claim; the next slot checks the model again).
A check whose result could not be stored gives its claim back and raises
:class:`TransientError`, so the redelivery retries it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import orjson

from drift_monitor.domain.batch import check_model_id
from drift_monitor.domain.envelope import Message
from drift_monitor.domain.errors import TransientError, ValidationError
from drift_monitor.service.ports import Publisher

FORMAT_VERSION = 1
DEFAULT_SLOT_SECONDS = 300
# Claims are kept this long after their slot, then pruned by the tick.
CLAIM_RETENTION = timedelta(days=2)


class Claims(Protocol):
    def claim(self, model_id: str, slot: datetime) -> bool: ...

    def release(self, model_id: str, slot: datetime) -> None: ...

    def prune(self, before: datetime) -> int: ...


class Outcome(Protocol):
    """What :func:`run_requested` needs of ``detection.DetectionOutcome``."""

    status: str
    result_id: object
    error: str | None


@dataclass(frozen=True)
class DetectRequest:
    """Check ``model_id`` as of ``slot`` (tz-aware UTC)."""

    model_id: str
    slot: datetime

    def encode(self) -> Message:
        slot = self.slot.astimezone(UTC).isoformat()
        data = orjson.dumps({"v": FORMAT_VERSION, "model_id": self.model_id, "slot": slot})
        return Message(data, {"kind": "detect", "model_id": self.model_id, "slot": slot})

    @classmethod
    def decode(cls, data: bytes) -> DetectRequest:
        """Parse a request; :class:`ValidationError` (dead-letter it) for anything else."""
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise ValidationError("data", f"not a JSON detect request: {exc}", 400) from exc
        if not isinstance(doc, dict) or doc.get("v") != FORMAT_VERSION:
            raise ValidationError("data", f"not a version {FORMAT_VERSION} detect request", 400)
        model_id = check_model_id(doc.get("model_id"))
        raw = doc.get("slot")
        try:
            slot = datetime.fromisoformat(raw) if isinstance(raw, str) else None
        except ValueError:
            slot = None
        if slot is None or slot.tzinfo is None:
            raise ValidationError("slot", "must be an ISO-8601 time with a UTC offset", 400)
        return cls(model_id, slot.astimezone(UTC))


@dataclass(frozen=True)
class Tick:
    """What one scheduled tick did."""

    slot: datetime
    published: int
    pruned_claims: int

    def to_dict(self) -> dict[str, object]:
        return {
            "slot": self.slot.isoformat(),
            "published": self.published,
            "pruned_claims": self.pruned_claims,
        }


def slot_of(now: datetime, slot_seconds: int = DEFAULT_SLOT_SECONDS) -> datetime:
    """``now`` rounded down to a multiple of ``slot_seconds`` since the epoch (UTC)."""
    if slot_seconds < 1:
        raise ValueError("slot_seconds must be positive")
    epoch = int(now.astimezone(UTC).timestamp())
    return datetime.fromtimestamp(epoch - epoch % slot_seconds, UTC)


def publish_tick(
    model_ids: Sequence[str],
    publisher: Publisher,
    claims: Claims,
    now: datetime,
    slot_seconds: int = DEFAULT_SLOT_SECONDS,
) -> Tick:
    """Publish one request per model for the slot of ``now``; prune claims of old slots.

    A repeated tick in the same slot publishes again, harmlessly: the claims make the
    workers skip models already checked in the slot.
    """
    slot = slot_of(now, slot_seconds)
    messages = [DetectRequest(model_id, slot).encode() for model_id in model_ids]
    if messages:
        publisher.publish(messages)
    pruned = claims.prune(slot - CLAIM_RETENTION)
    return Tick(slot, len(messages), pruned)


def run_requested(
    request: DetectRequest, claims: Claims, run: Callable[[str, datetime], Outcome]
) -> Outcome | None:
    """Check one model for its slot, at most once; None when the slot was claimed before.

    Raises
    ------
    TransientError
        The claim or the result could not be written; the claim is given back first (when
        taken), so the redelivery can run the check.
    """
    if not claims.claim(request.model_id, request.slot):
        return None
    try:
        outcome = run(request.model_id, request.slot)
    except BaseException:
        claims.release(request.model_id, request.slot)
        raise
    if outcome.result_id is None:  # detection could not store its result
        claims.release(request.model_id, request.slot)
        raise TransientError(
            f"detection result of {request.model_id!r} not stored: {outcome.error}"
        )
    return outcome
