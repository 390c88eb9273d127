"""Authentication: 401 without/with a wrong key, 403 for the API key on admin actions, and a
refused request changes nothing."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from api_support import ADMIN, ADMIN_KEY, API, API_KEY, Api, hours_ago
from drift_monitor.config import Settings
from drift_monitor.entrypoints import auth

WRONG = {"Authorization": "Bearer not-the-key"}

READS = [
    ("get", "/drift/status/org/encoder"),
    ("get", "/drift/history/org/encoder"),
    ("get", "/models"),
    ("get", "/models/org/encoder/config"),
    ("get", "/metrics"),
    ("post", "/drift/check"),
    ("post", "/drift/check/org/encoder"),
]
ADMIN_ACTIONS = [
    ("/models/org/encoder/config", {"min_samples": 10}),
    ("/models/org/encoder/baseline", {"start": hours_ago(30), "end": hours_ago(20)}),
    ("/models/org/encoder/rebuild-stats", {}),
]


def snapshot(api: Api) -> tuple[object, ...]:
    monitor = api.container.monitor
    assert monitor is not None
    return (
        monitor.get_config("org/encoder"),
        monitor.get_baseline("org/encoder"),
        len(monitor.history("org/encoder", None, 100)),
        api.container.repository.count_vectors("org/encoder", None, None),  # type: ignore[attr-defined]
    )


@pytest.mark.parametrize(("method", "path"), READS)
def test_reads_need_a_key(seeded: Api, method: str, path: str) -> None:
    before = snapshot(seeded)
    for headers in ({}, WRONG, {"Authorization": f"Basic {API_KEY}"}):
        response = getattr(seeded.client, method)(path, headers=headers)
        assert response.status_code == 401, (path, headers)
        assert response.json["error"]["field"] == "authorization"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert getattr(seeded.client, method)(path, headers=API).status_code != 401
    assert getattr(seeded.client, method)(path, headers=ADMIN).status_code != 401
    if method == "get":
        assert snapshot(seeded) == before


@pytest.mark.parametrize(("path", "body"), ADMIN_ACTIONS)
def test_admin_actions_refuse_the_api_key_and_change_nothing(
    seeded: Api, path: str, body: dict[str, object]
) -> None:
    before = snapshot(seeded)
    assert seeded.client.post(path, json=body).status_code == 401
    assert seeded.client.post(path, json=body, headers=WRONG).status_code == 401
    forbidden = seeded.client.post(path, json=body, headers=API)
    assert forbidden.status_code == 403
    assert "admin key" in forbidden.json["error"]["message"]
    assert snapshot(seeded) == before
    assert seeded.client.post(path, json=body, headers=ADMIN).status_code == 200


def test_ingest_needs_a_key_and_writes_nothing_without_one(seeded: Api) -> None:
    before = snapshot(seeded)
    body = {"model_id": "org/encoder", "embeddings": np.ones((2, 8)).tolist()}
    assert seeded.client.post("/embeddings/batch", json=body).status_code == 401
    assert seeded.client.post("/embeddings/batch", json=body, headers=WRONG).status_code == 401
    assert snapshot(seeded) == before
    assert seeded.client.post("/embeddings/batch", json=body, headers=API).status_code == 202


def test_openapi_and_health_are_public(seeded: Api) -> None:
    assert seeded.client.get("/openapi.yaml").status_code == 200
    assert seeded.client.get("/healthz").status_code == 200


def test_only_admin_key_configured(make_api: Callable[..., Api]) -> None:
    api = make_api(api_key=None)
    assert api.client.get("/models", headers=ADMIN).status_code == 200
    assert api.client.get("/models", headers=API).status_code == 401


def test_local_mode_without_keys_is_open_and_warns(make_api: Callable[..., Api]) -> None:
    api = make_api(api_key=None, admin_key=None, environment="local")
    assert api.client.get("/models").status_code == 200
    assert api.client.post("/models/m/config", json={"min_samples": 5}).status_code == 200
    warning = auth.startup_warning(api.container.settings)
    assert warning is not None and "AUTHENTICATION IS DISABLED" in warning
    assert auth.startup_warning(Settings(api_key="k")) is None


def test_production_without_keys_refuses_everything(make_api: Callable[..., Api]) -> None:
    api = make_api(api_key=None, admin_key=None, environment="production")
    api.container.repository.claim_dimension("m", 4)  # type: ignore[attr-defined]
    for method, path in [("get", "/models"), ("post", "/drift/check"),
                         ("post", "/models/m/config")]:  # fmt: skip
        response = getattr(api.client, method)(path, json={})
        assert response.status_code == 503
        assert "not configured" in response.json["error"]["message"]
    body = {"model_id": "m", "embeddings": [[1.0, 2.0, 3.0, 4.0]]}
    assert api.client.post("/embeddings/batch", json=body).status_code == 503
    assert api.container.monitor.get_config("m") is None  # type: ignore[union-attr]


def test_keys_are_compared_exactly(seeded: Api) -> None:
    for token in (API_KEY[:-1], API_KEY + "x", API_KEY.upper(), ADMIN_KEY[:-1], ""):
        headers = {"Authorization": f"Bearer {token}"}
        assert seeded.client.get("/models", headers=headers).status_code == 401, token
    assert (
        seeded.client.get("/models", headers={"Authorization": f"bearer  {API_KEY}"}).status_code
        == 200
    )


def test_refused_check_runs_no_detection(seeded: Api) -> None:
    seeded.client.post("/drift/check", headers=API)
    before = snapshot(seeded)
    seeded.client.post("/drift/check", headers=WRONG)
    assert snapshot(seeded) == before
