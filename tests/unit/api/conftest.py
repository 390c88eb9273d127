"""The operator API through the real ``drift-monitor serve`` app on a SQLite file (no servers).

The container is the embedded wiring from ``bootstrap.build`` with a fixed clock, so windows
and baselines are deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from api_support import ADMIN_KEY, API_KEY, NOW, Api
from drift_monitor import bootstrap
from drift_monitor.config import Settings
from drift_monitor.entrypoints.app import create_app


@pytest.fixture
def make_api(tmp_path: Path) -> Iterator[Callable[..., Api]]:
    containers: list[bootstrap.Container] = []

    def make(**overrides: Any) -> Api:
        settings = Settings(
            data_dir=tmp_path / f"data{len(containers)}",
            api_key=API_KEY,
            admin_key=ADMIN_KEY,
            environment="test",
        )
        settings = replace(settings, **overrides)
        container = bootstrap.build(settings, embedded=True)
        container.clock = lambda: NOW
        container.migrate()
        containers.append(container)
        return Api(create_app(container).test_client(), container)

    yield make
    for container in containers:
        if container.engine is not None:
            container.engine.dispose()


@pytest.fixture
def api(make_api: Callable[..., Api]) -> Api:
    return make_api()


@pytest.fixture
def seeded(api: Api) -> Api:
    """Model ``org/encoder`` with 40 baseline and 30 current vectors (dimension 8)."""
    rng = np.random.default_rng(0)
    api.send("org/encoder", rng.normal(size=(40, 8)), NOW - timedelta(days=1))
    api.send("org/encoder", rng.normal(size=(30, 8)), NOW - timedelta(minutes=10))
    return api
