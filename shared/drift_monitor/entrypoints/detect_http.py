"""HTTP entry point for detection (Cloud Function ``detect``; ``drift-monitor serve`` too).

``POST /drift/check`` runs every model, ``POST /drift/check/{model_id}`` one model; both
answer ``200 {"checked_at", "results": [...]}`` with one status document per model. Cloud
Scheduler calls the first every few minutes, through the ``scheduled_detection`` workflow,
which sends its Google ID token (``docs/deploy.md``).
Models run one after another inside a time budget; ``docs/detection.md`` explains the choice
over a Pub/Sub fan-out and how to scale out later. After a run over every model, batches older
than ``BATCH_RETENTION_DAYS`` are pruned within a small time budget (``service/retention.py``);
the answer's ``retention`` member has the counts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from flask import Flask, Request, Response, request
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule

from drift_monitor import bootstrap, logs
from drift_monitor.domain.batch import check_model_id
from drift_monitor.domain.errors import TransientError, ValidationError
from drift_monitor.entrypoints import auth, latency
from drift_monitor.service import detection, retention

URLS = Map(
    [
        Rule("/drift/check", methods=["POST"], endpoint="all"),
        Rule("/drift/check/<path:model_id>", methods=["POST"], endpoint="one"),
    ],
    strict_slashes=False,
)


def json_response(payload: object, status: int = 200) -> Response:
    return Response(
        orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY),
        status=status,
        mimetype="application/json",
    )


def error(field: str, message: str, status: int) -> Response:
    return json_response(ValidationError(field, message, status).to_dict(), status)


def now_of(container: Any) -> datetime:
    """The container's clock (tests and replays set one), else the wall clock."""
    clock: Callable[[], datetime] | None = getattr(container, "clock", None)
    return clock() if clock is not None else datetime.now(UTC)


def collaborators(container: Any) -> dict[str, Any]:
    """Keyword arguments of :func:`detection.run_detection` taken from the container."""
    return {
        "repository": container.repository,
        "monitor": container.monitor,
        "stats": container.stats,
        "alerting": getattr(container, "alerting", None),
        "metrics": getattr(container, "metrics", None),
        "settings": container.settings,
    }


def summary(outcome: detection.DetectionOutcome) -> dict[str, Any]:
    """The status document without the full engine report (kept in the results table)."""
    doc = outcome.to_dict()
    doc.pop("report", None)
    doc["result_id"] = outcome.result_id
    doc["alerts"] = _alerts(outcome.alerts)
    return doc


def _alerts(alerts: Any) -> list[dict[str, Any]]:
    if not alerts:
        return []
    out = []
    for item in alerts:
        decision = getattr(item, "decision", None)
        out.append(
            {
                "channel": getattr(item, "channel", None),
                "decision": getattr(decision, "value", decision),
                "sent": getattr(item, "sent", None),
                "error": getattr(item, "error", None),
            }
        )
    return out


def prune_after_run(container: Any, now: datetime) -> dict[str, Any] | None:
    """Delete batches past ``BATCH_RETENTION_DAYS`` after a run over every model.

    Bounded by :data:`~drift_monitor.service.retention.PRUNE_AFTER_RUN_SECONDS`; what is left
    goes at the next run. Returns the counts, None when retention is disabled (or the
    repository keeps no batches to prune), or ``{"error": ...}``: a failing prune is logged and
    never fails the detection run, whose results are already stored.
    """
    repository = container.repository
    if not hasattr(repository, "prune_report"):
        return None
    try:
        result = retention.prune_expired(repository, container.settings, now)
    except Exception as exc:  # retention must never cost a detection answer
        logs.log("ERROR", f"batch retention failed: {exc}", error=type(exc).__name__)
        return {"error": f"{type(exc).__name__}: {exc}"}
    return None if result is None else dict(result.to_dict())


def handle(request: Request) -> Response:
    """Cloud Function ``detect``."""
    return handle_with(request, bootstrap.sql_container())


def handle_with(request: Request, container: Any) -> Response:
    adapter = URLS.bind("detect.invalid")
    try:
        endpoint, values = adapter.match(request.path, method=request.method)
    except HTTPException as exc:
        status = exc.code or 404
        return error("method" if status == 405 else "path", exc.description or exc.name, status)
    refused = auth.check(request, container.settings, auth.API)
    if refused is not None:
        return refused
    now = now_of(container)
    if endpoint == "all" and request.args.get("fanout", "").lower() in ("1", "true"):
        from drift_monitor.entrypoints import detect_fanout

        return detect_fanout.tick(request, container, now)
    try:
        if endpoint == "one":
            model_id = check_model_id(values["model_id"])
            if container.repository.model_dimension(model_id) is None:
                return error("model_id", f"unknown model {model_id!r}", 404)
            outcomes = [detection.run_detection(model_id, now=now, **collaborators(container))]
        else:
            outcomes = detection.run_all(now=now, **collaborators(container))
    except ValidationError as exc:
        return json_response(exc.to_dict(), exc.status)
    except TransientError as exc:
        logs.log("WARNING", f"detection could not list models: {exc}")
        return error("storage", "the database is unavailable; retry", 503)
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    logs.log("INFO", "detection run finished", models=len(outcomes), **counts)
    answer: dict[str, Any] = {
        "checked_at": detection.iso(now),
        "counts": counts,
        "results": [summary(o) for o in outcomes],
    }
    if endpoint == "all":
        answer["retention"] = prune_after_run(container, now)
    latency.push_due("detect", container, force=True)  # SQL timings and pool of this run
    return json_response(answer)


class Schedule:
    """Embedded mode's stand-in for Cloud Scheduler: run every model every ``every`` seconds.

    Each run is followed by the retention prune, as after ``POST /drift/check``. A daemon
    thread; :meth:`stop` ends it after the run in progress. A failing run is logged and the
    schedule carries on.
    """

    def __init__(self, container: Any, every: float) -> None:
        if every <= 0:
            raise ValueError("the detection interval must be positive")
        self.container = container
        self.every = every
        self.runs = 0
        self.next_run: datetime | None = None  # when the loop wakes next (UTC)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="drift-detect", daemon=True)

    def start(self) -> Schedule:
        self.next_run = datetime.now(UTC) + timedelta(seconds=self.every)
        self._thread.start()
        logs.log("INFO", f"detection runs every {self.every:g} s", every_seconds=self.every)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                now = now_of(self.container)
                outcomes = detection.run_all(now=now, **collaborators(self.container))
                prune_after_run(self.container, now)
                self.runs += 1
                statuses = sorted({o.status for o in outcomes})
                logs.log("INFO", "scheduled detection finished", models=len(outcomes),
                         statuses=statuses)  # fmt: skip
            except Exception as exc:  # keep the schedule alive through storage hiccups
                logs.log("ERROR", f"scheduled detection failed: {exc}")
            self.next_run = datetime.now(UTC) + timedelta(seconds=self.every)


def register(app: Flask, container: Any) -> None:
    """Add the detection routes to the ``drift-monitor serve`` app."""

    def view(**_: Any) -> Response:
        return handle_with(request, container)

    app.add_url_rule("/drift/check", "drift_check_all", view, methods=["POST"])
    app.add_url_rule("/drift/check/<path:model_id>", "drift_check_one", view, methods=["POST"])
