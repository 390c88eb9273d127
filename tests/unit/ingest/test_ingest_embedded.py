"""Embedded wiring in-process: HTTP -> in-process bus -> SQLite + in-process statistics."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from drift_monitor import bootstrap
from drift_monitor.client import HttpSender
from drift_monitor.config import Settings
from drift_monitor.domain import envelope
from drift_monitor.domain.envelope import Message
from drift_monitor.entrypoints.app import create_app


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[bootstrap.Container]:
    c = bootstrap.build(Settings(environment="test", data_dir=tmp_path), embedded=True)
    assert not c.ready
    c.migrate()
    bootstrap.set_container(c)
    yield c
    bootstrap.set_container(None)
    c.engine.dispose()


def test_healthz_reports_ready_after_migrations(tmp_path: Path) -> None:
    c = bootstrap.build(Settings(environment="test", data_dir=tmp_path), embedded=True)
    client = create_app(c).test_client()
    assert client.get("/healthz").status_code == 503
    c.migrate()
    assert client.get("/healthz").get_json() == {"status": "ok", "mode": "embedded"}
    assert (tmp_path / "drift-monitor.db").is_file()
    c.engine.dispose()


def test_batch_reaches_sqlite_and_statistics(embedded: bootstrap.Container) -> None:
    client = create_app(embedded).test_client()
    rng = np.random.default_rng(3)
    vectors = rng.normal(loc=2.0, size=(300, 8)).astype(np.float32)
    ts = datetime.now(UTC) - timedelta(minutes=1)
    payload = {
        "embeddings": vectors.tolist(),
        "model_id": "team/encoder",
        "timestamp": ts.isoformat(),
        "batch_id": "e-1",
    }
    response = client.post("/embeddings/batch", json=payload)
    assert response.status_code == 202, response.get_json()
    # A client retry of the same batch changes nothing downstream.
    assert client.post("/embeddings/batch", json=payload).status_code == 202
    (stored,) = list(embedded.repository.iter_parts("team/encoder"))
    np.testing.assert_array_equal(stored.vectors, vectors)
    stats = embedded.stats.read("team/encoder")  # type: ignore[attr-defined]
    assert stats.count == 300
    np.testing.assert_allclose(stats.mean, vectors.mean(axis=0, dtype=np.float64), rtol=1e-6)
    assert embedded.repository.model_dimension("team/encoder") == 8


def test_bus_dead_letters_a_bad_message(embedded: bootstrap.Container) -> None:
    embedded.publisher.publish([Message(b"junk", {"format_version": "1"})])
    dead = embedded.dead_letter.messages  # type: ignore[attr-defined]
    # Both consumers (persist and stats) reject it, each on its own behalf.
    assert [m.attributes["dead_letter_consumer"] for m in dead] == ["persist", "stats"]
    assert all(m.data == b"junk" for m in dead)


def test_bus_consumers_get_private_copies_of_the_envelope(embedded: bootstrap.Container) -> None:
    part = envelope.split_batch(
        "m", "b", datetime.now(UTC), np.ones((2, 3), dtype=np.float32), {"k": "v"}
    )[0]
    embedded.publisher.publish([envelope.encode(part)])
    (stored,) = list(embedded.repository.iter_parts("m"))
    assert stored.metadata == {"k": "v"} and stored.key == "b#0"


def test_http_sender_against_the_app(embedded: bootstrap.Container, monkeypatch: Any) -> None:
    # HttpSender speaks urllib; route it into the Flask test client to check both formats.
    client = create_app(embedded).test_client()

    class Answer:
        def __init__(self, response: Any) -> None:
            self.response = response

        def __enter__(self) -> Any:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def read(self) -> bytes:
            return bytes(self.response.data)

    def urlopen(request: Any, timeout: float) -> Answer:
        url = request.full_url.removeprefix("http://monitor")
        response = client.post(url, data=request.data, headers=dict(request.header_items()))
        assert response.status_code == 202, response.get_json()
        return Answer(response)

    monkeypatch.setattr("urllib.request.urlopen", urlopen)
    sender = HttpSender("http://monitor")
    vectors = np.eye(4, dtype=np.float32)
    a = sender.send("m", vectors, batch_id="s-npy", metadata={"a": 1})
    b = sender.send("m", vectors, batch_id="s-json", fmt="json", timestamp=datetime.now(UTC))
    assert (a.accepted, b.accepted) == (4, 4)
    keys = sorted(p.key for p in embedded.repository.iter_parts("m"))
    assert keys == ["s-json#0", "s-npy#0"]
