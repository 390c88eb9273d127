"""Self-contained HTML pages: a model's drift report and the embedded server's landing page.

No external asset: the style is inline and every chart is inline SVG, so the page can be saved,
mailed or attached to an incident as one file. ``render_report`` takes the API's history entries
(``GET /drift/history``, newest first), the latest status document and the histograms of
:mod:`drift_monitor.service.drift_report`.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from drift_monitor.service.drift_report import DimensionHistogram

COLOURS = {
    "ok": "#2e7d32",
    "drift": "#c62828",
    "insufficient_data": "#9e9e9e",
    "error": "#6a1b9a",
}
LABELS = {
    "ok": "OK",
    "drift": "DRIFT",
    "insufficient_data": "INSUFFICIENT DATA",
    "error": "ERROR",
}
TEST_TEXT = {
    "ks": "Kolmogorov–Smirnov, per dimension: the largest gap between the reference and current "
    "distributions of one coordinate, p-values corrected over dimensions; the effect is the "
    "Wasserstein distance in typical-dimension spreads.",
    "ad": "Anderson–Darling, per dimension: like K–S with more weight on the tails; same effect "
    "size as K–S.",
    "mmd": "Maximum Mean Discrepancy: a kernel distance between whole vectors, so it sees "
    "rotations, correlations and topic mixtures that no single dimension shows.",
    "psi": "Population Stability Index: binned per-dimension divergence, bias-corrected mean; a "
    "threshold test without p-value.",
    "kl": "KL divergence of the current from the reference per-dimension histograms, "
    "bias-corrected mean; a threshold test (DRIFT_THRESHOLD).",
    "cosine": "Cosines of the vectors to the reference centroid compared with K–S: an "
    "interpretable check of the direction the embeddings point in.",
    "mean_shift": "Welch z-test on per-dimension means from the running sketches.",
}
STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;color:#1b1b1b;
background:#fafafa}
main{max-width:1000px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:1.5rem;margin:.6rem 0}h2{font-size:1.15rem;margin:1.6rem 0 .5rem}
.verdict{padding:12px 16px;border-radius:6px;color:#fff;font-size:1.05rem}
.verdict strong{font-size:1.3rem;margin-right:.5rem}
table{border-collapse:collapse;width:100%;background:#fff;font-size:.9rem}
th,td{border:1px solid #ddd;padding:6px 8px;text-align:left;vertical-align:top}
th{background:#f0f0f0}td.num{text-align:right;font-variant-numeric:tabular-nums}
.drift{color:#c62828;font-weight:600}.nodrift{color:#2e7d32}
.muted{color:#666;font-size:.85rem}svg{background:#fff;border:1px solid #ddd}
.hists{display:flex;flex-wrap:wrap;gap:12px}.legend span{margin-right:14px}
.swatch{display:inline-block;width:12px;height:12px;vertical-align:middle;margin-right:4px}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _fmt(value: Any, digits: int = 4) -> str:
    number = _num(value)
    if number is None:
        return "–"
    if number != 0 and (abs(number) < 1e-3 or abs(number) >= 1e5):
        return f"{number:.{digits - 1}e}"
    return f"{number:.{digits}g}"


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _when(value: Any) -> str:
    parsed = _time(value)
    return parsed.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if parsed else "–"


def page(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{_e(title)}</title><style>{STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>"
    )


# ---- the verdict ---------------------------------------------------------------------------


def verdict(latest: Mapping[str, Any] | None) -> tuple[str, str]:
    """``(status, sentence)``: the latest run's conclusion in words."""
    if not latest:
        return "insufficient_data", "No detection has run for this model yet."
    status = str(latest.get("status") or "error")
    tests = latest.get("tests") or {}
    flagged = sorted(n for n, t in tests.items() if isinstance(t, Mapping) and t.get("drift"))
    windows = latest.get("windows") or {}
    current = windows.get("current") or {}
    baseline = windows.get("baseline") or {}
    span = (
        f"the window {_when(current.get('start'))} – {_when(current.get('end'))} "
        f"against the baseline {_when(baseline.get('start'))} – {_when(baseline.get('end'))}"
    )
    samples = latest.get("samples") or {}
    if status == "drift":
        return status, (
            f"Drift: {len(flagged)} of {len(tests)} tests ({', '.join(flagged)}) found a change "
            f"both significant and larger than its practical floor in {span}."
        )
    if status == "ok":
        return status, (
            f"No drift: none of the {len(tests)} tests found a significant change larger than "
            f"its practical floor in {span}."
        )
    if status == "insufficient_data":
        return status, (
            f"Not enough data to decide: {samples.get('current', 0)} current and "
            f"{samples.get('baseline', 0)} baseline embeddings, fewer than min_samples "
            f"({(latest.get('config') or {}).get('min_samples', '?')}). This is no verdict."
        )
    return status, f"The latest run failed: {latest.get('error') or 'unknown error'}."


# ---- charts --------------------------------------------------------------------------------


def status_band(history: Sequence[Mapping[str, Any]], width: int = 940) -> str:
    """Inline SVG: one coloured segment per run over time, alert markers, dated axis."""
    runs = sorted(
        ((t, r) for r in history if (t := _time(r.get("checked_at"))) is not None),
        key=lambda item: item[0],
    )
    height, top, band, left, right = 110, 22, 34, 10, 10
    if not runs:
        return (
            f"<svg id='status-band' width='{width}' height='40' role='img'>"
            "<text x='10' y='25'>no results yet</text></svg>"
        )
    start, end = runs[0][0].timestamp(), runs[-1][0].timestamp()
    step = (end - start) / max(len(runs) - 1, 1) if end > start else 60.0
    end += step  # the last run covers one typical interval
    scale = (width - left - right) / (end - start)

    def x(ts: float) -> float:
        return left + (ts - start) * scale

    parts = [
        f"<svg id='status-band' width='{width}' height='{height}' role='img' "
        "aria-label='status over time'>"
    ]
    previous = None
    markers = []
    for i, (when, run) in enumerate(runs):
        status = str(run.get("status"))
        x0 = x(when.timestamp())
        x1 = x(runs[i + 1][0].timestamp()) if i + 1 < len(runs) else x(end)
        colour = COLOURS.get(status, "#000")
        title = f"{_when(run.get('checked_at'))}: {LABELS.get(status, status)}"
        parts.append(
            f"<rect x='{x0:.1f}' y='{top}' width='{max(x1 - x0, 1.5):.1f}' height='{band}' "
            f"fill='{colour}'><title>{_e(title)}</title></rect>"
        )
        if status == "drift" and previous != "drift":
            markers.append(
                f"<path class='alert-marker' d='M{x0 - 7:.1f},2 L{x0 + 7:.1f},2 L{x0:.1f},{top - 2}"
                f" Z' fill='#c62828'><title>alert triggered {_e(title)}</title></path>"
            )
        elif status == "ok" and previous == "drift":
            markers.append(
                f"<path class='alert-marker' d='M{x0 - 7:.1f},{top - 2} L{x0 + 7:.1f},{top - 2} "
                f"L{x0:.1f},2 Z' fill='#2e7d32'><title>resolved {_e(title)}</title></path>"
            )
        if status in ("ok", "drift"):
            previous = status
    parts.extend(markers)
    ticks = 5 if width >= 600 else 3
    clock = "%H:%M:%S" if end - start < 3600 else "%H:%M"  # ticks must differ
    for k in range(ticks):
        ts = start + (end - start) * k / (ticks - 1)
        tx = x(ts)
        stamp = datetime.fromtimestamp(ts, UTC)
        anchor = "start" if k == 0 else "end" if k == ticks - 1 else "middle"
        parts.append(
            f"<line x1='{tx:.1f}' x2='{tx:.1f}' y1='{top + band}' y2='{top + band + 5}' "
            "stroke='#444'/>"
            f"<text x='{tx:.1f}' y='{top + band + 20}' font-size='11' text-anchor='{anchor}'>"
            f"{stamp:%Y-%m-%d}</text>"
            f"<text x='{tx:.1f}' y='{top + band + 34}' font-size='11' text-anchor='{anchor}'>"
            f"{stamp.strftime(clock)} UTC</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def evidence_svg(history: Sequence[Mapping[str, Any]], width: int = 940) -> str:
    """Inline SVG: the sequential monitor's evidence (log10) against its threshold over time."""
    points = sorted(
        (
            (t.timestamp(), ev, th)
            for r in history
            if (t := _time(r.get("checked_at"))) is not None
            and (ev := _num(r.get("evidence"))) is not None
            and (th := _num(r.get("threshold"))) is not None
        ),
        key=lambda item: item[0],
    )
    if not points:
        return "<p id='evidence' class='muted'>No evidence yet (the baseline is warming up).</p>"
    height, top, bottom, left, right = 170, 12, 30, 44, 10
    start, end = points[0][0], max(points[-1][0], points[0][0] + 60.0)
    peak = max(max(ev for _, ev, _ in points), max(th for _, _, th in points)) * 1.1 or 1.0

    def x(ts: float) -> float:
        return left + (ts - start) / (end - start) * (width - left - right)

    def y(value: float) -> float:
        return top + (1 - min(value, peak) / peak) * (height - top - bottom)

    evidence = " ".join(f"{x(t):.1f},{y(ev):.1f}" for t, ev, _ in points)
    threshold = " ".join(f"{x(t):.1f},{y(th):.1f}" for t, _, th in points)
    parts = [
        f"<svg id='evidence' width='{width}' height='{height}' role='img' "
        "aria-label='accumulated evidence against its threshold'>",
        f"<polyline points='{threshold}' fill='none' stroke='#c62828' stroke-dasharray='5,4'>"
        "<title>threshold (log10): a page</title></polyline>",
        f"<polyline points='{evidence}' fill='none' stroke='#1565c0' stroke-width='2'>"
        "<title>evidence (log10)</title></polyline>",
        f"<line x1='{left}' x2='{left}' y1='{top}' y2='{height - bottom}' stroke='#444'/>",
    ]
    for value in (0.0, peak / 2, peak):
        parts.append(
            f"<text x='{left - 4}' y='{y(value) + 4:.1f}' font-size='11' text-anchor='end'>"
            f"{value:.1f}</text>"
        )
    for k, ts in enumerate((start, end)):
        anchor = "start" if k == 0 else "end"
        parts.append(
            f"<text x='{x(ts):.1f}' y='{height - 8}' font-size='11' text-anchor='{anchor}'>"
            f"{datetime.fromtimestamp(ts, UTC):%Y-%m-%d %H:%M} UTC</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _novel(latest: Mapping[str, Any]) -> str:
    monitor = latest.get("monitor") or {}
    examples = monitor.get("novel_examples") or []
    if not examples:
        return "<p class='muted'>No vector of the latest run was beyond the baseline's top 1 %.</p>"
    rows = "".join(
        f"<tr><td>{_e(item.get('row'))}</td><td>{_fmt(item.get('score'))}</td></tr>"
        for item in examples
    )
    return (
        f"<p>{_e(monitor.get('novel'))} of {_e(monitor.get('scored'))} vectors scored in the "
        "latest run were beyond the baseline's top 1 % of novelty (distance to their 5th "
        "nearest baseline vector); the most novel, by row of that run's sample:</p>"
        f"<table id='novel'><tr><th>row</th><th>score</th></tr>{rows}</table>"
    )


def histogram_svg(h: DimensionHistogram, width: int = 300, height: int = 170) -> str:
    """Reference (grey) and current (red outline) shares per bin of one dimension."""
    left, bottom, top = 8, 34, 22
    inner_w, inner_h = width - 2 * left, height - bottom - top
    peak = max([*h.reference, *h.current, 1e-12])
    n = len(h.reference)
    bar = inner_w / n
    parts = [
        f"<svg class='histogram' width='{width}' height='{height}' role='img' "
        f"aria-label='dimension {h.dimension} histograms'>",
        f"<text x='{left}' y='15' font-size='12' font-weight='600'>dimension {h.dimension}"
        + (f" · effect {_fmt(h.effect_size, 3)}" if h.effect_size is not None else "")
        + "</text>",
    ]
    for i, share in enumerate(h.reference):
        bh = inner_h * share / peak
        parts.append(
            f"<rect x='{left + i * bar:.1f}' y='{top + inner_h - bh:.1f}' width='{bar:.1f}' "
            f"height='{bh:.1f}' fill='#90a4ae' fill-opacity='0.75'/>"
        )
    points = []
    for i, share in enumerate(h.current):
        y = top + inner_h - inner_h * share / peak
        points.append(f"{left + i * bar:.1f},{y:.1f} {left + (i + 1) * bar:.1f},{y:.1f}")
    parts.append(
        f"<polyline points='{' '.join(points)}' fill='none' stroke='#c62828' stroke-width='2'/>"
    )
    parts.append(
        f"<line x1='{left}' x2='{left + inner_w}' y1='{top + inner_h}' y2='{top + inner_h}' "
        "stroke='#444'/>"
        f"<text x='{left}' y='{height - 8}' font-size='10'>{_fmt(h.edges[0], 3)}</text>"
        f"<text x='{left + inner_w}' y='{height - 8}' font-size='10' text-anchor='end'>"
        f"{_fmt(h.edges[-1], 3)}</text>"
    )
    parts.append("</svg>")
    return "".join(parts)


# ---- pages ---------------------------------------------------------------------------------


def _tests_table(latest: Mapping[str, Any]) -> str:
    tests = latest.get("tests") or {}
    if not tests:
        return "<p class='muted'>The latest run compared no windows (no test results).</p>"
    rows = []
    for name, t in sorted(tests.items()):
        if not isinstance(t, Mapping):
            continue
        decided = bool(t.get("drift"))
        rows.append(
            "<tr>"
            f"<td><strong>{_e(name)}</strong><div class='muted'>"
            f"{_e(TEST_TEXT.get(name, ''))}</div></td>"
            f"<td class='num'>{_fmt(t.get('statistic'))}</td>"
            f"<td class='num'>{_fmt(t.get('p_value'))}</td>"
            f"<td class='num'>{_fmt(t.get('level'))}</td>"
            f"<td class='num'>{_fmt(t.get('effect_size'))}</td>"
            f"<td class='num'>{_fmt(t.get('effect_threshold'))}</td>"
            f"<td class='{'drift' if decided else 'nodrift'}'>"
            f"{'drift' if decided else 'no drift'}</td></tr>"
        )
    return (
        "<table id='tests'><tr><th>test</th><th>statistic</th><th>p-value</th><th>level</th>"
        "<th>effect</th><th>floor</th><th>decision</th></tr>" + "".join(rows) + "</table>"
        "<p class='muted'>A test decides drift when its p-value is at most its level (its share "
        "of alpha) and its effect is at least its practical floor; PSI and KL have no p-value "
        "and compare the statistic with the floor.</p>"
    )


def _dimensions(latest: Mapping[str, Any], hists: Sequence[DimensionHistogram]) -> str:
    top = [d for d in latest.get("top_dimensions") or [] if isinstance(d, Mapping)][:10]
    if not top:
        return "<p class='muted'>No per-dimension results in the latest run.</p>"
    rows = "".join(
        "<tr>"
        f"<td class='num'>{_e(d.get('dimension'))}</td>"
        f"<td class='num'>{_fmt(d.get('effect_size'), 3)}</td>"
        f"<td class='num'>{_fmt(d.get('ks_statistic'), 3)}</td>"
        f"<td class='num'>{_fmt(d.get('ks_p_value'), 3)}</td>"
        f"<td class='num'>{_fmt(d.get('mean_shift_std'), 3)}</td>"
        f"<td class='{'drift' if d.get('drift') else 'nodrift'}'>"
        f"{'drifted' if d.get('drift') else '–'}</td></tr>"
        for d in top
    )
    charts = (
        "<p class='legend muted'><span><i class='swatch' style='background:#90a4ae'></i>"
        "reference window</span><span><i class='swatch' style='background:#c62828'></i>"
        "current window</span> (share of each window's values per bin)</p>"
        "<div class='hists'>" + "".join(histogram_svg(h) for h in hists) + "</div>"
        if hists
        else "<p class='muted'>Histograms need the windows' embeddings (not available here).</p>"
    )
    return (
        "<table id='dimensions'><tr><th>dimension</th><th>effect</th><th>K–S D</th>"
        "<th>K–S p</th><th>mean shift (sd)</th><th>per-dimension test</th></tr>"
        + rows
        + "</table>"
        + charts
    )


def _quality(latest: Mapping[str, Any]) -> str:
    quality = latest.get("quality") or {}
    notes = [str(n) for n in quality.get("notes") or []]
    if not notes:
        return "<p id='quality'>No data-quality issue found in the current window.</p>"
    items = "".join(f"<li>{_e(n)}</li>" for n in notes)
    return (
        f"<ul id='quality'>{items}</ul><p class='muted'>Quality notes never set the drift "
        "verdict; they often explain it (a broken upstream rather than a changed world).</p>"
    )


def render_report(
    model_id: str,
    history: Sequence[Mapping[str, Any]],
    latest: Mapping[str, Any] | None,
    hists: Sequence[DimensionHistogram] = (),
    *,
    generated_at: datetime | None = None,
) -> str:
    """The whole drift report page of one model."""
    status, sentence = verdict(latest)
    generated = (generated_at or datetime.now(UTC)).astimezone(UTC)
    colour = COLOURS.get(status, "#000")
    legend = "".join(
        f"<span><i class='swatch' style='background:{c}'></i>{LABELS[s].lower()}</span>"
        for s, c in COLOURS.items()
    )
    body = [
        f"<h1>Drift report: {_e(model_id)}</h1>",
        f"<p class='muted'>Generated {generated:%Y-%m-%d %H:%M} UTC from {len(history)} "
        f"detection results. Latest run: {_when((latest or {}).get('checked_at'))}.</p>",
        f"<div id='verdict' class='verdict' style='background:{colour}'>"
        f"<strong>{_e(LABELS.get(status, status))}</strong>{_e(sentence)}</div>",
        "<h2>Status over time</h2>",
        status_band(history),
        f"<p class='legend muted'>{legend}<span>▼ alert triggered</span>"
        "<span>▲ resolved</span></p>",
        "<h2>Accumulated evidence</h2>",
        "<p class='muted'>Paging is sequential: evidence of a shift accumulates over runs (blue, "
        "log10) and the model pages when it reaches the threshold (red, set by "
        "<code>false_alarm_interval_days</code>); quiet traffic keeps it at 0.</p>",
        evidence_svg(history),
    ]
    if latest:
        body += [
            "<h2>New kinds of vectors</h2>",
            _novel(latest),
            "<h2>Tests of the latest run</h2>",
            _tests_table(latest),
            "<h2>Most drifted dimensions</h2>",
            _dimensions(latest, hists),
            "<h2>Data quality</h2>",
            _quality(latest),
        ]
    return page(f"Drift report: {model_id}", "".join(body))


def render_landing(models: Sequence[Mapping[str, Any]], *, metrics: bool = True) -> str:
    """``GET /`` of ``drift-monitor serve``: each model's report, the API description, metrics."""
    rows = "".join(
        "<tr>"
        f"<td><a href='/drift/report/{quote(str(m['model_id']), safe='/')}'>"
        f"{_e(m['model_id'])}</a></td>"
        f"<td style='color:{COLOURS.get(str(m.get('last_status')), '#444')}'>"
        f"{_e(LABELS.get(str(m.get('last_status')), 'not checked yet'))}</td>"
        f"<td>{_when(m.get('last_checked_at'))}</td></tr>"
        for m in models
    )
    table = (
        "<table id='models'><tr><th>model</th><th>latest status</th><th>checked</th></tr>"
        + rows
        + "</table>"
        if models
        else "<p>No model has sent embeddings yet (POST /embeddings/batch).</p>"
    )
    links = "<li><a href='/openapi.yaml'>/openapi.yaml</a>: the API description</li>"
    if metrics:
        links += "<li><a href='/metrics'>/metrics</a>: Prometheus metrics</li>"
    return page(
        "Embedding drift monitor",
        "<h1>Embedding drift monitor</h1><h2>Models</h2>"
        + table
        + f"<h2>More</h2><ul>{links}</ul>",
    )
