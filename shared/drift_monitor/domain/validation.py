"""Turn an ingest request into a validated batch, or a precise :class:`ValidationError`.

Pure: no I/O, no clock (the caller passes ``now``), no registry (the caller passes the model's
known dimension). Two body formats are accepted:

* ``application/json``: the seed's ``{"embeddings": [[...], ...], "model_id": "...",
  "timestamp": "ISO-8601", "metadata": {...}}`` plus an optional ``batch_id``.
* ``application/x-npy``: one float16/float32/float64 ``.npy`` array of rank 2; ``model_id``,
  ``timestamp``, ``batch_id`` and ``metadata`` (a JSON object) come from query parameters or
  the ``X-Model-Id``, ``X-Timestamp``, ``X-Batch-Id`` and ``X-Metadata`` headers.

Checks on the happy path are vectorised (one ``np.array`` conversion, one ``isfinite``);
Python-level loops run only to explain an error or in the rare case of JSON booleans.

Timestamps must carry a UTC offset (``Z`` or ``+hh:mm``): a naive time is rejected rather than
guessed, because a client sending local wall-clock time would otherwise shift its data by
hours without anyone noticing. A missing timestamp means "now" (the time the request arrived).
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from drift_monitor.domain.batch import Vectors, check_batch_id, check_model_id
from drift_monitor.domain.errors import ValidationError

JSON_CONTENT_TYPE = "application/json"
NPY_CONTENT_TYPE = "application/x-npy"
# The metadata object is copied into every Pub/Sub message header of the batch.
MAX_METADATA_BYTES = 16 * 1024
_FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class Limits:
    """Size limits and expectations that apply to every request."""

    batch_size: int = 10_000
    max_request_bytes: int = 32 * 1024 * 1024
    max_future_seconds: int = 300
    embedding_dimension: int | None = None
    # Horizons a batch's timestamp is compared with, for the 202's warnings (0: none).
    retention_days: int = 0
    historical_window_days: int = 0
    stats_horizon_seconds: int = 0

    @classmethod
    def from_settings(cls, settings: Any) -> Limits:
        """Build from :class:`drift_monitor.config.Settings` (``BATCH_SIZE`` etc.)."""
        historical = int(getattr(settings, "historical_window_days", 0) or 0)
        return cls(
            batch_size=settings.batch_size,
            max_request_bytes=settings.max_request_bytes,
            max_future_seconds=settings.max_future_seconds,
            embedding_dimension=settings.embedding_dimension,
            retention_days=int(getattr(settings, "batch_retention_days", 0) or 0),
            historical_window_days=historical,
            # as bootstrap.stats_retention_seconds: at least a week, as long as detection looks
            stats_horizon_seconds=max(7 * 86_400, historical * 86_400),
        )


def timestamp_warnings(timestamp: datetime, now: datetime, limits: Limits) -> list[str]:
    """What will happen to a batch dated ``timestamp``, when that is not simply "it is used".

    A batch is accepted whatever its age, but one dated before a horizon is deleted, left out
    of the running statistics, or read by no rolling window; the client is told so.
    """
    age = now - timestamp
    days = age.total_seconds() / 86_400
    warnings: list[str] = []
    if limits.retention_days and age > timedelta(days=limits.retention_days):
        warnings.append(
            f"is {days:.1f} days old, beyond BATCH_RETENTION_DAYS={limits.retention_days}: "
            "the batch is stored, then deleted by the next prune unless a baseline window "
            "covers it"
        )
    if limits.stats_horizon_seconds and age.total_seconds() > limits.stats_horizon_seconds:
        warnings.append(
            f"is {days:.1f} days old, before the statistics horizon of "
            f"{limits.stats_horizon_seconds / 86_400:g} days: it is not folded into the "
            "running statistics"
        )
    if limits.historical_window_days and age > timedelta(days=limits.historical_window_days):
        warnings.append(
            f"is {days:.1f} days old, older than HISTORICAL_WINDOW_DAYS="
            f"{limits.historical_window_days}: no current window or rolling baseline reads "
            "it; only a pinned baseline covering it will"
        )
    return warnings


@dataclass(frozen=True)
class IngestRequest:
    """The transport-neutral parts of an HTTP ingest request.

    ``headers`` keys are matched case-insensitively; ``params`` are the query parameters.
    """

    body: bytes
    content_type: str | None
    params: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return None


@dataclass(frozen=True)
class ValidBatch:
    """A batch that passed every check that does not need the model's stored dimension.

    The dimension check (:func:`check_dimension`) needs the model's established dimension,
    or ``EMBEDDING_DIMENSION`` for a new model; the service layer looks it up.
    """

    model_id: str
    batch_id: str
    timestamp: datetime
    vectors: Vectors
    metadata: dict[str, Any]

    @property
    def count(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def dimension(self) -> int:
        return int(self.vectors.shape[1])


def check_content_length(content_length: int | None, limits: Limits) -> None:
    """Reject a declared body size over ``MAX_REQUEST_BYTES`` before any byte is read (413)."""
    if content_length is not None and content_length > limits.max_request_bytes:
        raise ValidationError(
            "body",
            f"request body of {content_length} bytes exceeds the limit of "
            f"{limits.max_request_bytes} bytes (MAX_REQUEST_BYTES)",
            413,
        )


def media_type(content_type: str | None) -> str:
    """``"application/json; charset=utf-8"`` -> ``"application/json"``."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def check_content_type(content_type: str | None) -> str:
    """Return the media type if the endpoint accepts it, else raise 415 (before reading)."""
    kind = media_type(content_type)
    if kind not in (JSON_CONTENT_TYPE, NPY_CONTENT_TYPE):
        raise _unsupported(kind)
    return kind


def _unsupported(kind: str) -> ValidationError:
    return ValidationError(
        "content_type",
        f"unsupported content type {kind or '(none)'!r}: use {JSON_CONTENT_TYPE!r} "
        f"or {NPY_CONTENT_TYPE!r}",
        415,
    )


def parse_request(request: IngestRequest, limits: Limits, now: datetime) -> ValidBatch:
    """Validate a request body and its parameters.

    Parameters
    ----------
    request
        Body, content type, query parameters and headers.
    limits
        ``BATCH_SIZE``, ``MAX_REQUEST_BYTES``, ``MAX_FUTURE_SECONDS``, ``EMBEDDING_DIMENSION``.
    now
        The time the request arrived (tz-aware); used for the future-timestamp check and as
        the default timestamp.

    Returns
    -------
    ValidBatch
        float32 C-contiguous vectors of shape ``(count, dimension)``, all finite.

    Raises
    ------
    ValidationError
        Naming the field: 415 unsupported content type, 413 too large, 400 undecodable
        body, 422 anything else.
    """
    check_content_length(len(request.body), limits)
    kind = media_type(request.content_type)
    if kind == JSON_CONTENT_TYPE:
        fields = _json_fields(request.body)
        vectors = _json_vectors(fields.get("embeddings"), request.body, limits)
    elif kind == NPY_CONTENT_TYPE:
        fields = {
            "model_id": _param(request, "model_id", "X-Model-Id"),
            "batch_id": _param(request, "batch_id", "X-Batch-Id"),
            "timestamp": _param(request, "timestamp", "X-Timestamp"),
            "metadata": _metadata_param(_param(request, "metadata", "X-Metadata")),
        }
        vectors = parse_npy(request.body, limits)
    else:
        raise _unsupported(kind)
    model_id = check_model_id(fields.get("model_id"))
    raw_batch_id = fields.get("batch_id")
    batch_id = uuid.uuid4().hex if raw_batch_id is None else check_batch_id(raw_batch_id)
    timestamp = parse_timestamp(fields.get("timestamp"), now, limits.max_future_seconds)
    metadata = check_metadata(fields.get("metadata"))
    return ValidBatch(model_id, batch_id, timestamp, vectors, metadata)


def check_dimension(vectors: npt.NDArray[Any], expected: int | None, *, source: str) -> None:
    """Raise 422 if the row length differs from the dimension established for the model."""
    if expected is not None and vectors.shape[1] != expected:
        raise ValidationError(
            "embeddings",
            f"rows have dimension {vectors.shape[1]} but this model expects {expected} ({source})",
            422,
        )


def parse_timestamp(value: object, now: datetime, max_future_seconds: int) -> datetime:
    """Parse an ISO-8601 timestamp with offset into UTC; ``None`` means ``now``."""
    if value is None:
        return now.astimezone(UTC)
    if not isinstance(value, str):
        raise ValidationError("timestamp", "must be an ISO-8601 string", 422)
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise ValidationError(
            "timestamp", f"{value[:64]!r} is not an ISO-8601 date-time", 422
        ) from exc
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValidationError(
            "timestamp",
            "must include a UTC offset, e.g. '2024-01-01T12:00:00Z' or '...+02:00'",
            422,
        )
    parsed = parsed.astimezone(UTC)
    if parsed > now + timedelta(seconds=max_future_seconds):
        raise ValidationError(
            "timestamp",
            f"{value!r} is more than {max_future_seconds} s in the future (MAX_FUTURE_SECONDS)",
            422,
        )
    return parsed


def check_metadata(value: object) -> dict[str, Any]:
    """Metadata is an optional JSON object of bounded size."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError("metadata", "must be a JSON object", 422)
    try:
        size = len(orjson.dumps(value))
    except TypeError as exc:  # e.g. integers beyond 64 bits
        raise ValidationError("metadata", f"cannot be serialised: {exc}", 422) from exc
    if size > MAX_METADATA_BYTES:
        raise ValidationError(
            "metadata", f"is {size} bytes as JSON; the limit is {MAX_METADATA_BYTES}", 422
        )
    return value


def parse_npy(body: bytes, limits: Limits) -> Vectors:
    """Read one rank-2 float16/32/64 ``.npy`` array from bytes, without pickle.

    The header is checked (dtype, rank, row count) before the data is touched, and the data
    length must match the header exactly.
    """
    stream = io.BytesIO(body)
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    except (ValueError, EOFError, SyntaxError, TypeError) as exc:
        raise ValidationError("body", f"not a readable .npy array: {exc}", 400) from exc
    if dtype.fields is not None or dtype.kind != "f" or dtype.itemsize not in (2, 4, 8):
        raise ValidationError(
            "embeddings", f"dtype {dtype!s} is not supported: use float16, float32 or float64"
        )
    if len(shape) != 2:
        raise ValidationError(
            "embeddings", f"array has rank {len(shape)} (shape {shape}); expected 2"
        )
    rows, dimension = int(shape[0]), int(shape[1])
    _check_shape(rows, dimension, limits)
    offset = stream.tell()
    expected = rows * dimension * dtype.itemsize
    if len(body) - offset != expected:
        raise ValidationError(
            "body",
            f".npy data has {len(body) - offset} bytes but the header announces {expected}",
            400,
        )
    flat = np.frombuffer(body, dtype=dtype, count=rows * dimension, offset=offset)
    array = flat.reshape((rows, dimension), order="F" if fortran else "C")
    return _finite_float32(array)


def _check_shape(rows: int, dimension: int, limits: Limits) -> None:
    if rows < 0 or dimension < 0:
        raise ValidationError("embeddings", f"shape ({rows}, {dimension}) has a negative size")
    if rows == 0:
        raise ValidationError("embeddings", "batch is empty: send at least one vector")
    if rows > limits.batch_size:
        raise ValidationError(
            "embeddings",
            f"batch has {rows} vectors; the limit is {limits.batch_size} (BATCH_SIZE)",
            413,
        )
    if dimension == 0:
        raise ValidationError("embeddings", "vectors are empty (dimension 0)")


def _finite_float32(array: npt.NDArray[Any]) -> Vectors:
    if not np.isfinite(array).all():
        row = int(np.flatnonzero(~np.isfinite(array).all(axis=1))[0])
        raise ValidationError("embeddings", f"row {row} contains NaN or infinite values")
    if array.dtype == np.float64 and (np.abs(array) > _FLOAT32_MAX).any():
        row = int(np.flatnonzero((np.abs(array) > _FLOAT32_MAX).any(axis=1))[0])
        raise ValidationError("embeddings", f"row {row} has values outside the float32 range")
    return np.ascontiguousarray(array, dtype=np.float32)


def _param(request: IngestRequest, name: str, header: str) -> str | None:
    value = request.params.get(name)
    return value if value is not None else request.header(header)


def _metadata_param(raw: str | None) -> object:
    if raw is None:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValidationError("metadata", f"is not valid JSON: {exc}", 422) from exc


class _NonFiniteConstant(Exception):
    """Raised by the stdlib fallback parser on a ``NaN``/``Infinity`` token."""


def _reject_constant(token: str) -> float:
    raise _NonFiniteConstant(token)


def _json_fields(body: bytes) -> dict[str, Any]:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        # orjson refuses NaN/Infinity tokens and overflowing numbers such as 1e400; they are
        # syntactically JSON-ish but semantically non-finite values, which is a 422.
        try:
            json.loads(body, parse_constant=_reject_constant)
        except _NonFiniteConstant as constant:
            raise ValidationError(
                "embeddings", f"contains a non-finite value ({constant}); only finite numbers"
            ) from exc
        except (ValueError, UnicodeDecodeError):
            raise ValidationError("body", f"malformed JSON: {exc}", 400) from exc
        except RecursionError:
            # orjson stops at 1024 levels; the stdlib parser runs out of stack instead.
            raise ValidationError("body", f"malformed JSON: {exc}", 400) from None
        raise ValidationError("embeddings", f"contains a non-finite value: {exc}") from exc
    if not isinstance(document, dict):
        raise ValidationError("body", "JSON body must be an object", 400)
    return document


def _json_vectors(value: object, body: bytes, limits: Limits) -> Vectors:
    if value is None:
        raise ValidationError("embeddings", "is required: a list of equal-length number lists")
    if not isinstance(value, list):
        raise ValidationError("embeddings", "must be a list of equal-length number lists")
    if len(value) == 0:
        raise ValidationError("embeddings", "batch is empty: send at least one vector")
    if len(value) > limits.batch_size:
        raise ValidationError(
            "embeddings",
            f"batch has {len(value)} vectors; the limit is {limits.batch_size} (BATCH_SIZE)",
            413,
        )
    try:
        array = np.array(value)
    except ValueError:
        raise _explain_shape(value) from None
    if array.ndim != 2:
        if array.ndim == 1:
            raise ValidationError("embeddings", "must be a list of rows (lists), not numbers")
        raise ValidationError(
            "embeddings", f"rows must be flat number lists (got rank {array.ndim})"
        )
    if array.dtype.kind == "O":
        array = _object_rows(value)
    elif array.dtype.kind not in "fiu":
        raise _explain_values(value)
    # numpy silently turns true/false into 1/0 next to numbers; look for them only when the
    # body contains a boolean token at all, so the common path stays a pure numpy conversion.
    if _may_hold_boolean(body) and any(type(v) is bool for row in value for v in row):
        raise _explain_values(value)
    _check_shape(array.shape[0], array.shape[1], limits)
    return _finite_float32(array.astype(np.float64, copy=False))


def _may_hold_boolean(body: bytes) -> bool:
    """Whether ``body`` contains ``true`` or ``false`` (False is exact; True may be a string).

    A one-byte search is a ``memchr``, many times faster than looking for a word in a body of
    megabytes of digits; ``u`` and ``f`` occur in no JSON number and in none of the request's
    field names, so the word search runs only when some string value has those letters.
    """
    return (b"u" in body and b"true" in body) or (b"f" in body and b"false" in body)


def _object_rows(value: list[Any]) -> npt.NDArray[np.float64]:
    """Rows numpy could not type: big integers (fine) or None/objects/strings (not fine)."""
    for i, row in enumerate(value):
        for j, v in enumerate(row):
            if type(v) not in (int, float):
                raise _explain_values(value, (i, j))
    return np.array(value, dtype=np.float64)


def _explain_values(value: list[Any], at: tuple[int, int] | None = None) -> ValidationError:
    if at is None:
        at = next(
            (
                (i, j)
                for i, row in enumerate(value)
                for j, v in enumerate(row)
                if type(v) not in (int, float)
            ),
            (0, 0),
        )
    i, j = at
    found = type(value[i][j]).__name__
    return ValidationError("embeddings", f"row {i}, column {j} is not a number (got {found})")


def _explain_shape(value: list[Any]) -> ValidationError:
    width: int | None = None
    for i, row in enumerate(value):
        if not isinstance(row, list):
            return ValidationError("embeddings", f"row {i} is not a list of numbers")
        if width is None:
            width = len(row)
        elif len(row) != width:
            return ValidationError(
                "embeddings", f"ragged rows: row {i} has {len(row)} values, row 0 has {width}"
            )
        for j, v in enumerate(row):
            if type(v) not in (int, float):
                return ValidationError(
                    "embeddings",
                    f"row {i}, column {j} is not a number (got {type(v).__name__})",
                )
    return ValidationError("embeddings", "must be a list of equal-length number lists")
