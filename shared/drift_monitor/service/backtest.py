"""Backtest: replay a recorded stream through the production code on a virtual clock.

"What would have paged last month?" The stream (embeddings with timestamps) is cut at the
detection schedule. Before each scheduled run, the rows that arrived since the previous run
go through ingest validation and the in-process bus, hence the persist and statistics
handlers, into a temporary SQLite store; then the scheduled run (:func:`run_all` and the
retention prune, as ``POST /drift/check`` does) decides, and the alert decisions go to a
recording channel instead of PagerDuty or a webhook. The clock every component reads is the
virtual one, so windows, baselines, cooldowns, retention and statistics buckets behave as
they would have in production. Nothing outside the temporary directory is written.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from drift_monitor import bootstrap
from drift_monitor.config import Settings
from drift_monitor.domain.errors import ValidationError
from drift_monitor.domain.model_config import ModelConfig
from drift_monitor.domain.validation import IngestRequest, Limits
from drift_monitor.service import alerting, detection, ingest

# Rows are sent in batches of at most this span of stream time (and BATCH_SIZE rows): close
# enough to the recorded timestamps for hour-long windows, few enough requests to be fast.
BATCH_SPAN = timedelta(minutes=15)
# Unix seconds a replay can date (Python datetimes, with room for the runs after the last row)
FIRST_SECOND = int(datetime(1, 1, 2, tzinfo=UTC).timestamp())
LAST_SECOND = int(datetime(9999, 12, 1, tzinfo=UTC).timestamp())


class StreamError(ValueError):
    """The stream file is unusable; the message is one line naming the problem."""


@dataclass(frozen=True)
class Stream:
    """Embeddings and their timestamps, sorted by time.

    Attributes
    ----------
    embeddings
        float32, shape ``(n, d)``, finite.
    seconds
        int64 Unix seconds, shape ``(n,)``, non-decreasing.
    """

    embeddings: npt.NDArray[np.float32]
    seconds: npt.NDArray[np.int64]


def load_stream(path: Path) -> Stream:
    """Read ``STREAM.npz`` (``embeddings`` (n, d), ``timestamps`` (n,)); sort it by time.

    ``timestamps`` are int64 Unix seconds or numpy ``datetime64`` (float seconds, such as
    ``time.time()`` values, are floored to whole seconds); rows may come in any order.

    Raises
    ------
    StreamError
        Missing file or key, wrong shapes or lengths, NaN or infinite values, an empty stream.
    """
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = set(archive.files)
            for key in ("embeddings", "timestamps"):
                if key not in keys:
                    raise StreamError(f"{path}: missing array {key!r} (found: {sorted(keys)})")
            embeddings = archive["embeddings"]
            timestamps = archive["timestamps"]
    except StreamError:
        raise
    except FileNotFoundError as exc:
        raise StreamError(f"{path}: no such file") from exc
    except Exception as exc:  # zip or npy errors: not an .npz of plain arrays
        raise StreamError(f"{path}: not a readable .npz file ({type(exc).__name__})") from exc
    if embeddings.ndim != 2 or embeddings.shape[1] < 1:
        raise StreamError(f"embeddings must be 2-D (n, d), got shape {embeddings.shape}")
    if embeddings.shape[0] == 0:
        raise StreamError("the stream is empty: embeddings has no rows")
    if not np.issubdtype(embeddings.dtype, np.number) or np.issubdtype(
        embeddings.dtype, np.complexfloating
    ):
        raise StreamError(f"embeddings must be real numbers, got dtype {embeddings.dtype}")
    if timestamps.ndim != 1 or timestamps.shape[0] != embeddings.shape[0]:
        raise StreamError(
            f"timestamps must have shape ({embeddings.shape[0]},) like the embeddings' rows, "
            f"got {timestamps.shape}"
        )
    vectors = embeddings.astype(np.float32, copy=False)  # no second copy of a float32 stream
    if not all(np.isfinite(vectors[i : i + 65536]).all() for i in range(0, len(vectors), 65536)):
        raise StreamError("embeddings contain NaN or infinite values (or overflow float32)")
    if np.issubdtype(timestamps.dtype, np.datetime64):
        if np.any(np.isnat(timestamps)):
            raise StreamError("timestamps contain NaT")
        seconds = timestamps.astype("datetime64[s]").astype(np.int64)
    elif np.issubdtype(timestamps.dtype, np.integer):
        seconds = timestamps.astype(np.int64)
    elif np.issubdtype(timestamps.dtype, np.floating):  # time.time() values: whole seconds
        if not np.all(np.isfinite(timestamps)):
            raise StreamError("timestamps contain NaN or infinite values")
        if np.abs(timestamps).max() >= 2.0**62:
            raise StreamError("timestamps are too large for Unix seconds")
        seconds = np.floor(timestamps).astype(np.int64)
    else:
        raise StreamError(
            f"timestamps must be int64 Unix seconds or datetime64, got dtype {timestamps.dtype}"
        )
    if seconds.max() > LAST_SECOND or seconds.min() < FIRST_SECOND:
        raise StreamError(
            f"timestamps run from {seconds.min()} to {seconds.max()}: Unix seconds must lie "
            "between the years 1 and 9999 (milliseconds? divide by 1000)"
        )
    if np.all(seconds[1:] >= seconds[:-1]):  # already in time order: no reordered copy
        return Stream(np.ascontiguousarray(vectors), seconds)
    order = np.argsort(seconds, kind="stable")
    return Stream(vectors[order], seconds[order])


@dataclass(frozen=True)
class Run:
    at: datetime
    status: str
    evidence: float | None
    threshold: float | None


@dataclass(frozen=True)
class Page:
    at: datetime
    action: str  # trigger | remind | resolve


@dataclass
class Backtest:
    """The replay's record: every scheduled run and every notification."""

    model_id: str
    every_minutes: float
    runs: list[Run] = field(default_factory=list)
    pages: list[Page] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        triggers = [p for p in self.pages if p.action == "trigger"]
        return {
            "model_id": self.model_id,
            "runs": [
                {
                    "at": detection.iso(r.at),
                    "status": r.status,
                    "evidence": r.evidence,
                    "threshold": r.threshold,
                }
                for r in self.runs
            ],
            "pages": [{"at": detection.iso(p.at), "action": p.action} for p in self.pages],
            "summary": {
                "runs": len(self.runs),
                "drift_runs": sum(r.status == "drift" for r in self.runs),
                "triggers": len(triggers),
                "first_trigger_at": detection.iso(triggers[0].at) if triggers else None,
            },
        }


class VirtualClock:
    """The replay's "now", moved forward by the replay only."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def replay_settings(settings: Settings, directory: Path) -> Settings:
    """``settings`` pointed at a temporary store, with every external system switched off."""
    return replace(
        settings,
        database_url=None,
        instance_connection_name=None,
        redis_url=None,
        gcs_bucket=None,
        data_dir=directory,
        prometheus_gateway=None,
        pagerduty_routing_key=None,
        environment="local",
    )


def _npy(vectors: npt.NDArray[np.float32]) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, vectors, allow_pickle=False)
    return buffer.getvalue()


def _time(seconds: int) -> datetime:
    return datetime.fromtimestamp(int(seconds), UTC)


def run_backtest(
    stream: Stream,
    *,
    model_id: str,
    config: Mapping[str, Any] | None,
    every_minutes: float,
    settings: Settings,
    progress: Callable[[int, int], None] | None = None,
) -> Backtest:
    """Replay ``stream`` for ``model_id`` with detection every ``every_minutes``.

    Parameters
    ----------
    stream
        From :func:`load_stream`.
    model_id
        The model the stream belongs to (validated like an ingest request's).
    config
        A ``POST /models/{id}/config`` body, or None for the defaults.
    every_minutes
        The detection schedule. The first run is one interval after the first row.
    settings
        The environment's settings (``HISTORICAL_WINDOW_DAYS``, ``ALERT_COOLDOWN_MINUTES``,
        ``FALSE_ALARM_INTERVAL_DAYS``, ...); storage and external systems are replaced.
    progress
        Called with (runs done, runs in all) after each run.

    Raises
    ------
    ValidationError
        A bad configuration or model id, or rows the ingest validation refuses.
    """
    if not every_minutes > 0:
        raise ValidationError("every", "must be a positive number of minutes")
    validated = ModelConfig.resolve(
        config,
        default_threshold=settings.drift_threshold,
        default_false_alarm_interval_days=settings.false_alarm_interval_days,
    )
    step = timedelta(minutes=every_minutes)
    first = _time(int(stream.seconds[0]))
    last = _time(int(stream.seconds[-1]))
    with tempfile.TemporaryDirectory(prefix="drift-monitor-backtest-") as directory:
        clock = VirtualClock(first)
        container = bootstrap.build(
            replay_settings(settings, Path(directory)), embedded=True, clock=clock
        )
        try:
            return _replay(
                stream, container, clock, model_id, validated, step, first, last, progress
            )
        finally:
            if container.engine is not None:
                container.engine.dispose()


def _replay(
    stream: Stream,
    container: bootstrap.Container,
    clock: VirtualClock,
    model_id: str,
    config: ModelConfig,
    step: timedelta,
    first: datetime,
    last: datetime,
    progress: Callable[[int, int], None] | None,
) -> Backtest:
    from drift_monitor.entrypoints import detect_http

    container.migrate()
    channel = alerting.RecordingNotifier("pagerduty")
    container.alerting = detection.AlertDispatcher(
        store=container.monitor,
        cooldown=timedelta(minutes=container.settings.alert_cooldown_minutes),
        pagerduty=channel,
        webhook=None,  # recorded on the one channel, never sent
    )
    container.metrics = None
    if config.overrides:
        assert container.monitor is not None
        container.monitor.save_config(model_id, dict(config.overrides), first)
    limits = Limits.from_settings(container.settings)
    record = Backtest(model_id=model_id, every_minutes=step.total_seconds() / 60)
    total = int((last - first) / step) + 1
    cursor = 0
    seconds = stream.seconds
    for index in range(total):
        now = first + (index + 1) * step
        clock.now = now
        end = int(np.searchsorted(seconds, now.timestamp(), side="left"))
        cursor = _send(stream, cursor, end, container, model_id, limits, now)
        outcomes = detection.run_all(
            now=now, time_budget_seconds=float("inf"), **detect_http.collaborators(container)
        )
        detect_http.prune_after_run(container, now)
        for outcome in outcomes:
            if outcome.model_id != model_id:
                continue
            monitor = outcome.monitor or {}
            record.runs.append(
                Run(now, outcome.status, monitor.get("evidence"), monitor.get("threshold"))
            )
        for alert in channel.sent:
            action = "remind" if alert.reminder else alert.action
            record.pages.append(Page(now, action))
        channel.sent.clear()
        if progress is not None:
            progress(index + 1, total)
    return record


def _send(
    stream: Stream,
    start: int,
    end: int,
    container: bootstrap.Container,
    model_id: str,
    limits: Limits,
    now: datetime,
) -> int:
    """Ingest rows ``start:end`` in batches of at most ``BATCH_SPAN`` and ``BATCH_SIZE`` rows."""
    seconds = stream.seconds
    span = int(BATCH_SPAN.total_seconds())
    # as many rows as BATCH_SIZE and MAX_REQUEST_BYTES allow (float32 body plus .npy header)
    row_bytes = 4 * stream.embeddings.shape[1]
    max_rows = max(1, min(limits.batch_size, (limits.max_request_bytes - 1024) // row_bytes))
    while start < end:
        stop = int(np.searchsorted(seconds, seconds[start] + span, side="left"))
        stop = min(stop, end, start + max_rows)
        request = IngestRequest(
            body=_npy(stream.embeddings[start:stop]),
            content_type="application/x-npy",
            params={
                "model_id": model_id,
                "timestamp": detection.iso(_time(int(seconds[start]))),
                "batch_id": f"backtest-{start}",
            },
        )
        ingest.accept_batch(
            request,
            limits=limits,
            registry=container.registry,
            publisher=container.publisher,
            now=now,
        )
        start = stop
    return end
