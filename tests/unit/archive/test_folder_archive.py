"""FolderArchive: names, round trip, idempotent rewrite, atomic writes."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from drift_monitor.adapters.archive_names import object_metadata, object_name
from drift_monitor.adapters.folder_archive import FolderArchive
from drift_monitor.domain.batch import BatchPart
from drift_monitor.domain.envelope import encode
from drift_monitor.domain.errors import NotFound, TransientError


def make_part(
    *,
    model_id: str = "team/text-encoder",
    batch_id: str = "b-1",
    part: int = 0,
    parts: int = 2,
    rows: int = 3,
    dim: int = 4,
    seed: int = 0,
    timestamp: datetime | None = None,
) -> BatchPart:
    rng = np.random.default_rng(seed)
    return BatchPart(
        model_id=model_id,
        batch_id=batch_id,
        part=part,
        parts=parts,
        row_offset=part * rows,
        timestamp=timestamp or datetime(2024, 5, 6, 23, 30, tzinfo=UTC),
        vectors=rng.normal(size=(rows, dim)).astype(np.float32),
        metadata={"source": "unit", "n": seed},
    )


def test_object_name_is_derived_from_identity_and_utc_date() -> None:
    # 23:30 at UTC-02:00 is the next day in UTC: the date path must follow UTC.
    ts = datetime(2024, 5, 6, 23, 30, tzinfo=timezone(timedelta(hours=-2)))
    part = make_part(part=1, parts=12, timestamp=ts)
    assert object_name(part) == "team/text-encoder/2024/05/07/b-1/part-00001-of-00012.edm"
    assert object_name(part, "raw/") == "raw/" + object_name(part)
    # Vectors and metadata do not enter the name: a redelivery maps to the same object.
    assert object_name(make_part(seed=5)) == object_name(make_part(seed=6))


def test_object_metadata_carries_attributes_and_summary() -> None:
    part = make_part(rows=5, dim=7)
    meta = object_metadata(part)
    assert meta["model_id"] == "team/text-encoder"
    assert (meta["part"], meta["parts"], meta["count"], meta["dimension"]) == ("0", "2", "5", "7")
    assert datetime.fromisoformat(meta["timestamp"]) == part.timestamp
    assert all(isinstance(v, str) for v in meta.values())


def test_put_then_get_round_trips_the_envelope(tmp_path: Path) -> None:
    archive = FolderArchive(tmp_path)
    part = make_part()
    archive.put(part)
    path = archive.path_for(part)
    assert path.read_bytes() == encode(part).data
    back = archive.get(object_name(part))
    assert back.key == part.key and back.model_id == part.model_id
    assert back.timestamp == part.timestamp and back.metadata == part.metadata
    np.testing.assert_array_equal(back.vectors, part.vectors)


def test_rewriting_the_same_part_is_harmless(tmp_path: Path) -> None:
    archive = FolderArchive(tmp_path, prefix="raw/")
    part = make_part()
    archive.put(part)
    first = archive.path_for(part).read_bytes()
    archive.put(part)
    assert archive.path_for(part).read_bytes() == first
    assert list(archive.names()) == ["raw/" + object_name(part)]
    # No temporary files left behind by either write.
    assert [p.name for p in archive.path_for(part).parent.iterdir()] == [
        archive.path_for(part).name
    ]


def test_names_lists_parts_per_model(tmp_path: Path) -> None:
    archive = FolderArchive(tmp_path)
    a0, a1 = make_part(part=0), make_part(part=1)
    other = make_part(model_id="other", batch_id="z")
    for p in (a1, other, a0):
        archive.put(p)
    assert list(archive.names("team/text-encoder")) == [object_name(a0), object_name(a1)]
    assert list(archive.names("other")) == [object_name(other)]
    assert list(archive.names("missing")) == []
    assert len(list(archive.names())) == 3


def test_get_missing_raises_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        FolderArchive(tmp_path).get("m/2024/01/01/b/part-00000-of-00001.edm")


def test_names_cannot_escape_the_root(tmp_path: Path) -> None:
    archive = FolderArchive(tmp_path / "archive")
    with pytest.raises(ValueError, match="escapes"):
        archive.get("../outside.edm")


def test_failed_write_leaves_previous_object_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = FolderArchive(tmp_path)
    part = make_part()
    archive.put(part)
    before = archive.path_for(part).read_bytes()

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(TransientError, match="No space left"):
        archive.put(make_part(seed=9))
    monkeypatch.undo()
    assert archive.path_for(part).read_bytes() == before
    assert sorted(p.name for p in archive.path_for(part).parent.iterdir()) == [
        archive.path_for(part).name
    ]
