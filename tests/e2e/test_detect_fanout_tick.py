"""Detection fanned out on real services: one scheduled tick checks 200 models.

The detect function's tick (``POST /drift/check?fanout=true``, functions-framework) publishes
to a detect topic on the Pub/Sub emulator; every request is pulled from the worker's
subscription and delivered as Eventarc would to the ``check`` function, which checks
one model on PostgreSQL. Then the emulator redelivers every request (nacked) and a second
tick in the same slot publishes them all again: no model is checked twice in the slot.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import functions_framework
import numpy as np
import pytest
import sqlalchemy as sa
from drift_monitor import bootstrap
from drift_monitor.adapters import pubsub
from drift_monitor.adapters.memory_stats import MemoryDimensionRegistry, MemoryStatsStore
from drift_monitor.adapters.sql import SqlRepository
from drift_monitor.config import Settings
from drift_monitor.domain.batch import BatchPart
from drift_monitor.entrypoints.detect_fanout import detect_topic
from test_ingest_pipeline import MAIN, PROJECT, as_cloud_event, deliver, pull

MODELS = 200
NOW = datetime(2025, 6, 2, 12, 7, 31, tzinfo=UTC)
SLOT = datetime(2025, 6, 2, 12, 5, tzinfo=UTC)


@pytest.fixture
def fanout(database: sa.Engine, pubsub_emulator_host: str) -> Iterator[dict[str, str]]:
    name = f"embeddings-{uuid.uuid4().hex[:10]}"
    settings = Settings(environment="test", pubsub_topic=name, google_cloud_project=PROJECT)
    topic = detect_topic(settings)
    pubsub.ensure_topic(PROJECT, topic)
    pubsub.ensure_topic(PROJECT, f"{name}-dead-letter")
    subscription = pubsub.ensure_subscription(
        PROJECT, topic, f"{name}-check", dead_letter_topic=f"{name}-dead-letter"
    )
    c = bootstrap.add_detection(
        bootstrap.Container(
            settings=settings,
            publisher=pubsub.PubSubPublisher(PROJECT, name),
            repository=SqlRepository(database),
            stats=MemoryStatsStore(bucket_seconds=3600, retention_seconds=86_400),
            registry=MemoryDimensionRegistry(),
            dead_letter=pubsub.PubSubPublisher(PROJECT, f"{name}-dead-letter"),
            engine=database,
            ready=True,
        )
    )
    c.clock = lambda: NOW
    bootstrap.set_container(c)
    yield {"subscription": subscription}
    bootstrap.set_container(None)


def results(engine: sa.Engine) -> list[tuple[str, datetime]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT model_id, checked_at FROM drift_results")).all()
    return sorted((r[0], r[1].astimezone(UTC)) for r in rows)


@pytest.mark.e2e
@pytest.mark.integration
def test_one_tick_checks_200_models_once_each(fanout: dict[str, str], database: sa.Engine) -> None:
    repo = SqlRepository(database)
    rng = np.random.default_rng(5)
    ids = [f"fleet/model-{i:03d}" for i in range(MODELS)]
    for model_id in ids:
        # a baseline past detection's warm-up (500 vectors), a current window of 120
        for j, (ts, rows) in enumerate(
            ((NOW - timedelta(days=2), 600), (NOW - timedelta(minutes=20), 120))
        ):
            vectors = rng.normal(size=(rows, 8)).astype(np.float32)
            repo.save_part(BatchPart(model_id, f"b{j}", 0, 1, 0, ts, vectors))

    detect = functions_framework.create_app(target="detect", source=MAIN).test_client()
    worker = functions_framework.create_app(target="check", source=MAIN).test_client()
    answer = detect.post("/drift/check?fanout=true")
    assert answer.status_code == 200, answer.data
    assert answer.get_json()["fanout"]["published"] == MODELS
    assert answer.get_json()["fanout"]["slot"] == SLOT.isoformat()

    subscriber = pubsub.subscriber_client()
    try:
        first = pull(subscriber, fanout["subscription"], MODELS)
        assert len(first) == MODELS
        started = time.perf_counter()
        deliver(worker, [as_cloud_event(m, fanout["subscription"]) for m in first])
        per_check = (time.perf_counter() - started) / MODELS
        assert results(database) == [(m, SLOT) for m in ids]

        # The emulator redelivers every request, and a second tick in the slot publishes
        # them all again: nothing runs twice.
        subscriber.modify_ack_deadline(
            request={
                "subscription": fanout["subscription"],
                "ack_ids": [m.ack_id for m in first],
                "ack_deadline_seconds": 0,
            }
        )
        assert detect.post("/drift/check?fanout=true").status_code == 200
        again = pull(subscriber, fanout["subscription"], 2 * MODELS)
        assert len(again) == 2 * MODELS
        deliver(worker, [as_cloud_event(m, fanout["subscription"]) for m in again])
        assert results(database) == [(m, SLOT) for m in ids]
        subscriber.acknowledge(
            request={"subscription": fanout["subscription"], "ack_ids": [m.ack_id for m in again]}
        )
    finally:
        subscriber.close()
    print(f"\n{MODELS} models through one tick: {per_check * 1000:.0f} ms per model-check")
