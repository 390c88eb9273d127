"""Object names shared by the archive adapters (Cloud Storage and local folder)."""

from __future__ import annotations

from datetime import UTC

from drift_monitor.domain.batch import BatchPart
from drift_monitor.domain.envelope import FORMAT_VERSION

SUFFIX = ".edm"
CONTENT_TYPE = "application/vnd.drift-monitor.edm1"


def object_name(part: BatchPart, prefix: str = "") -> str:
    """Name of the archived object for ``part``.

    ``{prefix}{model_id}/{YYYY}/{MM}/{DD}/{batch_id}/part-{part:05d}-of-{parts:05d}.edm``, with
    the date taken from the batch timestamp in UTC. The name depends only on the part's identity,
    so a redelivered message rewrites the same object with the same bytes: harmless. Listing a
    model's prefix by date is how operators find raw data for a time window.

    Parameters
    ----------
    part
        The part to name; its ``model_id`` and ``batch_id`` were validated at ingest (safe
        characters, no ``..``, no leading or doubled ``/``).
    prefix
        Optional leading path, e.g. ``"raw/"``.
    """
    day = part.timestamp.astimezone(UTC)
    return (
        f"{prefix}{part.model_id}/{day:%Y/%m/%d}/{part.batch_id}/"
        f"part-{part.part:05d}-of-{part.parts:05d}{SUFFIX}"
    )


def object_metadata(part: BatchPart) -> dict[str, str]:
    """String metadata stored beside the object (the message attributes and a summary)."""
    return {
        "format_version": str(FORMAT_VERSION),
        "model_id": part.model_id,
        "batch_id": part.batch_id,
        "part": str(part.part),
        "parts": str(part.parts),
        "row_offset": str(part.row_offset),
        "count": str(part.count),
        "dimension": str(part.dimension),
        "timestamp": part.timestamp.isoformat(),
    }
