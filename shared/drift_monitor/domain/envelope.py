"""The versioned Pub/Sub message format (documented in docs/message-format.md).

A message is one :class:`BatchPart`:

* ``data``: ``MAGIC`` (4 bytes, ``b"EDM1"``), a big-endian uint32 header length, a UTF-8 JSON
  header, then ``count * dimension`` little-endian float32 values, row-major.
* ``attributes``: ``format_version``, ``model_id``, ``batch_id``, ``part``, ``parts`` copied
  from the header, so subscriptions can filter and operators can read them in the console.

Anything that does not decode raises :class:`ValidationError` (the subscriber dead-letters it).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import orjson

from drift_monitor.domain.batch import BatchPart, check_batch_id, check_model_id
from drift_monitor.domain.errors import ValidationError

FORMAT_VERSION = 1
MAGIC = b"EDM1"
# Pub/Sub allows 10 MB per message; leave room for the header and attributes.
MAX_VECTOR_BYTES_PER_MESSAGE = 8 * 1024 * 1024
_HEADER_LEN = struct.Struct(">I")


@dataclass(frozen=True)
class Message:
    """What goes on the wire: opaque bytes plus string attributes."""

    data: bytes
    attributes: dict[str, str]


def rows_per_message(dimension: int, max_bytes: int = MAX_VECTOR_BYTES_PER_MESSAGE) -> int:
    """How many float32 rows of ``dimension`` fit in one message."""
    return max(1, max_bytes // (4 * dimension))


def split_batch(
    model_id: str,
    batch_id: str,
    timestamp: datetime,
    vectors: np.ndarray[Any, Any],
    metadata: dict[str, Any] | None = None,
    max_bytes: int = MAX_VECTOR_BYTES_PER_MESSAGE,
) -> list[BatchPart]:
    """Cut a validated batch into parts that each fit in one Pub/Sub message."""
    data = np.ascontiguousarray(vectors, dtype=np.float32)
    step = rows_per_message(data.shape[1], max_bytes)
    starts = list(range(0, data.shape[0], step)) or [0]
    return [
        BatchPart(
            model_id=model_id,
            batch_id=batch_id,
            part=i,
            parts=len(starts),
            row_offset=start,
            timestamp=timestamp,
            vectors=data[start : start + step],
            metadata=dict(metadata or {}),
        )
        for i, start in enumerate(starts)
    ]


def encode(part: BatchPart) -> Message:
    """Serialise one part to the v1 wire format."""
    header = orjson.dumps(
        {
            "v": FORMAT_VERSION,
            "model_id": part.model_id,
            "batch_id": part.batch_id,
            "part": part.part,
            "parts": part.parts,
            "row_offset": part.row_offset,
            "count": part.count,
            "dimension": part.dimension,
            "dtype": "<f4",
            "timestamp": part.timestamp.isoformat(),
            "metadata": part.metadata,
        }
    )
    # Joined straight from the array's buffer: one copy of the vectors, not two.
    body = np.ascontiguousarray(part.vectors, dtype="<f4").data
    attributes = {
        "format_version": str(FORMAT_VERSION),
        "model_id": part.model_id,
        "batch_id": part.batch_id,
        "part": str(part.part),
        "parts": str(part.parts),
    }
    return Message(b"".join((MAGIC, _HEADER_LEN.pack(len(header)), header, body)), attributes)


def _int(header: dict[str, Any], name: str, minimum: int = 0) -> int:
    value = header.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValidationError(name, f"header field must be an integer >= {minimum}", 400)
    return value


def decode(data: bytes, attributes: dict[str, str] | None = None) -> BatchPart:
    """Parse a v1 message; raise :class:`ValidationError` for anything malformed."""
    attributes = attributes or {}
    version = attributes.get("format_version", str(FORMAT_VERSION))
    if version != str(FORMAT_VERSION):
        raise ValidationError("format_version", f"unsupported message version {version!r}", 400)
    if len(data) < len(MAGIC) + _HEADER_LEN.size or not data.startswith(MAGIC):
        raise ValidationError("data", "not an EDM1 message (bad magic bytes)", 400)
    (header_len,) = _HEADER_LEN.unpack_from(data, len(MAGIC))
    start = len(MAGIC) + _HEADER_LEN.size
    if start + header_len > len(data):
        raise ValidationError("data", "header length exceeds message size", 400)
    try:
        header = orjson.loads(data[start : start + header_len])
    except orjson.JSONDecodeError as exc:
        raise ValidationError("data", f"header is not valid JSON: {exc}", 400) from exc
    if not isinstance(header, dict) or header.get("v") != FORMAT_VERSION:
        raise ValidationError("format_version", "header version missing or unsupported", 400)
    if header.get("dtype") != "<f4":
        raise ValidationError("dtype", "only little-endian float32 ('<f4') is supported", 400)
    count, dimension = _int(header, "count", 1), _int(header, "dimension", 1)
    part, parts = _int(header, "part"), _int(header, "parts", 1)
    if part >= parts:
        raise ValidationError("part", f"part {part} is not below parts {parts}", 400)
    body = memoryview(data)[start + header_len :]  # a view: the vectors are copied once below
    if body.nbytes != 4 * count * dimension:
        raise ValidationError(
            "data", f"payload has {body.nbytes} bytes, expected {4 * count * dimension}", 400
        )
    vectors = np.frombuffer(body, dtype="<f4").reshape(count, dimension).astype(np.float32)
    if not np.isfinite(vectors).all():
        raise ValidationError("embeddings", "contains NaN or infinite values", 422)
    try:
        timestamp = datetime.fromisoformat(str(header.get("timestamp")))
    except ValueError as exc:
        raise ValidationError("timestamp", "header timestamp is not ISO-8601", 400) from exc
    if timestamp.tzinfo is None:
        raise ValidationError("timestamp", "header timestamp must carry a UTC offset", 400)
    metadata = header.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise ValidationError("metadata", "must be a JSON object", 400)
    decoded = BatchPart(
        model_id=check_model_id(header.get("model_id")),
        batch_id=check_batch_id(header.get("batch_id")),
        part=part,
        parts=parts,
        row_offset=_int(header, "row_offset"),
        timestamp=timestamp,
        vectors=vectors,
        metadata=metadata,
    )
    for name in ("model_id", "batch_id", "part", "parts"):
        if name in attributes and attributes[name] != str(getattr(decoded, name)):
            raise ValidationError(name, "attribute disagrees with the message header", 400)
    return decoded
