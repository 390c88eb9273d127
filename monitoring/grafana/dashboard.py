"""The drift monitor's Grafana dashboard, as code (grafanalib).

    python monitoring/grafana/dashboard.py            # writes drift-monitor.json beside it
    python monitoring/grafana/dashboard.py --check    # exit 1 if the committed JSON differs

The JSON is an import file: Grafana's "Import dashboard" asks for the Prometheus data source
(``DS_PROMETHEUS``). Heavy queries read the recording rules of
``monitoring/prometheus/drift-monitor.rules.yml``; the test suite evaluates every expression
against a real Prometheus (``tests/e2e/test_dashboard_queries.py``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from grafanalib._gen import DashboardEncoder
from grafanalib.core import (
    Dashboard,
    DataSourceInput,
    GridPos,
    Panel,
    RowPanel,
    Stat,
    Target,
    Template,
    Templating,
    Threshold,
    Time,
    TimeSeries,
)

OUTPUT = Path(__file__).resolve().parent / "drift-monitor.json"
DS = "${DS_PROMETHEUS}"
MODEL = 'model_id=~"$model"'
WIDTH = 24


def target(expr: str, legend: str = "", ref: str = "A") -> Target:
    return Target(expr=expr, legendFormat=legend, refId=ref, datasource=DS)


def series(
    title: str,
    targets: Sequence[Target],
    pos: GridPos,
    *,
    unit: str = "",
    description: str = "",
    draw: str = "line",
    log: bool = False,
) -> TimeSeries:
    return TimeSeries(
        title=title,
        description=description,
        dataSource=DS,
        targets=list(targets),
        gridPos=pos,
        unit=unit,
        drawStyle=draw,
        lineInterpolation="stepAfter" if draw == "line" else "linear",
        tooltipMode="multi",
        legendDisplayMode="table",
        legendPlacement="right",
        scaleDistributionType="log" if log else "linear",
        scaleDistributionLog=10 if log else 2,
    )


def row(title: str, y: int) -> RowPanel:
    return RowPanel(title=title, gridPos=GridPos(h=1, w=WIDTH, x=0, y=y))


def panels() -> list[Panel]:
    out: list[Panel] = [row("Drift", 0)]
    out.append(
        Stat(
            title="Drift status per model (1 = drift)",
            description="Latest run's conclusion per model; red = drift.",
            dataSource=DS,
            targets=[
                target(
                    f"max by (model_id) (drift_monitor_model_drift_detected{{{MODEL}}})",
                    "{{model_id}}",
                )
            ],
            gridPos=GridPos(h=5, w=12, x=0, y=1),
            colorMode="background",
            graphMode="none",
            reduceCalc="lastNotNull",
            thresholdType="absolute",
            thresholds=[Threshold("green", 0, 0.0), Threshold("red", 1, 1.0)],
        )
    )
    out.append(
        Stat(
            title="Latest run status per model",
            description="ok / drift / insufficient_data / error of each model's latest run.",
            dataSource=DS,
            targets=[
                target(
                    f"max by (model_id, status) (drift_monitor_run_status{{{MODEL}}}) == 1",
                    "{{model_id}}: {{status}}",
                )
            ],
            gridPos=GridPos(h=5, w=12, x=12, y=1),
            graphMode="none",
            reduceCalc="lastNotNull",
        )
    )
    out.append(
        series(
            "Test p-values (log scale; below the level = drift)",
            [
                target(
                    f"max by (model_id, test) (drift_monitor_p_value{{{MODEL}}})",
                    "{{model_id}} {{test}}",
                )
            ],
            GridPos(h=8, w=12, x=0, y=6),
            log=True,
        )
    )
    out.append(
        series(
            "Test statistics (effects)",
            [
                target(
                    f"max by (model_id, test) (drift_monitor_drift_score{{{MODEL}}})",
                    "{{model_id}} {{test}}",
                )
            ],
            GridPos(h=8, w=12, x=12, y=6),
        )
    )
    out.append(
        series(
            "KL divergence and window sizes",
            [
                target(
                    f"max by (model_id) (drift_monitor_kl_divergence{{{MODEL}}})", "KL {{model_id}}"
                ),
                target(
                    f"max by (model_id, window) (drift_monitor_window_samples{{{MODEL}}})",
                    "{{window}} samples {{model_id}}",
                    "B",
                ),
            ],
            GridPos(h=8, w=12, x=0, y=14),
        )
    )
    out.append(
        series(
            "Seconds since the last successful detection",
            [target(f"model_id:drift_monitor_last_success:age_seconds{{{MODEL}}}", "{{model_id}}")],
            GridPos(h=8, w=12, x=12, y=14),
            unit="s",
            description="Alert DriftMonitorDetectionStale fires above two schedule intervals.",
        )
    )
    out.append(
        series(
            "Evidence against threshold (log10; pages at 1 = threshold)",
            [
                target(
                    f"max by (model_id) (drift_monitor_evidence_ratio{{{MODEL}}})",
                    "evidence / threshold {{model_id}}",
                ),
                target(
                    f"max by (model_id) (drift_monitor_evidence{{{MODEL}}})",
                    "evidence {{model_id}}",
                    "B",
                ),
                target(
                    f"max by (model_id) (drift_monitor_evidence_threshold{{{MODEL}}})",
                    "threshold {{model_id}}",
                    "C",
                ),
            ],
            GridPos(h=8, w=24, x=0, y=22),
            description="The sequential monitor's accumulated evidence of drift per model.",
        )
    )
    out.append(row("Pipeline", 30))
    out.append(
        series(
            "Ingest requests per second by status code",
            [target("code:drift_monitor_ingest_requests:rate5m", "{{code}}")],
            GridPos(h=8, w=12, x=0, y=31),
            unit="reqps",
        )
    )
    out.append(
        series(
            "p95 latency: ingest, persist, stats",
            [
                target("drift_monitor:ingest_latency_seconds:p95_5m", "ingest"),
                target("drift_monitor:persist_latency_seconds:p95_5m", "persist", "B"),
                target("drift_monitor:stats_latency_seconds:p95_5m", "stats", "C"),
            ],
            GridPos(h=8, w=12, x=12, y=31),
            unit="s",
        )
    )
    out.append(
        series(
            "Dead letters (15 min)",
            [target("consumer:drift_monitor_dead_letters:increase15m", "{{consumer}}")],
            GridPos(h=8, w=12, x=0, y=39),
            draw="bars",
        )
    )
    out.append(
        series(
            "Detection duration p95 (1 h)",
            [
                target(
                    f"model_id:drift_monitor_detection_duration_seconds:p95_1h{{{MODEL}}}",
                    "{{model_id}}",
                )
            ],
            GridPos(h=8, w=12, x=12, y=39),
            unit="s",
        )
    )
    out.append(row("Database and process", 47))
    out.append(
        series(
            "SQL statement p95 by operation",
            [target("operation:drift_monitor_db_query_duration_seconds:p95_5m", "{{operation}}")],
            GridPos(h=8, w=8, x=0, y=48),
            unit="s",
        )
    )
    out.append(
        series(
            "SQL connection pool",
            [target("sum by (state) (drift_monitor_db_pool_connections)", "{{state}}")],
            GridPos(h=8, w=8, x=8, y=48),
        )
    )
    out.append(
        series(
            "Process memory and CPU (embedded server)",
            [
                target("max by (job) (process_resident_memory_bytes)", "RSS {{job}}"),
                target("max by (job) (rate(process_cpu_seconds_total[5m]))", "CPU {{job}}", "B"),
            ],
            GridPos(h=8, w=8, x=16, y=48),
            description="Functions: see Cloud Run's own CPU and memory metrics.",
        )
    )
    out.append(row("Alerts", 56))
    out.append(
        series(
            "Alerts sent per day by model, channel and action",
            [
                target(
                    f"model_id:drift_monitor_alerts_sent:increase1d{{{MODEL}}}",
                    "{{model_id}} {{channel}} {{action}}",
                )
            ],
            GridPos(h=8, w=WIDTH, x=0, y=57),
            draw="bars",
        )
    )
    return out


def dashboard() -> Dashboard:
    return Dashboard(
        title="Embedding drift monitor",
        uid="drift-monitor",
        description="Drift verdicts, tests, pipeline latency, database and alerts.",
        tags=["drift-monitor"],
        timezone="utc",
        time=Time("now-24h", "now"),
        refresh="1m",
        inputs=[
            DataSourceInput(
                name="DS_PROMETHEUS",
                label="Prometheus",
                pluginId="prometheus",
                pluginName="Prometheus",
            )
        ],
        templating=Templating(
            list=[
                Template(
                    name="model",
                    label="model",
                    dataSource=DS,
                    query="label_values(drift_monitor_run_status, model_id)",
                    includeAll=True,
                    multi=True,
                    default="$__all",
                    allValue=".*",
                )
            ]
        ),
        panels=panels(),
    ).auto_panel_ids()


def render() -> str:
    data = dashboard().to_json_data()
    return json.dumps(data, cls=DashboardEncoder, sort_keys=True, indent=2) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if OUTPUT.read_text() != text:
            print(f"{OUTPUT} is out of date: run {sys.argv[0]}", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
