"""``drift-monitor report MODEL_ID --out FILE.png|FILE.html``: a picture of a model's drift.

Three panels from the stored detection history: every test's effect size relative to its
practical floor over time (with the headline KL divergence on a second axis) and the alerts
marked (a red triangle where a drift started — when PagerDuty / the webhook were triggered —
and a green one where it resolved); every test's p-value on a log scale against its own share
of alpha (the decision level); and the most drifted dimensions of the latest drift. The HTML
variant embeds the same PNG with a results table.

Reads the results from the database (``DATABASE_URL`` or the embedded SQLite file in
``--data-dir``), or from a running monitor's API with ``--url`` (``DRIFT_MONITOR_API_KEY``).
Needs matplotlib (``pip install 'embedding-drift-monitor[report]'``).
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import os
import sys
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from drift_monitor.domain.batch import check_model_id
from drift_monitor.domain.errors import ValidationError

NAME = "report"
HELP = "Draw a model's drift scores and p-values over time (PNG or HTML)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_id", help="the model to draw")
    parser.add_argument("--out", type=Path, required=True, help="FILE.png or FILE.html")
    parser.add_argument("--limit", type=int, default=500, help="newest results to draw (500)")
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="embedded data directory (SQLite file)"
    )
    parser.add_argument("--url", default=None, help="read from a running monitor's API instead")
    parser.add_argument(
        "--api-key",
        default=None,
        help="key for --url (default: DRIFT_MONITOR_API_KEY)",
    )


def _from_api(url: str, model_id: str, limit: int, key: str | None) -> list[dict[str, Any]]:
    quoted = urllib.parse.quote(model_id, safe="/")
    request = urllib.request.Request(
        f"{url.rstrip('/')}/drift/history/{quoted}?limit={limit}",
        headers={"Authorization": f"Bearer {key}"} if key else {},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        payload = orjson.loads(response.read())
    results: list[dict[str, Any]] = payload["results"]
    return results


def _from_database(data_dir: Path | None, model_id: str, limit: int) -> tuple[list[Any], Any]:
    from drift_monitor.adapters.sql import SqlMonitorRepository, database_url, make_engine
    from drift_monitor.config import Settings
    from drift_monitor.entrypoints.api_http import history_entry

    settings = Settings.from_env()
    if data_dir is not None:
        settings = replace(settings, data_dir=data_dir)
    url = database_url(settings)
    if not settings.instance_connection_name and url.startswith("sqlite:///"):
        database = Path(url.removeprefix("sqlite:///"))
        if not database.exists():  # do not create an empty database just to report on it
            raise ValidationError("data_dir", f"no database at {database}")
    engine = make_engine(settings)
    try:
        monitor = SqlMonitorRepository(engine)
        rows = [history_entry(row) for row in monitor.history(model_id, None, limit)]
    finally:
        engine.dispose()
    return rows, settings


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _dimension_scores(top: Sequence[Any]) -> list[tuple[str, float]]:
    """``(label, score)`` pairs from the engine's ``top_dimensions`` entries."""
    out: list[tuple[str, float]] = []
    for entry in top:
        if not isinstance(entry, Mapping):
            continue
        label = str(entry.get("dimension", entry.get("index", "?")))
        score = next(
            (
                _number(entry[k])
                for k in ("score", "effect_size", "statistic", "shift", "value")
                if _number(entry.get(k)) is not None
            ),
            None,
        )
        if score is not None:
            out.append((label, score))
    return out


def render_png(model_id: str, results: Sequence[Mapping[str, Any]], threshold: float,
               alpha: float) -> bytes:  # fmt: skip
    """Draw the report and return PNG bytes (``results`` newest first, as the API gives)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ordered = sorted(results, key=lambda r: r["checked_at"])
    times = [_time(r["checked_at"]) for r in ordered]
    fig, (ax_score, ax_p, ax_dims) = plt.subplots(
        3, 1, figsize=(10, 10), gridspec_kw={"height_ratios": [3, 2, 2]}
    )
    fig.suptitle(f"Embedding drift — {model_id}")

    test_names = sorted({name for r in ordered for name in (r.get("tests") or {})})

    def series(name: str, key: str) -> list[float]:
        values = [_number(((r.get("tests") or {}).get(name) or {}).get(key)) for r in ordered]
        return [v if v is not None else float("nan") for v in values]

    # Tests measure different things on different scales; what they share is the decision
    # rule, so draw each test's effect size relative to its practical floor (>= 1: large
    # enough to count) and its p-value against its own share of alpha.
    colours = {name: f"C{i % 10}" for i, name in enumerate(test_names)}
    for name in test_names:
        ratio = [
            e / f if f and f > 0 else float("nan")
            for e, f in zip(series(name, "effect_size"), series(name, "effect_threshold"),
                            strict=True)
        ]  # fmt: skip
        ax_score.plot(times, ratio, "o-", color=colours[name], label=f"{name} effect / floor")
    ax_score.axhline(1.0, color="red", ls=":", label="practical floor")
    kl = [_number(r.get("kl_divergence")) for r in ordered]
    ax_kl = ax_score.twinx()
    ax_kl.plot(times, [k if k is not None else float("nan") for k in kl], "s--", color="black",
               lw=1, ms=4, alpha=0.6, label="KL divergence (right axis)")  # fmt: skip
    ax_kl.set_ylabel(f"KL divergence (kl test threshold {threshold:g})")
    previous = None
    for when, result in zip(times, ordered, strict=True):
        status = result.get("status")
        if status == "drift" and previous != "drift":
            ax_score.axvline(when, color="red", alpha=0.25)
            ax_score.plot([when], [1.0], "v", color="red", ms=12)
        elif status == "ok" and previous == "drift":
            ax_score.axvline(when, color="green", alpha=0.25)
            ax_score.plot([when], [1.0], "^", color="green", ms=12)
        elif status == "insufficient_data":
            ax_score.axvspan(when, when, color="grey", alpha=0.3)
        if status in ("ok", "drift"):
            previous = status
    ax_score.set_ylabel("effect size / practical floor")
    ax_score.set_title("drift scores (▼ alert triggered, ▲ resolved)")
    handles, labels = ax_score.get_legend_handles_labels()
    kl_handles, kl_labels = ax_kl.get_legend_handles_labels()
    ax_score.legend(handles + kl_handles, labels + kl_labels, loc="upper left", fontsize=8)

    for name in test_names:
        values = series(name, "p_value")
        if any(v == v for v in values):  # not all NaN (threshold tests have no p-value)
            ax_p.plot(times, [max(v, 1e-300) for v in values], "o-", color=colours[name],
                      label=f"{name} p-value")  # fmt: skip
            ax_p.plot(times, series(name, "level"), ":", color=colours[name],
                      label=f"{name} level (its share of alpha {alpha:g})")  # fmt: skip
    ax_p.set_yscale("log")
    ax_p.set_ylabel("p-value (drift when below its level)")
    ax_p.legend(loc="lower left", fontsize=8)
    for ax in (ax_score, ax_p):
        ax.tick_params(axis="x", labelsize=8)

    latest_drift = next((r for r in reversed(ordered) if r.get("status") == "drift"), None)
    dims = _dimension_scores((latest_drift or {}).get("top_dimensions") or [])[:10]
    if dims:
        labels, scores = zip(*dims, strict=True)
        ax_dims.barh(range(len(scores)), scores, color="tab:red")
        ax_dims.set_yticks(range(len(scores)), [f"dim {label}" for label in labels])
        ax_dims.invert_yaxis()
        assert latest_drift is not None
        ax_dims.set_title(f"top drifted dimensions at {latest_drift['checked_at']}")
    else:
        ax_dims.text(0.5, 0.5, "no drift recorded", ha="center", va="center")
        ax_dims.set_axis_off()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    return buffer.getvalue()


def render_html(model_id: str, results: Sequence[Mapping[str, Any]], png: bytes) -> str:
    lines = []
    for r in results:
        flagged = sorted(n for n, t in (r.get("tests") or {}).items() if (t or {}).get("drift"))
        cells = (r["checked_at"], r.get("status"), r.get("kl_divergence"), ", ".join(flagged))
        lines.append("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in cells) + "</tr>")
    rows = "".join(lines)
    image = base64.b64encode(png).decode()
    title = html.escape(model_id)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Drift report: {title}"
        f"</title></head><body><h1>Drift report: {title}</h1>"
        f"<img alt='drift scores over time' src='data:image/png;base64,{image}'>"
        "<table border='1'><tr><th>checked at</th><th>status</th><th>KL divergence</th>"
        f"<th>tests flagging drift</th></tr>{rows}</table></body></html>"
    )


def run(args: argparse.Namespace) -> int:
    try:
        model_id = check_model_id(args.model_id)
        suffix = args.out.suffix.lower()
        if suffix not in (".png", ".html"):
            raise ValidationError("out", "must end in .png or .html")
        if args.url:
            key = args.api_key or os.environ.get("DRIFT_MONITOR_API_KEY")
            results = _from_api(args.url, model_id, args.limit, key)
            threshold = alpha = None
        else:
            results, settings = _from_database(args.data_dir, model_id, args.limit)
            threshold, alpha = settings.drift_threshold, None
    except ValidationError as exc:
        print(f"drift-monitor report: {exc.field}: {exc.message}", file=sys.stderr)
        return 2
    if not results:
        print(f"drift-monitor report: no detection results for {model_id}", file=sys.stderr)
        return 1
    configured = next((r.get("config") for r in results if r.get("config")), None) or {}
    threshold = float(configured.get("drift_threshold") or threshold or 0.15)
    alpha = float(configured.get("alpha") or alpha or 0.05)
    try:
        png = render_png(model_id, results, threshold, alpha)
    except ModuleNotFoundError:
        print("drift-monitor report needs matplotlib: pip install "
              "'embedding-drift-monitor[report]'", file=sys.stderr)  # fmt: skip
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".png":
        args.out.write_bytes(png)
    else:
        args.out.write_text(render_html(model_id, results, png), encoding="utf-8")
    print(f"wrote {args.out} ({len(results)} results)")
    return 0
