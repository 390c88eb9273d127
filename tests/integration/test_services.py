"""Smoke test: every service scripts/test starts is up and speaks its protocol."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

import pg8000.native
import pytest
import redis
import requests
from google.auth.credentials import AnonymousCredentials
from google.cloud import pubsub_v1, storage

pytestmark = pytest.mark.integration


def test_postgres_answers(postgres_url: str) -> None:
    url = urlsplit(postgres_url.replace("postgresql+pg8000://", "postgresql://"))
    conn = pg8000.native.Connection(
        user=url.username or "postgres",
        host=url.hostname or "127.0.0.1",
        port=url.port or 5432,
        database=url.path.lstrip("/"),
        timeout=10,
    )
    try:
        assert conn.run("select 1") == [[1]]
        assert conn.run("select current_database()") == [["drift_test"]]
    finally:
        conn.close()


def test_redis_answers(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    try:
        assert client.ping() is True
    finally:
        client.close()


def test_pubsub_emulator_creates_a_topic(
    pubsub_emulator_host: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The official client switches to an insecure channel to this host by itself.
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_emulator_host)
    publisher = pubsub_v1.PublisherClient(credentials=AnonymousCredentials())
    path = publisher.topic_path("test-project", f"smoke-{uuid.uuid4().hex[:10]}")
    topic = publisher.create_topic(request={"name": path}, timeout=30)
    assert topic.name == path
    listed = [t.name for t in publisher.list_topics(request={"project": "projects/test-project"})]
    assert path in listed
    publisher.delete_topic(request={"topic": path}, timeout=30)


def test_pushgateway_is_ready(pushgateway_url: str) -> None:
    response = requests.get(f"{pushgateway_url}/-/ready", timeout=5)
    assert response.status_code == 200


def test_gcs_emulator_lists_buckets(
    gcs_emulator_host: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator_host)
    client = storage.Client(project="test-project", credentials=AnonymousCredentials())
    name = f"smoke-{uuid.uuid4().hex[:12]}"
    client.create_bucket(name)
    try:
        assert name in [b.name for b in client.list_buckets()]
    finally:
        client.bucket(name).delete()
