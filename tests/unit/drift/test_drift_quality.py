"""Data-quality checks are reported on their own and never decide drift."""

from __future__ import annotations

import numpy as np
import pytest
from drift_monitor.drift.quality import duplicate_rate, quality_report


def _unit(rng: np.random.Generator, n: int, d: int = 16) -> np.ndarray:
    x = rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_clean_data_has_no_issue() -> None:
    rng = np.random.default_rng(0)
    q = quality_report(_unit(rng, 200), _unit(rng, 100))
    assert q["ok"] and q["issues"] == []
    assert q["norm_ratio"] == np.float32(1.0) or abs(q["norm_ratio"] - 1) < 1e-6


def test_zero_vectors_duplicates_and_norm_changes() -> None:
    rng = np.random.default_rng(1)
    ref = _unit(rng, 200)
    cur = _unit(rng, 100)
    cur[:10] = 0.0
    cur[10:30] = cur[30]
    q = quality_report(ref, cur)
    assert q["zero_vector_share"] == 0.1
    assert "zero_vectors" in q["issues"] and "duplicates" in q["issues"]
    assert duplicate_rate(cur) == pytest.approx((9 + 20) / 100)
    assert "norm_collapse" in quality_report(ref, cur * 0.1)["issues"]
    assert "norm_explosion" in quality_report(ref, cur * 10)["issues"]


def test_newly_constant_dimension() -> None:
    rng = np.random.default_rng(2)
    ref = _unit(rng, 200)
    cur = _unit(rng, 100)
    cur[:, 3] = 0.25
    q = quality_report(ref, cur)
    assert q["newly_constant_dimensions"] == [3]
    assert "constant_dimensions" in q["issues"]


def test_float16_round_trip_is_a_note_not_an_issue() -> None:
    rng = np.random.default_rng(3)
    ref = _unit(rng, 300)
    ref[:, 5] = 1e-8 * rng.normal(size=300)  # a dead dimension
    cur = _unit(rng, 100)
    cur[:, 5] = 1e-8 * rng.normal(size=100)
    cur = cur.astype(np.float16).astype(np.float32)
    q = quality_report(ref, cur)
    assert q["ok"]
    assert q["reduced_precision"] is True
    assert q["dead_dimensions"] == [5]
    assert q["dead_dimensions_zeroed"] == [5]
    assert any("float16" in note for note in q["notes"])


def test_windows_sent_twice_get_a_note_about_independent_rows() -> None:
    rng = np.random.default_rng(12)
    ref, cur = rng.normal(size=(200, 8)), rng.normal(size=(200, 8))
    assert not any("independent rows" in n for n in quality_report(ref, cur)["notes"])
    twice = np.concatenate([cur[:100], cur[:100]])
    report = quality_report(ref, twice)
    assert any(n.startswith("50% of the rows") for n in report["notes"])
    assert "duplicates" in report["issues"]  # more repeats now than in the reference
    both = quality_report(np.concatenate([ref[:100], ref[:100]]), twice)
    assert "duplicates" not in both["issues"]
    assert any("independent rows" in n for n in both["notes"])
