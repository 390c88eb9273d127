"""Every operator route: happy path, validation errors and 404s, on the embedded app."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
from api_support import ADMIN, API, NOW, Api, hours_ago
from drift_monitor.service.detection import DetectionOutcome, Window, result_row

REPORT = {
    "drift_detected": True,
    "tests": {
        "ks": {"statistic": 0.31, "p_value": 1e-6, "drift": True, "effect_size": 0.31},
        "psi": {"statistic": 0.4, "p_value": None, "drift": True, "effect_size": 0.4},
    },
    "kl_divergence": 0.27,
    "confidence_interval": [0.2, 0.33],
    "top_dimensions": [{"dimension": 3, "statistic": 0.5}],
    "quality": {"zero_vectors": 0.0},
    "n_reference": 40,
    "n_current": 30,
    "alpha": 0.05,
}


def store(api: Api, model_id: str, status: str, hours: float, report: Any = None) -> Any:
    at = NOW - timedelta(hours=hours)
    outcome = DetectionOutcome(
        model_id=model_id,
        status=status,
        checked_at=at,
        current=Window(at - timedelta(hours=1), at),
        baseline=Window(at - timedelta(days=7), at - timedelta(hours=1)),
        n_baseline=40,
        n_current=30,
        report=report,
    )
    return api.container.monitor.add_result(result_row(outcome))  # type: ignore[union-attr]


# ---- status and history -------------------------------------------------------------------


def test_status_returns_latest_result_with_every_test(seeded: Api) -> None:
    store(seeded, "org/encoder", "ok", 2, {**REPORT, "drift_detected": False})
    newest = store(seeded, "org/encoder", "drift", 1, REPORT)
    response = seeded.client.get("/drift/status/org/encoder", headers=API)
    assert response.status_code == 200
    doc = response.json
    assert doc["result_id"] == newest
    assert doc["drift_detected"] is True and doc["status"] == "drift"
    assert doc["kl_divergence"] == 0.27
    assert doc["confidence_interval"] == [0.2, 0.33]
    assert doc["tests"]["ks"]["p_value"] == 1e-6 and doc["tests"]["psi"]["p_value"] is None
    assert doc["samples"] == {"baseline": 40, "current": 30, "baseline_used": 40,
                              "current_used": 30}  # fmt: skip
    assert doc["windows"]["current"]["end"] == hours_ago(1)
    assert doc["quality"] == {"zero_vectors": 0.0}
    assert doc["checked_at"] == hours_ago(1)


def test_status_serves_the_novel_rows_of_a_real_report(seeded: Api) -> None:
    from drift_monitor.drift import compare

    rng = np.random.default_rng(0)
    ref = rng.normal(1.0, 0.1, size=(200, 8))
    cur = rng.normal(1.0, 0.1, size=(100, 8))
    cur[:15] = -cur[:15]  # 15 rows unlike anything in the reference
    report = compare(ref, cur, tests="ad,novelty", n_bootstrap=0).to_dict()
    store(seeded, "org/encoder", "drift", 1, report)
    doc = seeded.client.get("/drift/status/org/encoder", headers=API).json
    novelty = doc["tests"]["novelty"]
    assert novelty["drift"] is True and novelty["n_novel"] >= 15
    assert {e["row"] for e in novelty["examples"]} <= set(range(15))
    assert {"row", "score", "conformal_p_value"} <= set(novelty["examples"][0])


def test_status_unknown_model_is_404(api: Api) -> None:
    response = api.client.get("/drift/status/nobody", headers=API)
    assert response.status_code == 404
    assert response.json["error"]["field"] == "model_id"


def test_status_known_model_without_results_says_what_it_needs(seeded: Api) -> None:
    response = seeded.client.get("/drift/status/org/encoder", headers=API)
    assert response.status_code == 200, response.json
    doc = response.json
    assert doc["status"] == "insufficient_data" and doc["drift_detected"] is False
    assert doc["samples"]["baseline"] == 40 and doc["samples"]["current"] == 30
    assert doc["needed"] == {
        "baseline": 460,  # warm-up: max(2 min_samples, 500) baseline vectors
        "current": 70,
        "min_samples": 100,
        "warmup_vectors": 500,
    }
    assert "no detection run" in doc["reason"]
    assert doc["windows"]["current"]["end"] == hours_ago(0)
    # The product description's client prints f"{status['kl_divergence']:.4f}".
    assert isinstance(doc["kl_divergence"], float) and doc["kl_divergence"] >= 0
    assert f"{doc['kl_divergence']:.4f}"
    assert doc["kl_divergence_basis"].startswith("preview")
    assert doc["next_check"] is None  # no embedded schedule in this app
    assert seeded.container.monitor.latest_result("org/encoder") is None  # nothing written
    assert seeded.container.monitor.get_baseline("org/encoder") is None


def test_status_invalid_model_id_is_422(api: Api) -> None:
    response = api.client.get("/drift/status/bad..id", headers=API)
    assert response.status_code == 422
    assert response.json["error"]["field"] == "model_id"


def test_history_newest_first_with_since_and_limit(seeded: Api) -> None:
    for hours in (5, 4, 3, 2, 1):
        store(seeded, "org/encoder", "ok", hours, {**REPORT, "drift_detected": False})
    response = seeded.client.get("/drift/history/org/encoder?limit=2", headers=API)
    assert response.status_code == 200
    results = response.json["results"]
    assert [r["checked_at"] for r in results] == [hours_ago(1), hours_ago(2)]
    # the decision's inputs only (the stored report's per-dimension details stay out)
    assert results[0]["tests"]["ks"] == {
        "statistic": 0.31, "p_value": 1e-6, "drift": True, "effect_size": 0.31,
    }  # fmt: skip
    since = seeded.client.get(
        "/drift/history/org/encoder", query_string={"since": hours_ago(3)}, headers=API
    )
    assert [r["checked_at"] for r in since.json["results"]] == [hours_ago(h) for h in (1, 2, 3)]


def test_history_validates_parameters(seeded: Api) -> None:
    cases = [
        ("limit=0", "limit"),
        ("limit=x", "limit"),
        ("limit=1001", "limit"),
        ("since=yesterday", "since"),
        ("since=2024-01-01T00:00:00", "since"),
    ]
    for query, field in cases:
        response = seeded.client.get(f"/drift/history/org/encoder?{query}", headers=API)
        assert response.status_code == 422, query
        assert response.json["error"]["field"] == field


def test_history_unknown_model_is_404(api: Api) -> None:
    assert api.client.get("/drift/history/ghost", headers=API).status_code == 404


# ---- models and configuration -------------------------------------------------------------


def test_models_lists_last_status(seeded: Api) -> None:
    seeded.send("other", np.ones((3, 4)), NOW - timedelta(hours=1))
    store(seeded, "org/encoder", "drift", 1, REPORT)
    response = seeded.client.get("/models", headers=API)
    assert response.status_code == 200
    by_id = {m["model_id"]: m for m in response.json["models"]}
    assert by_id["org/encoder"]["last_status"] == "drift"
    assert by_id["org/encoder"]["drift_detected"] is True
    assert by_id["org/encoder"]["dimension"] == 8
    assert by_id["other"]["last_status"] is None


def test_config_defaults_then_partial_update(seeded: Api) -> None:
    got = seeded.client.get("/models/org/encoder/config", headers=API)
    assert got.status_code == 200
    assert got.json["config"]["drift_threshold"] == 0.15
    assert got.json["overrides"] == {}
    posted = seeded.client.post(
        "/models/org/encoder/config",
        json={"drift_threshold": 0.12, "statistical_test": "ks_test", "baseline_refresh_hours": 24,
              "alert_webhook": "https://hooks.slack.com/services/T/B/X"},
        headers=ADMIN,
    )  # fmt: skip
    assert posted.status_code == 200, posted.json
    assert posted.json["config"]["statistical_test"] == ["ks"]
    again = seeded.client.post(
        "/models/org/encoder/config", json={"min_samples": 20}, headers=ADMIN
    )
    assert again.json["config"]["drift_threshold"] == 0.12  # kept
    assert again.json["config"]["min_samples"] == 20
    stored = seeded.container.monitor.get_config("org/encoder")  # type: ignore[union-attr]
    assert stored["statistical_test"] == ["ks"] and stored["min_samples"] == 20


def test_config_validation_errors_change_nothing(seeded: Api) -> None:
    seeded.client.post("/models/org/encoder/config", json={"alpha": 0.01}, headers=ADMIN)
    cases = [
        ({"alpha": 2}, "alpha", 422),
        ({"statistical_test": "t_test"}, "statistical_test", 422),
        ({"colour": "red"}, "colour", 422),
        ({"alert_webhook": "http://169.254.169.254/"}, "alert_webhook", 422),
        ({"alert_webhook": "http://10.0.0.8/hook"}, "alert_webhook", 422),
        ([1, 2], "body", 422),
    ]
    for body, field, status in cases:
        response = seeded.client.post("/models/org/encoder/config", json=body, headers=ADMIN)
        assert (response.status_code, response.json["error"]["field"]) == (status, field), body
    bad_json = seeded.client.post(
        "/models/org/encoder/config", data=b"{", content_type="application/json", headers=ADMIN
    )
    assert bad_json.status_code == 400
    wrong_type = seeded.client.post(
        "/models/org/encoder/config", data=b"alpha=1", content_type="text/plain", headers=ADMIN
    )
    assert wrong_type.status_code == 415
    assert seeded.container.monitor.get_config("org/encoder") == {"alpha": 0.01}  # type: ignore[union-attr]


def test_config_can_be_set_before_first_batch_but_get_unknown_is_404(api: Api) -> None:
    assert api.client.get("/models/future/config", headers=API).status_code == 404
    response = api.client.post("/models/future/config", json={"min_samples": 10}, headers=ADMIN)
    assert response.status_code == 200
    assert api.client.get("/models/future/config", headers=API).json["overrides"] == {
        "min_samples": 10
    }


# ---- baselines and rebuild ----------------------------------------------------------------


def test_pin_baseline_and_unpin(seeded: Api) -> None:
    body = {"start": hours_ago(48), "end": hours_ago(12)}
    response = seeded.client.post("/models/org/encoder/baseline", json=body, headers=ADMIN)
    assert response.status_code == 200, response.json
    assert response.json["baseline"] == {**body, "pinned": True}
    assert response.json["embeddings"] == 40
    stored = seeded.container.monitor.get_baseline("org/encoder")  # type: ignore[union-attr]
    assert stored.pinned and stored.end == NOW - timedelta(hours=12)
    unpin = seeded.client.post(
        "/models/org/encoder/baseline", json={"pinned": False}, headers=ADMIN
    )
    assert unpin.status_code == 200
    assert not seeded.container.monitor.get_baseline("org/encoder").pinned  # type: ignore[union-attr]


def test_baseline_validation(seeded: Api) -> None:
    cases = [
        ({"start": hours_ago(2)}, "end"),
        ({"start": hours_ago(1), "end": hours_ago(2)}, "end"),
        ({"start": hours_ago(2), "end": "2999-01-01T00:00:00Z"}, "end"),
        ({"start": "2024-05-01T00:00:00", "end": hours_ago(1)}, "start"),
        ({"start": 5, "end": hours_ago(1)}, "start"),
        ({"start": hours_ago(2), "end": hours_ago(1), "pinned": "yes"}, "pinned"),
        ({"from": hours_ago(2)}, "from"),
    ]
    for body, field in cases:
        response = seeded.client.post("/models/org/encoder/baseline", json=body, headers=ADMIN)
        assert response.status_code == 422, body
        assert response.json["error"]["field"] == field, body
    assert seeded.container.monitor.get_baseline("org/encoder") is None  # type: ignore[union-attr]
    unknown = seeded.client.post(
        "/models/ghost/baseline", json={"start": hours_ago(2), "end": hours_ago(1)}, headers=ADMIN
    )
    assert unknown.status_code == 404


def test_rebuild_stats_refolds_from_sql(seeded: Api) -> None:
    stats = seeded.container.stats
    stats.clear("org/encoder")
    response = seeded.client.post("/models/org/encoder/rebuild-stats", json={}, headers=ADMIN)
    assert response.status_code == 200, response.json
    assert response.json["folded"] == 70  # vectors of both batches
    ranged = seeded.client.post(
        "/models/org/encoder/rebuild-stats",
        json={"start": hours_ago(2), "end": hours_ago(0)},
        headers=ADMIN,
    )
    assert ranged.status_code == 200
    bad = seeded.client.post(
        "/models/org/encoder/rebuild-stats", json={"start": "soon"}, headers=ADMIN
    )
    assert (bad.status_code, bad.json["error"]["field"]) == (422, "start")
    assert seeded.client.post("/models/ghost/rebuild-stats", headers=ADMIN).status_code == 404


# ---- detection, metrics, openapi, routing -------------------------------------------------


def test_check_with_too_little_data_says_so(seeded: Api) -> None:
    seeded.client.post("/models/org/encoder/config", json={"min_samples": 35}, headers=ADMIN)
    response = seeded.client.post("/drift/check/org/encoder", headers=API)
    assert response.status_code == 200
    (result,) = response.json["results"]
    assert result["status"] == "insufficient_data" and result["drift_detected"] is False
    assert result["samples"]["current"] == 30 and result["samples"]["baseline"] == 40
    assert seeded.client.get("/drift/status/org/encoder", headers=API).json["status"] == (
        "insufficient_data"
    )
    all_models = seeded.client.post("/drift/check", headers=API)
    assert all_models.json["counts"] == {"insufficient_data": 1}


def test_check_unknown_model_is_404(api: Api) -> None:
    assert api.client.post("/drift/check/ghost", headers=API).status_code == 404


def test_metrics_page_in_embedded_mode(seeded: Api) -> None:
    seeded.client.post("/drift/check", headers=API)
    response = seeded.client.get("/metrics", headers=API)
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    assert b'drift_monitor_run_status{model_id="org/encoder"' in response.data


def test_openapi_is_served_without_a_key(api: Api) -> None:
    response = api.client.get("/openapi.yaml")
    assert response.status_code == 200
    assert response.data.startswith(b"openapi: 3.1")


def test_unknown_path_and_wrong_method(api: Api) -> None:
    assert api.client.get("/nothing/here", headers=API).status_code == 404
    response = api.client.delete("/models", headers=API)
    assert response.status_code == 405


def test_embedded_schedule_runs_detection_in_the_background(seeded: Api) -> None:
    import time

    from drift_monitor.entrypoints.detect_http import Schedule

    schedule = Schedule(seeded.container, every=0.05).start()
    deadline = time.monotonic() + 10
    monitor = seeded.container.monitor
    assert monitor is not None
    while monitor.latest_result("org/encoder") is None and time.monotonic() < deadline:
        time.sleep(0.02)
    schedule.stop()
    assert schedule.runs >= 1
    assert monitor.latest_result("org/encoder").status == "insufficient_data"
