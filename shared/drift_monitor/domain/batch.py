"""The unit of data that flows through the pipeline: one part of one batch of embeddings."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from drift_monitor.domain.errors import ValidationError

Vectors = npt.NDArray[np.float32]

# A model id appears in URLs, Redis keys, metric labels and SQL rows: keep it boring.
# Both are matched with ``fullmatch``: ``$`` alone also matches before a trailing newline.
MODEL_ID_PATTERN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]|/(?!/)){0,127}")
BATCH_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def check_model_id(value: object) -> str:
    """Return ``value`` if it is a valid model id, else raise :class:`ValidationError`."""
    if not isinstance(value, str) or not value:
        raise ValidationError("model_id", "is required and must be a non-empty string", 422)
    if not MODEL_ID_PATTERN.fullmatch(value) or value.endswith("/") or ".." in value:
        raise ValidationError(
            "model_id",
            "must be 1-128 characters of letters, digits, '.', '_', '-' or single '/', "
            "starting with a letter or digit",
            422,
        )
    return value


def check_batch_id(value: object) -> str:
    """Return ``value`` if it is a valid client batch id, else raise :class:`ValidationError`."""
    if not isinstance(value, str) or not BATCH_ID_PATTERN.fullmatch(value):
        raise ValidationError(
            "batch_id",
            "must be 1-128 characters of letters, digits, '.', '_', ':' or '-', "
            "starting with a letter or digit",
            422,
        )
    return value


@dataclass(frozen=True)
class BatchPart:
    """One Pub/Sub message worth of a batch.

    A batch larger than one message is split into ``parts`` parts that share ``batch_id``;
    ``(model_id, batch_id, part)`` is the idempotency key of every write.
    ``vectors`` is a C-contiguous float32 array of shape ``(count, dimension)``.
    """

    model_id: str
    batch_id: str
    part: int
    parts: int
    row_offset: int
    timestamp: datetime
    vectors: Vectors
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def dimension(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def key(self) -> str:
        """Idempotency key: stable across redeliveries of the same message."""
        return f"{self.batch_id}#{self.part}"
