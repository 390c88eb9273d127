"""``drift-monitor report MODEL_ID --out FILE.png|FILE.html`` (or ``--html``): a model's drift.

HTML (``--html`` or an ``.html`` file): the page ``GET /drift/report/{model_id}`` serves, one
self-contained file (``entrypoints/report_page.py``): verdict in words, status band over time
with alert markers, each test's numbers with a sentence, top dimensions with reference-versus-
current histograms, quality notes. With ``--url`` the page is fetched from the running monitor.

PNG: four panels from the stored detection history, on a dated UTC time axis: a status band
(OK / DRIFT / insufficient data / error) with the alerts marked (a red triangle where a drift
started — when PagerDuty / the webhook were triggered — and a green one where it resolved);
every test's effect size relative to its practical floor (filled markers where the test decided
drift, hollow where it did not: an effect above the floor without significance is no drift);
every test's p-value on a log scale against its own share of alpha (the decision level) and the
headline KL divergence against its threshold; and the most drifted dimensions of the latest
drift.

Reads the results from the database (``DATABASE_URL`` or the embedded SQLite file in
``--data-dir``), or from a running monitor's API with ``--url`` (``DRIFT_MONITOR_API_KEY``).
Needs matplotlib (``pip install 'embedding-drift-monitor[report]'``).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from drift_monitor.domain.batch import check_model_id
from drift_monitor.domain.errors import ValidationError

NAME = "report"
HELP = "A model's drift report: HTML page (--html) or PNG."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model_id", nargs="?", default=None, help="the model to draw (not with --backtest)"
    )
    parser.add_argument(
        "--backtest",
        type=Path,
        default=None,
        metavar="BACKTEST.json",
        help="draw a `drift-monitor backtest --json` document instead (PNG)",
    )
    parser.add_argument("--out", type=Path, default=None, help="FILE.png or FILE.html")
    parser.add_argument(
        "--html",
        action="store_true",
        help="write the HTML report (default file: MODEL_ID.html, '/' as '_')",
    )
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


def _settings(data_dir: Path | None) -> Any:
    from drift_monitor.adapters.sql import database_url
    from drift_monitor.config import Settings

    settings = Settings.from_env()
    if data_dir is not None:
        settings = replace(settings, data_dir=data_dir)
    url = database_url(settings)
    if not settings.instance_connection_name and url.startswith("sqlite:///"):
        database = Path(url.removeprefix("sqlite:///"))
        if not database.exists():  # do not create an empty database just to report on it
            raise ValidationError("data_dir", f"no database at {database}")
    return settings


def _from_database(data_dir: Path | None, model_id: str, limit: int) -> tuple[list[Any], Any]:
    from drift_monitor.adapters.sql import SqlMonitorRepository, make_engine
    from drift_monitor.entrypoints.api_http import history_entry

    settings = _settings(data_dir)
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


STATUS_COLOURS = {
    "ok": "#2e7d32",
    "drift": "#c62828",
    "insufficient_data": "#9e9e9e",
    "error": "#6a1b9a",
}


def render_png(model_id: str, results: Sequence[Mapping[str, Any]], threshold: float,
               alpha: float) -> bytes:  # fmt: skip
    """Draw the report and return PNG bytes (``results`` newest first, as the API gives)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    ordered = sorted(results, key=lambda r: r["checked_at"])
    # matplotlib date numbers, so every panel shares one dated axis
    date2num: Any = mdates.date2num
    times = [float(date2num(_time(r["checked_at"]))) for r in ordered]
    numeric = times
    fig = plt.figure(figsize=(10, 14))
    grid = fig.add_gridspec(6, 1, height_ratios=[0.7, 1.8, 2.6, 2.2, 1.6, 2.2])
    ax_band = fig.add_subplot(grid[0])
    ax_ev = fig.add_subplot(grid[1], sharex=ax_band)
    ax_score = fig.add_subplot(grid[2], sharex=ax_band)
    ax_p = fig.add_subplot(grid[3], sharex=ax_band)
    ax_kl = fig.add_subplot(grid[4], sharex=ax_band)
    ax_dims = fig.add_subplot(grid[5])
    fig.suptitle(f"Embedding drift — {model_id}")

    # 1. The verdict of every run as a coloured band, alerts marked where a drift started
    # (PagerDuty / webhook triggered) and where it resolved.
    step = (numeric[-1] - numeric[0]) / max(len(numeric) - 1, 1) if len(numeric) > 1 else 1 / 48
    edges = [*numeric, numeric[-1] + step]
    previous = None
    for i, result in enumerate(ordered):
        status = str(result.get("status"))
        ax_band.axvspan(edges[i], edges[i + 1], color=STATUS_COLOURS.get(status, "black"))
        when = times[i]
        if status == "drift" and previous != "drift":
            ax_band.plot([when], [0.5], "v", mfc="white", mec="black", ms=12)
        elif status == "ok" and previous == "drift":
            ax_band.plot([when], [0.5], "^", mfc="white", mec="black", ms=12)
        if status in ("ok", "drift"):
            previous = status
    ax_band.set_ylim(0, 1)
    ax_band.set_yticks([])
    ax_band.set_title("status (▼ alert triggered, ▲ resolved)", fontsize=10, loc="left")
    ax_band.legend(
        handles=[Patch(color=c, label=s.replace("_", " ")) for s, c in STATUS_COLOURS.items()],
        loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=4, fontsize=8, frameon=False,
    )  # fmt: skip

    # 1b. The sequential monitor: accumulated evidence (log10) against the threshold that pages.
    evidence = [_number(r.get("evidence")) for r in ordered]
    bar = [_number(r.get("threshold")) for r in ordered]
    ax_ev.plot(times, [v if v is not None else float("nan") for v in evidence], "-",
               color="tab:blue", lw=1.5, label="evidence (log10)")  # fmt: skip
    ax_ev.plot(times, [v if v is not None else float("nan") for v in bar], ":", color="red",
               label="threshold: pages")  # fmt: skip
    pages = [t for t, r, p in zip(times, ordered, [None, *ordered[:-1]], strict=True)
             if r.get("status") == "drift" and (p or {}).get("status") != "drift"]  # fmt: skip
    finite_ev = [v for v in evidence + bar if v is not None]
    top = max(finite_ev, default=1.0) * 1.1 or 1.0
    ax_ev.plot(pages, [top * 0.95] * len(pages), "v", color="black", ms=8, label="page")
    ax_ev.set_ylim(0, top)
    ax_ev.set_ylabel("evidence")
    ax_ev.set_title("accumulated evidence of a shift (0 = none; a page at the threshold)",
                    fontsize=10)  # fmt: skip
    ax_ev.legend(loc="upper left", fontsize=7)

    test_names = sorted({name for r in ordered for name in (r.get("tests") or {})})

    def series(name: str, key: str) -> list[float]:
        values = [_number(((r.get("tests") or {}).get(name) or {}).get(key)) for r in ordered]
        return [v if v is not None else float("nan") for v in values]

    def decided(name: str) -> list[bool]:
        return [bool(((r.get("tests") or {}).get(name) or {}).get("drift")) for r in ordered]

    # 2. Each test's effect relative to its practical floor. A test decides drift only when
    # its effect is at least the floor AND it is significant: filled markers are drift
    # decisions, hollow ones are not (an effect above the line without significance).
    colours = {name: f"C{i % 10}" for i, name in enumerate(test_names)}
    for name in test_names:
        ratio = [
            e / f if f and f > 0 else float("nan")
            for e, f in zip(series(name, "effect_size"), series(name, "effect_threshold"),
                            strict=True)
        ]  # fmt: skip
        flags = decided(name)
        ax_score.plot(times, ratio, "-", color=colours[name], lw=1, alpha=0.6)
        ax_score.plot([t for t, d in zip(times, flags, strict=True) if d],
                      [r for r, d in zip(ratio, flags, strict=True) if d], "o",
                      color=colours[name], label=f"{name}: drift")  # fmt: skip
        ax_score.plot([t for t, d in zip(times, flags, strict=True) if not d],
                      [r for r, d in zip(ratio, flags, strict=True) if not d], "o",
                      mfc="white", color=colours[name], label=f"{name}: no drift")  # fmt: skip
    ax_score.axhline(1.0, color="red", ls=":", label="practical floor")
    ax_score.set_ylabel("effect / practical floor")
    ax_score.set_title("effect sizes (filled = the test decided drift)", fontsize=10)
    ax_score.legend(loc="upper left", fontsize=7, ncol=2)

    # 3. p-values against each test's level (its share of alpha).
    drawn = False
    for name in test_names:
        values = series(name, "p_value")
        if any(v == v for v in values):  # not all NaN (threshold tests have no p-value)
            drawn = True
            ax_p.plot(times, [max(v, 1e-300) for v in values], "o-", color=colours[name],
                      label=f"{name} p-value")  # fmt: skip
            ax_p.plot(times, series(name, "level"), ":", color=colours[name],
                      label=f"{name} level (its share of the run's alpha)")  # fmt: skip
    if drawn:
        ax_p.set_yscale("log")
        ax_p.legend(loc="lower left", fontsize=7)
    ax_p.set_ylabel("p-value")
    ax_p.set_title("p-values: drift needs the p-value at or below its level", fontsize=10)

    # 4. The headline KL divergence with its threshold on the same, visible scale.
    kl = [_number(r.get("kl_divergence")) for r in ordered]
    kl_values = [k if k is not None else float("nan") for k in kl]
    ax_kl.plot(times, kl_values, "s-", color="black", lw=1, ms=4, label="KL divergence")
    ax_kl.axhline(threshold, color="red", ls=":", label=f"KL threshold {threshold:g}")
    finite = [k for k in kl if k is not None]
    ax_kl.set_ylim(0, max([threshold, *finite]) * 1.15)
    ax_kl.set_ylabel("KL divergence")
    ax_kl.legend(loc="upper left", fontsize=7)

    locator = mdates.AutoDateLocator(tz=UTC, maxticks=8)  # type: ignore[no-untyped-call]
    short = (edges[-1] - edges[0]) * 86400 < 3600  # a short history: ticks need the seconds
    clock = "%Y-%m-%d\n%H:%M:%S" if short else "%Y-%m-%d\n%H:%M"
    for ax in (ax_band, ax_ev, ax_score, ax_p, ax_kl):
        ax.xaxis.set_major_locator(locator)
        formatter = mdates.DateFormatter(clock, tz=UTC)  # type: ignore[no-untyped-call]
        ax.xaxis.set_major_formatter(formatter)
        ax.tick_params(axis="x", labelsize=7, labelbottom=ax is ax_kl)
    ax_kl.set_xlabel("time (UTC)")

    latest_drift = next((r for r in reversed(ordered) if r.get("status") == "drift"), None)
    dims = _dimension_scores((latest_drift or {}).get("top_dimensions") or [])[:10]
    if dims:
        labels, scores = zip(*dims, strict=True)
        ax_dims.barh(range(len(scores)), scores, color="tab:red")
        ax_dims.set_yticks(range(len(scores)), [f"dim {label}" for label in labels])
        ax_dims.invert_yaxis()
        assert latest_drift is not None
        ax_dims.set_title(f"top drifted dimensions at {latest_drift['checked_at']}", fontsize=10)
    else:
        ax_dims.text(0.5, 0.5, "no drift recorded", ha="center", va="center")
        ax_dims.set_axis_off()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    return buffer.getvalue()


def _html_from_api(url: str, model_id: str, key: str | None) -> str:
    quoted = urllib.parse.quote(model_id, safe="/")
    request = urllib.request.Request(
        f"{url.rstrip('/')}/drift/report/{quoted}",
        headers={"Authorization": f"Bearer {key}"} if key else {},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        text: str = response.read().decode("utf-8")
    return text


def _html_from_database(data_dir: Path | None, model_id: str, limit: int) -> str | None:
    """The report page from the database; None when the model has no result."""
    from drift_monitor.adapters.sql import SqlMonitorRepository, SqlRepository, make_engine
    from drift_monitor.entrypoints.api_http import history_entry, status_document
    from drift_monitor.entrypoints.report_page import render_report
    from drift_monitor.service.drift_report import latest_histograms

    settings = _settings(data_dir)
    engine = make_engine(settings)
    try:
        monitor = SqlMonitorRepository(engine)
        history = [history_entry(row) for row in monitor.history(model_id, None, limit)]
        if not history:
            return None
        row = monitor.latest_result(model_id)
        latest = None if row is None else status_document(row)
        hists = latest_histograms(SqlRepository(engine), model_id, latest)
    finally:
        engine.dispose()
    return render_report(model_id, history, latest, hists)


def _output(args: argparse.Namespace, model_id: str) -> tuple[Path, str]:
    out: Path | None = args.out
    if out is None:
        if not args.html:
            raise ValidationError("out", "give --out FILE.png|FILE.html, or --html")
        out = Path(model_id.replace("/", "_") + ".html")
    suffix = out.suffix.lower()
    if suffix not in (".png", ".html"):
        raise ValidationError("out", "must end in .png or .html")
    if args.html and suffix != ".html":
        raise ValidationError("out", "--html writes an .html file")
    return out, suffix


def _backtest(args: argparse.Namespace) -> int:
    """Draw a backtest document: its runs as results (status, evidence, threshold)."""
    try:
        document = json.loads(Path(args.backtest).read_text())
        runs = document["runs"]
        model_id = str(document["model_id"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"drift-monitor report: {args.backtest}: not a backtest document ({exc})",
              file=sys.stderr)  # fmt: skip
        return 2
    out = args.out or Path(str(args.backtest)).with_suffix(".png")
    if out.suffix.lower() != ".png" or not runs:
        print("drift-monitor report: --backtest draws a .png of a replay with runs",
              file=sys.stderr)  # fmt: skip
        return 2
    results = [{"checked_at": r["at"], **r} for r in runs]
    png = render_png(f"{model_id} (backtest)", results, 0.15, 0.05)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(png)
    print(f"wrote {out} ({len(results)} runs)")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.backtest is not None:
        return _backtest(args)
    if args.model_id is None:
        print("drift-monitor report: give MODEL_ID (or --backtest BACKTEST.json)",
              file=sys.stderr)  # fmt: skip
        return 2
    try:
        model_id = check_model_id(args.model_id)
        out, suffix = _output(args, model_id)
        key = args.api_key or os.environ.get("DRIFT_MONITOR_API_KEY")
        if suffix == ".html":
            if args.url:
                page: str | None = _html_from_api(args.url, model_id, key)
            else:
                page = _html_from_database(args.data_dir, model_id, args.limit)
            if page is None:
                print(f"drift-monitor report: no detection results for {model_id}",
                      file=sys.stderr)  # fmt: skip
                return 1
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(page, encoding="utf-8")
            print(f"wrote {out}")
            return 0
        if args.url:
            results = _from_api(args.url, model_id, args.limit, key)
            threshold = alpha = None
        else:
            results, settings = _from_database(args.data_dir, model_id, args.limit)
            threshold, alpha = settings.drift_threshold, None
    except ValidationError as exc:
        print(f"drift-monitor report: {exc.field}: {exc.message}", file=sys.stderr)
        return 2
    except (urllib.error.URLError, OSError) as exc:
        print(f"drift-monitor report: cannot read the report: {exc}", file=sys.stderr)
        return 1
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
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(png)
    print(f"wrote {out} ({len(results)} results)")
    return 0
