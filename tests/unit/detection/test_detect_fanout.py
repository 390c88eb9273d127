"""Detection fanned out: one request per model per tick, each model checked once per slot.

Real collaborators throughout (SQLite, the monitor tables, ``run_detection``); only the
detect topic is a list, the emulator case is in ``tests/e2e/test_detect_fanout.py``.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cloudevents.http import CloudEvent
from drift_monitor import bootstrap
from drift_monitor.adapters.sql.claims import SqlDetectionClaims
from drift_monitor.adapters.sql.tables import detection_claims, drift_results
from drift_monitor.config import Settings
from drift_monitor.domain.batch import BatchPart
from drift_monitor.domain.envelope import Message
from drift_monitor.domain.errors import TransientError
from drift_monitor.entrypoints import detect_fanout as fanout_entry
from drift_monitor.entrypoints import detect_http
from drift_monitor.service import detect_fanout
from flask import Request
from sqlalchemy import func, select
from werkzeug.test import EnvironBuilder

NOW = datetime(2025, 6, 2, 12, 7, 31, tzinfo=UTC)
SLOT = datetime(2025, 6, 2, 12, 5, tzinfo=UTC)


class Topic:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    def publish(self, messages: Sequence[Message]) -> list[str]:
        self.messages.extend(messages)
        return [str(len(self.messages) - len(messages) + i) for i in range(len(messages))]


@pytest.fixture
def container(tmp_path: Path) -> Iterator[bootstrap.Container]:
    settings = replace(Settings(environment="test"), data_dir=tmp_path)
    c = bootstrap.build(settings, embedded=True)
    c.migrate()
    c.clock = lambda: NOW
    c.detect_publisher = Topic()  # type: ignore[attr-defined]
    yield c
    c.engine.dispose()


def store_models(c: bootstrap.Container, n: int) -> list[str]:
    rng = np.random.default_rng(0)
    ids = [f"fan-{i:03d}" for i in range(n)]
    for model_id in ids:
        # a baseline past detection's warm-up (500 vectors), a current window of 120
        for j, (ts, rows) in enumerate(
            ((NOW - timedelta(days=2), 600), (NOW - timedelta(minutes=20), 120))
        ):
            vectors = rng.normal(size=(rows, 4)).astype(np.float32)
            c.repository.save_part(BatchPart(model_id, f"b{j}", 0, 1, 0, ts, vectors))
    return ids


def tick(c: bootstrap.Container, query: str = "fanout=true") -> Any:
    env = EnvironBuilder(path="/drift/check", method="POST", query_string=query).get_environ()
    return detect_http.handle_with(Request(env), c)


def event(message: Message, message_id: str = "1") -> CloudEvent:
    return CloudEvent(
        {"type": "google.cloud.pubsub.topic.v1.messagePublished", "source": "//pubsub/test"},
        {
            "message": {
                "data": base64.b64encode(message.data).decode(),
                "attributes": message.attributes,
                "messageId": message_id,
            },
            "subscription": "projects/p/subscriptions/embeddings-check",
        },
    )


def results(c: bootstrap.Container) -> list[tuple[str, datetime]]:
    with c.engine.connect() as conn:
        rows = conn.execute(select(drift_results.c.model_id, drift_results.c.checked_at)).all()
    return sorted((r.model_id, r.checked_at) for r in rows)


def test_tick_publishes_one_request_per_model_and_each_runs_once_per_slot(
    container: bootstrap.Container,
) -> None:
    ids = store_models(container, 6)
    answer = tick(container)
    assert answer.status_code == 200, answer.data
    assert answer.json["fanout"]["published"] == 6
    assert answer.json["fanout"]["slot"] == SLOT.isoformat()
    topic: Topic = container.detect_publisher  # type: ignore[attr-defined]
    requests = [detect_fanout.DetectRequest.decode(m.data) for m in topic.messages]
    assert sorted(r.model_id for r in requests) == ids
    assert {r.slot for r in requests} == {SLOT}

    outcomes = [fanout_entry.run_model_with(event(m), container) for m in topic.messages]
    assert [(o.status, o.error) for o in outcomes if o is not None] == [("ok", None)] * 6
    assert results(container) == [(m, SLOT) for m in ids]  # checked as of the slot

    # Redeliveries, and a repeated tick in the same slot, run nothing again.
    assert tick(container).json["fanout"]["published"] == 6
    again = [fanout_entry.run_model_with(event(m, "2"), container) for m in topic.messages]
    assert again == [None] * 12
    assert results(container) == [(m, SLOT) for m in ids]

    # The next slot checks every model again.
    container.clock = lambda: NOW + timedelta(minutes=5)
    tick(container)
    for m in topic.messages[12:]:
        fanout_entry.run_model_with(event(m), container)
    assert len(results(container)) == 12


def test_unstored_result_gives_the_claim_back(container: bootstrap.Container) -> None:
    claims = SqlDetectionClaims(container.engine)
    request = detect_fanout.DetectRequest("m", SLOT)

    class Unstored:
        status, result_id, error = "error", None, "storing the result failed"

    with pytest.raises(TransientError):
        detect_fanout.run_requested(request, claims, lambda m, s: Unstored())
    with pytest.raises(RuntimeError):
        detect_fanout.run_requested(
            request, claims, lambda m, s: (_ for _ in ()).throw(RuntimeError())
        )

    class Stored:
        status, result_id, error = "ok", 7, None

    assert detect_fanout.run_requested(request, claims, lambda m, s: Stored()) is not None
    assert detect_fanout.run_requested(request, claims, lambda m, s: Stored()) is None


def test_old_claims_are_pruned_by_the_tick(container: bootstrap.Container) -> None:
    claims = SqlDetectionClaims(container.engine)
    assert claims.claim("m", SLOT - timedelta(days=3))
    assert claims.claim("m", SLOT - timedelta(hours=1))
    answer = tick(container)
    assert answer.json["fanout"]["pruned_claims"] == 1
    with container.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(detection_claims)).scalar_one() == 1


@pytest.mark.parametrize(
    "data",
    [b"not json", b'{"v": 2, "model_id": "m", "slot": "2025-06-02T12:05:00+00:00"}',
     b'{"v": 1, "model_id": "a b", "slot": "2025-06-02T12:05:00+00:00"}',
     b'{"v": 1, "model_id": "m", "slot": "2025-06-02T12:05:00"}'],
)  # fmt: skip
def test_malformed_requests_are_dead_lettered(container: bootstrap.Container, data: bytes) -> None:
    assert fanout_entry.run_model_with(event(Message(data, {})), container) is None
    dead = container.dead_letter.messages  # type: ignore[attr-defined]
    assert len(dead) == 1 and dead[0].data == data
    assert dead[0].attributes["dead_letter_consumer"] == "check"
    assert results(container) == []


@pytest.mark.parametrize(
    "query",
    ["fanout=true&slot_seconds=5", "fanout=1&slot_seconds=x", "fanout=1&slot_seconds=%C2%B2"],
)
def test_bad_slot_width_is_refused(container: bootstrap.Container, query: str) -> None:
    store_models(container, 1)
    answer = tick(container, query)
    assert answer.status_code == 422 and answer.json["error"]["field"] == "slot_seconds"
    assert container.detect_publisher.messages == []  # type: ignore[attr-defined]


def test_embedded_serve_refuses_fanout_without_a_topic(container: bootstrap.Container) -> None:
    store_models(container, 1)
    del container.detect_publisher  # type: ignore[attr-defined]
    answer = tick(container)
    assert answer.status_code == 422 and answer.json["error"]["field"] == "fanout"
    assert results(container) == []


def test_slot_of_rounds_down_to_the_width() -> None:
    assert detect_fanout.slot_of(NOW, 300) == SLOT
    assert detect_fanout.slot_of(NOW, 3600) == datetime(2025, 6, 2, 12, tzinfo=UTC)
    assert detect_fanout.slot_of(SLOT, 300) == SLOT
