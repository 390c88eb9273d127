"""Metric names, labels and values; per-model groups; counters that survive across runs."""

from __future__ import annotations

import re

import pytest
from drift_monitor.adapters.metrics import (
    LatencyMetrics,
    LocalMetrics,
    RecordingExporter,
    RunMetrics,
    process_latency,
    run_registry,
    timed,
)
from prometheus_client.parser import text_string_to_metric_families

REPORT = {
    "drift_detected": True,
    "tests": {
        "ks": {"statistic": 0.31, "p_value": 1e-6, "drift": True},
        "mmd": {"statistic": 0.002, "p_value": 0.41, "drift": False},
        "psi": {"statistic": float("nan"), "p_value": None, "drift": None},
    },
    "kl_divergence": 0.27,
    "n_reference": 5000,
    "n_current": 800,
}


def run_of(
    model: str = "team/bert", status: str = "drift", at: float = 1_700_000_000.0
) -> RunMetrics:
    report = REPORT if status in ("drift", "ok") else None
    return RunMetrics.from_report(model, status, report, duration_seconds=2.5, finished_at=at)


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


def test_run_metrics_from_report() -> None:
    run = run_of()
    assert run.n_baseline == 5000 and run.n_current == 800
    assert [t.test for t in run.tests] == ["ks", "mmd", "psi"]
    psi = run.tests[2]
    assert psi.score is None and psi.p_value is None and psi.drift is None


def test_one_run_renders_every_series_with_conventional_names() -> None:
    from prometheus_client import generate_latest

    text = generate_latest(run_registry(run_of(), {("pagerduty", "trigger"): 2.0}, 1.7e9)).decode()
    got = samples(text)
    m = "team/bert"
    assert got[key("drift_monitor_drift_score", model_id=m, test="ks")] == 0.31
    assert got[key("drift_monitor_p_value", model_id=m, test="ks")] == 1e-6
    assert got[key("drift_monitor_drift_detected", model_id=m, test="ks")] == 1.0
    assert got[key("drift_monitor_drift_detected", model_id=m, test="mmd")] == 0.0
    assert key("drift_monitor_drift_score", model_id=m, test="psi") not in got  # NaN omitted
    assert got[key("drift_monitor_model_drift_detected", model_id=m)] == 1.0
    assert got[key("drift_monitor_kl_divergence", model_id=m)] == 0.27
    assert got[key("drift_monitor_window_samples", model_id=m, window="baseline")] == 5000
    assert got[key("drift_monitor_window_samples", model_id=m, window="current")] == 800
    assert got[key("drift_monitor_run_status", model_id=m, status="drift")] == 1.0
    assert got[key("drift_monitor_run_status", model_id=m, status="ok")] == 0.0
    assert got[key("drift_monitor_detection_run_duration_seconds", model_id=m)] == 2.5
    assert got[key("drift_monitor_last_success_timestamp_seconds", model_id=m)] == 1.7e9
    assert (
        got[
            key(
                "drift_monitor_alerts_sent_total", model_id=m, channel="pagerduty", action="trigger"
            )
        ]
        == 2.0
    )
    # Conventions: snake_case, drift_monitor_ prefix, no *_created series, bounded label names.
    for name, labels in got:
        assert re.fullmatch(r"drift_monitor_[a-z0-9_]+", name), name
        assert not name.endswith("_created")
        assert {label for label, _ in labels} <= {
            "model_id",
            "test",
            "window",
            "status",
            "channel",
            "action",
        }


def test_recording_exporter_keeps_counters_cumulative_across_runs() -> None:
    exporter = RecordingExporter()
    exporter.alert_sent("team/bert", "pagerduty", "trigger")
    exporter.alert_sent("team/bert", "webhook", "trigger")
    assert exporter.export_run(run_of())
    exporter.export_run(run_of(at=1_700_000_600.0))  # a run that sent nothing
    exporter.alert_sent("team/bert", "pagerduty", "resolve")
    exporter.alert_sent("team/bert", "pagerduty", "trigger")
    exporter.export_run(run_of(status="ok", at=1_700_001_200.0))
    total = "drift_monitor_alerts_sent_total"
    assert exporter.value(total, model_id="team/bert", channel="pagerduty", action="trigger") == 2
    assert exporter.value(total, model_id="team/bert", channel="pagerduty", action="resolve") == 1
    assert exporter.value(total, model_id="team/bert", channel="webhook", action="trigger") == 1
    assert [p.grouping_key for p in exporter.pushes] == [{"model_id": "team/bert"}] * 3


def test_failed_run_keeps_the_last_success_time_and_drops_scores() -> None:
    exporter = RecordingExporter()
    exporter.export_run(run_of(at=1.7e9))
    exporter.export_run(run_of(status="error", at=1_700_000_600.0))
    last = "drift_monitor_last_success_timestamp_seconds"
    assert exporter.value(last, model_id="team/bert") == 1.7e9
    assert exporter.value("drift_monitor_run_status", status="error") == 1.0
    assert exporter.value("drift_monitor_drift_score", test="ks") is None


def test_groups_for_different_models_do_not_erase_each_other() -> None:
    exporter = RecordingExporter()
    exporter.export_run(run_of("a"))
    exporter.export_run(run_of("b", status="insufficient_data"))
    assert set(exporter.groups) == {"a", "b"}
    assert exporter.value("drift_monitor_drift_score", model_id="a", test="ks") == 0.31
    assert (
        exporter.value("drift_monitor_run_status", model_id="b", status="insufficient_data") == 1.0
    )


def test_unreachable_gateway_keeps_pending_alerts_for_the_next_push() -> None:
    exporter = RecordingExporter(failures_left=1)
    exporter.alert_sent("a", "pagerduty", "trigger")
    assert exporter.export_run(run_of("a")) is False
    assert exporter.export_run(run_of("a")) is True
    assert exporter.value("drift_monitor_alerts_sent_total", model_id="a") == 1


def test_local_metrics_page_has_runs_alerts_and_latency_histograms() -> None:
    local = LocalMetrics(LatencyMetrics())
    local.export_run(run_of("a"))
    local.export_run(run_of("b", status="ok"))
    local.alert_sent("a", "webhook", "trigger")
    local.alert_sent("a", "webhook", "trigger")
    local.latency.observe_ingest(0.02)
    local.latency.observe_ingest(0.2)
    local.latency.observe_persist(0.004)
    body, content_type = local.render()
    assert content_type.startswith("text/plain")
    got = samples(body.decode())
    assert got[key("drift_monitor_drift_score", model_id="a", test="ks")] == 0.31
    assert got[key("drift_monitor_drift_score", model_id="b", test="ks")] == 0.31
    assert (
        got[
            key(
                "drift_monitor_alerts_sent_total", model_id="a", channel="webhook", action="trigger"
            )
        ]
        == 2
    )
    assert got[key("drift_monitor_ingest_latency_seconds_count")] == 2
    assert got[key("drift_monitor_ingest_latency_seconds_bucket", le="0.025")] == 1
    assert got[key("drift_monitor_persist_latency_seconds_sum")] == pytest.approx(0.004)
    # One HELP/TYPE per family even with several models.
    assert body.decode().count("# TYPE drift_monitor_drift_score gauge") == 1


def test_two_local_pages_in_one_process_do_not_mix_runs() -> None:
    first, second = LocalMetrics(), LocalMetrics()
    first.export_run(run_of("only-in-first"))
    assert b"only-in-first" in first.render()[0]
    assert b"only-in-first" not in second.render()[0]


def test_timed_observes_the_process_histograms_even_on_error() -> None:
    latency = process_latency()
    assert process_latency() is latency
    count = key("drift_monitor_persist_latency_seconds_count")
    before = samples(LocalMetrics().render()[0].decode())[count]
    with pytest.raises(RuntimeError), timed(latency.observe_persist):
        raise RuntimeError("persist failed")
    with timed(latency.observe_persist):
        pass
    after = samples(LocalMetrics().render()[0].decode())[count]
    assert after == before + 2
