"""persist / stats functions with real Pub/Sub CloudEvent envelopes (functions-framework)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from drift_monitor import bootstrap
from drift_monitor.domain import envelope
from drift_monitor.domain.batch import BatchPart
from drift_monitor.domain.errors import TransientError
from drift_monitor.entrypoints import subscribers
from ingest_support import Twins, install, make_twins, post_event, pubsub_event


def part(model_id: str = "m", batch_id: str = "b1", rows: int = 4, dim: int = 3) -> BatchPart:
    vectors = np.arange(rows * dim, dtype=np.float32).reshape(rows, dim)
    return envelope.split_batch(model_id, batch_id, datetime(2024, 1, 1, tzinfo=UTC), vectors)[0]


def event_of(p: BatchPart, message_id: str = "1") -> Any:
    message = envelope.encode(p)
    return pubsub_event(message.data, message.attributes, message_id)


def error_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno == logging.ERROR and hasattr(r, "fields")]


def test_persist_stores_a_part_once_across_redeliveries(persist_app: Any, twins: Twins) -> None:
    client = persist_app.test_client()
    event = event_of(part())
    assert post_event(client, event).status_code == 200
    assert post_event(client, event).status_code == 200  # redelivery
    assert list(twins.repository.parts) == [("m", "b1#0")]
    stored = twins.repository.parts[("m", "b1#0")]
    np.testing.assert_array_equal(stored.vectors, part().vectors)
    assert not twins.dead_letter.messages


def test_stats_folds_a_part_once_across_redeliveries(stats_app: Any, twins: Twins) -> None:
    client = stats_app.test_client()
    event = event_of(part(rows=5))
    for _ in range(3):
        assert post_event(client, event).status_code == 200
    assert twins.stats.rows == {"m": 5}
    assert twins.registry.dimensions == {"m": 3}


GARBAGE: list[tuple[str, bytes, dict[str, str], str]] = [
    ("not an envelope", b"hello", {}, "data"),
    ("unknown version attribute", envelope.encode(part()).data, {"format_version": "2"},
     "format_version"),
    ("truncated payload", envelope.encode(part()).data[:-4], {}, "data"),
    ("attribute disagrees with header", envelope.encode(part()).data, {"batch_id": "other"},
     "batch_id"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "data", "attributes", "field"), GARBAGE, ids=[g[0] for g in GARBAGE]
)
@pytest.mark.parametrize("target", ["persist", "stats"])
def test_undecodable_message_is_dead_lettered_and_acknowledged(
    persist_app: Any,
    stats_app: Any,
    twins: Twins,
    caplog: pytest.LogCaptureFixture,
    target: str,
    case: str,
    data: bytes,
    attributes: dict[str, str],
    field: str,
) -> None:
    app = persist_app if target == "persist" else stats_app
    with caplog.at_level(logging.INFO, logger="drift_monitor"):
        response = post_event(app.test_client(), pubsub_event(data, attributes, "m-77"))
    assert response.status_code == 200  # acknowledged: no retry loop
    (dead,) = twins.dead_letter.messages
    assert dead.data == data  # the raw message, unchanged
    assert dead.attributes["dead_letter_field"] == field
    assert dead.attributes["dead_letter_consumer"] == target
    assert dead.attributes["original_message_id"] == "m-77"
    (record,) = error_records(caplog)
    assert record.fields["field"] == field and record.fields["message_id"] == "m-77"  # type: ignore[attr-defined]
    assert not twins.repository.parts and not twins.stats.keys


def test_event_without_a_pubsub_message_is_dead_lettered(persist_app: Any, twins: Twins) -> None:
    from cloudevents.http import CloudEvent

    event = CloudEvent({"type": "t", "source": "s"}, {"unexpected": True})
    assert post_event(persist_app.test_client(), event).status_code == 200
    (dead,) = twins.dead_letter.messages
    assert dead.attributes["dead_letter_field"] == "data.message"


def test_invalid_base64_is_dead_lettered(persist_app: Any, twins: Twins) -> None:
    event = pubsub_event(b"")
    event.data["message"]["data"] = "***not base64***"
    assert post_event(persist_app.test_client(), event).status_code == 200
    assert twins.dead_letter.messages[0].attributes["dead_letter_field"] == "data.message.data"


def test_dimension_mismatch_from_a_direct_publisher_is_dead_lettered(
    persist_app: Any, twins: Twins
) -> None:
    twins.repository.dimensions["m"] = 8
    assert post_event(persist_app.test_client(), event_of(part(dim=3))).status_code == 200
    assert not twins.repository.parts
    assert twins.dead_letter.messages[0].attributes["dead_letter_field"] == "embeddings"


def test_configured_dimension_is_enforced_for_new_models(stats_app: Any) -> None:
    t = install(make_twins(embedding_dimension=4))
    assert post_event(stats_app.test_client(), event_of(part(dim=3))).status_code == 200
    assert not t.stats.keys and t.registry.dimensions == {}
    assert t.dead_letter.messages[0].attributes["dead_letter_field"] == "embeddings"


def test_transient_failure_propagates_for_redelivery(persist_app: Any, twins: Twins) -> None:
    twins.repository.fail = True
    event = event_of(part())
    with pytest.raises(TransientError):
        subscribers.persist(event)
    response = post_event(persist_app.test_client(), event)
    assert response.status_code == 500  # the function failed: Pub/Sub will redeliver
    assert not twins.dead_letter.messages
    twins.repository.fail = False
    assert post_event(persist_app.test_client(), event).status_code == 200
    assert list(twins.repository.parts) == [("m", "b1#0")]


def test_failed_dead_letter_publish_is_not_acknowledged(twins: Twins) -> None:
    class DownPublisher:
        def publish(self, messages: Any) -> list[str]:
            raise TransientError("dead-letter topic unreachable")

    c = twins.container()
    c.dead_letter = DownPublisher()
    bootstrap.set_container(c)
    with pytest.raises(TransientError):
        subscribers.persist(pubsub_event(b"garbage"))
