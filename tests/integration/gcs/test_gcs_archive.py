"""GcsArchive against gcp-storage-emulator with the official google-cloud-storage client."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import pytest
from drift_monitor.adapters.archive_names import CONTENT_TYPE, object_name
from drift_monitor.adapters.gcs_archive import GcsArchive
from drift_monitor.domain.batch import BatchPart
from drift_monitor.domain.envelope import encode, split_batch
from drift_monitor.domain.errors import NotFound
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

pytestmark = pytest.mark.integration


@pytest.fixture
def client(gcs_emulator_host: str, monkeypatch: pytest.MonkeyPatch) -> storage.Client:
    # The client reads STORAGE_EMULATOR_HOST itself; make sure it is the fixture's value.
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator_host)
    return storage.Client(project="test-project", credentials=AnonymousCredentials())


@pytest.fixture
def bucket(client: storage.Client) -> Iterator[str]:
    name = f"archive-test-{uuid.uuid4().hex[:12]}"
    client.create_bucket(name)
    yield name
    b = client.bucket(name)
    for blob in client.list_blobs(name):
        blob.delete()
    b.delete()


def make_parts(rows: int = 10, dim: int = 8, seed: int = 1) -> list[BatchPart]:
    vectors = np.random.default_rng(seed).normal(size=(rows, dim)).astype(np.float32)
    # A small max_bytes forces several parts, as a large batch would produce.
    return split_batch(
        "team/encoder",
        "batch-42",
        datetime(2024, 2, 29, 12, 0, tzinfo=UTC),
        vectors,
        {"release": "r1"},
        max_bytes=4 * dim * 4,
    )


def test_put_stores_envelope_bytes_with_metadata(client: storage.Client, bucket: str) -> None:
    archive = GcsArchive(client, bucket)
    parts = make_parts()
    assert len(parts) == 3
    for part in parts:
        archive.put(part)

    names = list(archive.names("team/encoder"))
    assert names == [object_name(p) for p in parts]
    blob = client.bucket(bucket).get_blob(names[1])
    assert blob is not None
    assert blob.download_as_bytes() == encode(parts[1]).data
    assert blob.content_type == CONTENT_TYPE
    meta = archive.metadata(names[1])
    assert meta["batch_id"] == "batch-42" and meta["part"] == "1" and meta["parts"] == "3"
    assert meta["count"] == str(parts[1].count) and meta["dimension"] == "8"


def test_get_round_trips_vectors(client: storage.Client, bucket: str) -> None:
    archive = GcsArchive(client, bucket, prefix="raw/")
    part = make_parts()[2]
    archive.put(part)
    back = archive.get(object_name(part, "raw/"))
    assert (back.model_id, back.batch_id, back.part, back.row_offset) == (
        part.model_id,
        part.batch_id,
        part.part,
        part.row_offset,
    )
    np.testing.assert_array_equal(back.vectors, part.vectors)
    assert back.metadata == {"release": "r1"}


def test_redelivery_rewrites_the_same_object(client: storage.Client, bucket: str) -> None:
    archive = GcsArchive(client, bucket)
    part = make_parts()[0]
    archive.put(part)
    archive.put(part)
    blobs = list(client.list_blobs(bucket))
    assert [b.name for b in blobs] == [object_name(part)]
    assert blobs[0].download_as_bytes() == encode(part).data


def test_missing_object_raises_not_found(client: storage.Client, bucket: str) -> None:
    with pytest.raises(NotFound):
        GcsArchive(client, bucket).get("nope/2024/01/01/b/part-00000-of-00001.edm")
