"""Ingest use cases: accept a batch (HTTP), persist a part, fold a part into statistics.

Handlers take their collaborators as arguments; :mod:`drift_monitor.bootstrap` supplies the
real ones, tests supply twins.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from drift_monitor.domain import envelope, validation
from drift_monitor.domain.batch import BatchPart
from drift_monitor.domain.errors import ValidationError
from drift_monitor.domain.validation import IngestRequest, Limits, ValidBatch
from drift_monitor.service.ports import (
    Archive,
    BatchRepository,
    DimensionRegistry,
    Publisher,
    StatsStore,
)


@dataclass(frozen=True)
class Accepted:
    """What the ingest endpoint answers with 202.

    ``warnings`` (only present when non-empty) say what will happen to a batch dated before
    a horizon: ``[{"field": "timestamp", "message": ...}]``.
    """

    batch_id: str
    accepted: int
    parts: int
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        doc: dict[str, object] = {
            "batch_id": self.batch_id,
            "accepted": self.accepted,
            "parts": self.parts,
        }
        if self.warnings:
            doc["warnings"] = [{"field": "timestamp", "message": m} for m in self.warnings]
        return doc


def validate_batch(
    request: IngestRequest,
    *,
    limits: Limits,
    registry: DimensionRegistry,
    now: datetime | None = None,
) -> ValidBatch:
    """Every check, including the model's established dimension; claims nothing."""
    batch = validation.parse_request(request, limits, now or datetime.now(UTC))
    known = registry.model_dimension(batch.model_id)
    if known is not None:
        validation.check_dimension(batch.vectors, known, source="established by its first batch")
    else:
        validation.check_dimension(
            batch.vectors, limits.embedding_dimension, source="EMBEDDING_DIMENSION"
        )
    return batch


def accept_batch(
    request: IngestRequest,
    *,
    limits: Limits,
    registry: DimensionRegistry,
    publisher: Publisher,
    now: datetime | None = None,
    max_message_bytes: int = envelope.MAX_VECTOR_BYTES_PER_MESSAGE,
) -> Accepted:
    """Validate a request, fix the model's dimension, publish the batch, report what happened.

    Order matters: every check runs before :meth:`DimensionRegistry.claim_dimension`, so a
    rejected batch can never fix a model's dimension; the claim's answer is checked again
    because a concurrent first batch of another dimension may have won the race.
    If publishing fails (:class:`TransientError`) the claim stays: it was made by a batch that
    passed validation, and the client's retry of the same batch will agree with it.

    Raises
    ------
    ValidationError
        Bad input; nothing was claimed or published.
    TransientError
        The broker did not confirm every message; the client should retry (same batch_id).
    """
    now = now or datetime.now(UTC)
    batch = validate_batch(request, limits=limits, registry=registry, now=now)
    established = registry.claim_dimension(batch.model_id, batch.dimension)
    validation.check_dimension(batch.vectors, established, source="established by its first batch")
    parts = envelope.split_batch(
        batch.model_id,
        batch.batch_id,
        batch.timestamp,
        batch.vectors,
        batch.metadata,
        max_bytes=max_message_bytes,
    )
    publisher.publish([envelope.encode(part) for part in parts])
    warnings = validation.timestamp_warnings(batch.timestamp, now, limits)
    return Accepted(batch.batch_id, batch.count, len(parts), tuple(warnings))


def check_part_dimension(
    part: BatchPart, registry: DimensionRegistry, configured: int | None = None
) -> None:
    """Subscribers apply the endpoint's dimension rule to messages published directly.

    ``configured`` is ``EMBEDDING_DIMENSION``: a model with no established dimension must
    match it before its dimension is claimed.
    """
    if registry.model_dimension(part.model_id) is None:
        validation.check_dimension(part.vectors, configured, source="EMBEDDING_DIMENSION")
    established = registry.claim_dimension(part.model_id, part.dimension)
    if established != part.dimension:
        raise ValidationError(
            "embeddings",
            f"rows have dimension {part.dimension} but model {part.model_id!r} "
            f"expects {established}",
            422,
        )


def persist_part(
    part: BatchPart,
    repository: BatchRepository,
    archive: Archive | None = None,
    *,
    configured_dimension: int | None = None,
) -> bool:
    """Store one part durably; return False if it was stored before (a redelivery).

    The repository claims the model's dimension in the same transaction as the write and
    rejects a mismatch (:class:`ValidationError`). The archive write comes first and is
    idempotent, so a failure between the two writes is repaired by the redelivery that the
    failure causes.
    """
    if configured_dimension is not None and repository.model_dimension(part.model_id) is None:
        validation.check_dimension(part.vectors, configured_dimension, source="EMBEDDING_DIMENSION")
    if archive is not None:
        archive.put(part)
    return repository.save_part(part)


def fold_part(
    part: BatchPart,
    stats: StatsStore,
    registry: DimensionRegistry | None = None,
    *,
    configured_dimension: int | None = None,
) -> bool:
    """Fold one part into its model's running statistics; False if folded before."""
    if registry is not None:
        check_part_dimension(part, registry, configured_dimension)
    return stats.fold(part)
