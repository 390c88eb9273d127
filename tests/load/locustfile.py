"""Load profile of the product description's usage, for ``scripts/load`` (and any locust).

Each simulated client mostly sends embedding batches of realistic sizes (JSON with 1 to
1000 rows, ``.npy`` with 1000 to 10000 rows), reads drift status now and then, and rarely
writes a model's configuration; the mix is set by the task weights below. Bodies are built
once per process, so the client's own CPU goes to sending, not to encoding.

Environment:

``LOAD_DIMENSION``
    Embedding dimension (default 384).
``LOAD_MODELS``
    How many model ids the clients spread over (default 5).
``DRIFT_MONITOR_API_KEY`` / ``DRIFT_MONITOR_ADMIN_KEY``
    Sent as ``Authorization: Bearer ...`` (ingest and status, and configuration writes), when
    the server requires them.

``GET /drift/status/{model}`` answers 404 until the model's first check; that counts as a
success here (the server answered correctly), any other status as a failure.
"""

from __future__ import annotations

import io
import os
import random
from datetime import UTC, datetime
from functools import cache
from typing import Any

import numpy as np
import orjson
from locust import HttpUser, between, task

DIMENSION = int(os.environ.get("LOAD_DIMENSION", "384"))
MODELS = [f"load-model-{i}" for i in range(int(os.environ.get("LOAD_MODELS", "5")))]
# (rows, weight): most batches are small; a few are the largest the API accepts by default.
JSON_SIZES = ((1, 4), (10, 4), (100, 3), (1000, 1))
NPY_SIZES = ((1000, 3), (10_000, 1))


def _auth(key_var: str) -> dict[str, str]:
    key = os.environ.get(key_var)
    return {"Authorization": f"Bearer {key}"} if key else {}


@cache
def _vectors(rows: int) -> np.ndarray[Any, Any]:
    return np.random.default_rng(rows).standard_normal((rows, DIMENSION)).astype(np.float32)


@cache
def _npy(rows: int) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, _vectors(rows))
    return buffer.getvalue()


@cache
def _json_embeddings(rows: int) -> bytes:
    return orjson.dumps(_vectors(rows).tolist())


def _pick(sizes: tuple[tuple[int, int], ...]) -> int:
    return random.choices([s for s, _ in sizes], weights=[w for _, w in sizes])[0]


class MonitorUser(HttpUser):
    """One client of the monitor's HTTP API."""

    wait_time = between(0.0, 0.2)

    @task(6)
    def post_json_batch(self) -> None:
        rows = _pick(JSON_SIZES)
        head = orjson.dumps(
            {"model_id": random.choice(MODELS), "timestamp": datetime.now(UTC).isoformat()}
        )
        body = head[:-1] + b',"embeddings":' + _json_embeddings(rows) + b"}"
        headers = {"Content-Type": "application/json", **_auth("DRIFT_MONITOR_API_KEY")}
        self.client.post(
            "/embeddings/batch", data=body, headers=headers, name=f"POST batch json x{rows}"
        )

    @task(2)
    def post_npy_batch(self) -> None:
        rows = _pick(NPY_SIZES)
        headers = {
            "Content-Type": "application/x-npy",
            "X-Model-Id": random.choice(MODELS),
            **_auth("DRIFT_MONITOR_API_KEY"),
        }
        self.client.post(
            "/embeddings/batch", data=_npy(rows), headers=headers, name=f"POST batch npy x{rows}"
        )

    @task(3)
    def read_status(self) -> None:
        with self.client.get(
            f"/drift/status/{random.choice(MODELS)}",
            headers=_auth("DRIFT_MONITOR_API_KEY"),
            name="GET /drift/status/{model}",
            catch_response=True,
        ) as response:
            if response.status_code in (200, 404):
                response.success()
            else:
                response.failure(f"status {response.status_code}")

    @task(1)
    def write_config(self) -> None:
        self.client.post(
            f"/models/{random.choice(MODELS)}/config",
            json={
                "drift_threshold": round(random.uniform(0.1, 0.2), 3),
                "statistical_test": "ks_test",
                "baseline_refresh_hours": 24,
            },
            headers=_auth("DRIFT_MONITOR_ADMIN_KEY"),
            name="POST /models/{model}/config",
        )
