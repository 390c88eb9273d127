"""Constants and the client wrapper shared by the operator API tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from drift_monitor import bootstrap
from flask.testing import FlaskClient

# Real time: the statistics store keeps buckets relative to the wall clock.
NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
API_KEY = "api-key-for-tests-0123456789"
ADMIN_KEY = "admin-key-for-tests-9876543210"
API = {"Authorization": f"Bearer {API_KEY}"}
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


class Api:
    """A test client plus the container behind it."""

    def __init__(self, client: FlaskClient, container: bootstrap.Container) -> None:
        self.client = client
        self.container = container

    def send(self, model_id: str, vectors: np.ndarray[Any, Any], ts: datetime) -> None:
        response = self.client.post(
            "/embeddings/batch",
            json={
                "model_id": model_id,
                "embeddings": vectors.tolist(),
                "timestamp": ts.isoformat(),
            },
            headers=API,
        )
        assert response.status_code == 202, response.json


def hours_ago(hours: float) -> str:
    return (NOW - timedelta(hours=hours)).isoformat().replace("+00:00", "Z")
