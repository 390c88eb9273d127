"""Scheduled drift detection: one model (:func:`run_detection`) or all of them (:func:`run_all`).

For each model the run

1. loads the model's configuration (:class:`~drift_monitor.domain.model_config.ModelConfig`);
2. fixes the **current window** ``[now - current_window_minutes, now)`` and the **baseline
   window**: a pinned range set through the API, or a rolling range — the
   ``HISTORICAL_WINDOW_DAYS`` before the current window — that moves forward at most every
   ``baseline_refresh_hours`` (and not while the model is in drift, so a refresh cannot
   silently swallow an open incident);
3. counts the embeddings in both windows (an indexed aggregate on ``batches``); fewer than
   ``min_samples`` in either gives status ``insufficient_data`` — no decision, not "no drift";
4. takes the current window and the vectors that arrived since the previous run from the
   running statistics (bucket counts and bottom-k samples), or from SQL (a uniform sample of
   at most ``max_samples`` rows per window) when ``DETECTION_SOURCE`` says so or the
   statistics cannot serve the run (:mod:`drift_monitor.service.window_source`); the
   baseline is always sampled from SQL, once per refresh;
5. runs the configured tests (:func:`drift_monitor.drift.compare`) on the window's distinct
   rows (:func:`instant_rows`) at the **instant** level of the model's false-page budget, and
   scores every vector that arrived since the previous run for novelty against the baseline;
6. advances the model's **sequential monitor** (:mod:`drift_monitor.drift.sequential`), whose
   state (evidence, calibration scores, watermark) is persisted per model with
   compare-and-set: the status is ``drift`` while its page is open;
7. stores the result (history), then hands the outcome to alerting and metrics.

Any exception inside one model's run is caught and recorded as status ``error``; the other
models still run. ``docs/detection.md`` compares the two window sources.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import numpy as np

from drift_monitor.config import Settings
from drift_monitor.domain.model_config import ModelConfig
from drift_monitor.drift import dispersion as clumping
from drift_monitor.drift import sequential
from drift_monitor.drift.battery import MAX_LISTED_DIMENSIONS
from drift_monitor.drift.decision import normalise_tests, test_levels
from drift_monitor.drift.knn import knn_distances
from drift_monitor.drift.quality import quality_report
from drift_monitor.service import window_source

logger = logging.getLogger(__name__)

STATUSES = ("ok", "drift", "insufficient_data", "error")
DEFAULT_TIME_BUDGET_SECONDS = 240.0
WARMUP_MIN_VECTORS = 500
# The instant check's default battery: the per-dimension AD test and the novelty-rate test,
# whose p-values (asymptotic; exact over exchangeable ranks) reach the instant level. The
# engine's default adds a 200-permutation MMD, whose smallest attainable p-value (1/201) is far
# above that level (1e-5 for hourly runs on a 365-day budget): it could never fire, and what it
# sees (whole-vector changes) is what the novelty evidence accumulates. A configured
# ``statistical_test`` is used as given.
INSTANT_TESTS = ("ad", "novelty")
# Reference rows the instant check tests the window against: a uniform part of R (R's rows are
# in random order). The check exists for obvious changes, where this is plenty; the window's
# own size limits its power, and the evidence uses all of R. Halves the per-run cost.
INSTANT_REFERENCE_ROWS = 1000
# Resamples of the window's KL interval (informational; the decision does not use it).
WINDOW_BOOTSTRAP = 50

Compare = Callable[..., Any]


class DetectionRepository(Protocol):
    """The parts of the SQL batch repository detection reads."""

    def count_vectors(self, model_id: str, start: datetime, end: datetime) -> int: ...

    def sample_vectors(
        self, model_id: str, start: datetime, end: datetime, max_rows: int, seed: int
    ) -> np.ndarray[Any, Any]: ...

    def list_models(self) -> Sequence[Any]: ...


class MonitorRepository(Protocol):
    """Configuration, baselines and results (``SqlMonitorRepository``)."""

    def get_config(self, model_id: str) -> Mapping[str, Any] | None: ...

    def get_baseline(self, model_id: str) -> Any: ...

    def set_baseline(
        self, model_id: str, start: datetime, end: datetime, pinned: bool, now: datetime
    ) -> Any: ...

    def add_result(self, result: Mapping[str, Any]) -> Any: ...

    def latest_result(self, model_id: str) -> Any: ...

    def get_detection_state(self, model_id: str) -> Any: ...

    def save_detection_state(
        self,
        model_id: str,
        expected_version: int | None,
        state: Mapping[str, Any],
        reference: bytes | None,
        calibration: bytes,
        now: datetime,
    ) -> bool: ...


class Alerting(Protocol):
    def handle(self, outcome: DetectionOutcome, config: ModelConfig, now: datetime) -> Any: ...


class Metrics(Protocol):
    """The metrics exporter (``drift_monitor.adapters.metrics.MetricsExporter``)."""

    def export_run(self, run: Any) -> bool: ...


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    def to_dict(self) -> dict[str, str]:
        return {"start": iso(self.start), "end": iso(self.end)}


@dataclass
class DetectionOutcome:
    """What one detection run found, in the shape the API and the results table use."""

    model_id: str
    status: str
    checked_at: datetime
    current: Window | None = None
    baseline: Window | None = None
    baseline_pinned: bool = False
    n_baseline: int = 0
    n_current: int = 0
    report: dict[str, Any] | None = None
    error: str | None = None
    duration_seconds: float = 0.0
    result_id: Any = None
    alerts: Any = None
    config: dict[str, Any] = field(default_factory=dict)
    monitor: dict[str, Any] | None = None
    source: str | None = None  # where the current window came from: "sketch" or "sql"
    source_reason: str | None = None  # why SQL rather than the running statistics

    @property
    def drift_detected(self) -> bool:
        return self.status == "drift"

    def to_dict(self) -> dict[str, Any]:
        """The status document (``GET /drift/status/{model_id}``, the stored ``report``)."""
        report = self.report or {}
        return {
            "model_id": self.model_id,
            "status": self.status,
            "drift_detected": self.drift_detected,
            "checked_at": iso(self.checked_at),
            "kl_divergence": report.get("kl_divergence"),
            "confidence_interval": report.get("confidence_interval"),
            # the sequential monitor: log10 evidence against its log10 threshold
            "evidence": None if self.monitor is None else self.monitor.get("evidence"),
            "threshold": None if self.monitor is None else self.monitor.get("threshold"),
            "false_alarm_interval_days": self.config.get("false_alarm_interval_days"),
            "monitor": self.monitor,
            "tests": report.get("tests", {}),
            "top_dimensions": report.get("top_dimensions", []),
            "quality": report.get("quality", {}),
            "windows": {
                "baseline": None
                if self.baseline is None
                else {**self.baseline.to_dict(), "pinned": self.baseline_pinned},
                "current": None if self.current is None else self.current.to_dict(),
            },
            "samples": {
                "baseline": self.n_baseline,
                "current": self.n_current,
                "baseline_used": report.get("n_reference", 0),
                "current_used": report.get("n_current", 0),
            },
            "config": self.config,
            "source": self.source,
            "source_reason": self.source_reason,
            # the engine's remaining output (alpha, dimension, per-test details, ...)
            "report": {k: v for k, v in report.items() if k not in _PROMOTED},
            "error": self.error,
            "duration_seconds": round(self.duration_seconds, 6),
        }


_PROMOTED = frozenset(
    {"kl_divergence", "confidence_interval", "tests", "top_dimensions", "quality"}
)


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _attr(row: Any, name: str) -> Any:
    return row[name] if isinstance(row, Mapping) else getattr(row, name)


def _seed(model_id: str, window: Window) -> int:
    # Same model and window -> same sample and bootstrap: re-running a check reproduces it.
    return zlib.crc32(f"{model_id}|{window.start.isoformat()}".encode())


def load_config(monitor: MonitorRepository, model_id: str, settings: Settings) -> ModelConfig:
    """The model's effective configuration (defaults when it has none stored)."""
    stored = monitor.get_config(model_id)
    return ModelConfig.resolve(
        stored,
        default_threshold=settings.drift_threshold,
        default_false_alarm_interval_days=settings.false_alarm_interval_days,
    )


def warmup_vectors(config: ModelConfig) -> int:
    """Baseline vectors needed before a model is monitored (the warm-up rule).

    Until its baseline window holds ``max(2 min_samples, 500)`` vectors a model reports
    ``insufficient_data`` and pages nothing: each half of the baseline sample (the novelty
    reference and its calibration scores) then holds at least ``min_samples`` vectors and the
    window battery's tail p-values are not read off a tiny reference. While the baseline holds
    fewer than ``max_samples`` vectors ("filling") a rolling baseline moves forward at every
    run instead of every ``baseline_refresh_hours``, so a new model's reference grows as fast
    as its traffic.
    """
    return max(2 * config.min_samples, WARMUP_MIN_VECTORS)


def choose_baseline(
    monitor: MonitorRepository,
    model_id: str,
    current: Window,
    config: ModelConfig,
    settings: Settings,
    now: datetime,
    *,
    hold: bool = False,
    filling: bool = False,
    end_by: datetime | None = None,
    after: datetime | None = None,
    holds_enough: Callable[[Window], bool] | None = None,
) -> tuple[Window, bool]:
    """Return the baseline window and whether it is pinned, refreshing a rolling one.

    A rolling baseline is ``[end - HISTORICAL_WINDOW_DAYS, end)`` with ``end`` the current
    window's start (or ``end_by``, the monitor's watermark, when earlier: vectors already
    scored never become reference) as of its last refresh. It moves once
    ``baseline_refresh_hours`` have passed, or at every run while ``filling``, but never while
    ``hold`` is set (an open page, or evidence building up above the freeze level) or while the
    model's latest result is a drift: a refresh must not swallow a shift into its own
    reference. Nor afterwards: a new window starts no earlier than ``after`` (the end of the
    model's last incident), and until the traffic since then ``holds_enough`` for a full
    baseline, the pre-incident window is kept.
    """
    stored = monitor.get_baseline(model_id)
    if stored is not None and bool(_attr(stored, "pinned")):
        return Window(_attr(stored, "start"), _attr(stored, "end")), True
    end = current.start if end_by is None else min(current.start, end_by)
    if stored is not None:
        updated_at: datetime = _attr(stored, "updated_at")
        due = filling or now - updated_at >= timedelta(hours=config.baseline_refresh_hours)
        if not due or hold or _in_drift(monitor, model_id):
            return Window(_attr(stored, "start"), min(_attr(stored, "end"), end)), False
    window = Window(end - timedelta(days=settings.historical_window_days), end)
    if after is not None and after > window.start:
        window = Window(min(after, end), end)
        if stored is not None and (
            window.start >= window.end or (holds_enough is not None and not holds_enough(window))
        ):
            return Window(_attr(stored, "start"), min(_attr(stored, "end"), end)), False
    monitor.set_baseline(model_id, window.start, window.end, False, now)
    return window, False


def _in_drift(monitor: MonitorRepository, model_id: str) -> bool:
    latest = monitor.latest_result(model_id)
    return latest is not None and _attr(latest, "status") == "drift"


class ConcurrentRun(RuntimeError):
    """Another run saved the model's monitor state first; this run's evidence was not stored."""


@dataclass
class _Stored:
    """The detection service's view of a model's persisted monitor state."""

    version: int | None
    state: sequential.MonitorState
    reference: np.ndarray[Any, Any] | None = None  # the fitted baseline's R (float32)
    shift: sequential.ShiftBasis | None = None  # kept with R: the shift bets' rows and mean
    reference_changed: bool = False
    watermark: datetime | None = None
    last_run_at: datetime | None = None
    interval_minutes: float | None = None
    fitted: tuple[str, str] | None = None  # the baseline window R and C were drawn from
    baseline_count: int = 0
    incident_end: datetime | None = None  # when the last page resolved
    dispersion: clumping.BaselineDispersion = field(default_factory=clumping.BaselineDispersion)

    @classmethod
    def load(cls, monitor: MonitorRepository, model_id: str) -> _Stored:
        row = monitor.get_detection_state(model_id)
        if row is None:
            return cls(version=None, state=sequential.MonitorState())
        doc = dict(_attr(row, "state"))
        fitted = doc.get("fitted")
        shape = doc.get("reference_shape")
        blob = _attr(row, "reference")
        reference, shift = None, None
        if shape and blob:
            rows, dim = int(shape[0]), int(shape[1])
            end = 4 * rows * dim
            reference = np.frombuffer(blob, dtype="<f4", count=rows * dim).reshape(rows, dim)
            shift_rows = int(doc.get("shift_rows") or 0)
            shift_end = end + 2 * shift_rows * dim + 8 * dim
            n_blocks = int(doc.get("shift_blocks") or 0)  # states saved before had none
            if shift_rows and len(blob) in (shift_end, shift_end + n_blocks * (2 * dim + 4)):
                calibration = np.frombuffer(
                    blob, dtype="<f2", count=shift_rows * dim, offset=end
                ).reshape(shift_rows, dim)
                mean = np.frombuffer(
                    blob, dtype="<f8", count=dim, offset=end + 2 * shift_rows * dim
                )
                blocks = None
                if n_blocks and len(blob) > shift_end:
                    means = np.frombuffer(
                        blob, dtype="<f2", count=n_blocks * dim, offset=shift_end
                    ).reshape(n_blocks, dim)
                    sizes = np.frombuffer(
                        blob, dtype="<i4", count=n_blocks, offset=shift_end + 2 * n_blocks * dim
                    )
                    blocks = clumping.BlockMeans(means=means, sizes=sizes)
                shift = sequential.ShiftBasis(mean=mean, calibration=calibration, blocks=blocks)
        return cls(
            version=int(_attr(row, "version")),
            state=sequential.MonitorState.from_document(
                doc.get("monitor", {}), _attr(row, "calibration")
            ),
            reference=reference,
            shift=shift,
            watermark=_parse_time(doc.get("watermark")),
            last_run_at=_parse_time(doc.get("last_run_at")),
            interval_minutes=doc.get("interval_minutes"),
            fitted=None if fitted is None else (str(fitted[0]), str(fitted[1])),
            baseline_count=int(doc.get("baseline_count", 0)),
            incident_end=_parse_time(doc.get("incident_end")),
            dispersion=clumping.BaselineDispersion.from_document(doc.get("dispersion")),
        )

    def refit(
        self,
        fitted: sequential.Reference,
        scores: np.ndarray[Any, Any],
        window: tuple[str, str],
        count: int,
        dispersion: clumping.BaselineDispersion,
        blocks: clumping.BlockMeans | None = None,
    ) -> None:
        """Take a new baseline: ``R``, the shift rows, ``C``'s sorted ``scores``, its clumping
        (and the ``blocks`` means it is measured from along a shift direction)."""
        self.dispersion = dispersion
        self.reference = fitted.fit
        self.shift = sequential.shift_basis(fitted, blocks=blocks)
        self.reference_changed = True
        self.state = self.state.with_calibration(np.sort(scores))
        self.fitted, self.baseline_count = window, count

    def save(self, monitor: MonitorRepository, model_id: str, now: datetime) -> None:
        document = {
            "monitor": self.state.to_document(),
            "watermark": None if self.watermark is None else iso(self.watermark),
            "last_run_at": None if self.last_run_at is None else iso(self.last_run_at),
            "interval_minutes": self.interval_minutes,
            "fitted": None if self.fitted is None else list(self.fitted),
            "baseline_count": self.baseline_count,
            "incident_end": None if self.incident_end is None else iso(self.incident_end),
            "reference_shape": None if self.reference is None else list(self.reference.shape),
            "shift_rows": None if self.shift is None else int(self.shift.calibration.shape[0]),
            "shift_blocks": None
            if self.shift is None or self.shift.blocks is None
            else int(self.shift.blocks.sizes.shape[0]),
            "dispersion": self.dispersion.to_document(),
        }
        blob = None
        if self.reference_changed or self.version is None:
            blob = b""
            if self.reference is not None:
                blob = self.reference.astype("<f4").tobytes()
                if self.shift is not None:
                    blob += self.shift.calibration.astype("<f2").tobytes()
                    blob += self.shift.mean.astype("<f8").tobytes()
                    if self.shift.blocks is not None:
                        blob += self.shift.blocks.means.astype("<f2").tobytes()
                        blob += self.shift.blocks.sizes.astype("<i4").tobytes()
        saved = monitor.save_detection_state(
            model_id,
            self.version,
            document,
            blob,
            self.state.calibration_blob(),
            now,
        )
        if not saved:
            raise ConcurrentRun(f"another detection run for {model_id} saved its state first")


def _parse_time(value: Any) -> datetime | None:
    if value is None:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def run_detection(
    model_id: str,
    *,
    repository: DetectionRepository,
    monitor: MonitorRepository,
    stats: Any = None,
    alerting: Alerting | None,
    metrics: Metrics | None,
    settings: Settings,
    now: datetime,
    compare: Compare | None = None,
) -> DetectionOutcome:
    """Run detection for one model and record the outcome; never raises for model faults.

    Parameters
    ----------
    model_id:
        The model to check.
    repository:
        Batch storage with ``count_vectors`` / ``sample_vectors``.
    monitor:
        Configuration, baselines, the results table and the monitor state.
    stats:
        The running-statistics store: where the current window and the arrived vectors come
        from unless ``DETECTION_SOURCE`` or a fallback says SQL
        (:mod:`drift_monitor.service.window_source`). ``None`` reads SQL.
    alerting, metrics:
        Receive every outcome after it is stored (``None`` skips them).
    settings:
        ``DRIFT_THRESHOLD``, ``HISTORICAL_WINDOW_DAYS`` and ``FALSE_ALARM_INTERVAL_DAYS``
        defaults.
    now:
        The detection time (tz-aware); the current window ends here.
    compare:
        The statistics engine entry point; :func:`drift_monitor.drift.compare` by default.

    Returns
    -------
    DetectionOutcome
        Status ``ok``, ``drift``, ``insufficient_data`` or ``error``. A concurrent run that
        stored the model's monitor state first makes this run read it again and redo its
        work once (nothing is counted twice); if that also loses, the status is ``error``.
    """
    started = time.perf_counter()
    outcome = DetectionOutcome(model_id=model_id, status="error", checked_at=now)
    config: ModelConfig | None = None
    for attempt in range(2):
        outcome = DetectionOutcome(model_id=model_id, status="error", checked_at=now)
        try:
            config = load_config(monitor, model_id, settings)
            outcome.config = config.to_dict()
            _detect(outcome, config, repository, monitor, settings, now, compare, stats)
            break
        except ConcurrentRun as exc:
            outcome.status, outcome.error = "error", str(exc)
            if attempt == 0:
                continue
        except Exception as exc:  # one model's fault must not stop the others
            outcome.status = "error"
            outcome.error = f"{type(exc).__name__}: {exc}"
            logger.exception("detection failed", extra={"fields": {"model_id": model_id}})
            break
    outcome.duration_seconds = time.perf_counter() - started
    try:
        outcome.result_id = monitor.add_result(result_row(outcome))
    except Exception as exc:
        outcome.status = "error"
        outcome.error = outcome.error or f"storing the result failed: {type(exc).__name__}: {exc}"
        logger.exception(
            "storing detection result failed", extra={"fields": {"model_id": model_id}}
        )
    _notify(outcome, config, alerting, metrics, now)
    logger.info(
        "detection finished",
        extra={
            "fields": {
                "model_id": model_id,
                "status": outcome.status,
                "n_baseline": outcome.n_baseline,
                "n_current": outcome.n_current,
                "evidence": None if outcome.monitor is None else outcome.monitor.get("evidence"),
                "source": outcome.source,
                "source_reason": outcome.source_reason,
                "duration_seconds": round(outcome.duration_seconds, 3),
            }
        },
    )
    return outcome


def _detect(
    outcome: DetectionOutcome,
    config: ModelConfig,
    repository: DetectionRepository,
    monitor: MonitorRepository,
    settings: Settings,
    now: datetime,
    compare: Compare | None,
    stats: Any = None,
) -> None:
    """One attempt: windows, window battery, novelty scores, monitor step, state saved."""
    model_id = outcome.model_id
    stored = _Stored.load(monitor, model_id)
    observed = (
        None if stored.last_run_at is None else (now - stored.last_run_at).total_seconds() / 60.0
    )
    interval = sequential.next_interval(
        stored.interval_minutes, observed, default=config.current_window_minutes
    )
    budget = sequential.Budget(config.false_alarm_interval_days, interval)
    current = Window(now - timedelta(minutes=config.current_window_minutes), now)
    baseline, pinned = choose_baseline(
        monitor,
        model_id,
        current,
        config,
        settings,
        now,
        hold=stored.state.frozen(budget),
        filling=stored.baseline_count < 2 * config.max_samples,
        end_by=stored.watermark,
        after=stored.incident_end,
        holds_enough=lambda w: (
            repository.count_vectors(model_id, w.start, w.end) >= 2 * config.max_samples
        ),
    )
    outcome.current, outcome.baseline, outcome.baseline_pinned = current, baseline, pinned
    outcome.n_baseline = int(repository.count_vectors(model_id, baseline.start, baseline.end))
    since = stored.watermark if stored.watermark is not None else current.start
    since = min(max(since, baseline.end), now)
    seed = _seed(model_id, current)
    view = window_source.open_window(
        settings.detection_source,
        stats,
        repository,
        model_id,
        start=current.start,
        now=now,
        since=since,
        max_rows=config.max_samples,
        seed=seed,
    )
    outcome.current, outcome.n_current = Window(view.start, now), view.n_current
    outcome.source, outcome.source_reason = view.source, view.reason
    warmup = warmup_vectors(config)
    monitor_doc: dict[str, Any] = {
        "false_alarm_interval_days": config.false_alarm_interval_days,
        "interval_minutes": round(interval, 6),
        "instant_alpha": budget.instant_alpha,
        "warmup_vectors": warmup,
        "baseline_ready": outcome.n_baseline >= warmup,
        "since": iso(since),
    }
    stored.last_run_at, stored.interval_minutes = now, interval

    if outcome.n_baseline < warmup:
        # Warm-up: nothing is scored; this traffic becomes baseline at the next refresh.
        outcome.status = "insufficient_data"
        outcome.monitor = {**monitor_doc, "evidence": None, "threshold": None}
        stored.watermark = now
        stored.save(monitor, model_id, now)
        return

    window_key = (iso(baseline.start), iso(baseline.end))
    if stored.fitted != window_key or stored.reference is None:
        # A new baseline: sample it once, split into the fitting part R (the battery's
        # reference too) and the calibration part C, and keep R with the state.
        base_seed = _seed(model_id, baseline)
        drawn = repository.sample_vectors(
            model_id,
            baseline.start,
            baseline.end,
            config.max_samples + sequential.CALIBRATION_VECTORS,
            base_seed,
        )
        fitted = sequential.fit_reference(drawn, base_seed, fit_size=config.max_samples)
        scores = fitted.score(fitted.calibration)
        # the sample is in time order: blocks of about one schedule interval each
        intervals = (baseline.end - baseline.start).total_seconds() / 60.0 / interval
        blocks = int(intervals)
        measured = clumping.measure(drawn, scores, fitted.calibration_index, blocks)
        means = clumping.block_means(drawn, blocks)
        stored.refit(fitted, scores, window_key, outcome.n_baseline, measured, means)
    assert stored.reference is not None
    reference = stored.reference

    window_fires = False
    repeats = 0
    window_alpha: float | None = None
    if outcome.n_current >= config.min_samples:
        sample = view.sample()
        tested = instant_rows(
            sample, sequential.repeated_since(stored.state, view.start.timestamp())
        )
        repeats = sample.shape[0] - tested.shape[0]
        engine = compare if compare is not None else _default_compare()
        tests = list(config.statistical_test or INSTANT_TESTS)
        levels = window_levels(
            tests, budget.instant_alpha, stored.dispersion.for_run(tested.shape[0])
        )
        window_alpha = sum(levels.values()) if levels else budget.instant_alpha
        report = engine(
            reference[:INSTANT_REFERENCE_ROWS],
            tested,
            tests=tests,
            alpha=window_alpha,
            weights=levels or None,
            seed=seed,
            threshold=config.drift_threshold,
            n_bootstrap=WINDOW_BOOTSTRAP,
        )
        outcome.report = report.to_dict() if hasattr(report, "to_dict") else dict(report)
        if repeats:  # the quality report describes the window as it came, repeats included
            outcome.report["quality"] = quality_report(
                reference[:INSTANT_REFERENCE_ROWS], sample, max_listed=MAX_LISTED_DIMENSIONS
            )
        window_fires = bool(outcome.report.get("drift_detected"))

    arrived = view.arrived()
    run_factor = stored.dispersion.for_run(arrived.shape[0])
    scores = knn_distances(reference, arrived) if len(arrived) else np.zeros(0)
    shift = sequential.shift_run(stored.state, stored.shift, arrived)
    result = sequential.step(
        stored.state,
        scores,
        budget=budget,
        window_fires=window_fires,
        shift=shift,
        repeats=sequential.repeats_of(arrived, until=view.watermark.timestamp()),
        overdispersion=run_factor,
    )
    units = arrived if result.units is None else arrived[result.units]
    stored.state = sequential.observe_shift(result.state, stored.shift, reference, units)
    stored.watermark = view.watermark
    if result.resolved:
        stored.incident_end = now  # the incident's traffic never becomes reference
    stored.save(monitor, model_id, now)
    outcome.monitor = {
        **monitor_doc,
        **result.to_dict(),
        "window_drift": window_fires,
        "window_repeats": repeats,
        "overdispersion": {
            "directions": round(stored.dispersion.directions.statistic, 4),
            "novelty": round(stored.dispersion.novelty.statistic, 4),
            "blocks": stored.dispersion.directions.blocks,
            "block_rows": round(stored.dispersion.directions.block_rows, 1),
            "scale": {
                "directions": stored.dispersion.directions.scale,
                "novelty": stored.dispersion.novelty.scale,
            },
            "run_factor": {
                "directions": round(run_factor.directions, 4),
                "novelty": round(run_factor.novelty, 4),
            },
            "window_alpha": window_alpha,
        },
        "calibration_vectors": int(stored.state.calibration.shape[0]),
        "until": iso(view.watermark),
    }
    if result.novel_rows:
        outcome.monitor["novel_examples"] = [
            {"row": i, "score": round(float(scores[i]), 6)} for i in result.novel_rows
        ]
    if result.scored == 0 and outcome.report is None:
        outcome.status = "insufficient_data"  # nothing new to judge: silence is not "ok"
    else:
        outcome.status = result.status


def window_levels(
    tests: Sequence[str], alpha: float, phi: clumping.RunDispersion
) -> dict[str, float]:
    """Each instant p-value test's level: its weighted-Bonferroni share of ``alpha``, deflated.

    Test ``t`` gets its share of ``alpha`` (:func:`~drift_monitor.drift.decision.test_levels`),
    deflated by the clumping of its family (:func:`~drift_monitor.drift.dispersion.deflated_level`:
    the novelty test by the novelty outcomes', the others by the principal directions'). The
    battery then runs at the sum of these levels with them as weights, so each test meets
    exactly its own level; without clumping this is the plain split of ``alpha``.
    """
    shares = test_levels(normalise_tests(tests), alpha)
    return {
        name: clumping.deflated_level(share, phi.novelty if name == "novelty" else phi.directions)
        for name, share in shares.items()
        if share is not None
    }


def instant_rows(sample: np.ndarray, atoms: tuple[str, ...] = ()) -> np.ndarray:
    """The window's rows for the instant check: the repeats of a burst dropped, unless that
    would drop more than half of them.

    The check's p-values assume independent rows; a burst of repeated queries (the same vector
    several times within minutes) makes the window's per-dimension statistics larger than
    independent rows would, and paged stationary traffic at the instant level. So each vector
    is kept once, except a vector that every run has repeated since before the window began
    (``atoms``, :func:`drift_monitor.drift.sequential.repeated_since`): a popular query sent
    all day is in the reference at its share too, and dropping its repeats from the window only
    would make the window differ from the reference. (A burst in the window's own traffic,
    already scored by an earlier run of an overlapping window, does not count.) A window that
    is mostly repeats (a client sending one constant vector) is tested as it came, so that
    collapse still pages at once; a constant vector in a smaller *share* of the traffic is what
    the evidence accumulates (and, once every run repeats it, this check too).
    """
    if sample.ndim != 2 or sample.shape[0] < 2:
        return sample
    repeats = sequential.repeats_of(sample)
    if len(repeats.keys) == sample.shape[0]:
        return sample
    if 2 * len(repeats.keys) < sample.shape[0]:
        return sample  # mostly repeats: the window is the incident
    known = set(atoms)
    keep = np.array([key in known for key in repeats.keys], dtype=bool)[repeats.groups]
    keep[np.unique(repeats.groups, return_index=True)[1]] = True  # each vector once at least
    return sample if keep.all() else sample[keep]


def _default_compare() -> Compare:
    from drift_monitor.drift import compare

    engine: Compare = compare
    return engine


def _notify(
    outcome: DetectionOutcome,
    config: ModelConfig | None,
    alerting: Alerting | None,
    metrics: Metrics | None,
    now: datetime,
) -> None:
    # Alerting and metrics failures are logged, never turned into a lost result: the result
    # row is already stored and the next run retries the alert decision from stored state.
    if alerting is not None and config is not None:
        try:
            outcome.alerts = alerting.handle(outcome, config, now)
        except Exception:
            logger.exception("alerting failed", extra={"fields": {"model_id": outcome.model_id}})
    if metrics is not None:
        try:
            metrics.export_run(run_metrics(outcome))
        except Exception:
            logger.exception(
                "metrics export failed", extra={"fields": {"model_id": outcome.model_id}}
            )


def run_metrics(outcome: DetectionOutcome) -> Any:
    """The Prometheus view of one run (per-test scores, p-values, window sizes, duration)."""
    from drift_monitor.adapters.metrics import RunMetrics

    return RunMetrics.from_report(
        outcome.model_id,
        outcome.status,
        outcome.report,
        duration_seconds=outcome.duration_seconds,
        finished_at=outcome.checked_at,
        n_baseline=outcome.n_baseline,
        n_current=outcome.n_current,
        monitor=outcome.monitor,
    )


def result_row(outcome: DetectionOutcome) -> dict[str, Any]:
    """The results-table row for ``outcome``."""
    return {
        "model_id": outcome.model_id,
        "checked_at": outcome.checked_at,
        "status": outcome.status,
        "drift_detected": outcome.drift_detected,
        "report": outcome.to_dict(),
        "baseline_start": outcome.baseline.start if outcome.baseline else None,
        "baseline_end": outcome.baseline.end if outcome.baseline else None,
        "current_start": outcome.current.start if outcome.current else None,
        "current_end": outcome.current.end if outcome.current else None,
        "n_baseline": outcome.n_baseline,
        "n_current": outcome.n_current,
    }


def model_ids(repository: DetectionRepository) -> list[str]:
    """Every model the repository knows, as ids."""
    ids = []
    for row in repository.list_models():
        ids.append(row if isinstance(row, str) else str(_attr(row, "model_id")))
    return ids


@dataclass
class AlertDispatcher:
    """Hands detection outcomes to the alerting decision with each model's channels.

    Channels: PagerDuty (one notifier for every model, when a routing key is configured) and
    the model's own ``alert_webhook`` (built per call by ``webhook``, so a changed URL takes
    effect on the next run). The trigger/resolve/cooldown decision and the stored alert state
    live in :func:`drift_monitor.service.alerting.process_outcome`.
    """

    store: Any  # AlertStateStore (SqlMonitorRepository)
    cooldown: timedelta
    pagerduty: Any = None  # Notifier | None
    webhook: Callable[[str], Any] | None = None
    counter: Any = None  # AlertCounter | None
    severity: str = "warning"

    def notifiers(self, config: ModelConfig) -> list[Any]:
        channels = [] if self.pagerduty is None else [self.pagerduty]
        if config.alert_webhook and self.webhook is not None:
            try:
                channels.append(self.webhook(config.alert_webhook))
            except Exception:
                # A webhook refused by the SSRF rules (e.g. stored before a policy change)
                # must not keep PagerDuty from paging.
                logger.exception("alert webhook refused; skipping that channel")
        return channels

    def handle(self, outcome: DetectionOutcome, config: ModelConfig, now: datetime) -> Any:
        from drift_monitor.service import alerting

        if outcome.status not in ("ok", "drift", "insufficient_data", "error"):
            return []
        decided = alerting.DetectionOutcome(
            model_id=outcome.model_id,
            status=outcome.status,  # type: ignore[arg-type]
            checked_at=outcome.checked_at,
            report=outcome.report,
            baseline_window=None
            if outcome.baseline is None
            else (outcome.baseline.start, outcome.baseline.end),
            current_window=None
            if outcome.current is None
            else (outcome.current.start, outcome.current.end),
            n_baseline=outcome.n_baseline,
            n_current=outcome.n_current,
            threshold=config.drift_threshold,
            result_id=outcome.result_id,
        )
        return alerting.process_outcome(
            decided,
            notifiers=self.notifiers(config),
            store=self.store,
            cooldown=self.cooldown,
            now=now,
            severity=self.severity,  # type: ignore[arg-type]
            counter=self.counter,
        )


def run_all(
    *,
    repository: DetectionRepository,
    monitor: MonitorRepository,
    stats: Any = None,
    alerting: Alerting | None,
    metrics: Metrics | None,
    settings: Settings,
    now: datetime,
    compare: Compare | None = None,
    time_budget_seconds: float = DEFAULT_TIME_BUDGET_SECONDS,
    clock: Callable[[], float] = time.monotonic,
) -> list[DetectionOutcome]:
    """Run detection for every model, one after the other, within a time budget.

    Models run least recently checked first, so when the budget (well below the function
    timeout) runs out, the models left over are first in line at the next scheduled run;
    they are reported with status ``skipped`` and nothing is stored for them.
    """
    deadline = clock() + time_budget_seconds
    ids = model_ids(repository)
    order = sorted(ids, key=lambda mid: _last_checked(monitor, mid))
    outcomes: list[DetectionOutcome] = []
    for model_id in order:
        if clock() >= deadline:
            outcomes.append(
                DetectionOutcome(
                    model_id=model_id,
                    status="skipped",
                    checked_at=now,
                    error="time budget exhausted; runs first next time",
                )
            )
            continue
        outcomes.append(
            run_detection(
                model_id,
                repository=repository,
                monitor=monitor,
                stats=stats,
                alerting=alerting,
                metrics=metrics,
                settings=settings,
                now=now,
                compare=compare,
            )
        )
    return outcomes


def _last_checked(monitor: MonitorRepository, model_id: str) -> datetime:
    try:
        latest = monitor.latest_result(model_id)
    except Exception:
        latest = None
    if latest is None:
        return datetime.min.replace(tzinfo=UTC)
    checked: datetime = _attr(latest, "checked_at")
    return checked
