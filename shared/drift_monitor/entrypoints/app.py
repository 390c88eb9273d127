"""The single Flask application behind ``drift-monitor serve`` (every function in one process).

Routes: ``POST /embeddings/batch`` (ingest), ``GET /healthz``, and whatever the detection and
operator API modules register (see :func:`register_optional_routes`).
"""

from __future__ import annotations

import importlib
import time

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from drift_monitor import logs
from drift_monitor.bootstrap import Container
from drift_monitor.domain.errors import ValidationError
from drift_monitor.entrypoints import ingest_http
from drift_monitor.entrypoints.ingest_http import error_response, json_response

# Modules that add their own routes with ``register(app, container)``; a module that is not
# shipped in this build is skipped.
OPTIONAL_ROUTE_MODULES = (
    "drift_monitor.entrypoints.detect_http",  # POST /drift/check, /drift/check/<model_id>
    "drift_monitor.entrypoints.api_http",  # /drift/status, /drift/history, /models, ...
)


def create_app(container: Container) -> Flask:
    """Build the app around an already-built container (``bootstrap.build(..., embedded=True)``)."""
    app = Flask("drift_monitor")
    # The ingest handler enforces MAX_REQUEST_BYTES itself, with a JSON 413 naming the field.
    app.config["MAX_CONTENT_LENGTH"] = None
    app.extensions["drift_monitor.container"] = container

    @app.post("/embeddings/batch")
    def ingest_batch() -> Response:
        return ingest_http.handle_with(request, container)

    @app.get("/healthz")
    def healthz() -> Response:
        if not container.ready:
            return json_response({"status": "starting"}, 503)
        mode = "embedded" if container.embedded else "production"
        return json_response({"status": "ok", "mode": mode}, 200)

    @app.before_request
    def start_request_log() -> None:
        g.drift_started = time.perf_counter()
        project = container.settings.google_cloud_project
        g.drift_log_token = logs.set_context(logs.trace_fields(request.headers, project))

    @app.after_request
    def log_request(response: Response) -> Response:
        started = g.get("drift_started")
        latency = time.perf_counter() - started if started is not None else 0.0
        logs.log(
            "ERROR" if response.status_code >= 500 else "INFO",
            f"{request.method} {request.path} {response.status_code}",
            httpRequest=logs.http_request(
                method=request.method,
                url=request.full_path.rstrip("?"),
                status=response.status_code,
                latency_seconds=latency,
                response_size=response.content_length,
                request_size=request.content_length,
                user_agent=request.user_agent.string or None,
                remote_ip=request.remote_addr,
                referer=request.referrer,
                protocol=request.environ.get("SERVER_PROTOCOL"),
            ),
        )
        return response

    @app.teardown_request
    def end_request_log(_error: BaseException | None) -> None:
        token = g.pop("drift_log_token", None)
        if token is not None:
            logs.reset_context(token)

    @app.errorhandler(ValidationError)
    def validation_error(error: ValidationError) -> Response:
        return error_response(error)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        field = "method" if status == 405 else "path"
        return error_response(ValidationError(field, error.description or error.name, status))

    register_optional_routes(app, container)
    return app


def register_optional_routes(app: Flask, container: Container) -> None:
    """Let detection and the operator API add their routes.

    Each module in :data:`OPTIONAL_ROUTE_MODULES` that defines ``register(app, container)`` is
    called here; add new route modules to that tuple.
    """
    for name in OPTIONAL_ROUTE_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        register = getattr(module, "register", None)
        if register is not None:
            register(app, container)
