"""Regression tests for defects fault injection and fuzzing found on the ingest path.

Each test names the defect it guards; each fails on the code before its fix.
"""

from __future__ import annotations

import ast
import io
import tracemalloc
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
import pytest
from drift_monitor.adapters import memory_bus
from drift_monitor.adapters.memory_bus import DeadLetterList, MemoryBus
from drift_monitor.domain import envelope
from drift_monitor.domain.batch import BatchPart, check_batch_id, check_model_id
from drift_monitor.domain.envelope import Message
from drift_monitor.domain.errors import ValidationError
from ingest_support import Twins

TS = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()


def _message(size: int, i: int) -> Message:
    return Message(bytes([i % 256]) * size, {"i": str(i)})


# --- 1. the embedded bus and dead-letter list keep bounded memory --------------------------


def test_memory_bus_keeps_no_delivered_message() -> None:
    received: list[int] = []
    bus = MemoryBus([lambda message, _id: received.append(len(message.data))])
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(200):  # 200 x 100 kB = 20 MB through the bus
            bus.publish([_message(100_000, i)])
        retained = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(received) == 200
    assert retained < 2_000_000, f"the bus retained {retained} bytes"


def test_dead_letter_list_keeps_only_the_newest_messages() -> None:
    dead = DeadLetterList()
    kept = memory_bus.DEAD_LETTER_KEPT
    ids = [dead.publish([_message(10, i)])[0] for i in range(kept * 3)]
    assert dead.count == kept * 3 and len(ids) == len(set(ids))
    assert len(dead.messages) == kept
    assert dead.messages[-1].attributes["i"] == str(kept * 3 - 1)


# --- 3. identifiers with a trailing newline --------------------------------------------------


@pytest.mark.parametrize("value", ["bad\n", "a/b\n", "bad\r\n"])
def test_model_id_with_trailing_newline_is_refused(value: str) -> None:
    with pytest.raises(ValidationError) as raised:
        check_model_id(value)
    assert raised.value.field == "model_id"


def test_batch_id_with_trailing_newline_is_refused() -> None:
    with pytest.raises(ValidationError) as raised:
        check_batch_id("b1\n")
    assert raised.value.field == "batch_id"


def test_ingest_refuses_newline_ids_and_writes_nothing(ingest_client: Any, twins: Twins) -> None:
    for payload in (
        {"embeddings": [[0.1, 0.2]], "model_id": "bad\n", "timestamp": TS},
        {"embeddings": [[0.1, 0.2]], "model_id": "good", "batch_id": "b1\n", "timestamp": TS},
    ):
        response = ingest_client.post(
            "/embeddings/batch", data=orjson.dumps(payload), content_type="application/json"
        )
        assert response.status_code == 422, response.get_json()
    assert twins.nothing_written()


def test_pubsub_decoder_refuses_newline_ids() -> None:
    part = BatchPart(
        "good", "b1", 0, 1, 0, datetime.now(UTC), np.ones((2, 3), dtype=np.float32), {}
    )
    for name, value in (("model_id", "good\n"), ("batch_id", "b1\n")):
        message = envelope.encode(replace(part, **{name: value}))
        with pytest.raises(ValidationError) as raised:
            envelope.decode(message.data, {})
        assert raised.value.field == name


# --- 4. deeply nested JSON -------------------------------------------------------------------


def _nested(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


@pytest.mark.parametrize("where", ["embeddings", "metadata"])
@pytest.mark.parametrize("depth", [300, 2_000, 100_000])
def test_deeply_nested_json_is_a_4xx(
    ingest_client: Any, twins: Twins, where: str, depth: int
) -> None:
    nested = _nested(depth) if where == "embeddings" else '{"a": ' + _nested(depth) + "}"
    other = '"metadata": {}' if where == "embeddings" else '"embeddings": [[1.0, 2.0]]'
    raw = f'{{"model_id": "m", "timestamp": "{TS}", {other}, "{where}": {nested}}}'
    response = ingest_client.post(
        "/embeddings/batch", data=raw.encode(), content_type="application/json"
    )
    assert response.status_code in (400, 422), response.data[:200]
    assert response.get_json()["error"]["field"] in ("body", where)
    assert twins.nothing_written()


def test_deeply_nested_metadata_header_is_a_4xx(ingest_client: Any, twins: Twins) -> None:
    response = ingest_client.post(
        "/embeddings/batch?model_id=m",
        data=_npy(np.ones((2, 3), dtype=np.float32)),
        content_type="application/x-npy",
        headers={"X-Metadata": '{"a": ' + _nested(5_000) + "}"},
    )
    assert response.status_code == 422 and response.get_json()["error"]["field"] == "metadata"
    assert twins.nothing_written()


# --- 5. .npy headers with negative or zero dimensions ----------------------------------------


def _npy(array: np.ndarray[Any, Any]) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _npy_with_shape(shape: tuple[int, ...], data_bytes: int) -> bytes:
    """A version 1.0 ``.npy`` file whose header announces ``shape`` over ``data_bytes`` bytes."""
    header = repr({"descr": "<f4", "fortran_order": False, "shape": shape})
    assert ast.literal_eval(header)["shape"] == shape
    preamble = 10
    pad = 64 - (preamble + len(header) + 1) % 64
    text = (header + " " * pad + "\n").encode("latin1")
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text + b"\x00" * data_bytes


@pytest.mark.parametrize(
    ("shape", "data_bytes"), [((-1, -4), 16), ((-2, -2), 16), ((-1, 0), 0), ((0, -3), 0)]
)
def test_npy_with_negative_dimensions_is_refused(
    ingest_client: Any, twins: Twins, shape: tuple[int, int], data_bytes: int
) -> None:
    response = ingest_client.post(
        "/embeddings/batch?model_id=m",
        data=_npy_with_shape(shape, data_bytes),
        content_type="application/x-npy",
    )
    assert response.status_code == 422, response.data[:200]
    assert response.get_json()["error"]["field"] == "embeddings"
    assert twins.nothing_written()


# --- 7. a production configuration error stops start-up -------------------------------------

PRODUCTION_LOOPBACK_PAGERDUTY = {
    "DRIFT_MONITOR_ENV": "production",
    "PAGERDUTY_ROUTING_KEY": "0123456789abcdef0123456789abcdef",
    "PAGERDUTY_EVENTS_URL": "https://127.0.0.1:9/v2/enqueue",
}


@pytest.mark.parametrize(
    ("env", "named"),
    [
        (PRODUCTION_LOOPBACK_PAGERDUTY, "PAGERDUTY_EVENTS_URL"),
        ({**PRODUCTION_LOOPBACK_PAGERDUTY, "PAGERDUTY_EVENTS_URL": "https://localhost/x"},
         "PAGERDUTY_EVENTS_URL"),
        ({**PRODUCTION_LOOPBACK_PAGERDUTY, "PAGERDUTY_EVENTS_URL": "http://events.pagerduty.com/"},
         "PAGERDUTY_EVENTS_URL"),
        ({"PAGERDUTY_ROUTING_KEY": "too-short"}, "PAGERDUTY_ROUTING_KEY"),
    ],
)  # fmt: skip
def test_unusable_pagerduty_configuration_is_a_config_error(
    env: dict[str, str], named: str
) -> None:
    from drift_monitor.config import ConfigError, Settings

    with pytest.raises(ConfigError, match=named) as raised:
        Settings.from_env(env)
    assert "too-short" not in str(raised.value)  # the routing key is a secret


def test_local_mode_accepts_a_loopback_pagerduty_url() -> None:
    from drift_monitor.config import Settings

    env = {**PRODUCTION_LOOPBACK_PAGERDUTY, "DRIFT_MONITOR_ENV": "test"}
    assert Settings.from_env(env).pagerduty_events_url == "https://127.0.0.1:9/v2/enqueue"


def test_functions_refuse_to_start_with_a_production_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import functions_framework
    from drift_monitor.config import ConfigError
    from ingest_support import MAIN

    for name, value in PRODUCTION_LOOPBACK_PAGERDUTY.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match="PAGERDUTY_EVENTS_URL"):
        functions_framework.create_app(target="api", source=MAIN)


# --- 8. every response of every function is JSON ---------------------------------------------


@pytest.mark.parametrize("target", ["ingest", "detect", "api"])
@pytest.mark.parametrize(
    "path", ["/models/bad%0A/config", "/x%0Ay", "/favicon.ico", "/robots.txt", "/drift/status/a%0A"]
)
def test_paths_the_framework_does_not_route_answer_json(target: str, path: str) -> None:
    import functions_framework
    from ingest_support import MAIN

    client = functions_framework.create_app(target=target, source=MAIN).test_client()
    for method in (client.get, client.post):
        response = method(path)
        assert response.status_code == 404, (path, response.data[:100])
        assert response.content_type == "application/json", response.data[:100]
        assert response.get_json()["error"]["field"] == "path"


# --- a batch dated before a horizon is accepted with warnings saying what will happen ---------


def test_a_batch_dated_before_every_horizon_gets_warnings(ingest_client: Any, twins: Twins) -> None:
    old = (datetime.now(UTC) - timedelta(days=40)).isoformat()
    payload = {"embeddings": [[0.1, 0.2]], "model_id": "m", "timestamp": old}
    response = ingest_client.post(
        "/embeddings/batch", data=orjson.dumps(payload), content_type="application/json"
    )
    assert response.status_code == 202
    warnings = response.get_json()["warnings"]
    assert [w["field"] for w in warnings] == ["timestamp"] * 3
    text = " ".join(w["message"] for w in warnings)
    assert "BATCH_RETENTION_DAYS=30" in text and "deleted" in text
    assert "statistics horizon" in text and "HISTORICAL_WINDOW_DAYS=7" in text


def test_a_batch_eight_days_old_is_only_outside_the_windows(
    ingest_client: Any, twins: Twins
) -> None:
    ts = (datetime.now(UTC) - timedelta(days=8)).isoformat()
    payload = {"embeddings": [[0.1, 0.2]], "model_id": "m", "timestamp": ts}
    response = ingest_client.post(
        "/embeddings/batch", data=orjson.dumps(payload), content_type="application/json"
    )
    messages = [w["message"] for w in response.get_json()["warnings"]]
    assert len(messages) == 2 and "statistics horizon" in messages[0]


def test_a_recent_batch_has_no_warnings(ingest_client: Any, twins: Twins) -> None:
    payload = {"embeddings": [[0.1, 0.2]], "model_id": "m", "timestamp": TS}
    response = ingest_client.post(
        "/embeddings/batch", data=orjson.dumps(payload), content_type="application/json"
    )
    assert response.status_code == 202 and "warnings" not in response.get_json()
