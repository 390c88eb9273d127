"""Cloud Functions (2nd gen) entry points. Thin on purpose: decode, call one handler, encode.

Each deployed function uses this same source with its own ``entry_point``:

============  ========================  ====================================================
function      trigger                   what it does
============  ========================  ====================================================
ingest        HTTPS                     ``POST /embeddings/batch``: validate, publish
persist       Pub/Sub ``embeddings``    write the batch to Cloud SQL (idempotent)
stats         Pub/Sub ``embeddings``    fold the batch into Memorystore running statistics
detect        HTTPS (Scheduler)         ``POST /drift/check[/{model_id}]``: run detection;
                                        with ``?fanout=true`` publish one request per model
check         Pub/Sub ``embeddings-     check the one model a fan-out request names, once
              detect``                  per schedule slot
api           HTTPS                     operator API: status, history, config, baselines
============  ========================  ====================================================
"""

from __future__ import annotations

import functions_framework
from cloudevents.http.event import CloudEvent
from drift_monitor import logs
from drift_monitor.config import Settings
from drift_monitor.domain.errors import ValidationError
from drift_monitor.entrypoints import (
    api_http,
    detect_fanout,
    detect_http,
    ingest_http,
    subscribers,
)
from flask import Request, Response
from werkzeug.exceptions import HTTPException

# Read the configuration when the instance starts: a ConfigError stops start-up (the log names
# the variable) instead of failing every request with 500.
Settings.from_env()


@functions_framework.errorhandler(HTTPException)
def http_error(error: HTTPException) -> Response:
    """Paths the framework itself does not route (``/favicon.ico``, ``/a%0Ab``) answer JSON too."""
    status = error.code or 500
    field = "method" if status == 405 else "path"
    return ingest_http.error_response(
        ValidationError(field, error.description or error.name, status)
    )


@functions_framework.http
def ingest(request: Request) -> Response:
    with logs.request_context(request.headers):  # trace ids on every line
        return ingest_http.handle(request)


@functions_framework.cloud_event
def persist(event: CloudEvent) -> None:
    subscribers.persist(event)


@functions_framework.cloud_event
def stats(event: CloudEvent) -> None:
    subscribers.fold_stats(event)


@functions_framework.http
def detect(request: Request) -> Response:
    with logs.request_context(request.headers):  # trace ids on every line
        return detect_http.handle(request)


@functions_framework.cloud_event
def check(event: CloudEvent) -> None:
    detect_fanout.run_model(event)


@functions_framework.http
def api(request: Request) -> Response:
    with logs.request_context(request.headers):  # trace ids on every line
        return api_http.handle(request)
