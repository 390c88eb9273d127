"""Fixtures for the ingest tests (twins in ``ingest_support``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import flask
import functions_framework
import pytest
from drift_monitor import bootstrap
from ingest_support import MAIN, Twins, make_twins


@pytest.fixture
def twins() -> Iterator[Twins]:
    t = make_twins()
    bootstrap.set_container(t.container())
    yield t
    bootstrap.set_container(None)


@pytest.fixture(scope="session")
def ingest_app() -> flask.Flask:
    return functions_framework.create_app(target="ingest", source=MAIN)


@pytest.fixture
def ingest_client(ingest_app: flask.Flask, twins: Twins) -> Any:
    return ingest_app.test_client()


@pytest.fixture(scope="session")
def persist_app() -> flask.Flask:
    return functions_framework.create_app(target="persist", source=MAIN)


@pytest.fixture(scope="session")
def stats_app() -> flask.Flask:
    return functions_framework.create_app(target="stats", source=MAIN)


@pytest.fixture(autouse=True)
def _fresh_container() -> Iterator[None]:
    yield
    bootstrap.set_container(None)
