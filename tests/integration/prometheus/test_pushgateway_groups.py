"""Several simulated function instances push to a real Pushgateway that a real Prometheus
scrapes: the counts Prometheus sees are exact and there is one group per function."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import numpy as np
import pytest
from drift_monitor.adapters.metrics import LatencyMetrics, PushgatewayExporter, RunMetrics
from prometheus_client import delete_from_gateway
from support.prometheus import PrometheusServer

pytestmark = pytest.mark.integration


@pytest.fixture
def job(pushgateway_url: str) -> Iterator[str]:
    """A job name of its own, so concurrent runs never share groups; groups deleted after."""
    name = f"drift_monitor_test_{uuid.uuid4().hex[:10]}"
    yield name
    for function in ("ingest", "persist"):
        delete_from_gateway(pushgateway_url, job=name, grouping_key={"function": function})
    for model in ("team/bert",):
        delete_from_gateway(pushgateway_url, job=name, grouping_key={"model_id": model})


class Instance:
    """One function instance: its own process metrics and its own exporter."""

    def __init__(self, url: str, job: str, function: str) -> None:
        self.metrics = LatencyMetrics()
        self.exporter = PushgatewayExporter(url, job=job, timeout=5)
        self.function = function

    def push(self) -> None:
        assert self.exporter.push_function(self.metrics, self.function)


def test_instances_add_up_exactly_in_one_group_per_function(
    pushgateway_url: str, job: str, prometheus: str
) -> None:
    rng = np.random.default_rng(10)
    ingest = [Instance(pushgateway_url, job, "ingest") for _ in range(5)]
    persist = [Instance(pushgateway_url, job, "persist") for _ in range(3)]
    expected = {"ingest": 0, "fast": 0, "persist": 0, "dead": 0, "202": 0, "503": 0}
    # Instances come and go: each pushes several times, interleaved with the others, and new
    # observations happen between its pushes (a push carries only what is new since the last).
    for _round in range(4):
        for instance in ingest:
            for seconds in rng.exponential(0.02, size=int(rng.integers(1, 30))):
                instance.metrics.observe_ingest(float(seconds))
                expected["ingest"] += 1
                expected["fast"] += int(seconds <= 0.01)
                code = 503 if rng.random() < 0.1 else 202
                instance.metrics.count_ingest(code)
                expected[str(code)] += 1
            instance.push()
        for instance in persist:
            for seconds in rng.exponential(0.05, size=int(rng.integers(1, 20))):
                instance.metrics.observe_persist(float(seconds))
                expected["persist"] += 1
            if rng.random() < 0.5:
                instance.metrics.count_dead_letter("persist")
                expected["dead"] += 1
            instance.push()
    for instance in ingest[:2]:
        instance.push()  # a push with nothing new changes nothing

    with PrometheusServer({"pushgateway": pushgateway_url.removeprefix("http://")}) as prom:
        prom.wait_for_scrapes()
        j = f'job="{job}"'

        def value(expr: str) -> float:
            result = prom.query(expr)
            assert len(result) == 1, (expr, result)
            return float(result[0]["value"][1])

        assert (
            value(f"sum(drift_monitor_ingest_latency_seconds_count{{{j}}})") == expected["ingest"]
        )
        assert (
            value(f'sum(drift_monitor_ingest_latency_seconds_bucket{{{j},le="0.01"}})')
            == expected["fast"]
        )
        # The ingest group carries no persist histogram: persist counts are not doubled.
        assert (
            value(f"sum(drift_monitor_persist_latency_seconds_count{{{j}}})") == expected["persist"]
        )
        assert value(f"count(drift_monitor_persist_latency_seconds_count{{{j}}})") == 1
        assert value(f"sum(drift_monitor_dead_letters_total{{{j}}})") == expected["dead"]
        for code in ("202", "503"):
            assert (
                value(f'sum(drift_monitor_ingest_requests_total{{{j},code="{code}"}})')
                == expected[code]
            )
        # Bounded: one group per function, whatever the number of instances.
        assert value(f"count(push_time_seconds{{{j}}})") == 2
        groups = {r["metric"]["function"] for r in prom.query(f"push_time_seconds{{{j}}}")}
        assert groups == {"ingest", "persist"}


def test_detection_duration_histogram_accumulates_across_fresh_exporters(
    pushgateway_url: str, job: str, prometheus: str
) -> None:
    durations = [0.3, 4.0, 42.0]
    for seconds in durations:  # each run in a fresh detect instance
        exporter = PushgatewayExporter(pushgateway_url, job=job, timeout=5)
        run = RunMetrics.from_report("team/bert", "ok", None, duration_seconds=seconds)
        assert exporter.export_run(run)
    with PrometheusServer({"pushgateway": pushgateway_url.removeprefix("http://")}) as prom:
        prom.wait_for_scrapes()
        sel = f'job="{job}",model_id="team/bert"'
        prom.wait_for_value(f"sum(drift_monitor_detection_duration_seconds_count{{{sel}}})", 3)
        prom.wait_for_value(
            f'sum(drift_monitor_detection_duration_seconds_bucket{{{sel},le="5"}})', 2
        )
        prom.wait_for_value(
            f"sum(drift_monitor_detection_duration_seconds_sum{{{sel}}})", sum(durations)
        )
