"""HTTP entry point ``POST /embeddings/batch`` (Cloud Function ``ingest``, and ``serve``).

Answers ``202 {"batch_id", "accepted", "parts"}`` once every Pub/Sub publish has resolved;
errors are ``{"error": {"field", "message", "status"}}`` with status 400/405/413/415/422, or
503 when the broker did not confirm (retry with the same ``batch_id``).
"""

from __future__ import annotations

from typing import Any

import orjson
from flask import Request, Response

from drift_monitor import bootstrap, logs
from drift_monitor.domain import validation
from drift_monitor.domain.errors import TransientError, ValidationError
from drift_monitor.domain.validation import IngestRequest, Limits
from drift_monitor.entrypoints import auth
from drift_monitor.entrypoints.latency import observed
from drift_monitor.service import ingest

_READ_CHUNK = 1024 * 1024


def json_response(payload: object, status: int, headers: dict[str, str] | None = None) -> Response:
    """A JSON response (orjson; numpy-free payloads only)."""
    return Response(
        orjson.dumps(payload), status=status, mimetype="application/json", headers=headers
    )


def error_response(error: ValidationError) -> Response:
    return json_response(error.to_dict(), error.status)


def handle(request: Request) -> Response:
    """Cloud Function ``ingest``: collaborators come from the process-wide container."""
    return handle_with(request, bootstrap.container())


def handle_with(request: Request, container: Any) -> Response:
    """Validate, publish and answer; ``container`` supplies settings, registry, publisher."""
    with observed("ingest", container) as answer:
        response = _handle(request, container)
        answer.status = response.status_code
        return response


def _handle(request: Request, container: Any) -> Response:
    if request.method != "POST":
        return json_response(
            ValidationError("method", "use POST", 405).to_dict(), 405, {"Allow": "POST"}
        )
    refused = auth.check(request, container.settings, auth.API)
    if refused is not None:
        return refused
    limits = Limits.from_settings(container.settings)
    try:
        validation.check_content_length(request.content_length, limits)
    except ValidationError as exc:
        return _refuse_unread(exc)
    try:
        validation.check_content_type(request.content_type)
        body = _read_body(request, limits.max_request_bytes)
        result = ingest.accept_batch(
            IngestRequest(
                body=body,
                content_type=request.content_type,
                params=request.args.to_dict(),
                headers=dict(request.headers.items()),
            ),
            limits=limits,
            registry=container.registry,
            publisher=container.publisher,
        )
    except ValidationError as exc:
        logs.log("INFO", f"ingest rejected: {exc}", field=exc.field, status=exc.status)
        return error_response(exc)
    except TransientError as exc:
        logs.log("WARNING", f"ingest could not publish: {exc}")
        error = ValidationError("publish", "the message broker is unavailable; retry", 503)
        return json_response(error.to_dict(), 503, {"Retry-After": "5"})
    logs.log(
        "INFO",
        "ingest accepted",
        batch_id=result.batch_id,
        accepted=result.accepted,
        parts=result.parts,
        warnings=list(result.warnings),
    )
    return json_response(result.to_dict(), 202)


def _refuse_unread(error: ValidationError) -> Response:
    """Answer without reading the body a client declared too large.

    functions-framework drains (buffers) the request body after a plain response; a streamed
    response is exempt, so an oversized upload is never held in memory (the server closes
    the connection rather than skip the unread body).
    """
    logs.log("INFO", f"ingest rejected: {error}", field=error.field, status=error.status)
    return Response(
        iter([orjson.dumps(error.to_dict())]),
        status=error.status,
        mimetype="application/json",
    )


def _read_body(request: Request, limit: int) -> bytes:
    """Read at most ``limit`` bytes; a chunked body that goes past it is a 413."""
    if request.content_length is not None:
        return request.get_data(cache=False)
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = request.stream.read(_READ_CHUNK)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise ValidationError(
                "body",
                f"request body exceeds the limit of {limit} bytes (MAX_REQUEST_BYTES)",
                413,
            )
        chunks.append(chunk)
