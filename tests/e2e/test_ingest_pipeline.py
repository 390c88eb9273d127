"""The ingest pipeline end to end.

1. On real services: HTTP (functions-framework ``ingest``) -> Pub/Sub emulator topic -> pull
   from the persist and stats subscriptions -> CloudEvents -> ``persist`` and ``stats``
   functions -> PostgreSQL rows and Redis statistics equal what was sent; the emulator then
   redelivers the same messages (we nack them) and nothing changes.
2. Embedded: ``drift-monitor serve`` as a subprocess on a free port with a temporary data
   directory; batches over real HTTP end up as SQLite rows.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import functions_framework
import numpy as np
import orjson
import pytest
import redis
import sqlalchemy as sa
from cloudevents.conversion import to_structured
from cloudevents.http import CloudEvent
from drift_monitor import bootstrap
from drift_monitor.adapters import pubsub
from drift_monitor.adapters.redis_stats import RedisDimensionRegistry, RedisStatsStore
from drift_monitor.adapters.sql import SqlRepository
from drift_monitor.config import Settings
from drift_monitor.domain.envelope import Message

REPO = Path(__file__).resolve().parents[2]
MAIN = str(REPO / "functions" / "main.py")
PROJECT = "test-project"


# --- fixtures (the database, key prefix and topics come from the conftest files) -------------


@pytest.fixture
def production(
    database: sa.Engine, redis_client: redis.Redis, key_prefix: str, topics: dict[str, str]
) -> Iterator[bootstrap.Container]:
    """Production wiring (Pub/Sub, PostgreSQL, Redis) pointed at the test services."""
    settings = Settings(environment="test", pubsub_topic=topics["topic"])
    c = bootstrap.Container(
        settings=settings,
        publisher=pubsub.PubSubPublisher(PROJECT, topics["topic"]),
        repository=SqlRepository(database),
        stats=RedisStatsStore(redis_client, bucket_seconds=3600, key_prefix=key_prefix),
        registry=RedisDimensionRegistry(redis_client, key_prefix=key_prefix),
        dead_letter=pubsub.PubSubPublisher(PROJECT, topics["dead_letter"]),
        engine=database,
        ready=True,
    )
    bootstrap.set_container(c)
    yield c
    bootstrap.set_container(None)


# --- helpers ---------------------------------------------------------------------------------


def pull(subscriber: Any, subscription: str, expected: int) -> list[Any]:
    received: list[Any] = []
    deadline = time.monotonic() + 60
    while len(received) < expected and time.monotonic() < deadline:
        response = subscriber.pull(
            request={"subscription": subscription, "max_messages": 50}, timeout=10
        )
        received.extend(response.received_messages)
    return received


def as_cloud_event(received: Any, subscription: str) -> CloudEvent:
    """What Eventarc hands the function for one pulled message."""
    message = received.message
    return CloudEvent(
        {
            "type": "google.cloud.pubsub.topic.v1.messagePublished",
            "source": f"//pubsub.googleapis.com/projects/{PROJECT}/topics/embeddings",
        },
        {
            "message": {
                "data": base64.b64encode(message.data).decode(),
                "attributes": dict(message.attributes),
                "messageId": message.message_id,
                "publishTime": message.publish_time.isoformat(),
            },
            "subscription": subscription,
        },
    )


def deliver(client: Any, events: list[CloudEvent]) -> None:
    for event in events:
        headers, body = to_structured(event)
        response = client.post("/", headers=headers, data=body)
        assert response.status_code == 200, response.data


def npy(array: np.ndarray[Any, Any]) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def table_counts(engine: sa.Engine) -> tuple[int, int, int]:
    with engine.connect() as conn:
        return (
            conn.execute(sa.text("SELECT count(*) FROM batches")).scalar_one(),
            conn.execute(sa.text("SELECT count(*) FROM batch_vectors")).scalar_one(),
            conn.execute(sa.text("SELECT coalesce(sum(count), 0) FROM batches")).scalar_one(),
        )


# --- 1. real services ------------------------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.integration
def test_http_to_pubsub_to_postgres_and_redis_with_redelivery(
    production: bootstrap.Container, topics: dict[str, str], database: sa.Engine
) -> None:
    ingest = functions_framework.create_app(target="ingest", source=MAIN).test_client()
    persist = functions_framework.create_app(target="persist", source=MAIN).test_client()
    stats = functions_framework.create_app(target="stats", source=MAIN).test_client()
    rng = np.random.default_rng(11)
    ts = (datetime.now(UTC) - timedelta(minutes=2)).replace(microsecond=0)
    model = "team/search-encoder"

    # A JSON batch (seed format) and an npy batch big enough to be split into two messages.
    small = rng.normal(0.5, 1.0, size=(200, 384)).astype(np.float32)
    large = rng.normal(-0.25, 2.0, size=(6000, 384)).astype(np.float32)
    response = ingest.post(
        "/embeddings/batch",
        json={
            "embeddings": small.tolist(),
            "model_id": model,
            "timestamp": ts.isoformat(),
            "batch_id": "json-1",
            "metadata": {"source": "e2e"},
        },
    )
    assert response.get_json() == {"batch_id": "json-1", "accepted": 200, "parts": 1}
    response = ingest.post(
        f"/embeddings/batch?model_id={model}&batch_id=npy-1",
        data=npy(large),
        content_type="application/x-npy",
        headers={"X-Timestamp": ts.isoformat()},
    )
    assert response.status_code == 202
    assert response.get_json() == {"batch_id": "npy-1", "accepted": 6000, "parts": 2}
    # A rejected batch publishes nothing (the pulls below would see a 4th message).
    bad = ingest.post("/embeddings/batch", json={"embeddings": [[1.0, 2.0]], "model_id": model})
    assert bad.status_code == 422 and bad.get_json()["error"]["field"] == "embeddings"

    subscriber = pubsub.subscriber_client()
    try:
        first = {name: pull(subscriber, topics[name], 3) for name in ("persist", "stats")}
        assert {name: len(got) for name, got in first.items()} == {"persist": 3, "stats": 3}
        deliver(persist, [as_cloud_event(m, topics["persist"]) for m in first["persist"]])
        deliver(stats, [as_cloud_event(m, topics["stats"]) for m in first["stats"]])

        everything = np.concatenate([small, large]).astype(np.float64)
        assert table_counts(database) == (3, 3, 6200)
        parts = sorted(production.repository.iter_parts(model), key=lambda p: p.key)
        assert [p.key for p in parts] == ["json-1#0", "npy-1#0", "npy-1#1"]
        np.testing.assert_array_equal(parts[0].vectors, small)
        np.testing.assert_array_equal(np.concatenate([parts[1].vectors, parts[2].vectors]), large)
        assert parts[0].metadata == {"source": "e2e"} and parts[0].timestamp == ts

        running = production.stats.read(model)  # type: ignore[attr-defined]
        assert running.count == 6200
        np.testing.assert_allclose(running.mean, everything.mean(axis=0), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(running.variance, everything.var(axis=0, ddof=1), rtol=1e-5)
        before = (running.count, running.mean.copy(), table_counts(database))

        # Redelivery: nack everything, let the emulator hand the same messages out again.
        for name, got in first.items():
            subscriber.modify_ack_deadline(
                request={
                    "subscription": topics[name],
                    "ack_ids": [m.ack_id for m in got],
                    "ack_deadline_seconds": 0,
                }
            )
        again = {name: pull(subscriber, topics[name], 3) for name in ("persist", "stats")}
        assert sorted(m.message.message_id for m in again["persist"]) == sorted(
            m.message.message_id for m in first["persist"]
        )
        deliver(persist, [as_cloud_event(m, topics["persist"]) for m in again["persist"]])
        deliver(stats, [as_cloud_event(m, topics["stats"]) for m in again["stats"]])
        for name, got in again.items():
            subscriber.acknowledge(
                request={"subscription": topics[name], "ack_ids": [m.ack_id for m in got]}
            )

        after = production.stats.read(model)  # type: ignore[attr-defined]
        assert table_counts(database) == before[2]
        assert after.count == before[0]
        np.testing.assert_array_equal(after.mean, before[1])

        # A message published straight to the topic that is not in our format goes to the
        # dead-letter topic, once per consumer, and changes nothing.
        publisher = pubsub.PubSubPublisher(PROJECT, topics["topic"])
        publisher.publish([Message(b"not an envelope", {"format_version": "1"})])
        for name, function in (("persist", persist), ("stats", stats)):
            (junk,) = pull(subscriber, topics[name], 1)
            deliver(function, [as_cloud_event(junk, topics[name])])
            subscriber.acknowledge(request={"subscription": topics[name], "ack_ids": [junk.ack_id]})
        dead = pull(subscriber, topics["dead_letter_sub"], 2)
        assert sorted(m.message.attributes["dead_letter_consumer"] for m in dead) == [
            "persist",
            "stats",
        ]
        assert all(m.message.data == b"not an envelope" for m in dead)
        assert table_counts(database) == before[2]
        assert production.stats.read(model).count == 6200  # type: ignore[attr-defined]
    finally:
        subscriber.close()


# --- 2. embedded: drift-monitor serve --------------------------------------------------------


MAX_BYTES = 1024 * 1024


def chunked_post(url: str, path: str, chunks: list[bytes], content_type: str) -> tuple[int, Any]:
    """POST with ``Transfer-Encoding: chunked`` (no Content-Length)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(
            "POST", path, body=iter(chunks), headers={"Content-Type": content_type},
            encode_chunked=True,
        )  # fmt: skip
        response = conn.getresponse()
        return response.status, orjson.loads(response.read())
    finally:
        conn.close()


class Server:
    """``drift-monitor serve --port 0`` in a subprocess; its URL read from the start-up log."""

    def __init__(self, data_dir: Path) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        env.update({"DRIFT_MONITOR_ENV": "local", "PYTHONUNBUFFERED": "1"})
        env["MAX_REQUEST_BYTES"] = str(MAX_BYTES)
        command = [sys.executable, "-m", "drift_monitor.cli"]
        self.process = subprocess.Popen(
            [*command, "serve", "--host", "127.0.0.1", "--port", "0", "--data-dir", str(data_dir)],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            env=env,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.url = self._wait_for("url", timeout=60)

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.put(line)

    def _wait_for(self, key: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            self.log.append(entry)
            if key in entry:
                return str(entry[key])
        raise AssertionError(f"serve did not log {key!r}; log so far: {self.log}")

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        host, port = self.url.removeprefix("http://").rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, orjson.loads(response.read() or b"{}")
        finally:
            conn.close()

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=20)


@pytest.mark.e2e
def test_drift_monitor_serve_embedded(tmp_path: Path) -> None:
    server = Server(tmp_path / "data")
    try:
        start = server.log[-1]
        assert start["severity"] == "INFO" and start["data_dir"] == str(tmp_path / "data")
        assert start["database"].startswith("sqlite:///") and start["url"].startswith("http://")
        assert server.request("GET", "/healthz") == (200, {"status": "ok", "mode": "embedded"})

        vectors = np.random.default_rng(5).normal(size=(50, 32)).astype(np.float32)
        ts = (datetime.now(UTC) - timedelta(seconds=30)).isoformat()
        payload = orjson.dumps(
            {"embeddings": vectors[:20].tolist(), "model_id": "local/m", "timestamp": ts}
        )
        status, answer = server.request(
            "POST", "/embeddings/batch", payload, {"Content-Type": "application/json"}
        )
        assert (status, answer["accepted"]) == (202, 20)
        status, answer = server.request(
            "POST",
            "/embeddings/batch?model_id=local/m&batch_id=npy-7",
            npy(vectors[20:].astype(np.float16)),
            {"Content-Type": "application/x-npy"},
        )
        assert (status, answer) == (202, {"batch_id": "npy-7", "accepted": 30, "parts": 1})
        status, answer = server.request(
            "POST", "/embeddings/batch", b"{nope", {"Content-Type": "application/json"}
        )
        assert (status, answer["error"]["field"]) == (400, "body")

        # Declared too large: refused from the header, before any body byte is sent.
        host, port = server.url.removeprefix("http://").rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        conn.putrequest("POST", "/embeddings/batch")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(10**10))
        conn.endheaders()
        response = conn.getresponse()
        assert response.status == 413
        assert orjson.loads(response.read())["error"]["field"] == "body"
        conn.close()

        # Chunked uploads have no Content-Length: the limit is enforced while reading.
        status, answer = chunked_post(
            server.url, "/embeddings/batch", [b" " * 65536] * 20, "application/json"
        )
        assert (status, answer["error"]["field"]) == (413, "body")
        small = orjson.dumps({"embeddings": [[1.0] * 32], "model_id": "local/m"})
        status, answer = chunked_post(
            server.url, "/embeddings/batch", [small[:10], small[10:]], "application/json"
        )
        assert (status, answer["accepted"]) == (202, 1)

        db = sqlite3.connect(tmp_path / "data" / "drift-monitor.db")
        try:
            rows = db.execute(
                "SELECT batch_id, count, dimension FROM batches WHERE model_id = 'local/m' "
                "ORDER BY count"
            ).fetchall()
            assert [(c, d) for _, c, d in rows] == [(1, 32), (20, 32), (30, 32)]
            assert rows[2][0] == "npy-7"
            (blob,) = db.execute(
                "SELECT data FROM batch_vectors WHERE batch_id = 'npy-7'"
            ).fetchone()
            np.testing.assert_array_equal(
                np.frombuffer(blob, dtype="<f4").reshape(30, 32),
                vectors[20:].astype(np.float16).astype(np.float32),
            )
        finally:
            db.close()
    finally:
        code = server.stop()
    assert code == 0
    messages = []
    while not server.lines.empty():
        messages.append(json.loads(server.lines.get())["message"])
    assert "drift-monitor stopped" in messages
