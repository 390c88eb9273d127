"""POST /embeddings/batch through the functions-framework test client, with recording twins."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
import pytest
from drift_monitor.domain import envelope
from ingest_support import Twins, install, make_twins

NOW = datetime.now(UTC)
TS = (NOW - timedelta(minutes=5)).isoformat()


def npy_bytes(array: np.ndarray[Any, Any]) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def post_json(client: Any, payload: object, **kwargs: Any) -> Any:
    return client.post(
        "/embeddings/batch",
        data=payload if isinstance(payload, bytes) else orjson.dumps(payload),
        content_type=kwargs.pop("content_type", "application/json"),
        **kwargs,
    )


def body(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "embeddings": [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]],
        "model_id": "bert-base",
        "timestamp": TS,
        "metadata": {"environment": "production", "version": "v1.2.3"},
    }
    payload.update(overrides)
    return {k: v for k, v in payload.items() if v is not ...}


def decoded(t: Twins) -> list[Any]:
    return [envelope.decode(m.data, m.attributes) for m in t.publisher.messages]


def test_seed_json_body_is_published_and_acknowledged(ingest_client: Any, twins: Twins) -> None:
    response = post_json(ingest_client, body(batch_id="client-batch-1"))
    assert response.status_code == 202, response.get_json()
    assert response.get_json() == {"batch_id": "client-batch-1", "accepted": 2, "parts": 1}
    (part,) = decoded(twins)
    assert part.model_id == "bert-base" and part.batch_id == "client-batch-1"
    assert part.timestamp == datetime.fromisoformat(TS)
    assert part.metadata == {"environment": "production", "version": "v1.2.3"}
    np.testing.assert_array_equal(
        part.vectors, np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]], dtype=np.float32)
    )
    assert twins.registry.dimensions == {"bert-base": 3}


def test_batch_id_is_generated_when_absent(ingest_client: Any, twins: Twins) -> None:
    first = post_json(ingest_client, body()).get_json()["batch_id"]
    second = post_json(ingest_client, body()).get_json()["batch_id"]
    assert len(first) == 32 and int(first, 16) >= 0 and first != second


def test_timestamp_defaults_to_now_and_offsets_are_normalised(
    ingest_client: Any, twins: Twins
) -> None:
    assert post_json(ingest_client, body(timestamp=...)).status_code == 202
    assert post_json(ingest_client, body(timestamp="2024-01-01T14:00:00+02:00")).status_code == 202
    default, shifted = decoded(twins)
    assert abs((default.timestamp - datetime.now(UTC)).total_seconds()) < 60
    assert shifted.timestamp == datetime(2024, 1, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", ">f4"])
def test_npy_body_in_every_float_precision(ingest_client: Any, twins: Twins, dtype: str) -> None:
    rng = np.random.default_rng(7)
    array = rng.normal(size=(50, 16)).astype(dtype)
    response = ingest_client.post(
        "/embeddings/batch?model_id=org/model-a&batch_id=npy-1&timestamp=" + TS.replace("+", "%2B"),
        data=npy_bytes(array),
        content_type="application/x-npy",
    )
    assert response.status_code == 202, response.get_json()
    assert response.get_json() == {"batch_id": "npy-1", "accepted": 50, "parts": 1}
    (part,) = decoded(twins)
    assert part.model_id == "org/model-a"
    np.testing.assert_array_equal(part.vectors, array.astype(np.float32))


def test_npy_parameters_from_headers_and_fortran_order(ingest_client: Any, twins: Twins) -> None:
    array = np.asfortranarray(np.arange(12, dtype=np.float32).reshape(4, 3))
    response = ingest_client.post(
        "/embeddings/batch",
        data=npy_bytes(array),
        content_type="application/x-npy",
        headers={
            "X-Model-Id": "m1",
            "X-Batch-Id": "b-1",
            "X-Timestamp": TS,
            "X-Metadata": '{"region": "eu"}',
        },
    )
    assert response.status_code == 202, response.get_json()
    (part,) = decoded(twins)
    assert (part.model_id, part.batch_id, part.metadata) == ("m1", "b-1", {"region": "eu"})
    np.testing.assert_array_equal(part.vectors, array)


def test_large_batch_is_split_into_parts_sharing_the_batch_id(
    ingest_client: Any, twins: Twins
) -> None:
    rows_per_part = envelope.rows_per_message(1024)
    array = np.random.default_rng(1).normal(size=(2 * rows_per_part + 10, 1024))
    response = ingest_client.post(
        "/embeddings/batch?model_id=big&batch_id=big-1",
        data=npy_bytes(array.astype(np.float32)),
        content_type="application/x-npy",
    )
    assert response.status_code == 202, response.get_json()
    assert response.get_json() == {"batch_id": "big-1", "accepted": len(array), "parts": 3}
    parts = decoded(twins)
    assert [(p.part, p.parts, p.batch_id) for p in parts] == [(i, 3, "big-1") for i in range(3)]
    assert [p.row_offset for p in parts] == [0, rows_per_part, 2 * rows_per_part]
    assert all(len(m.data) < 10_000_000 for m in twins.publisher.messages)
    np.testing.assert_array_equal(
        np.concatenate([p.vectors for p in parts]), array.astype(np.float32)
    )


# --- every bad input: status, field, and nothing published, claimed or stored ---------------

LONG_ID = "m" * 129
BAD_JSON: list[tuple[str, bytes | dict[str, Any], int, str]] = [
    ("malformed JSON", b'{"embeddings": [[0.1, 0.2]', 400, "body"),
    ("JSON that is not an object", b"[[0.1, 0.2]]", 400, "body"),
    ("missing model_id", body(model_id=...), 422, "model_id"),
    ("model_id not a string", body(model_id=42), 422, "model_id"),
    ("model_id with spaces", body(model_id="bert base"), 422, "model_id"),
    ("model_id path traversal", body(model_id="a/../b"), 422, "model_id"),
    ("model_id too long", body(model_id=LONG_ID), 422, "model_id"),
    ("missing embeddings", body(embeddings=...), 422, "embeddings"),
    ("embeddings not a list", body(embeddings="0.1,0.2"), 422, "embeddings"),
    ("empty batch", body(embeddings=[]), 422, "embeddings"),
    ("empty vectors", body(embeddings=[[], []]), 422, "embeddings"),
    ("flat list instead of rows", body(embeddings=[0.1, 0.2]), 422, "embeddings"),
    ("nested too deep", body(embeddings=[[[0.1]]]), 422, "embeddings"),
    ("ragged rows", body(embeddings=[[0.1, 0.2], [0.3]]), 422, "embeddings"),
    ("string value", body(embeddings=[[0.1, "0.2"]]), 422, "embeddings"),
    ("null value", body(embeddings=[[0.1, None]]), 422, "embeddings"),
    ("boolean value", body(embeddings=[[0.1, True]]), 422, "embeddings"),
    ("true, no metadata", body(embeddings=[[0.1, True]], metadata=...), 422, "embeddings"),
    ("false, no metadata", body(embeddings=[[False, 0.2]], metadata=...), 422, "embeddings"),
    ("object value", body(embeddings=[[0.1, {"x": 1}]]), 422, "embeddings"),
    ("NaN token", b'{"model_id": "m", "embeddings": [[0.1, NaN]]}', 422, "embeddings"),
    ("Infinity token", b'{"model_id": "m", "embeddings": [[-Infinity, 1]]}', 422, "embeddings"),
    ("overflowing number", b'{"model_id": "m", "embeddings": [[1e400, 1]]}', 422, "embeddings"),
    ("beyond float32", body(embeddings=[[1e39, 0.0]]), 422, "embeddings"),
    ("timestamp unparsable", body(timestamp="yesterday"), 422, "timestamp"),
    ("timestamp not a string", body(timestamp=1704067200), 422, "timestamp"),
    ("timestamp without offset", body(timestamp="2024-01-01T00:00:00"), 422, "timestamp"),
    ("timestamp in the future", body(timestamp=(NOW + timedelta(hours=1)).isoformat()), 422,
     "timestamp"),
    ("batch_id with spaces", body(batch_id="my batch"), 422, "batch_id"),
    ("batch_id not a string", body(batch_id=7), 422, "batch_id"),
    ("metadata not an object", body(metadata=["a"]), 422, "metadata"),
    ("metadata too large", body(metadata={"k": "x" * 20_000}), 422, "metadata"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "payload", "status", "field"), BAD_JSON, ids=[c[0] for c in BAD_JSON]
)
def test_bad_json_input_is_rejected_and_changes_nothing(
    ingest_client: Any, twins: Twins, case: str, payload: Any, status: int, field: str
) -> None:
    response = post_json(ingest_client, payload)
    assert response.status_code == status, response.get_json()
    error = response.get_json()["error"]
    assert error["field"] == field and error["status"] == status and error["message"]
    assert twins.nothing_written()


def bad_npy(array: Any) -> bytes:
    return npy_bytes(np.asarray(array))


def object_npy() -> bytes:
    # What np.save writes for an object array; our reader must refuse it without unpickling.
    buffer = io.BytesIO()
    np.save(buffer, np.array([[1.0, None]], dtype=object), allow_pickle=True)
    return buffer.getvalue()


GOOD_NPY = npy_bytes(np.ones((3, 4), dtype=np.float32))
BAD_NPY: list[tuple[str, bytes, str, int, str]] = [
    ("not an npy file", b"\x93NUMPX garbage", "model_id=m", 400, "body"),
    ("truncated data", GOOD_NPY[:-5], "model_id=m", 400, "body"),
    ("trailing bytes", GOOD_NPY + b"\0\0\0\0", "model_id=m", 400, "body"),
    ("object dtype", object_npy(), "model_id=m", 422, "embeddings"),
    ("integer dtype", bad_npy(np.ones((2, 3), dtype=np.int32)), "model_id=m", 422, "embeddings"),
    ("complex dtype", bad_npy(np.ones((2, 3), dtype=np.complex64)), "model_id=m", 422,
     "embeddings"),
    ("rank 1", bad_npy(np.ones(3, dtype=np.float32)), "model_id=m", 422, "embeddings"),
    ("rank 3", bad_npy(np.ones((2, 2, 2), dtype=np.float32)), "model_id=m", 422, "embeddings"),
    ("empty batch", bad_npy(np.ones((0, 3), dtype=np.float32)), "model_id=m", 422, "embeddings"),
    ("NaN", bad_npy(np.array([[1.0, np.nan]], dtype=np.float16)), "model_id=m", 422,
     "embeddings"),
    ("infinity", bad_npy(np.array([[np.inf, 1.0]])), "model_id=m", 422, "embeddings"),
    ("beyond float32", bad_npy(np.array([[1e300, 1.0]])), "model_id=m", 422, "embeddings"),
    ("missing model_id", GOOD_NPY, "", 422, "model_id"),
    ("invalid model_id", GOOD_NPY, "model_id=%2Fetc", 422, "model_id"),
    ("metadata not JSON", GOOD_NPY, "model_id=m&metadata=%7Bx", 422, "metadata"),
    ("timestamp without offset", GOOD_NPY, "model_id=m&timestamp=2024-01-01T00:00:00", 422,
     "timestamp"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "data", "query", "status", "field"), BAD_NPY, ids=[c[0] for c in BAD_NPY]
)
def test_bad_npy_input_is_rejected_and_changes_nothing(
    ingest_client: Any, twins: Twins, case: str, data: bytes, query: str, status: int, field: str
) -> None:
    response = ingest_client.post(
        f"/embeddings/batch?{query}", data=data, content_type="application/x-npy"
    )
    assert response.status_code == status, response.get_json()
    assert response.get_json()["error"]["field"] == field
    assert twins.nothing_written()


@pytest.mark.parametrize("content_type", ["text/plain", "application/octet-stream", None])
def test_wrong_content_type_is_415(ingest_client: Any, twins: Twins, content_type: Any) -> None:
    response = ingest_client.post(
        "/embeddings/batch", data=orjson.dumps(body()), content_type=content_type
    )
    assert response.status_code == 415
    assert response.get_json()["error"]["field"] == "content_type"
    assert twins.nothing_written()


def test_get_is_405(ingest_client: Any, twins: Twins) -> None:
    response = ingest_client.get("/embeddings/batch")
    assert response.status_code == 405 and response.get_json()["error"]["field"] == "method"


def test_dimension_is_fixed_by_the_first_accepted_batch(ingest_client: Any, twins: Twins) -> None:
    # A rejected batch (bad timestamp) of dimension 2 must not fix the model's dimension.
    assert post_json(ingest_client, body(embeddings=[[1, 2]], timestamp="x")).status_code == 422
    assert twins.registry.dimensions == {}
    assert post_json(ingest_client, body()).status_code == 202  # dimension 3
    response = post_json(ingest_client, body(embeddings=[[1.0, 2.0]]))
    assert response.status_code == 422
    assert response.get_json()["error"]["field"] == "embeddings"
    assert "expects 3" in response.get_json()["error"]["message"]
    assert len(twins.publisher.messages) == 1


def test_configured_dimension_applies_to_new_models(ingest_app: Any) -> None:
    t = install(make_twins(embedding_dimension=4))
    client = ingest_app.test_client()
    response = post_json(client, body())  # dimension 3
    assert response.status_code == 422
    assert "EMBEDDING_DIMENSION" in response.get_json()["error"]["message"]
    assert t.nothing_written()
    assert post_json(client, body(embeddings=[[1, 2, 3, 4]])).status_code == 202


def test_batch_size_limit_is_413(ingest_app: Any) -> None:
    t = install(make_twins(batch_size=3))
    client = ingest_app.test_client()
    response = post_json(client, body(embeddings=[[0.1, 0.2]] * 4))
    assert response.status_code == 413 and response.get_json()["error"]["field"] == "embeddings"
    npy = npy_bytes(np.ones((4, 2), dtype=np.float32))
    response = client.post(
        "/embeddings/batch?model_id=m", data=npy, content_type="application/x-npy"
    )
    assert response.status_code == 413 and response.get_json()["error"]["field"] == "embeddings"
    assert t.nothing_written()
    assert post_json(client, body(embeddings=[[0.1, 0.2]] * 3)).status_code == 202


def test_byte_limit_is_413_before_the_body_is_read(ingest_app: Any) -> None:
    t = install(make_twins(max_request_bytes=2048))
    client = ingest_app.test_client()
    payload = orjson.dumps(body(embeddings=[[0.123456789] * 8] * 40))
    assert len(payload) > 2048
    response = post_json(client, payload)
    assert response.status_code == 413 and response.get_json()["error"]["field"] == "body"
    # The declared length alone is refused: the body stream must never be read.
    response = client.post(
        "/embeddings/batch",
        input_stream=UnreadableStream(b"{}"),
        environ_overrides={"CONTENT_LENGTH": str(10**9)},
        content_type="application/json",
    )
    assert response.status_code == 413 and response.get_json()["error"]["field"] == "body"
    assert t.nothing_written()


class UnreadableStream(io.BytesIO):
    def read(self, size: int | None = -1) -> bytes:
        raise AssertionError("the body was read although Content-Length is over the limit")


def test_broker_failure_is_503_and_the_client_may_retry(ingest_client: Any, twins: Twins) -> None:
    twins.publisher.fail = True
    response = post_json(ingest_client, body(batch_id="retry-me"))
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert response.get_json()["error"]["field"] == "publish"
    twins.publisher.fail = False
    response = post_json(ingest_client, body(batch_id="retry-me"))
    assert response.status_code == 202 and response.get_json()["batch_id"] == "retry-me"


def test_api_key_is_required_when_configured(ingest_app: Any) -> None:
    t = install(make_twins(api_key="k-ingest", admin_key="k-admin"))
    client = ingest_app.test_client()
    assert post_json(client, body()).status_code == 401
    assert post_json(client, body(), headers={"Authorization": "Bearer nope"}).status_code == 401
    assert t.nothing_written()
    ok = post_json(client, body(), headers={"Authorization": "Bearer k-ingest"})
    assert ok.status_code == 202


def test_boolean_prefilter_is_exact_when_it_says_no() -> None:
    from drift_monitor.domain.validation import _may_hold_boolean

    numbers = orjson.dumps(body(embeddings=[[-1.5e-3, 2, 0.25]] * 50, metadata=...))
    assert not _may_hold_boolean(numbers)
    for word in (b"true", b"false"):
        assert _may_hold_boolean(numbers.replace(b"2,", word + b",", 1))
    # a letter of the words elsewhere (a string value) only means the word search runs
    assert not _may_hold_boolean(b'{"model_id": "uf", "embeddings": [[1.0]]}')
