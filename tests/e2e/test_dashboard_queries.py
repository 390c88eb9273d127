"""Every PromQL expression we ship returns data from a real Prometheus after a drift scenario.

A real ``prometheus`` (loopback, rules of ``monitoring/prometheus`` loaded) scrapes
``drift-monitor serve``'s ``/metrics`` and a Pushgateway that a simulated function instance
pushed to; then a drift scenario runs through the server (ingest, detection, one PagerDuty
trigger). Each expression of the Grafana dashboard, of the Cloud Monitoring dashboard and alert
in ``terraform/`` and of ``docs/metrics.md`` is evaluated through the HTTP API and must return
at least one series. Run with ``-s`` to see the series count of each.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from drift_monitor.adapters import metrics
from drift_monitor.adapters.metrics import LatencyMetrics, PushgatewayExporter
from support.fixtures import pagerduty_receiver  # noqa: F401
from support.prometheus import PrometheusServer, PushgatewayServer, prometheus_binary
from support.receiver import Receiver
from test_drift_alerting import ADMIN_KEY, API_KEY, Served, drifted, traffic

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "monitoring" / "prometheus" / "drift-monitor.rules.yml"
GRAFANA = REPO / "monitoring" / "grafana" / "drift-monitor.json"
TERRAFORM = REPO / "terraform"
DOCS = REPO / "docs" / "metrics.md"

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def grafana_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(GRAFANA.read_text())
    out = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            # the dashboard's one variable, at its default (all models)
            out.append((f"grafana: {panel['title']}", target["expr"].replace("$model", ".*")))
    return out


def terraform_queries() -> list[tuple[str, str]]:
    names = {"drift_score": metrics.DRIFT_SCORE, "last_success": metrics.LAST_SUCCESS}
    out = []
    template = (TERRAFORM / "dashboards" / "drift.json.tftpl").read_text()
    for query in re.findall(r'"prometheusQuery":\s*"((?:[^"\\]|\\.)*)"', template):
        expr = re.sub(r"\$\{(\w+)\}", lambda m: names[m.group(1)], json.loads(f'"{query}"'))
        out.append(("terraform dashboard", expr))
    monitoring = (TERRAFORM / "monitoring.tf").read_text()
    for query in re.findall(r'^\s*query\s*=\s*"(.*)"\s*$', monitoring, re.MULTILINE):
        expr = query.replace("${local.metric_names.last_success}", metrics.LAST_SUCCESS)
        # the alert's threshold at 0 s: the query must find the series, not fire in the test
        expr = expr.replace("${var.detection_stale_after_seconds}", "0")
        assert "${" not in expr, expr
        out.append(("terraform alert", expr))
    return out


def docs_queries() -> list[tuple[str, str]]:
    out = []
    for block in re.findall(r"```promql\n(.*?)```", DOCS.read_text(), re.DOTALL):
        for line in block.splitlines():
            expr = line.split("#", 1)[0].strip()
            if expr:
                out.append(("docs/metrics.md", expr))
    return out


@pytest.fixture
def pushgateway() -> Iterator[str]:
    """A gateway of this test's own: no series left by other tests can answer a query."""
    try:
        server = PushgatewayServer()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    with server:
        yield server.url


def test_query_sources_are_found() -> None:
    assert len(grafana_queries()) >= 15
    assert len(terraform_queries()) >= 3
    assert len(docs_queries()) >= 5


@pytest.mark.timeout(300)
def test_every_shipped_query_returns_data_after_a_drift_scenario(
    tmp_path: Path,
    pagerduty_receiver: Receiver,  # noqa: F811
    pushgateway: str,
) -> None:
    if prometheus_binary() is None:
        pytest.skip("prometheus not found; apt-get install prometheus (scripts/test installs it)")
    # A function instance in the cloud pushes to the gateway (as ingest and persist do).
    instance = LatencyMetrics()
    exporter = PushgatewayExporter(pushgateway, timeout=5)
    nouns, verbs = traffic()
    model = "dash/encoder"
    served = Served(tmp_path / "data", pagerduty_receiver)
    try:
        targets = {
            "drift_monitor": served.base.removeprefix("http://") + "/metrics",
            "pushgateway": pushgateway.removeprefix("http://"),
        }
        with PrometheusServer(targets, [RULES], tokens={"drift_monitor": API_KEY}) as prom:
            prom.wait_for_scrapes(2)
            now = datetime.now(UTC)
            served.send(model, nouns[:600], now - timedelta(hours=2))
            served.call("POST", f"/models/{model}/config", {
                "current_window_minutes": 0.25, "min_samples": 100,
            }, key=ADMIN_KEY)  # fmt: skip
            served.call("POST", f"/models/{model}/baseline", {
                "start": (now - timedelta(hours=3)).isoformat(),
                "end": (now - timedelta(hours=1)).isoformat(),
            }, key=ADMIN_KEY)  # fmt: skip
            served.send(model, nouns[600:900], datetime.now(UTC))
            assert served.check(model)["status"] == "ok"
            for seconds in (0.01, 0.03):
                instance.observe_ingest(seconds)
                instance.count_ingest(202)
            assert exporter.push_function(instance, "ingest")
            time.sleep(16)  # a fresh 15-second current window
            served.send(model, drifted(verbs[:300]), datetime.now(UTC))
            assert served.check(model)["status"] == "drift"
            pagerduty_receiver.wait_for(1)
            instance.observe_persist(0.02)
            assert exporter.push_function(instance, "persist")
            time.sleep(3)  # a few more scrapes and rule evaluations after the scenario
            prom.wait_for_scrapes(10)

            queries = grafana_queries() + terraform_queries() + docs_queries()
            counts = []
            for source, expr in queries:
                counts.append((source, expr, len(prom.query(expr))))
    finally:
        served.stop()
    width = max(len(s) for s, _, _ in counts)
    print("\nseries  source" + " " * (width - 6) + "  query")
    for source, expr, n in counts:
        print(f"{n:6d}  {source:{width}}  {expr}")
    empty = [(source, expr) for source, expr, n in counts if n == 0]
    assert not empty, f"queries without data: {empty}"
