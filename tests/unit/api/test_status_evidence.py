"""The status API shows the sequential monitor: evidence, threshold, the false-page budget."""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
from api_support import ADMIN, API, NOW, Api


def unit(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, 8)) * np.linspace(1.0, 0.2, 8)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_status_shows_evidence_threshold_and_budget(api: Api) -> None:
    api.send("org/encoder", unit(600, 1), NOW - timedelta(days=1))
    api.send("org/encoder", unit(150, 2), NOW - timedelta(minutes=10))
    checked = api.client.post("/drift/check/org/encoder", headers=ADMIN)
    assert checked.status_code == 200, checked.json
    status = api.client.get("/drift/status/org/encoder", headers=API).json
    assert status["status"] == "ok" and status["drift_detected"] is False
    assert status["false_alarm_interval_days"] == 365
    # first run: the schedule interval is taken to be the current window (60 minutes)
    assert math.isclose(status["threshold"], math.log10(2 * 365 * 24), rel_tol=1e-6)
    assert 0 <= status["evidence"] < status["threshold"]
    monitor = status["monitor"]
    # read from the running statistics: the closed hour's bucket sample (128 of its 150)
    assert status["source"] == "sketch" and status["source_reason"] is None
    assert monitor["scored"] == 128 and monitor["instant_alpha"] == 0.5 / (365 * 24)
    assert status["kl_divergence"] is not None  # the seed's fields are kept

    # a smaller budget lowers the threshold
    posted = api.client.post(
        "/models/org/encoder/config", json={"false_alarm_interval_days": 30}, headers=ADMIN
    )
    assert posted.status_code == 200 and posted.json["config"]["false_alarm_interval_days"] == 30
    api.client.post("/drift/check/org/encoder", headers=ADMIN)
    again = api.client.get("/drift/status/org/encoder", headers=API).json
    assert again["false_alarm_interval_days"] == 30
    assert again["threshold"] < status["threshold"]


def test_budget_out_of_range_is_refused(api: Api) -> None:
    api.send("org/encoder", unit(10, 1), NOW - timedelta(days=1))
    for bad in (0, 0.5, 40_000, "yearly", True):
        got = api.client.post(
            "/models/org/encoder/config", json={"false_alarm_interval_days": bad}, headers=ADMIN
        )
        assert got.status_code == 422 and got.json["error"]["field"] == "false_alarm_interval_days"
