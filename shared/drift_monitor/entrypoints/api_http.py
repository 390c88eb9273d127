"""The operator API (Cloud Function ``api``; mounted in ``drift-monitor serve`` as well).

=======  ======================================  =====  =====================================
method   path                                    key    what
=======  ======================================  =====  =====================================
GET      /drift/status/{model_id}                api    latest result; ``insufficient_data`` with
                                                       window counts before a decision (404
                                                       unknown model)
GET      /drift/history/{model_id}?since=&limit=  api    past results, newest first
GET      /models                                 api    models with their last status
GET      /models/{model_id}/config               api    effective configuration
POST     /models/{model_id}/config               admin  partial update, validated
POST     /models/{model_id}/baseline             admin  pin ``{"start","end"}`` or unpin
POST     /models/{model_id}/rebuild-stats        admin  refold running statistics from SQL
GET      /drift/report/{model_id}                api    self-contained HTML drift report
GET      /                                       api    HTML landing page: models, links
GET      /metrics                                api    Prometheus text (embedded mode)
GET      /openapi.yaml                           none   this API's OpenAPI 3.1 document
=======  ======================================  =====  =====================================

Model ids may contain ``/`` and are routed with werkzeug's ``path`` converter. Every error is
``{"error": {"field", "message", "status"}}``; authentication runs before the body is read,
and a rejected request writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import orjson
from flask import Flask, Request, Response, request
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule

from drift_monitor import bootstrap, logs
from drift_monitor.domain.batch import check_model_id
from drift_monitor.domain.errors import NotFound, TransientError, ValidationError
from drift_monitor.domain.model_config import ModelConfig
from drift_monitor.entrypoints import auth
from drift_monitor.service.detection import iso

MAX_HISTORY = 1000
DEFAULT_HISTORY = 100
MAX_BODY_BYTES = 64 * 1024
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Handler = Callable[[Request, Any, Mapping[str, Any]], Response]

URLS = Map(
    [
        Rule("/drift/status/<path:model_id>", methods=["GET"], endpoint="status"),
        Rule("/drift/history/<path:model_id>", methods=["GET"], endpoint="history"),
        Rule("/models", methods=["GET"], endpoint="models"),
        Rule("/models/<path:model_id>/config", methods=["GET"], endpoint="get_config"),
        Rule("/models/<path:model_id>/config", methods=["POST"], endpoint="set_config"),
        Rule("/models/<path:model_id>/baseline", methods=["POST"], endpoint="baseline"),
        Rule("/models/<path:model_id>/rebuild-stats", methods=["POST"], endpoint="rebuild"),
        Rule("/drift/report/<path:model_id>", methods=["GET"], endpoint="report"),
        Rule("/", methods=["GET"], endpoint="home"),
        Rule("/metrics", methods=["GET"], endpoint="metrics"),
        Rule("/openapi.yaml", methods=["GET"], endpoint="openapi"),
    ],
    strict_slashes=False,
)

ACCESS: dict[str, auth.Access | None] = {
    "status": auth.API,
    "history": auth.API,
    "models": auth.API,
    "get_config": auth.API,
    "set_config": auth.ADMIN,
    "baseline": auth.ADMIN,
    "rebuild": auth.ADMIN,
    "report": auth.API,
    "home": auth.API,
    "metrics": auth.API,
    "openapi": None,  # the API description is public
}


def json_response(payload: object, status: int = 200) -> Response:
    return Response(
        orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS),
        status=status,
        mimetype="application/json",
    )


def _attr(row: Any, name: str, default: Any = None) -> Any:
    if isinstance(row, Mapping):
        return row.get(name, default)
    return getattr(row, name, default)


def parse_time(field: str, value: object) -> datetime:
    """An ISO-8601 timestamp with a timezone, else :class:`ValidationError` naming ``field``."""
    if not isinstance(value, str):
        raise ValidationError(field, "must be an ISO-8601 timestamp string")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise ValidationError(field, f"is not an ISO-8601 timestamp: {value!r}") from exc
    if parsed.tzinfo is None:
        raise ValidationError(field, "must include a timezone (e.g. 'Z' or '+00:00')")
    return parsed.astimezone(UTC)


def read_json(req: Request) -> Any:
    """The request body as JSON (an empty body is ``{}``)."""
    if req.content_length is not None and req.content_length > MAX_BODY_BYTES:
        raise ValidationError("body", f"must be at most {MAX_BODY_BYTES} bytes", 413)
    raw = req.get_data(cache=False)
    if len(raw) > MAX_BODY_BYTES:
        raise ValidationError("body", f"must be at most {MAX_BODY_BYTES} bytes", 413)
    if not raw.strip():
        return {}
    mimetype = req.mimetype or ""
    if mimetype and mimetype != "application/json" and not mimetype.endswith("+json"):
        raise ValidationError("content-type", "must be application/json", 415)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValidationError("body", f"is not valid JSON: {exc}", 400) from exc


def _known(container: Any, model_id: str) -> bool:
    return container.repository.model_dimension(model_id) is not None


def _require_model(container: Any, model_id: str) -> None:
    if not _known(container, model_id):
        raise NotFound(f"unknown model {model_id!r}")


def url_check(container: Any) -> Callable[[str], str]:
    """The SSRF check for ``alert_webhook`` under the current environment's policy."""
    from drift_monitor.adapters.url_safety import UrlPolicy, validate_webhook_url

    policy = UrlPolicy.for_environment(container.settings.environment)
    return lambda url: validate_webhook_url(url, policy)


def current_config(container: Any, model_id: str) -> ModelConfig:
    stored = container.monitor.get_config(model_id)
    return ModelConfig.resolve(stored, default_threshold=container.settings.drift_threshold)


def status_document(row: Any) -> dict[str, Any]:
    """The latest-result document: the stored report without the engine's raw copy."""
    report = dict(_attr(row, "report") or {})
    report.pop("report", None)
    report["result_id"] = _attr(row, "id")
    return report


# Per test in a history entry: the decision's inputs (p-value against its level, effect size
# against its practical floor), enough to chart a model's drift over time.
HISTORY_TEST_FIELDS = ("statistic", "p_value", "drift", "effect_size", "effect_threshold", "level")
HISTORY_REQUIRED = ("statistic", "p_value", "drift")


def history_entry(row: Any) -> dict[str, Any]:
    doc = status_document(row)
    tests = doc.get("tests") or {}
    return {
        "result_id": doc.get("result_id"),
        "checked_at": doc.get("checked_at"),
        "status": doc.get("status"),
        "drift_detected": doc.get("drift_detected"),
        "kl_divergence": doc.get("kl_divergence"),
        "confidence_interval": doc.get("confidence_interval"),
        "evidence": doc.get("evidence"),
        "threshold": doc.get("threshold"),
        "tests": {
            name: {k: t.get(k) for k in HISTORY_TEST_FIELDS if k in t or k in HISTORY_REQUIRED}
            for name, t in tests.items()
            if isinstance(t, Mapping)
        },
        "top_dimensions": list(doc.get("top_dimensions") or [])[:10],
        "windows": doc.get("windows"),
        "samples": doc.get("samples"),
        "config": doc.get("config"),
        "error": doc.get("error"),
    }


# ---- handlers -----------------------------------------------------------------------------


def get_status(req: Request, c: Any, values: Mapping[str, Any]) -> Response:
    model_id = check_model_id(values["model_id"])
    _require_model(c, model_id)
    latest = c.monitor.latest_result(model_id)
    if latest is not None and _attr(latest, "status") != "insufficient_data":
        return json_response(status_document(latest))
    # A known model without a decision: 200 with what its windows hold and what they need.
    from drift_monitor.service import status

    config = current_config(c, model_id)
    if latest is None:
        doc = status.pending_status(
            model_id,
            repository=c.repository,
            monitor=c.monitor,
            config=config,
            settings=c.settings,
            now=_now(c),
        )
    else:
        doc = status_document(latest)
    from drift_monitor.service.detection import warmup_vectors

    schedule = getattr(c, "schedule", None)
    next_run = getattr(schedule, "next_run", None)
    doc = status.explain_insufficient(
        doc,
        repository=c.repository,
        model_id=model_id,
        min_samples=config.min_samples,
        warmup_vectors=warmup_vectors(config),
        next_check_at=iso(next_run) if isinstance(next_run, datetime) else None,
    )
    return json_response(doc)


def get_history(req: Request, c: Any, values: Mapping[str, Any]) -> Response:
    model_id = check_model_id(values["model_id"])
    since = parse_time("since", req.args["since"]) if "since" in req.args else None
    raw_limit = req.args.get("limit", str(DEFAULT_HISTORY))
    try:
        limit = int(raw_limit)
    except ValueError as exc:
        raise ValidationError("limit", f"must be an integer, got {raw_limit!r}") from exc
    if not 1 <= limit <= MAX_HISTORY:
        raise ValidationError("limit", f"must be in [1, {MAX_HISTORY}], got {limit}")
    _require_model(c, model_id)
    rows = c.monitor.history(model_id, since, limit)
    return json_response({"model_id": model_id, "results": [history_entry(r) for r in rows]})


def list_models(req: Request, c: Any, values: Mapping[str, Any]) -> Response:
    return json_response({"models": models_with_status(c)})


def models_with_status(c: Any) -> list[dict[str, Any]]:
    models = []
    for row in c.repository.list_models():
        model_id = row if isinstance(row, str) else str(_attr(row, "model_id"))
        latest = c.monitor.latest_result(model_id)
        created = _attr(row, "created_at") if not isinstance(row, str) else None
        models.append(
            {
                "model_id": model_id,
                "dimension": None if isinstance(row, str) else _attr(row, "dimension"),
                "created_at": iso(created) if isinstance(created, datetime) else None,
                "last_status": None if latest is None else _attr(latest, "status"),
                "drift_detected": None if latest is None else bool(_attr(latest, "drift_detected")),
                "last_checked_at": None if latest is None else iso(_attr(latest, "checked_at")),
            }
        )
    return models


def get_config(req: Request, c: Any, values: Mapping[str, Any]) -> Response:
    model_id = check_model_id(values["model_id"])
    stored = c.monitor.get_config(model_id)
    if stored is None and not _known(c, model_id):
        raise NotFound(f"unknown model {model_id!r}")
    config = current_config(c, model_id)
    return json_response(
        {"model_id": model_id, "config": config.to_dict(), "overrides": dict(config.overrides)}
    )


def set_config(req: Request, c: Any, values: Mapping[str, Any]) -> Response:
    # A model may be configured before its first batch arrives (pre-provisioning).
    model_id = check_model_id(values["model_id"])
    changes = read_json(req)
    if not isinstance(changes, Mapping):
        raise ValidationError("body", "must be a JSON object of configuration fields")
    current = current_config(c, model_id)
    updated = current.updated(
        changes, default_threshold=c.settings.drift_threshold, url_check=url_check(c)
    )
    c.monitor.save_config(model_id, dict(updated.overrides))
    logs.log("INFO", "model configuration changed", model_id=model_id, fields=sorted(changes))
    return json_response(
        {"model_id": model_id, "config": updated.to_dict(), "overrides": dict(updated.overrides)}
    )


def set_baseline(req: Request, c: Any, values: Mapping[str, Any]) -> Response:
    model_id = check_model_id(values["model_id"])
    body = read_json(req)
    if not isinstance(body, Mapping):
        raise ValidationError("body", "must be a JSON object with start and end")
    unknown = sorted(set(body) - {"start", "end", "pinned"})
    if unknown:
        raise ValidationError(unknown[0], "is not a baseline field; allowed: start, end, pinned")
    pinned = body.get("pinned", True)
    if not isinstance(pinned, bool):
        raise ValidationError("pinned", "must be true or false")
    _require_model(c, model_id)
    now = _now(c)
    if not pinned:
        # Back to a rolling baseline: marked as refreshed at the epoch, so the next detection
        # run replaces it with a fresh HISTORICAL_WINDOW_DAYS window.
        stored = c.monitor.get_baseline(model_id)
        if stored is not None:
            c.monitor.set_baseline(
                model_id, _attr(stored, "start"), _attr(stored, "end"), False, EPOCH
            )
        return json_response({"model_id": model_id, "baseline": None, "pinned": False})
    for name in ("start", "end"):
        if name not in body:
            raise ValidationError(name, "is required (ISO-8601 timestamp with timezone)")
    start, end = parse_time("start", body["start"]), parse_time("end", body["end"])
    if not start < end:
        raise ValidationError("end", "must be after start")
    if end > now:
        raise ValidationError("end", "must not be in the future")
    count = int(c.repository.count_vectors(model_id, start, end))
    c.monitor.set_baseline(model_id, start, end, True, now)
    logs.log("INFO", "baseline pinned", model_id=model_id, start=iso(start), end=iso(end))
    return json_response(
        {
            "model_id": model_id,
            "baseline": {"start": iso(start), "end": iso(end), "pinned": True},
            "embeddings": count,
        }
    )


def rebuild(req: Request, c: Any, values: Mapping[str, Any]) -> Response:
    model_id = check_model_id(values["model_id"])
    body = read_json(req)
    if not isinstance(body, Mapping):
        raise ValidationError("body", "must be a JSON object")
    unknown = sorted(set(body) - {"start", "end"})
    if unknown:
        raise ValidationError(unknown[0], "is not a rebuild field; allowed: start, end")
    start = parse_time("start", body["start"]) if body.get("start") is not None else None
    end = parse_time("end", body["end"]) if body.get("end") is not None else None
    if start is not None and end is not None and not start < end:
        raise ValidationError("end", "must be after start")
    _require_model(c, model_id)
    from drift_monitor.service.rebuild import rebuild_stats

    folded = rebuild_stats(
        model_id, c.repository, c.stats, start=start, end=end, registry=c.registry
    )
    logs.log("INFO", "statistics rebuilt", model_id=model_id, folded=folded)
    return json_response({"model_id": model_id, "folded": folded})


def metrics_page(req: Request, c: Any, values: Mapping[str, Any]) -> Response:
    exporter = getattr(c, "metrics", None)
    render = getattr(exporter, "render", None)
    if render is None:
        raise NotFound("no local metrics page: metrics go to PROMETHEUS_GATEWAY")
    body, content_type = render()
    return Response(body, status=200, content_type=content_type)


REPORT_HISTORY = 500
# The report is one self-contained file: nothing may be loaded from anywhere.
REPORT_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:",
    "X-Content-Type-Options": "nosniff",
}


def html_response(text: str) -> Response:
    return Response(text, status=200, content_type="text/html; charset=utf-8",
                    headers=REPORT_HEADERS)  # fmt: skip


def get_report(req: Request, c: Any, values: Mapping[str, Any]) -> Response:
    from drift_monitor.entrypoints.report_page import render_report
    from drift_monitor.service.drift_report import latest_histograms

    model_id = check_model_id(values["model_id"])
    _require_model(c, model_id)
    history = [history_entry(r) for r in c.monitor.history(model_id, None, REPORT_HISTORY)]
    row = c.monitor.latest_result(model_id)
    latest = None if row is None else status_document(row)
    hists = latest_histograms(c.repository, model_id, latest)
    return html_response(render_report(model_id, history, latest, hists, generated_at=_now(c)))


def home(req: Request, c: Any, values: Mapping[str, Any]) -> Response:
    from drift_monitor.entrypoints.report_page import render_landing

    local_metrics = getattr(getattr(c, "metrics", None), "render", None) is not None
    return html_response(render_landing(models_with_status(c), metrics=local_metrics))


def openapi(req: Request, c: Any, values: Mapping[str, Any]) -> Response:
    text = resources.files("drift_monitor").joinpath("openapi.yaml").read_bytes()
    return Response(text, status=200, content_type="application/yaml")


HANDLERS: dict[str, Handler] = {
    "status": get_status,
    "history": get_history,
    "models": list_models,
    "get_config": get_config,
    "set_config": set_config,
    "baseline": set_baseline,
    "rebuild": rebuild,
    "metrics": metrics_page,
    "openapi": openapi,
    "report": get_report,
    "home": home,
}


def _now(c: Any) -> datetime:
    clock: Callable[[], datetime] | None = getattr(c, "clock", None)
    return clock() if clock is not None else datetime.now(UTC)


def _error(field: str, message: str, status: int) -> Response:
    return json_response(ValidationError(field, message, status).to_dict(), status)


def handle(request: Request) -> Response:
    """Cloud Function ``api``."""
    return handle_with(request, bootstrap.sql_container())


def handle_with(request: Request, container: Any) -> Response:
    """Route, authenticate, run one handler and map domain errors to statuses."""
    try:
        endpoint, values = URLS.bind("api.invalid").match(request.path, method=request.method)
    except HTTPException as exc:
        status = exc.code or 404
        return _error("method" if status == 405 else "path", exc.description or exc.name, status)
    need = ACCESS[endpoint]
    if need is not None:
        refused = auth.check(request, container.settings, need)
        if refused is not None:
            return refused
    try:
        return HANDLERS[endpoint](request, container, values)
    except ValidationError as exc:
        return json_response(exc.to_dict(), exc.status)
    except NotFound as exc:
        return _error("model_id", str(exc), 404)
    except TransientError as exc:
        logs.log("WARNING", f"operator API storage fault: {exc}")
        return _error("storage", "the database is unavailable; retry", 503)


def register(app: Flask, container: Any) -> None:
    """Mount every operator route on the ``drift-monitor serve`` app."""

    def view(**_: Any) -> Response:
        return handle_with(request, container)

    for rule in URLS.iter_rules():
        methods = sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
        app.add_url_rule(rule.rule, f"api_{rule.endpoint}", view, methods=methods)
