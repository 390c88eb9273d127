"""Push detection runs to Debian's real prometheus-pushgateway and read them back."""

from __future__ import annotations

import urllib.request
import uuid
from collections.abc import Iterator

import pytest
from drift_monitor.adapters.metrics import LatencyMetrics, PushgatewayExporter, RunMetrics
from prometheus_client import delete_from_gateway
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.integration

REPORT = {
    "drift_detected": True,
    "tests": {
        "ks": {"statistic": 0.31, "p_value": 1e-6, "drift": True},
        "mmd": {"statistic": 0.002, "p_value": 0.41, "drift": False},
    },
    "kl_divergence": 0.27,
}


def scrape(url: str) -> list[tuple[str, dict[str, str], float]]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    return [
        (s.name, dict(s.labels), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def value(series: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    found = [
        v for n, lab, v in series if n == name and all(lab.get(k) == x for k, x in labels.items())
    ]
    assert len(found) == 1, (name, labels, found)
    return found[0]


@pytest.fixture
def exporter(pushgateway_url: str) -> Iterator[PushgatewayExporter]:
    """An exporter with a job name of its own, so parallel test runs never share groups."""
    job = f"drift_monitor_test_{uuid.uuid4().hex[:10]}"
    exporter = PushgatewayExporter(pushgateway_url, job=job, timeout=5)
    yield exporter
    for model in ("team/bert", "other-model"):
        delete_from_gateway(pushgateway_url, job=job, grouping_key={"model_id": model})


def test_a_pushed_run_is_read_back_with_names_labels_and_values(
    exporter: PushgatewayExporter, pushgateway_url: str
) -> None:
    run = RunMetrics.from_report(
        "team/bert",
        "drift",
        REPORT,
        duration_seconds=1.25,
        finished_at=1_700_000_000.0,
        n_baseline=5000,
        n_current=800,
    )
    exporter.alert_sent("team/bert", "pagerduty", "trigger")
    assert exporter.export_run(run)
    got = [s for s in scrape(pushgateway_url) if s[1].get("job") == exporter.job]
    m = {"model_id": "team/bert", "job": exporter.job}
    assert value(got, "drift_monitor_drift_score", test="ks", **m) == 0.31
    assert value(got, "drift_monitor_p_value", test="ks", **m) == 1e-6
    assert value(got, "drift_monitor_drift_detected", test="mmd", **m) == 0.0
    assert value(got, "drift_monitor_model_drift_detected", **m) == 1.0
    assert value(got, "drift_monitor_window_samples", window="baseline", **m) == 5000
    assert value(got, "drift_monitor_window_samples", window="current", **m) == 800
    assert value(got, "drift_monitor_detection_run_duration_seconds", **m) == 1.25
    assert value(got, "drift_monitor_last_success_timestamp_seconds", **m) == 1_700_000_000.0
    assert value(got, "drift_monitor_run_status", status="drift", **m) == 1.0
    assert (
        value(got, "drift_monitor_alerts_sent_total", channel="pagerduty", action="trigger", **m)
        == 1.0
    )
    assert value(got, "push_time_seconds", **m) > 0  # the gateway's own bookkeeping


def test_counters_accumulate_across_exporter_instances_and_models_stay_separate(
    exporter: PushgatewayExporter, pushgateway_url: str
) -> None:
    def fresh() -> PushgatewayExporter:
        # Each detection run in GCP is a new process: nothing carried over in memory.
        return PushgatewayExporter(pushgateway_url, job=exporter.job)

    first = fresh()
    first.alert_sent("team/bert", "pagerduty", "trigger")
    first.export_run(
        RunMetrics.from_report(
            "team/bert", "drift", REPORT, duration_seconds=1, finished_at=1_700_000_000.0
        )
    )
    other = fresh()
    other.export_run(
        RunMetrics.from_report(
            "other-model", "insufficient_data", None, duration_seconds=0.1, n_current=3
        )
    )
    second = fresh()
    second.alert_sent("team/bert", "pagerduty", "resolve")
    second.alert_sent("team/bert", "pagerduty", "trigger")
    second.export_run(
        RunMetrics.from_report(
            "team/bert", "error", None, duration_seconds=2, finished_at=1_700_000_600.0
        )
    )
    got = [s for s in scrape(pushgateway_url) if s[1].get("job") == exporter.job]
    bert = {"model_id": "team/bert", "job": exporter.job}
    total = "drift_monitor_alerts_sent_total"
    assert value(got, total, channel="pagerduty", action="trigger", **bert) == 2.0
    assert value(got, total, channel="pagerduty", action="resolve", **bert) == 1.0
    # The failed run replaced the scores but kept the last success time.
    assert value(got, "drift_monitor_last_success_timestamp_seconds", **bert) == 1_700_000_000.0
    assert value(got, "drift_monitor_run_status", status="error", **bert) == 1.0
    assert not [
        s for s in got if s[0] == "drift_monitor_drift_score" and s[1]["model_id"] == "team/bert"
    ]
    # The other model's group is untouched by team/bert's pushes.
    o = {"model_id": "other-model", "job": exporter.job}
    assert value(got, "drift_monitor_run_status", status="insufficient_data", **o) == 1.0
    assert value(got, "drift_monitor_window_samples", window="current", **o) == 3.0


def test_function_metrics_push_to_one_group_per_function(pushgateway_url: str) -> None:
    job = f"drift_monitor_test_{uuid.uuid4().hex[:10]}"
    exporter = PushgatewayExporter(pushgateway_url, job=job)
    latency = LatencyMetrics()
    for seconds in (0.003, 0.02, 0.2):
        latency.observe_ingest(seconds)
    try:
        assert exporter.push_function(latency, "ingest")
        got = [s for s in scrape(pushgateway_url) if s[1].get("job") == job]
        g = {"function": "ingest"}
        assert value(got, "drift_monitor_ingest_latency_seconds_count", **g) == 3
        assert value(got, "drift_monitor_ingest_latency_seconds_bucket", le="0.025", **g) == 2
        # never observed in this process: not pushed (no zero series in the ingest group)
        assert not [s for s in got if s[0].startswith("drift_monitor_persist_latency")]
        assert {s[1].get("function") for s in got} == {"ingest"}
        latency.observe_ingest(0.5)
        assert exporter.push_function(latency, "ingest")
        got = [s for s in scrape(pushgateway_url) if s[1].get("job") == job]
        assert value(got, "drift_monitor_ingest_latency_seconds_count", **g) == 4
    finally:
        delete_from_gateway(pushgateway_url, job=job, grouping_key={"function": "ingest"})
    assert not [s for s in scrape(pushgateway_url) if s[1].get("job") == job]


def test_unreachable_gateway_does_not_raise() -> None:
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    exporter = PushgatewayExporter(f"http://127.0.0.1:{port}", timeout=1)
    run = RunMetrics.from_report("m", "ok", REPORT, duration_seconds=1)
    assert exporter.export_run(run) is False
