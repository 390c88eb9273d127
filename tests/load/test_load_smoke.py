"""A few seconds of the load profile against embedded serve: every request type answers.

The long run is a benchmark (``scripts/load``); this only proves that the locustfile, the
runner and the server agree (status codes, paths, bodies, the summary parsing).
"""

from __future__ import annotations

import importlib.util
import socket
from pathlib import Path
from types import ModuleType

import pytest
from support.modules import load_file

REPO = Path(__file__).resolve().parents[2]

# Only look locust up: importing it here would let gevent monkey-patch ssl after the rest of the
# suite imported it (RecursionError). The runner starts locust in its own process.
if importlib.util.find_spec("locust") is None:
    pytest.skip("locust is in the dev extra: pip install -e '.[dev]'", allow_module_level=True)


def _runner() -> ModuleType:
    return load_file("run_load", REPO / "scripts" / "run_load.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_short_headless_run_against_serve_has_no_errors() -> None:
    runner = _runner()
    summaries = runner.run(duration=4, users=3, spawn_rate=3, port=_free_port())
    total = summaries[-1]
    assert total.name == "all requests"
    assert total.requests >= 10 and total.failures == 0
    assert total.rps > 0 and 0 < total.p50 <= total.p95 <= total.p99
    names = {s.name for s in summaries[:-1]}
    assert any(name.startswith("POST batch") for name in names)
    assert sum(s.requests for s in summaries[:-1]) == total.requests
