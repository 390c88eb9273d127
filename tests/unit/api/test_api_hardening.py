"""Regression tests for the operator API defects fault injection and a first run found.

Model ids with slashes on every per-model route; webhook host forms refused when saved;
window minimums; ``insufficient_data`` status documents; the dimension registry restored from
the database. Each test fails on the code before its fix.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from api_support import ADMIN, API, NOW, Api, hours_ago
from drift_monitor.adapters.memory_stats import MemoryDimensionRegistry
from drift_monitor.service.dimensions import DurableDimensions
from drift_monitor.service.ingest import validate_batch
from drift_monitor.service.rebuild import rebuild_stats

SLASHED = "sentence-transformers/all-MiniLM-L6-v2"


@pytest.fixture
def slashed(api: Api) -> Api:
    rng = np.random.default_rng(1)
    api.send(SLASHED, rng.normal(size=(40, 8)), NOW - timedelta(days=1))
    api.send(SLASHED, rng.normal(size=(30, 8)), NOW - timedelta(minutes=10))
    return api


# --- model ids with slashes, one test per per-model route -------------------------------------


def test_slashed_id_status(slashed: Api) -> None:
    response = slashed.client.get(f"/drift/status/{SLASHED}", headers=API)
    assert response.status_code == 200 and response.json["model_id"] == SLASHED


def test_slashed_id_history(slashed: Api) -> None:
    slashed.client.post(f"/drift/check/{SLASHED}", headers=API)
    response = slashed.client.get(f"/drift/history/{SLASHED}", headers=API)
    assert response.status_code == 200 and response.json["model_id"] == SLASHED
    assert len(response.json["results"]) == 1


def test_slashed_id_get_config(slashed: Api) -> None:
    response = slashed.client.get(f"/models/{SLASHED}/config", headers=API)
    assert response.status_code == 200 and response.json["model_id"] == SLASHED


def test_slashed_id_set_config(slashed: Api) -> None:
    response = slashed.client.post(
        f"/models/{SLASHED}/config", json={"min_samples": 20}, headers=ADMIN
    )
    assert response.status_code == 200 and response.json["config"]["min_samples"] == 20
    assert slashed.container.monitor.get_config(SLASHED) == {"min_samples": 20}  # type: ignore[union-attr]


def test_slashed_id_baseline(slashed: Api) -> None:
    body = {"start": hours_ago(48), "end": hours_ago(12)}
    response = slashed.client.post(f"/models/{SLASHED}/baseline", json=body, headers=ADMIN)
    assert response.status_code == 200 and response.json["embeddings"] == 40


def test_slashed_id_rebuild_stats(slashed: Api) -> None:
    response = slashed.client.post(f"/models/{SLASHED}/rebuild-stats", json={}, headers=ADMIN)
    assert response.status_code == 200 and response.json["folded"] == 70


def test_slashed_id_check(slashed: Api) -> None:
    response = slashed.client.post(f"/drift/check/{SLASHED}", headers=API)
    assert response.status_code == 200
    assert response.json["results"][0]["model_id"] == SLASHED


def test_slashed_id_models_list(slashed: Api) -> None:
    response = slashed.client.get("/models", headers=API)
    assert [m["model_id"] for m in response.json["models"]] == [SLASHED]


# --- status before a decision: 200, counts, needs, a numeric kl_divergence ---------------------


def test_status_after_an_insufficient_run_explains_and_keeps_kl_numeric(slashed: Api) -> None:
    slashed.client.post(f"/drift/check/{SLASHED}", headers=API)
    doc = slashed.client.get(f"/drift/status/{SLASHED}", headers=API).json
    assert doc["status"] == "insufficient_data" and doc["result_id"] is not None
    assert doc["samples"]["baseline"] == 40 and doc["samples"]["current"] == 30
    assert doc["needed"] == {
        "baseline": 460,  # warm-up: max(2 min_samples, 500) baseline vectors
        "current": 70,
        "min_samples": 100,
        "warmup_vectors": 500,
    }
    assert isinstance(doc["kl_divergence"], float)
    lo, hi = doc["confidence_interval"]
    assert lo <= doc["kl_divergence"] <= hi or lo <= hi


def test_status_with_one_vector_has_no_kl_but_still_answers(api: Api) -> None:
    api.send("tiny", np.ones((1, 4)), NOW - timedelta(minutes=5))
    doc = api.client.get("/drift/status/tiny", headers=API).json
    assert doc["status"] == "insufficient_data" and doc["kl_divergence"] is None
    assert doc["samples"] == {"baseline": 0, "current": 1, "baseline_used": 0, "current_used": 0}


def test_status_of_a_decided_model_is_unchanged(slashed: Api) -> None:
    rng = np.random.default_rng(2)
    slashed.send(SLASHED, rng.normal(size=(500, 8)), NOW - timedelta(hours=20))
    slashed.client.post(f"/models/{SLASHED}/config", json={"min_samples": 20}, headers=ADMIN)
    slashed.client.post(f"/drift/check/{SLASHED}", headers=API)
    doc = slashed.client.get(f"/drift/status/{SLASHED}", headers=API).json
    assert doc["status"] in ("ok", "drift") and "needed" not in doc
    assert "kl_divergence_basis" not in doc and isinstance(doc["kl_divergence"], float)


# --- 9. window minimums -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("current_window_minutes", 1e-9),
        ("current_window_minutes", 0.1),
        ("baseline_refresh_hours", 1e-9),
        ("baseline_refresh_hours", 0.01),
    ],
)
def test_windows_below_their_minimum_are_refused(slashed: Api, field: str, value: float) -> None:
    response = slashed.client.post(f"/models/{SLASHED}/config", json={field: value}, headers=ADMIN)
    assert response.status_code == 422 and response.json["error"]["field"] == field
    assert "at least" in response.json["error"]["message"]
    assert slashed.container.monitor.get_config(SLASHED) is None  # type: ignore[union-attr]


def test_the_demo_window_of_fifteen_seconds_is_accepted(slashed: Api) -> None:
    response = slashed.client.post(
        f"/models/{SLASHED}/config", json={"current_window_minutes": 0.25}, headers=ADMIN
    )
    assert response.status_code == 200


# --- 6. webhook host forms refused when the configuration is saved (production) ----------------

UNSAFE_WEBHOOKS = [
    "https://localhost/hook",
    "https://localhost./hook",
    "https://0x7f000001/hook",
    "https://2130706433/hook",
    "https://127.1/hook",
    "https://017700000001/hook",
    "https://0/hook",
    "https://intranet/hook",
]


@pytest.mark.parametrize("url", UNSAFE_WEBHOOKS)
def test_production_refuses_local_webhook_forms_when_saved(
    make_api: Callable[..., Api], url: str
) -> None:
    api = make_api(environment="production")
    response = api.client.post("/models/m/config", json={"alert_webhook": url}, headers=ADMIN)
    assert response.status_code == 422, response.json
    assert response.json["error"]["field"] == "alert_webhook"
    assert api.container.monitor.get_config("m") is None  # type: ignore[union-attr]


# --- 2. the database is the record of each model's dimension ----------------------------------


def test_a_flushed_registry_refills_from_the_database(seeded: Api) -> None:
    from drift_monitor.domain.errors import ValidationError
    from drift_monitor.domain.validation import IngestRequest, Limits

    cache = MemoryDimensionRegistry()  # as empty as Redis after FLUSHALL
    registry = DurableDimensions(cache, seeded.container.repository)

    def request(width: int) -> IngestRequest:
        body = (
            b'{"model_id": "org/encoder", "embeddings": ['
            + b",".join([b"[" + b",".join([b"0.5"] * width) + b"]"] * 3)
            + b"]}"
        )
        return IngestRequest(body=body, content_type="application/json")

    with pytest.raises(ValidationError, match="expects 8"):
        validate_batch(request(3), limits=Limits(), registry=registry)
    assert cache.model_dimension("org/encoder") == 8  # refilled from the database
    assert registry.claim_dimension("org/encoder", 3) == 8  # a wrong batch cannot claim it
    assert validate_batch(request(8), limits=Limits(), registry=registry).dimension == 8


def test_rebuild_restores_a_wrong_cached_dimension(seeded: Api) -> None:
    cache = MemoryDimensionRegistry()
    cache.claim_dimension("org/encoder", 3)  # what a bad batch claimed after a flush, before
    registry = DurableDimensions(cache, seeded.container.repository)
    rebuild_stats(
        "org/encoder", seeded.container.repository, seeded.container.stats, registry=registry
    )
    assert cache.model_dimension("org/encoder") == 8
    assert registry.claim_dimension("brand-new", 5) == 5  # a new model still claims its own


def test_production_wiring_checks_dimensions_through_the_database(tmp_path: Path) -> None:
    from drift_monitor import bootstrap
    from drift_monitor.config import Settings

    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}", redis_url="redis://127.0.0.1:9/0"
    )
    container = bootstrap.build(settings, embedded=False)
    try:
        assert isinstance(container.registry, DurableDimensions)
        assert container.registry.record is container.repository
    finally:
        container.engine.dispose()


def test_status_names_the_next_embedded_check(slashed: Api) -> None:
    from datetime import UTC, datetime
    from types import SimpleNamespace

    slashed.container.schedule = SimpleNamespace(next_run=datetime(2030, 1, 1, 12, 0, tzinfo=UTC))
    doc = slashed.client.get(f"/drift/status/{SLASHED}", headers=API).json
    assert doc["next_check"] == "2030-01-01T12:00:00Z"
