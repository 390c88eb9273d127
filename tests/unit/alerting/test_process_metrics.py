"""Detection-duration histogram, SQL statement timing and pool gauges, process collector, and
the per-function group arithmetic of the Pushgateway exporter."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from drift_monitor.adapters import metrics as m
from drift_monitor.adapters.metrics import (
    HistogramTotals,
    LatencyMetrics,
    LocalMetrics,
    RecordingExporter,
    RunMetrics,
)
from drift_monitor.adapters.sql.engine import sqlite_engine
from drift_monitor.adapters.sql.instrumentation import instrument, operation
from prometheus_client.parser import text_string_to_metric_families


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


def run(model: str, seconds: float, status: str = "ok") -> RunMetrics:
    return RunMetrics.from_report(model, status, None, duration_seconds=seconds, finished_at=1e9)


def test_histogram_totals_are_cumulative() -> None:
    h = HistogramTotals.empty((1.0, 10.0))
    for v in (0.5, 1.0, 3.0, 50.0):
        h = h.observe(v)
    assert h.counts == (2.0, 3.0, 4.0)
    assert h.total == pytest.approx(54.5)
    assert h.count == 4


def test_local_metrics_has_a_detection_duration_histogram_per_model() -> None:
    local = LocalMetrics(LatencyMetrics(), process=False)
    for seconds in (0.2, 7.0, 400.0):
        local.export_run(run("a", seconds))
    local.export_run(run("b", 1.0, status="error"))  # failed runs are timed too
    got = samples(local.render()[0].decode())
    h = "drift_monitor_detection_duration_seconds"
    assert got[key(f"{h}_count", model_id="a")] == 3
    assert got[key(f"{h}_bucket", model_id="a", le="10.0")] == 2
    assert got[key(f"{h}_bucket", model_id="a", le="+Inf")] == 3
    assert got[key(f"{h}_sum", model_id="a")] == pytest.approx(407.2)
    assert got[key(f"{h}_count", model_id="b")] == 1


def test_recording_exporter_accumulates_durations_per_group() -> None:
    rec = RecordingExporter()
    rec.export_run(run("a", 2.0))
    rec.export_run(run("a", 3.0))
    assert rec.value("drift_monitor_detection_duration_seconds_count", model_id="a") == 2
    assert rec.value("drift_monitor_detection_duration_seconds_sum", model_id="a") == 5.0


def test_local_page_has_process_cpu_and_memory() -> None:
    text = LocalMetrics(LatencyMetrics()).render()[0].decode()
    names = {f.name for f in text_string_to_metric_families(text)}
    assert {"process_cpu_seconds", "process_resident_memory_bytes"} <= names


@pytest.mark.parametrize(
    ("sql", "label"),
    [
        ("SELECT 1", "select"),
        ("  insert into t values (1)", "insert"),
        ("UPDATE t SET a=1", "update"),
        ("\n delete from t", "delete"),
        ("(SELECT 1) UNION (SELECT 2)", "select"),
        ("WITH x AS (SELECT 1) SELECT * FROM x", "other"),
        ("PRAGMA journal_mode = WAL", "other"),
        ("", "other"),
    ],
)
def test_statement_operation_label(sql: str, label: str) -> None:
    assert operation(sql) == label


def test_sql_statements_are_timed_and_the_pool_is_reported(tmp_path: Path) -> None:
    metrics = LatencyMetrics()
    engine = instrument(sqlite_engine(f"sqlite:///{tmp_path / 'db.sqlite'}"), metrics)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (a INTEGER)"))
        conn.execute(sa.text("INSERT INTO t VALUES (1)"))
        conn.execute(sa.text("SELECT a FROM t")).all()
        with pytest.raises(sa.exc.OperationalError):
            conn.execute(sa.text("SELECT nope FROM t"))
        got = samples(m.generate_latest(metrics.registry).decode())
        assert got[key("drift_monitor_db_pool_connections", state="checked_out")] == 1
    h = "drift_monitor_db_query_duration_seconds_count"
    got = samples(m.generate_latest(metrics.registry).decode())
    assert got[key(h, operation="insert")] == 1
    assert got[key(h, operation="select")] == 2  # the failing one too
    assert got[key("drift_monitor_db_pool_connections", state="checked_out")] == 0
    engine.dispose()


def test_merge_adds_increments_since_the_last_push_and_keeps_other_families() -> None:
    a, b = LatencyMetrics(), LatencyMetrics()
    a.observe_ingest(0.001)
    a.observe_ingest(0.2)
    b.observe_ingest(0.3)
    b.count_dead_letter("stats")
    group: dict[str, m._Family] = {}
    pushed: dict[str, dict[tuple[str, m.SampleKey], float]] = {"a": {}, "b": {}}

    def push(name: str, metrics: LatencyMetrics) -> None:
        nonlocal group
        local = m._families(metrics.registry.collect())
        group = m._merge(group, local, pushed[name])
        pushed[name] = {(f, k): v for f, fam in local.items() for k, v in fam.values.items()}

    push("a", a)
    push("b", b)
    a.observe_ingest(5.0)
    push("a", a)
    push("b", b)  # nothing new
    count = group["drift_monitor_ingest_latency_seconds"].values
    assert count[("drift_monitor_ingest_latency_seconds_count", ())] == 4
    assert count[("drift_monitor_ingest_latency_seconds_bucket", (("le", "0.005"),))] == 1
    assert (
        group["drift_monitor_dead_letters"].values[
            ("drift_monitor_dead_letters_total", (("consumer", "stats"),))
        ]
        == 1
    )
    assert "drift_monitor_persist_latency_seconds" not in group  # never observed


def test_pushes_and_reads_carry_the_bearer_token() -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[tuple[str, str | None]] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, body: bytes = b"") -> None:
            seen.append((self.command, self.headers.get("Authorization")))
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._answer(b"")

        def do_PUT(self) -> None:
            self._answer()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        exporter = m.PushgatewayExporter(url, token=lambda: "id-token-1")
        assert exporter.export_run(run("a", 1.0))
        metrics = LatencyMetrics()
        metrics.observe_ingest(0.1)
        assert exporter.push_function(metrics, "ingest")
        assert seen == [
            ("GET", "Bearer id-token-1"),
            ("PUT", "Bearer id-token-1"),
            ("GET", "Bearer id-token-1"),
            ("PUT", "Bearer id-token-1"),
        ]
        seen.clear()
        assert m.PushgatewayExporter(url).export_run(run("a", 1.0))
        assert seen == [("GET", None), ("PUT", None)]
    finally:
        server.shutdown()
        server.server_close()


def test_id_token_source_without_google_credentials_gives_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # tests/conftest.py points the metadata server at a closed port: no token to be had
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    source = m.google_id_token("https://gateway.example")
    assert source() is None
