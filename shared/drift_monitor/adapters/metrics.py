"""Prometheus metrics: per-run detection metrics, alert counters and ingest/persist latencies.

Three exporters share one rendering (:func:`run_families`), behind :class:`MetricsExporter`:

* :class:`PushgatewayExporter` (production): after each detection run of a model, pushes that
  run's metrics to ``PROMETHEUS_GATEWAY`` with ``push_to_gateway`` (PUT) under the grouping key
  ``{job="drift_monitor", model_id=...}``. One group per model, so runs for different models
  never erase each other, and a run replaces exactly its model's previous series (a test that is
  no longer configured disappears instead of going stale).
* :class:`LocalMetrics` (embedded mode): keeps the latest run of every model in memory and
  serves them with the latency histograms at ``GET /metrics`` (``generate_latest``).
* :class:`RecordingExporter` (tests): records what would be pushed.

Counters across serverless instances. A Pushgateway group holds whatever was pushed last; each
detection function instance starts from zero, so pushing an in-process counter would make
``drift_monitor_alerts_sent_total`` jump back and forth between instances. Instead the exporter
treats the gateway as the counter's storage: before pushing a model's group it reads that group's
current ``drift_monitor_alerts_sent_total`` (and ``..._last_success_timestamp_seconds``, kept
through failed runs) back from the gateway and pushes previous + this run's increments. Runs of
one model are serialised by the scheduler, so the read-modify-write does not race in practice
(two overlapping runs of the same model could lose one increment); a gateway restart without
persistence resets the counter, which Prometheus' ``increase()`` handles as a counter reset.

Latency histograms are observed in the ingest and persist functions (many concurrent
instances). They live in a process registry (:class:`LatencyMetrics`); embedded mode serves it at
``/metrics``. In GCP, :meth:`PushgatewayExporter.push_latency` pushes it with ``pushadd`` under
``{function, instance}``, one group per live instance, each cumulative like a scraped target;
``sum(rate(..._bucket[5m]))`` then aggregates across instances. Groups of instances that are gone
stay in the gateway (it has no TTL): :meth:`PushgatewayExporter.delete_latency` removes one,
called on shutdown.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Histogram,
    delete_from_gateway,
    generate_latest,
    push_to_gateway,
    pushadd_to_gateway,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

_log = logging.getLogger(__name__)

PREFIX = "drift_monitor"
DRIFT_SCORE = f"{PREFIX}_drift_score"
P_VALUE = f"{PREFIX}_p_value"
TEST_DRIFT = f"{PREFIX}_drift_detected"
MODEL_DRIFT = f"{PREFIX}_model_drift_detected"
KL_DIVERGENCE = f"{PREFIX}_kl_divergence"
WINDOW_SAMPLES = f"{PREFIX}_window_samples"
RUN_STATUS = f"{PREFIX}_run_status"
RUN_DURATION = f"{PREFIX}_detection_run_duration_seconds"
LAST_SUCCESS = f"{PREFIX}_last_success_timestamp_seconds"
ALERTS_SENT = f"{PREFIX}_alerts_sent"  # exposed as ..._alerts_sent_total
EVIDENCE = f"{PREFIX}_evidence"
EVIDENCE_THRESHOLD = f"{PREFIX}_evidence_threshold"
EVIDENCE_RATIO = f"{PREFIX}_evidence_ratio"
INGEST_LATENCY = f"{PREFIX}_ingest_latency_seconds"
PERSIST_LATENCY = f"{PREFIX}_persist_latency_seconds"

STATUSES = ("ok", "drift", "insufficient_data", "error")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True)
class TestMetrics:
    """One statistical test's outcome in one run."""

    test: str
    score: float | None
    p_value: float | None
    drift: bool | None


@dataclass(frozen=True)
class RunMetrics:
    """What one detection run of one model reports.

    Build it with :meth:`from_report` from ``DriftReport.to_dict()``.
    """

    model_id: str
    status: str
    finished_at: float  # Unix seconds
    duration_seconds: float
    tests: Sequence[TestMetrics] = ()
    n_baseline: int | None = None
    n_current: int | None = None
    drift_detected: bool | None = None
    kl_divergence: float | None = None
    evidence: float | None = None  # log10 of the sequential monitor's evidence
    evidence_threshold: float | None = None  # log10 of the evidence that pages

    @classmethod
    def from_report(
        cls,
        model_id: str,
        status: str,
        report: Mapping[str, Any] | None,
        *,
        duration_seconds: float,
        finished_at: datetime | float | None = None,
        n_baseline: int | None = None,
        n_current: int | None = None,
        monitor: Mapping[str, Any] | None = None,
    ) -> RunMetrics:
        """Collect the metric values of a run from the statistics engine's report dict.

        ``monitor`` is the sequential monitor's part of the outcome: when given, the model's
        drift gauge follows the monitor's decision (the status) rather than the window's
        tests, and its evidence and threshold are exported.
        """
        report = report or {}
        tests: list[TestMetrics] = []
        raw_tests = report.get("tests")
        if isinstance(raw_tests, Mapping):
            for name, result in sorted(raw_tests.items()):
                if isinstance(result, Mapping):
                    drift = result.get("drift")
                    tests.append(
                        TestMetrics(
                            test=str(name),
                            score=_finite(result.get("statistic")),
                            p_value=_finite(result.get("p_value")),
                            drift=None if drift is None else bool(drift),
                        )
                    )
        if isinstance(finished_at, datetime):
            finished = finished_at.timestamp()
        elif finished_at is None:
            finished = time.time()
        else:
            finished = float(finished_at)
        drift_detected = report.get("drift_detected")
        monitor = monitor or {}
        if monitor and status in ("ok", "drift"):
            drift_detected = status == "drift"
        return cls(
            model_id=model_id,
            status=status,
            finished_at=finished,
            duration_seconds=float(duration_seconds),
            tests=tuple(tests),
            n_baseline=n_baseline if n_baseline is not None else _int(report.get("n_reference")),
            n_current=n_current if n_current is not None else _int(report.get("n_current")),
            drift_detected=None if drift_detected is None else bool(drift_detected),
            kl_divergence=_finite(report.get("kl_divergence")),
            evidence=_finite(monitor.get("evidence")),
            evidence_threshold=_finite(monitor.get("threshold")),
        )


def _finite(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


AlertTotals = Mapping[tuple[str, str], float]  # (channel, action) -> cumulative count


def run_families(
    run: RunMetrics,
    alert_totals: AlertTotals,
    last_success: float | None,
) -> list[Metric]:
    """The metric families of one model's latest run (shared by every exporter).

    Parameters
    ----------
    run
        The run.
    alert_totals
        Cumulative alerts sent for this model, by ``(channel, action)``.
    last_success
        Unix time of the last run that did not end in ``error`` (this one included).
    """
    m = run.model_id
    score = GaugeMetricFamily(
        DRIFT_SCORE, "Drift statistic of the latest run, per test.", labels=["model_id", "test"]
    )
    p_value = GaugeMetricFamily(
        P_VALUE, "p-value of the latest run, per test.", labels=["model_id", "test"]
    )
    test_drift = GaugeMetricFamily(
        TEST_DRIFT, "1 if the test flagged drift in the latest run.", labels=["model_id", "test"]
    )
    for t in run.tests:
        if t.score is not None:
            score.add_metric([m, t.test], t.score)
        if t.p_value is not None:
            p_value.add_metric([m, t.test], t.p_value)
        if t.drift is not None:
            test_drift.add_metric([m, t.test], 1.0 if t.drift else 0.0)
    families: list[Metric] = [score, p_value, test_drift]
    if run.drift_detected is not None:
        model_drift = GaugeMetricFamily(
            MODEL_DRIFT, "1 if the latest run concluded drift for the model.", labels=["model_id"]
        )
        model_drift.add_metric([m], 1.0 if run.drift_detected else 0.0)
        families.append(model_drift)
    if run.kl_divergence is not None:
        kl = GaugeMetricFamily(
            KL_DIVERGENCE, "KL divergence current vs baseline, latest run.", labels=["model_id"]
        )
        kl.add_metric([m], run.kl_divergence)
        families.append(kl)
    if run.evidence is not None and run.evidence_threshold is not None:
        for name, text, value in (
            (EVIDENCE, "Sequential monitor's accumulated evidence of drift, log10.", run.evidence),
            (
                EVIDENCE_THRESHOLD,
                "log10 evidence at which the model pages.",
                run.evidence_threshold,
            ),
            (
                EVIDENCE_RATIO,
                "Evidence as a fraction of its threshold (log scale): 1 pages.",
                run.evidence / run.evidence_threshold if run.evidence_threshold > 0 else 0.0,
            ),
        ):
            family = GaugeMetricFamily(name, text, labels=["model_id"])
            family.add_metric([m], value)
            families.append(family)
    samples = GaugeMetricFamily(
        WINDOW_SAMPLES,
        "Embeddings in each window of the latest run.",
        labels=["model_id", "window"],
    )
    if run.n_baseline is not None:
        samples.add_metric([m, "baseline"], float(run.n_baseline))
    if run.n_current is not None:
        samples.add_metric([m, "current"], float(run.n_current))
    families.append(samples)
    status = GaugeMetricFamily(
        RUN_STATUS,
        "1 for the status of the latest run, 0 for the others.",
        labels=["model_id", "status"],
    )
    for s in STATUSES:
        status.add_metric([m, s], 1.0 if run.status == s else 0.0)
    families.append(status)
    duration = GaugeMetricFamily(
        RUN_DURATION, "Wall time of the latest detection run.", labels=["model_id"]
    )
    duration.add_metric([m], run.duration_seconds)
    families.append(duration)
    if last_success is not None:
        success = GaugeMetricFamily(
            LAST_SUCCESS,
            "Unix time of the last detection run that did not fail.",
            labels=["model_id"],
        )
        success.add_metric([m], last_success)
        families.append(success)
    alerts = CounterMetricFamily(
        ALERTS_SENT,
        "Alerts delivered, by channel and action.",
        labels=["model_id", "channel", "action"],
    )
    for (channel, action), value in sorted(alert_totals.items()):
        alerts.add_metric([m, channel, action], value)
    families.append(alerts)
    return families


class _StaticCollector(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def run_registry(
    run: RunMetrics, alert_totals: AlertTotals, last_success: float | None
) -> CollectorRegistry:
    """A fresh registry holding exactly one run's metrics (what is pushed for it)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_StaticCollector(run_families(run, alert_totals, last_success)))
    return registry


class LatencyMetrics:
    """Ingest and persist latency histograms; the ingest/persist handlers call ``observe_*``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.ingest = Histogram(
            INGEST_LATENCY,
            "Time to validate and publish one ingest request.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.persist = Histogram(
            PERSIST_LATENCY,
            "Time to store one batch part in the database.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def observe_ingest(self, seconds: float) -> None:
        self.ingest.observe(seconds)

    def observe_persist(self, seconds: float) -> None:
        self.persist.observe(seconds)


_process_latency: LatencyMetrics | None = None
_process_latency_lock = threading.Lock()


def process_latency() -> LatencyMetrics:
    """The process-wide latency histograms (what ``LocalMetrics()`` serves by default).

    The ingest and persist handlers observe into it without needing the container::

        with timed(process_latency().observe_ingest):
            handle(request)
    """
    global _process_latency
    with _process_latency_lock:
        if _process_latency is None:
            _process_latency = LatencyMetrics()
        return _process_latency


@contextmanager
def timed(observe: Callable[[float], None]) -> Iterator[None]:
    """Observe the wall time of the ``with`` block (also when it raises)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        observe(time.perf_counter() - started)


class MetricsExporter(Protocol):
    """Where detection runs report to. Also an ``AlertCounter`` for ``process_outcome``."""

    def alert_sent(self, model_id: str, channel: str, action: str) -> None:
        """Count one delivered alert; it is exported with the model's next ``export_run``."""
        ...

    def export_run(self, run: RunMetrics) -> bool:
        """Export one run; True on success. Never raises for an unreachable backend."""
        ...


class _PendingAlerts:
    """Alerts counted during a run, waiting for the run's export (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, dict[tuple[str, str], float]] = {}

    def add(self, model_id: str, channel: str, action: str) -> None:
        with self._lock:
            per_model = self._pending.setdefault(model_id, {})
            per_model[(channel, action)] = per_model.get((channel, action), 0.0) + 1.0

    def take(self, model_id: str) -> dict[tuple[str, str], float]:
        with self._lock:
            return self._pending.pop(model_id, {})

    def put_back(self, model_id: str, counts: Mapping[tuple[str, str], float]) -> None:
        with self._lock:
            per_model = self._pending.setdefault(model_id, {})
            for key, value in counts.items():
                per_model[key] = per_model.get(key, 0.0) + value


def _add(
    a: Mapping[tuple[str, str], float], b: Mapping[tuple[str, str], float]
) -> dict[tuple[str, str], float]:
    out = dict(a)
    for key, value in b.items():
        out[key] = out.get(key, 0.0) + value
    return out


class PushgatewayExporter:
    """Push each run to a Prometheus Pushgateway, one group per model.

    Parameters
    ----------
    url
        ``PROMETHEUS_GATEWAY`` (``http://host:port`` or ``host:port``).
    job
        The ``job`` label of every pushed group.
    timeout
        Seconds per HTTP request to the gateway.
    """

    def __init__(self, url: str, job: str = "drift_monitor", *, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.job = job
        self.timeout = timeout
        self._pending = _PendingAlerts()

    def __repr__(self) -> str:
        return f"PushgatewayExporter(url={self.url!r}, job={self.job!r})"

    @property
    def _base(self) -> str:
        return self.url if "://" in self.url else f"http://{self.url}"

    def grouping_key(self, model_id: str) -> dict[str, str]:
        return {"model_id": model_id}

    def alert_sent(self, model_id: str, channel: str, action: str) -> None:
        self._pending.add(model_id, channel, action)

    def read_group(self, model_id: str) -> tuple[dict[tuple[str, str], float], float | None]:
        """The alert totals and last-success time currently stored in the model's group."""
        request = urllib.request.Request(f"{self._base}/metrics", method="GET")
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            text = response.read().decode("utf-8")
        totals: dict[tuple[str, str], float] = {}
        last_success: float | None = None
        for family in text_string_to_metric_families(text):
            if family.name not in (ALERTS_SENT, LAST_SUCCESS):
                continue
            for sample in family.samples:
                labels = sample.labels
                if labels.get("job") != self.job or labels.get("model_id") != model_id:
                    continue
                if sample.name == f"{ALERTS_SENT}_total":
                    key = (labels.get("channel", ""), labels.get("action", ""))
                    totals[key] = totals.get(key, 0.0) + sample.value
                elif sample.name == LAST_SUCCESS:
                    last_success = sample.value
        return totals, last_success

    def export_run(self, run: RunMetrics) -> bool:
        """Read the group's counters back, add this run's alerts, and PUT the group."""
        new_alerts = self._pending.take(run.model_id)
        try:
            previous, last_success = self.read_group(run.model_id)
            if run.status != "error":
                last_success = run.finished_at
            registry = run_registry(run, _add(previous, new_alerts), last_success)
            push_to_gateway(
                self._base,
                job=self.job,
                registry=registry,
                grouping_key=self.grouping_key(run.model_id),
                timeout=self.timeout,
            )
        except (OSError, urllib.error.URLError, ValueError) as exc:
            # Keep the increments for the next run rather than losing them.
            self._pending.put_back(run.model_id, new_alerts)
            _log.warning(
                "metrics push failed",
                extra={
                    "fields": {"model_id": run.model_id, "gateway": self._base, "error": repr(exc)}
                },
            )
            return False
        return True

    def push_latency(self, latency: LatencyMetrics, function: str, instance: str) -> bool:
        """``pushadd`` the latency histograms of one function instance (see module doc)."""
        try:
            pushadd_to_gateway(
                self._base,
                job=self.job,
                registry=latency.registry,
                grouping_key={"function": function, "instance": instance},
                timeout=self.timeout,
            )
        except (OSError, urllib.error.URLError) as exc:
            _log.warning(
                "latency push failed",
                extra={"fields": {"gateway": self._base, "error": repr(exc)}},
            )
            return False
        return True

    def delete_latency(self, function: str, instance: str) -> None:
        """Remove an instance's latency group (call when the instance shuts down)."""
        delete_from_gateway(
            self._base,
            job=self.job,
            grouping_key={"function": function, "instance": instance},
            timeout=self.timeout,
        )


class LocalMetrics(Collector):
    """Embedded-mode metrics: latest run per model, cumulative alerts, latency histograms.

    ``render()`` returns the exposition for ``GET /metrics``.
    """

    def __init__(self, latency: LatencyMetrics | None = None) -> None:
        self.latency = latency or process_latency()
        # A registry of its own: several containers in one process (tests) must not see each
        # other's runs; the (shared) latency histograms are collected through it.
        self.registry = CollectorRegistry(auto_describe=False)
        self._lock = threading.Lock()
        self._runs: dict[str, RunMetrics] = {}
        self._alerts: dict[str, dict[tuple[str, str], float]] = {}
        self._last_success: dict[str, float] = {}
        self.registry.register(self)

    def alert_sent(self, model_id: str, channel: str, action: str) -> None:
        with self._lock:
            per_model = self._alerts.setdefault(model_id, {})
            per_model[(channel, action)] = per_model.get((channel, action), 0.0) + 1.0

    def export_run(self, run: RunMetrics) -> bool:
        with self._lock:
            self._runs[run.model_id] = run
            if run.status != "error":
                self._last_success[run.model_id] = run.finished_at
        return True

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            snapshot = [
                (run, dict(self._alerts.get(m, {})), self._last_success.get(m))
                for m, run in sorted(self._runs.items())
            ]
        merged: dict[str, Metric] = {}
        for run, alerts, last_success in snapshot:
            for family in run_families(run, alerts, last_success):
                if family.name in merged:
                    merged[family.name].samples.extend(family.samples)
                else:
                    merged[family.name] = family
        return itertools.chain(merged.values(), self.latency.registry.collect())

    def render(self) -> tuple[bytes, str]:
        """``(body, content_type)`` of the Prometheus text exposition."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


@dataclass
class PushedGroup:
    """One push the :class:`RecordingExporter` recorded."""

    job: str
    grouping_key: dict[str, str]
    run: RunMetrics
    alert_totals: dict[tuple[str, str], float]
    last_success: float | None
    exposition: str


@dataclass
class RecordingExporter:
    """In-process twin of :class:`PushgatewayExporter`: same grouping and counter semantics,
    the "gateway" is a dict. ``fail_next`` simulates an unreachable gateway."""

    job: str = "drift_monitor"
    pushes: list[PushedGroup] = field(default_factory=list)
    groups: dict[str, PushedGroup] = field(default_factory=dict)
    failures_left: int = 0
    _pending: _PendingAlerts = field(default_factory=_PendingAlerts, repr=False)

    def alert_sent(self, model_id: str, channel: str, action: str) -> None:
        self._pending.add(model_id, channel, action)

    def export_run(self, run: RunMetrics) -> bool:
        new_alerts = self._pending.take(run.model_id)
        if self.failures_left > 0:
            self.failures_left -= 1
            self._pending.put_back(run.model_id, new_alerts)
            return False
        previous = self.groups.get(run.model_id)
        totals = _add(previous.alert_totals if previous else {}, new_alerts)
        last_success = previous.last_success if previous else None
        if run.status != "error":
            last_success = run.finished_at
        exposition = generate_latest(run_registry(run, totals, last_success)).decode()
        group = PushedGroup(
            self.job, {"model_id": run.model_id}, run, totals, last_success, exposition
        )
        self.pushes.append(group)
        self.groups[run.model_id] = group
        return True

    def value(self, name: str, **labels: str) -> float | None:
        """The value of sample ``name`` with ``labels`` in the latest pushes (None if absent)."""
        for group in self.groups.values():
            for family in text_string_to_metric_families(group.exposition):
                for sample in family.samples:
                    if sample.name == name and all(
                        sample.labels.get(k) == v for k, v in labels.items()
                    ):
                        return float(sample.value)
        return None
