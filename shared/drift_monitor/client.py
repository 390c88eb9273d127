"""Send embeddings to the monitor from an inference service.

Two ways, same result:

* :class:`HttpSender` posts to ``POST /embeddings/batch`` (stdlib only, no extra dependency);
  ``fmt="npy"`` (default) sends raw float32, ``fmt="json"`` the seed's JSON body.
* :class:`PubSubSender` publishes straight to the ``embeddings`` topic in the documented
  message format (``docs/message-format.md``), skipping the HTTP hop. It validates the batch
  with the same rules as the endpoint, except the model's established dimension, which only
  the subscribers know (a mismatching message is dead-lettered there).

Both accept any ``(n, d)`` array-like of floats.
"""

from __future__ import annotations

import io
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson

from drift_monitor.domain import envelope, validation
from drift_monitor.domain.errors import ValidationError


@dataclass(frozen=True)
class SendResult:
    batch_id: str
    accepted: int
    parts: int


class SendError(Exception):
    """The monitor refused the batch (``status`` 4xx) or could not take it (5xx)."""

    def __init__(self, status: int, body: dict[str, Any] | str) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body

    @property
    def retryable(self) -> bool:
        return self.status >= 500 or self.status == 429


def _timestamp(value: datetime | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if value.tzinfo is None:
        raise ValueError("timestamp must be timezone-aware (e.g. datetime.now(UTC))")
    return value.isoformat()


class HttpSender:
    """Client of ``POST /embeddings/batch``.

    Parameters
    ----------
    base_url
        e.g. ``http://127.0.0.1:8080`` or the ingest function's URL.
    api_key
        Sent as ``Authorization: Bearer <api_key>`` when given.
    timeout
        Seconds per request.
    path
        The ingest path; a Cloud Function URL already points at the function, use ``""``.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        path: str = "/embeddings/batch",
    ) -> None:
        self.url = base_url.rstrip("/") + path
        self.api_key = api_key
        self.timeout = timeout

    def send(
        self,
        model_id: str,
        vectors: Any,
        *,
        timestamp: datetime | str | None = None,
        batch_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        fmt: str = "npy",
    ) -> SendResult:
        """Send one batch; return what the monitor accepted.

        A retry after an error should reuse the same ``batch_id``: every write downstream is
        idempotent on it, so a batch that was in fact accepted is not counted twice.

        Raises
        ------
        SendError
            The monitor answered with an error status (``.status``, ``.body``).
        """
        batch_id = batch_id or uuid.uuid4().hex
        ts = _timestamp(timestamp)
        headers = {"Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        if fmt == "npy":
            buffer = io.BytesIO()
            np.save(buffer, np.ascontiguousarray(vectors, dtype=np.float32), allow_pickle=False)
            data = buffer.getvalue()
            params = {"model_id": model_id, "batch_id": batch_id}
            if ts is not None:
                params["timestamp"] = ts
            if metadata:
                params["metadata"] = orjson.dumps(metadata).decode()
            url = f"{self.url}?{urllib.parse.urlencode(params)}"
            headers["Content-Type"] = validation.NPY_CONTENT_TYPE
        elif fmt == "json":
            body: dict[str, Any] = {
                "embeddings": np.asarray(vectors, dtype=np.float32),
                "model_id": model_id,
                "batch_id": batch_id,
            }
            if ts is not None:
                body["timestamp"] = ts
            if metadata:
                body["metadata"] = metadata
            data = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
            url = self.url
            headers["Content-Type"] = validation.JSON_CONTENT_TYPE
        else:
            raise ValueError(f"fmt must be 'npy' or 'json', not {fmt!r}")
        request = urllib.request.Request(url, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer = orjson.loads(response.read())
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                detail: dict[str, Any] | str = orjson.loads(raw)
            except orjson.JSONDecodeError:
                detail = raw.decode(errors="replace")
            raise SendError(exc.code, detail) from None
        return SendResult(answer["batch_id"], int(answer["accepted"]), int(answer.get("parts", 1)))


class PubSubSender:
    """Publish batches straight to the Pub/Sub topic (official client; honours the emulator).

    Parameters
    ----------
    project, topic
        ``GOOGLE_CLOUD_PROJECT`` and ``PUBSUB_TOPIC`` (``embeddings``) of the deployment.
    batch_size
        Row limit per batch, as the endpoint's ``BATCH_SIZE``.
    """

    def __init__(
        self,
        project: str,
        topic: str = "embeddings",
        *,
        timeout: float = 30.0,
        batch_size: int = 10_000,
        publisher: Any | None = None,
    ) -> None:
        from drift_monitor.adapters.pubsub import PubSubPublisher

        self.publisher = publisher or PubSubPublisher(project, topic, timeout=timeout)
        self.limits = validation.Limits(batch_size=batch_size, max_request_bytes=2**62)

    def send(
        self,
        model_id: str,
        vectors: Any,
        *,
        timestamp: datetime | str | None = None,
        batch_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> SendResult:
        """Validate, split into messages, publish, and wait until every publish resolved.

        Raises
        ------
        ValidationError
            The batch breaks a rule the endpoint enforces (nothing is published).
        TransientError
            The broker did not confirm every message: retry with the same ``batch_id``.
        """
        now = datetime.now(UTC)
        array = np.asarray(vectors)
        if array.ndim != 2 or array.dtype.kind != "f":
            raise ValidationError("embeddings", "must be a 2-D array of floats")
        npy = io.BytesIO()
        np.save(npy, array, allow_pickle=False)
        request = validation.IngestRequest(
            body=npy.getvalue(),
            content_type=validation.NPY_CONTENT_TYPE,
            params={
                k: v
                for k, v in {
                    "model_id": model_id,
                    "batch_id": batch_id,
                    "timestamp": _timestamp(timestamp),
                    "metadata": orjson.dumps(metadata).decode() if metadata else None,
                }.items()
                if v is not None
            },
        )
        batch = validation.parse_request(request, self.limits, now)
        parts = envelope.split_batch(
            batch.model_id, batch.batch_id, batch.timestamp, batch.vectors, batch.metadata
        )
        self.publisher.publish([envelope.encode(p) for p in parts])
        return SendResult(batch.batch_id, batch.count, len(parts))
