"""The committed Grafana dashboard is exactly what monitoring/grafana/dashboard.py generates."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

from support.modules import load_file

REPO = Path(__file__).resolve().parents[2]
GENERATOR = REPO / "monitoring" / "grafana" / "dashboard.py"


def generator() -> ModuleType:
    return load_file("grafana_dashboard", GENERATOR)


def test_committed_json_equals_the_generated_one() -> None:
    module = generator()
    committed = (REPO / "monitoring" / "grafana" / "drift-monitor.json").read_text()
    assert committed == module.render(), "run: python monitoring/grafana/dashboard.py"
    assert module.main(["--check"]) == 0


def test_generation_is_reproducible() -> None:
    assert generator().render() == generator().render()


def test_dashboard_has_the_expected_panels_and_an_import_data_source() -> None:
    dashboard = json.loads(generator().render())
    assert [i["name"] for i in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p.get("targets", []))
    for needle in (
        "drift_monitor_model_drift_detected",
        "drift_monitor_p_value",
        "drift_monitor_drift_score",
        "drift_monitor_evidence_ratio",
        "drift_monitor_evidence_threshold",
        "code:drift_monitor_ingest_requests:rate5m",
        "drift_monitor:ingest_latency_seconds:p95_5m",
        "drift_monitor:persist_latency_seconds:p95_5m",
        "drift_monitor:stats_latency_seconds:p95_5m",
        "consumer:drift_monitor_dead_letters:increase15m",
        "model_id:drift_monitor_detection_duration_seconds:p95_1h",
        "operation:drift_monitor_db_query_duration_seconds:p95_5m",
        "drift_monitor_db_pool_connections",
        "process_resident_memory_bytes",
        "model_id:drift_monitor_alerts_sent:increase1d",
    ):
        assert needle in exprs, needle
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
