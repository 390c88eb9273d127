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

Process metrics (ingest/persist/stats latency, ingest responses, dead letters, SQL query time
and connection pool) live in a process registry (:class:`LatencyMetrics`); embedded mode serves
it at ``/metrics`` with the process collector (CPU, memory). In GCP each function pushes it with
:meth:`PushgatewayExporter.push_function` under ``{job, function}``: one group per function,
whatever the number of instances. An instance adds what it observed since its previous push to
the group's current values (read back from the gateway) and PUTs the sums, so counts are exact
across instances and the group count is bounded by the number of functions; ``docs/metrics.md``
discusses the choice and its one race.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
    push_to_gateway,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import default_handler
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
DETECTION_DURATION = f"{PREFIX}_detection_duration_seconds"  # histogram
LAST_SUCCESS = f"{PREFIX}_last_success_timestamp_seconds"
ALERTS_SENT = f"{PREFIX}_alerts_sent"  # exposed as ..._alerts_sent_total
EVIDENCE = f"{PREFIX}_evidence"
EVIDENCE_THRESHOLD = f"{PREFIX}_evidence_threshold"
EVIDENCE_RATIO = f"{PREFIX}_evidence_ratio"
INGEST_LATENCY = f"{PREFIX}_ingest_latency_seconds"
PERSIST_LATENCY = f"{PREFIX}_persist_latency_seconds"
STATS_LATENCY = f"{PREFIX}_stats_latency_seconds"
INGEST_REQUESTS = f"{PREFIX}_ingest_requests"  # exposed as ..._ingest_requests_total
DEAD_LETTERS = f"{PREFIX}_dead_letters"  # exposed as ..._dead_letters_total
DB_QUERY_DURATION = f"{PREFIX}_db_query_duration_seconds"
DB_POOL_CONNECTIONS = f"{PREFIX}_db_pool_connections"

STATUSES = ("ok", "drift", "insufficient_data", "error")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
DETECTION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
DB_QUERY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)


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


@dataclass(frozen=True)
class HistogramTotals:
    """A histogram's cumulative state carried from run to run in a model's group.

    ``counts[i]`` is the number of observations ``<= bounds[i]`` (the last bound is +Inf).
    """

    bounds: tuple[float, ...]
    counts: tuple[float, ...]
    total: float = 0.0

    @classmethod
    def empty(cls, buckets: Sequence[float] = DETECTION_BUCKETS) -> HistogramTotals:
        bounds = (*buckets, math.inf)
        return cls(bounds, tuple(0.0 for _ in bounds))

    @property
    def count(self) -> float:
        return self.counts[-1]

    def observe(self, value: float) -> HistogramTotals:
        counts = tuple(
            c + (1.0 if value <= b else 0.0) for b, c in zip(self.bounds, self.counts, strict=True)
        )
        return HistogramTotals(self.bounds, counts, self.total + value)

    def family(self, name: str, documentation: str, model_id: str) -> HistogramMetricFamily:
        family = HistogramMetricFamily(name, documentation, labels=["model_id"])
        family.add_metric(
            [model_id],
            [(_le(b), c) for b, c in zip(self.bounds, self.counts, strict=True)],
            sum_value=self.total,
        )
        return family


def _le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(float(bound))


def run_families(
    run: RunMetrics,
    alert_totals: AlertTotals,
    last_success: float | None,
    durations: HistogramTotals | None = None,
) -> list[Metric]:
    """The metric families of one model's latest run (shared by every exporter).

    A new per-run gauge is added here, once, for every exporter.

    Parameters
    ----------
    run
        The run.
    alert_totals
        Cumulative alerts sent for this model, by ``(channel, action)``.
    last_success
        Unix time of the last run that did not end in ``error`` (this one included).
    durations
        The model's detection-duration histogram, this run included (None: not exported).
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
    if durations is not None:
        families.append(durations.family(DETECTION_DURATION, "Wall time of detection runs.", m))
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
    run: RunMetrics,
    alert_totals: AlertTotals,
    last_success: float | None,
    durations: HistogramTotals | None = None,
) -> CollectorRegistry:
    """A fresh registry holding exactly one run's metrics (what is pushed for it)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_StaticCollector(run_families(run, alert_totals, last_success, durations)))
    return registry


class LatencyMetrics:
    """The process's own metrics: what the ingest, persist and stats handlers and the SQL
    engine observe (embedded mode serves them, functions push them per function).

    Add a process-level metric here, with the registry as its ``registry``.
    """

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
        self.stats = Histogram(
            STATS_LATENCY,
            "Time to fold one batch part into the running statistics.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.ingest_requests = Counter(
            INGEST_REQUESTS,
            "Ingest requests answered, by HTTP status code.",
            ["code"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            DEAD_LETTERS,
            "Messages a consumer rejected to the dead-letter topic.",
            ["consumer"],
            registry=self.registry,
        )
        for consumer in ("persist", "stats"):  # exported at 0 before the first one
            self.dead_letters.labels(consumer)
        self.db_query = Histogram(
            DB_QUERY_DURATION,
            "Time of one SQL statement, by its first keyword.",
            ["operation"],
            buckets=DB_QUERY_BUCKETS,
            registry=self.registry,
        )
        self.pools = PoolCollector()
        self.registry.register(self.pools)

    def observe_ingest(self, seconds: float) -> None:
        self.ingest.observe(seconds)

    def observe_persist(self, seconds: float) -> None:
        self.persist.observe(seconds)

    def observe_stats(self, seconds: float) -> None:
        self.stats.observe(seconds)

    def count_ingest(self, status: int) -> None:
        self.ingest_requests.labels(str(status)).inc()

    def count_dead_letter(self, consumer: str) -> None:
        self.dead_letters.labels(consumer).inc()

    def observe_query(self, operation: str, seconds: float) -> None:
        self.db_query.labels(operation).observe(seconds)


class PoolCollector(Collector):
    """``drift_monitor_db_pool_connections{state}`` summed over the process's SQL pools.

    Pools register through :meth:`watch` (weakly: a disposed engine drops out); ``state`` is
    ``checked_out`` (in use), ``idle`` (in the pool) or ``capacity`` (pool size + overflow).
    """

    def __init__(self) -> None:
        self._pools: weakref.WeakSet[Any] = weakref.WeakSet()

    def watch(self, pool: Any) -> None:
        if callable(getattr(pool, "checkedout", None)):
            self._pools.add(pool)

    def collect(self) -> Iterator[Metric]:
        states = {"checked_out": 0.0, "idle": 0.0, "capacity": 0.0}
        pools = list(self._pools)
        for pool in pools:
            states["checked_out"] += float(pool.checkedout())
            states["idle"] += float(pool.checkedin())
            size = getattr(pool, "size", None)
            overflow = getattr(pool, "_max_overflow", 0)
            if callable(size):
                states["capacity"] += float(size()) + max(float(overflow), 0.0)
        if not pools:
            return iter(())
        family = GaugeMetricFamily(
            DB_POOL_CONNECTIONS, "SQL connection pool use, by state.", labels=["state"]
        )
        for state, value in states.items():
            family.add_metric([state], value)
        return iter([family])


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

    def __init__(
        self,
        url: str,
        job: str = "drift_monitor",
        *,
        timeout: float = 5.0,
        token: Callable[[], str | None] | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.job = job
        self.timeout = timeout
        self.token = token  # bearer token per request (the Cloud Run gateway's ID token)
        self._pending = _PendingAlerts()
        self._push_lock = threading.Lock()
        self._pushed: dict[str, dict[tuple[str, SampleKey], float]] = {}

    def __repr__(self) -> str:
        return f"PushgatewayExporter(url={self.url!r}, job={self.job!r})"

    @property
    def _base(self) -> str:
        return self.url if "://" in self.url else f"http://{self.url}"

    def grouping_key(self, model_id: str) -> dict[str, str]:
        return {"model_id": model_id}

    def alert_sent(self, model_id: str, channel: str, action: str) -> None:
        self._pending.add(model_id, channel, action)

    def _auth(self) -> list[tuple[str, str]]:
        token = self.token() if self.token is not None else None
        return [("Authorization", f"Bearer {token}")] if token else []

    def _handler(
        self, url: str, method: str, timeout: float | None, headers: list[tuple[str, str]],
        data: bytes,
    ) -> Callable[[], None]:  # fmt: skip
        return default_handler(url, method, timeout, [*headers, *self._auth()], data)

    def _scrape(self) -> str:
        request = urllib.request.Request(
            f"{self._base}/metrics", method="GET", headers=dict(self._auth())
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            text: str = response.read().decode("utf-8")
        return text

    def read_group(self, model_id: str) -> GroupState:
        """The cumulative series currently stored in the model's group."""
        totals: dict[tuple[str, str], float] = {}
        last_success: float | None = None
        buckets: dict[float, float] = {}  # upper bound -> cumulative count
        duration_sum = 0.0
        wanted = (ALERTS_SENT, LAST_SUCCESS, DETECTION_DURATION)
        for family in text_string_to_metric_families(self._scrape()):
            if family.name not in wanted:
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
                elif sample.name == f"{DETECTION_DURATION}_bucket":
                    buckets[float(labels.get("le", "nan"))] = sample.value
                elif sample.name == f"{DETECTION_DURATION}_sum":
                    duration_sum = sample.value
        durations = HistogramTotals.empty()
        # The gateway writes bounds its own way ("1" for 1.0): compare them as numbers.
        if buckets and set(buckets) == set(durations.bounds):  # else: buckets changed, restart
            counts = tuple(buckets[b] for b in durations.bounds)
            durations = HistogramTotals(durations.bounds, counts, duration_sum)
        return GroupState(totals, last_success, durations)

    def export_run(self, run: RunMetrics) -> bool:
        """Read the group's counters back, add this run's alerts, and PUT the group."""
        new_alerts = self._pending.take(run.model_id)
        try:
            state = self.read_group(run.model_id).after(run, new_alerts)
            registry = run_registry(run, state.alerts, state.last_success, state.durations)
            push_to_gateway(
                self._base,
                job=self.job,
                registry=registry,
                grouping_key=self.grouping_key(run.model_id),
                timeout=self.timeout,
                handler=self._handler,
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

    def push_function(self, metrics: LatencyMetrics, function: str) -> bool:
        """Add what ``metrics`` observed since the last push to the ``{job, function}`` group.

        Counters and histograms: the group's current values plus this process's increments
        since its previous successful push; gauges: this process's values. Families the group
        already holds are carried over, so one PUT never erases another instance's series.
        """
        with self._push_lock:
            local = _families(metrics.registry.collect())
            previous = self._pushed.get(function, {})
            try:
                stored = _families(
                    text_string_to_metric_families(self._scrape()),
                    keep={"job": self.job, "function": function},
                )
                merged = _merge(stored, local, previous)
                registry = CollectorRegistry(auto_describe=False)
                registry.register(_StaticCollector(_rebuild(merged)))
                push_to_gateway(
                    self._base,
                    job=self.job,
                    registry=registry,
                    grouping_key={"function": function},
                    timeout=self.timeout,
                    handler=self._handler,
                )
            except (OSError, urllib.error.URLError, ValueError) as exc:
                _log.warning(
                    "function metrics push failed",
                    extra={"fields": {"gateway": self._base, "error": repr(exc)}},
                )
                return False
            self._pushed[function] = {
                (name, key): value
                for name, family in local.items()
                for key, value in family.values.items()
            }
            return True


@dataclass(frozen=True)
class GroupState:
    """The cumulative series of one model's group (read back from the gateway)."""

    alerts: dict[tuple[str, str], float]
    last_success: float | None
    durations: HistogramTotals

    def after(self, run: RunMetrics, new_alerts: AlertTotals) -> GroupState:
        """The state once ``run`` (and the alerts counted during it) is added."""
        return GroupState(
            _add(self.alerts, new_alerts),
            run.finished_at if run.status != "error" else self.last_success,
            self.durations.observe(run.duration_seconds),
        )


SampleKey = tuple[str, tuple[tuple[str, str], ...]]  # sample name, sorted labels


@dataclass
class _Family:
    name: str
    type: str
    documentation: str
    values: dict[SampleKey, float]


_GROUP_LABELS = ("job", "function", "instance")


def _families(
    metrics: Iterable[Metric], keep: Mapping[str, str] | None = None
) -> dict[str, _Family]:
    """Sample values by family; with ``keep``, only samples carrying those labels (the
    grouping labels are then dropped). ``_created`` samples are skipped."""
    out: dict[str, _Family] = {}
    for metric in metrics:
        if not metric.name.startswith(PREFIX):
            continue  # push_time_seconds and other groups' bookkeeping
        for sample in metric.samples:
            if sample.name.endswith("_created"):
                continue
            labels = sample.labels
            if keep is not None:
                if any(labels.get(k) != v for k, v in keep.items()):
                    continue
                labels = {k: v for k, v in labels.items() if k not in _GROUP_LABELS}
            family = out.setdefault(
                metric.name, _Family(metric.name, metric.type, metric.documentation, {})
            )
            family.values[(sample.name, tuple(sorted(labels.items())))] = float(sample.value)
    return out


def _merge(
    stored: Mapping[str, _Family],
    local: Mapping[str, _Family],
    previous: Mapping[tuple[str, SampleKey], float],
) -> dict[str, _Family]:
    """The group after this process's push: stored + (local - previous), gauges replaced."""
    merged = {
        name: _Family(f.name, f.type, f.documentation, dict(f.values)) for name, f in stored.items()
    }
    for name, family in local.items():
        if family.type == "gauge":
            merged[name] = _Family(name, family.type, family.documentation, dict(family.values))
            continue
        deltas = {k: v - previous.get((name, k), 0.0) for k, v in family.values.items()}
        if name not in merged:
            if not any(family.values.values()):
                continue  # never observed here (e.g. persist latency in the ingest function)
            merged[name] = _Family(name, family.type, family.documentation, {})
        target = merged[name].values
        for key, delta in deltas.items():
            target[key] = target.get(key, 0.0) + delta
    return merged


def _rebuild(families: Mapping[str, _Family]) -> list[Metric]:
    out = []
    for family in families.values():
        metric = Metric(family.name, family.documentation, family.type)
        for (sample_name, labels), value in family.values.items():
            metric.add_sample(sample_name, dict(labels), value)
        out.append(metric)
    return out


class LocalMetrics(Collector):
    """Embedded-mode metrics: latest run per model, cumulative alerts and detection
    durations, the process metrics (latency, SQL) and the process collector (CPU, memory).

    ``render()`` returns the exposition for ``GET /metrics``.
    """

    def __init__(self, latency: LatencyMetrics | None = None, *, process: bool = True) -> None:
        self.latency = latency or process_latency()
        # A registry of its own: several containers in one process (tests) must not see each
        # other's runs; the (shared) latency histograms are collected through it.
        self.registry = CollectorRegistry(auto_describe=False)
        self._lock = threading.Lock()
        self._runs: dict[str, RunMetrics] = {}
        self._alerts: dict[str, dict[tuple[str, str], float]] = {}
        self._last_success: dict[str, float] = {}
        self._durations: dict[str, HistogramTotals] = {}
        self.registry.register(self)
        if process:  # process_cpu_seconds_total, process_resident_memory_bytes, ... (Linux)
            ProcessCollector(registry=self.registry)

    def alert_sent(self, model_id: str, channel: str, action: str) -> None:
        with self._lock:
            per_model = self._alerts.setdefault(model_id, {})
            per_model[(channel, action)] = per_model.get((channel, action), 0.0) + 1.0

    def export_run(self, run: RunMetrics) -> bool:
        with self._lock:
            self._runs[run.model_id] = run
            if run.status != "error":
                self._last_success[run.model_id] = run.finished_at
            durations = self._durations.get(run.model_id) or HistogramTotals.empty()
            self._durations[run.model_id] = durations.observe(run.duration_seconds)
        return True

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            snapshot = [
                (run, dict(self._alerts.get(m, {})), self._last_success.get(m), self._durations[m])
                for m, run in sorted(self._runs.items())
            ]
        merged: dict[str, Metric] = {}
        for run, alerts, last_success, durations in snapshot:
            for family in run_families(run, alerts, last_success, durations):
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
    durations: HistogramTotals = field(default_factory=HistogramTotals.empty)


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
        state = (
            GroupState(previous.alert_totals, previous.last_success, previous.durations)
            if previous
            else GroupState({}, None, HistogramTotals.empty())
        ).after(run, new_alerts)
        registry = run_registry(run, state.alerts, state.last_success, state.durations)
        group = PushedGroup(
            self.job,
            {"model_id": run.model_id},
            run,
            state.alerts,
            state.last_success,
            generate_latest(registry).decode(),
            state.durations,
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


def google_id_token(audience: str, *, refresh_seconds: float = 3000.0) -> Callable[[], str | None]:
    """A token source for :class:`PushgatewayExporter`: a Google ID token for ``audience``
    (the Cloud Run gateway's URL) from the runtime's credentials, cached ~50 minutes (tokens
    live an hour). Outside Google Cloud, or when no token can be had, it returns None once
    logged, and pushes go without one (a gateway that needs it answers 403, logged)."""
    lock = threading.Lock()
    cached: dict[str, Any] = {"token": None, "at": float("-inf"), "warned": False}

    def token() -> str | None:
        with lock:
            if time.monotonic() - cached["at"] < refresh_seconds:
                return cached["token"]  # type: ignore[no-any-return]
            try:
                import google.auth.transport.requests
                from google.oauth2 import id_token

                request = google.auth.transport.requests.Request()  # type: ignore[no-untyped-call]
                value: str = id_token.fetch_id_token(request, audience)  # type: ignore[no-untyped-call]
            except Exception as exc:  # no metadata server, no credentials, ...
                if not cached["warned"]:
                    _log.warning(
                        "no ID token for the Pushgateway; pushing without one",
                        extra={"fields": {"audience": audience, "error": repr(exc)}},
                    )
                    cached["warned"] = True
                return None
            cached.update(token=value, at=time.monotonic())
            return value

    return token
