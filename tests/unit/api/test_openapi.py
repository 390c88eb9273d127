"""The OpenAPI document: valid 3.1, in step with the app's routes, and responses match it."""

from __future__ import annotations

import re
from datetime import timedelta
from importlib import resources
from typing import Any

import jsonschema
import numpy as np
import pytest
import yaml
from api_support import ADMIN, API, NOW, Api, hours_ago
from drift_monitor.service.detection import DetectionOutcome, Window, result_row
from openapi_spec_validator import validate

SPEC: dict[str, Any] = yaml.safe_load(
    resources.files("drift_monitor").joinpath("openapi.yaml").read_text()
)
METHODS = {"get", "post", "put", "patch", "delete"}


def test_document_is_valid_openapi_3_1() -> None:
    validate(SPEC)
    assert SPEC["openapi"].startswith("3.1")


def spec_routes() -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in SPEC["paths"].items()
        for method in item
        if method in METHODS
    }


def app_routes(api: Api) -> set[tuple[str, str]]:
    routes = set()
    for rule in api.client.application.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for method in rule.methods or ():
            if method not in ("HEAD", "OPTIONS"):
                routes.add((method, path))
    return routes


def test_every_documented_route_exists_and_vice_versa(api: Api) -> None:
    assert spec_routes() == app_routes(api)


def schema_for(path: str, method: str, status: int) -> dict[str, Any]:
    response = SPEC["paths"][path][method]["responses"][str(status)]
    if "$ref" in response:
        response = resolve(response["$ref"])
    schema = response["content"]["application/json"]["schema"]
    # Embed the components so "#/components/..." references resolve against the document.
    return {**schema, "components": SPEC["components"]}


def resolve(ref: str) -> dict[str, Any]:
    node: Any = SPEC
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return dict(node)


def check(response: Any, path: str, method: str) -> None:
    schema = schema_for(path, method, response.status_code)
    jsonschema.Draft202012Validator(schema).validate(response.json)


@pytest.fixture
def checked(seeded: Api) -> Api:
    rng = np.random.default_rng(1)
    seeded.send("org/encoder", rng.normal(size=(10, 8)), NOW - timedelta(minutes=5))
    at = NOW - timedelta(hours=1)
    outcome = DetectionOutcome(
        model_id="org/encoder",
        status="drift",
        checked_at=at,
        current=Window(at - timedelta(hours=1), at),
        baseline=Window(at - timedelta(days=7), at - timedelta(hours=1)),
        n_baseline=40,
        n_current=30,
        report={
            "drift_detected": True,
            "tests": {"ks": {"statistic": 0.3, "p_value": 0.001, "drift": True}},
            "kl_divergence": 0.2,
            "confidence_interval": [0.1, 0.3],
            "quality": {},
            "top_dimensions": [],
            "n_reference": 40,
            "n_current": 30,
        },
    )
    seeded.container.monitor.add_result(result_row(outcome))  # type: ignore[union-attr]
    return seeded


def test_main_responses_match_their_schemas(checked: Api) -> None:
    c = checked.client
    check(c.get("/drift/status/org/encoder", headers=API), "/drift/status/{model_id}", "get")
    check(c.get("/drift/history/org/encoder", headers=API), "/drift/history/{model_id}", "get")
    check(c.get("/models", headers=API), "/models", "get")
    check(c.get("/models/org/encoder/config", headers=API), "/models/{model_id}/config", "get")
    check(
        c.post("/models/org/encoder/config", json={"statistical_test": ["ks", "mmd"]},
               headers=ADMIN),
        "/models/{model_id}/config", "post",
    )  # fmt: skip
    check(
        c.post("/models/org/encoder/baseline", json={"start": hours_ago(40), "end": hours_ago(2)},
               headers=ADMIN),
        "/models/{model_id}/baseline", "post",
    )  # fmt: skip
    check(c.post("/drift/check", headers=API), "/drift/check", "post")
    check(c.post("/drift/check/org/encoder", headers=API), "/drift/check/{model_id}", "post")
    check(
        c.post("/embeddings/batch", headers=API,
               json={"model_id": "org/encoder", "embeddings": [[0.0] * 8]}),
        "/embeddings/batch", "post",
    )  # fmt: skip


def test_error_responses_match_the_error_schema(checked: Api) -> None:
    c = checked.client
    check(c.get("/drift/status/ghost", headers=API), "/drift/status/{model_id}", "get")
    check(c.get("/drift/history/org/encoder?limit=0", headers=API),
          "/drift/history/{model_id}", "get")  # fmt: skip
    check(c.post("/models/org/encoder/config", json={"alpha": 9}, headers=ADMIN),
          "/models/{model_id}/config", "post")  # fmt: skip
    check(c.post("/models/org/encoder/config", json={}, headers=API),
          "/models/{model_id}/config", "post")  # fmt: skip
    check(c.get("/models"), "/models", "get")


def test_a_response_that_breaks_the_schema_is_caught() -> None:
    schema = schema_for("/drift/status/{model_id}", "get", 200)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate({"model_id": "m", "status": "maybe"})
