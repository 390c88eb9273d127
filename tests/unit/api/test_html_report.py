"""``GET /drift/report/{model_id}`` and ``GET /``: self-contained HTML from the stored results."""

from __future__ import annotations

import re
from datetime import timedelta

import numpy as np
from api_support import ADMIN, API, NOW, Api
from drift_monitor.entrypoints.report_page import render_report, status_band, verdict
from drift_monitor.service.drift_report import histograms


def drifting(api: Api) -> Api:
    """Model ``org/encoder``: 600 baseline vectors, then 300 with dimension 3 shifted."""
    rng = np.random.default_rng(7)
    api.send("org/encoder", rng.normal(size=(600, 8)), NOW - timedelta(days=1))
    current = rng.normal(size=(300, 8))
    current[:, 3] += 1.5
    api.send("org/encoder", current, NOW - timedelta(minutes=10))
    response = api.client.post(
        "/models/org/encoder/config", json={"min_samples": 100}, headers=ADMIN
    )
    assert response.status_code == 200, response.json
    check = api.client.post("/drift/check/org/encoder", headers=API)
    assert check.status_code == 200 and check.json["results"][0]["status"] == "drift", check.json
    api.tests_run = sorted(check.json["results"][0]["tests"])  # type: ignore[attr-defined]
    assert api.tests_run  # type: ignore[attr-defined]
    return api


def test_report_page_shows_verdict_tests_dimensions_and_quality(api: Api) -> None:
    drifting(api)
    response = api.client.get("/drift/report/org/encoder", headers=API)
    assert response.status_code == 200
    assert response.content_type == "text/html; charset=utf-8"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    text = response.get_data(as_text=True)
    assert "<strong>DRIFT</strong>" in text and "tests (" in text
    assert "id='status-band'" in text and "class='alert-marker'" in text
    assert re.search(r">\d{4}-\d{2}-\d{2}</text>", text)  # dated axis
    for test in api.tests_run:  # type: ignore[attr-defined]  # the configured battery
        assert f"<strong>{test}</strong>" in text
    assert "id='dimensions'" in text and "id='quality'" in text
    # reference-vs-current histograms of the top dimensions, dimension 3 first
    charts = re.findall(r"aria-label='dimension (\d+) histograms'", text)
    assert charts and charts[0] == "3"
    # self-contained: no script, no external reference
    assert "<script" not in text
    assert not re.search(r"(src|href)=['\"]?https?:", text)


def test_report_needs_the_read_key_and_a_known_model(api: Api) -> None:
    drifting(api)
    assert api.client.get("/drift/report/org/encoder").status_code == 401
    missing = api.client.get("/drift/report/nobody", headers=API)
    assert missing.status_code == 404 and missing.json["error"]["field"] == "model_id"


def test_report_of_a_model_without_results_says_so(api: Api) -> None:
    api.send("org/new", np.zeros((3, 4)), NOW - timedelta(minutes=5))
    text = api.client.get("/drift/report/org/new", headers=API).get_data(as_text=True)
    assert "No detection has run for this model yet." in text


def test_landing_page_links_every_report_openapi_and_metrics(api: Api) -> None:
    drifting(api)
    api.send("team/other", np.zeros((3, 8)), NOW - timedelta(minutes=5))
    assert api.client.get("/").status_code == 401
    text = api.client.get("/", headers=API).get_data(as_text=True)
    assert "href='/drift/report/org/encoder'" in text
    assert "href='/drift/report/team/other'" in text
    assert "href='/openapi.yaml'" in text and "href='/metrics'" in text
    assert "DRIFT" in text and "not checked yet" in text


def test_verdict_sentences() -> None:
    assert verdict(None)[0] == "insufficient_data"
    status, sentence = verdict(
        {"status": "insufficient_data", "samples": {"current": 12, "baseline": 900},
         "config": {"min_samples": 100}}
    )  # fmt: skip
    assert status == "insufficient_data" and "12 current" in sentence and "no verdict" in sentence
    status, sentence = verdict({"status": "error", "error": "database unavailable"})
    assert status == "error" and "database unavailable" in sentence


def test_status_band_marks_alerts_at_transitions_only() -> None:
    statuses = ["ok", "drift", "drift", "insufficient_data", "drift", "ok", "ok", "drift"]
    history = [
        {"checked_at": (NOW + timedelta(minutes=30 * i)).isoformat(), "status": s}
        for i, s in enumerate(statuses)
    ]
    svg = status_band(history)
    assert svg.count("alert triggered") == 2  # drift starts; insufficient_data is no resolve
    assert svg.count("resolved") == 1
    assert svg.count("<rect") == len(statuses)


def test_histograms_share_edges_and_sum_to_one() -> None:
    rng = np.random.default_rng(1)
    ref, cur = rng.normal(size=(500, 3)), rng.normal(loc=2.0, size=(400, 3))
    (h,) = histograms(ref, cur, [1], [0.9], bins=10)
    assert len(h.edges) == 11 and h.edges[0] <= min(ref[:, 1].min(), cur[:, 1].min())
    assert abs(sum(h.reference) - 1) < 1e-9 and abs(sum(h.current) - 1) < 1e-9
    # the shifted current mass sits in the upper bins
    assert sum(h.current[5:]) > 0.8 and sum(h.reference[:5]) > 0.5


def test_untrusted_text_is_escaped() -> None:
    page = render_report("m<script>", [], {"status": "error", "error": "<img src=x>"})
    assert "<script>" not in page and "<img src=x>" not in page
