"""The HTML report shows the sequential monitor's evidence and the latest novel vectors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from drift_monitor.entrypoints.report_page import evidence_svg, render_report

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def entry(hours: int, evidence: float | None, status: str = "ok") -> dict[str, object]:
    return {
        "checked_at": (T0 + timedelta(hours=hours)).isoformat().replace("+00:00", "Z"),
        "status": status,
        "evidence": evidence,
        "threshold": None if evidence is None else 4.24,
        "tests": {},
    }


def test_evidence_is_drawn_against_its_threshold() -> None:
    history = [entry(0, None, "insufficient_data"), entry(1, 0.0), entry(2, 2.5),
               entry(3, 5.0, "drift")]  # fmt: skip
    svg = evidence_svg(history)
    assert svg.startswith("<svg id='evidence'") and svg.count("<polyline") == 2
    assert "2026-03-01 01:00 UTC" in svg and "2026-03-01 03:00 UTC" in svg
    assert "warming up" in evidence_svg([entry(0, None, "insufficient_data")])


def test_report_page_has_the_evidence_and_novel_rows() -> None:
    latest = {**entry(3, 5.0, "drift"), "monitor": {
        "novel": 2, "scored": 120, "novel_examples": [{"row": 7, "score": 1.25}]}}  # fmt: skip
    page = render_report("m", [entry(1, 0.0), latest], latest)
    assert "<h2>Accumulated evidence</h2>" in page and "id='evidence'" in page
    assert "id='novel'" in page and "<td>7</td>" in page
