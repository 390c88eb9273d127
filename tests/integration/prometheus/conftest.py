"""Prometheus binaries (Debian's ``prometheus`` package): skip without them, fail when required."""

from __future__ import annotations

import os
import shutil

import pytest
from support.prometheus import prometheus_binary


def _need(binary: str | None, name: str) -> str:
    if binary:
        return binary
    message = f"{name} not found; apt-get install prometheus (scripts/test installs it)"
    if os.environ.get("DRIFT_MONITOR_REQUIRE_SERVICES", "").strip().lower() in ("1", "true", "yes"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def promtool() -> str:
    return _need(shutil.which("promtool"), "promtool")


@pytest.fixture(scope="session")
def prometheus() -> str:
    return _need(prometheus_binary(), "prometheus")
