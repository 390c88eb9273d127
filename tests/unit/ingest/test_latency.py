"""Ingest and persist requests are timed into the latency histograms and pushed when due."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest
from drift_monitor.adapters.metrics import PushgatewayExporter, process_latency
from drift_monitor.entrypoints import latency
from ingest_support import Twins, post_event, pubsub_event
from test_ingest_subscribers import event_of, part


def _count(histogram: Any) -> float:
    for metric in histogram.collect():
        for sample in metric.samples:
            if sample.name.endswith("_count"):
                return float(sample.value)
    raise AssertionError("histogram has no _count sample")


def test_ingest_requests_are_timed_including_rejections(ingest_client: Any) -> None:
    before = _count(process_latency().ingest)
    body = orjson.dumps({"model_id": "m", "embeddings": [[0.1, 0.2]]})
    assert ingest_client.post("/", data=body, content_type="application/json").status_code == 202
    assert ingest_client.post("/", data=b"{", content_type="application/json").status_code == 400
    assert _count(process_latency().ingest) == before + 2


def test_persist_is_timed_once_per_delivery(persist_app: Any, twins: Twins) -> None:
    before = _count(process_latency().persist)
    assert post_event(persist_app.test_client(), event_of(part())).status_code == 200
    assert _count(process_latency().persist) == before + 1
    garbage = pubsub_event(b"not an envelope")
    assert post_event(persist_app.test_client(), garbage).status_code == 200
    assert _count(process_latency().persist) == before + 1  # dead-lettered before persisting


class _Container:
    def __init__(self, metrics: Any) -> None:
        self.metrics = metrics


def test_pushes_are_throttled_per_function(monkeypatch: pytest.MonkeyPatch) -> None:
    pushed: list[str] = []
    exporter = PushgatewayExporter("http://127.0.0.1:9")
    monkeypatch.setattr(exporter, "push_function", lambda lat, fn: pushed.append(fn) or True)
    monkeypatch.setattr(latency, "_last_push", {})
    monkeypatch.setattr(latency, "_exit_pushes", {})
    clock = iter(np.arange(0.0, 100.0, 10.0))
    monkeypatch.setattr(latency.time, "monotonic", lambda: float(next(clock)))
    for _ in range(4):  # t = 0, 10, 20, 30: pushes at 0 and 30 only
        latency.push_due("ingest", _Container(exporter))
    assert pushed == ["ingest", "ingest"]
    latency.push_due("persist", _Container(exporter))
    assert pushed[-1] == "persist"


def test_no_push_without_a_gateway(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(latency, "_last_push", {})
    latency.push_due("ingest", _Container(None))
    assert latency._last_push == {}


def test_ingest_answers_are_counted_by_status_code(ingest_client: Any) -> None:
    requests = process_latency().ingest_requests

    def count(code: str) -> float:
        return requests.labels(code)._value.get()

    accepted, rejected = count("202"), count("400")
    body = orjson.dumps({"model_id": "m", "embeddings": [[0.1, 0.2]]})
    assert ingest_client.post("/", data=body, content_type="application/json").status_code == 202
    assert ingest_client.post("/", data=b"{", content_type="application/json").status_code == 400
    assert count("202") == accepted + 1
    assert count("400") == rejected + 1


def test_dead_letters_are_counted_per_consumer(persist_app: Any, twins: Twins) -> None:
    dead = process_latency().dead_letters.labels("persist")
    before = dead._value.get()
    garbage = pubsub_event(b"not an envelope")
    assert post_event(persist_app.test_client(), garbage).status_code == 200
    assert dead._value.get() == before + 1
