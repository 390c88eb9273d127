"""compare_sketches(): drift tests from running statistics, and merge consistency."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from drift_monitor.domain.errors import ValidationError
from drift_monitor.domain.sketch import RunningStats, reference_edges, row_priorities
from drift_monitor.drift import histogram
from drift_monitor.drift.streaming import compare_sketches

FAST = {"n_permutations": 99, "n_bootstrap": 50}


def _sketch_parts(
    data: np.ndarray, edges: np.ndarray, parts: int, prefix: str, k: int
) -> list[RunningStats]:
    chunks = np.array_split(data, parts)
    return [
        RunningStats.from_vectors(c, edges=edges, reservoir_size=k, key=f"{prefix}#{i}")
        for i, c in enumerate(chunks)
    ]


def _whole(data: np.ndarray, edges: np.ndarray, parts: int, prefix: str, k: int) -> RunningStats:
    """The sketch of the concatenated rows, with the same row identities as the parts."""
    chunks = np.array_split(data, parts)
    prio = np.concatenate([row_priorities(f"{prefix}#{i}", len(c)) for i, c in enumerate(chunks)])
    return RunningStats.from_vectors(data, edges=edges, reservoir_size=k, priorities=prio)


def _assert_close(a: Any, b: Any, path: str = "") -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            _assert_close(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_close(x, y, f"{path}[{i}]")
    elif isinstance(a, float):
        assert b == pytest.approx(a, rel=1e-9, abs=1e-12), path
    else:
        assert a == b, path


def _data(seed: int, n: int, shift: float = 0.0, d: int = 24) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    x[:, : d // 4] += shift
    return x.astype(np.float32)


def test_merged_partial_sketches_give_the_report_of_the_concatenation() -> None:
    ref, cur = _data(0, 900), _data(1, 700, shift=0.2)
    edges = reference_edges(ref, 10)
    merged_ref = RunningStats.merge_all(_sketch_parts(ref, edges, 3, "r", 300))
    merged_cur = RunningStats.merge_all(_sketch_parts(cur, edges, 4, "c", 300))
    assert merged_ref is not None and merged_cur is not None
    whole_ref = _whole(ref, edges, 3, "r", 300)
    whole_cur = _whole(cur, edges, 4, "c", 300)
    tests = ["ks", "ad", "mmd", "cosine", "psi", "kl"]
    a = compare_sketches(merged_ref, merged_cur, tests=tests, **FAST).to_dict()
    b = compare_sketches(whole_ref, whole_cur, tests=tests, **FAST).to_dict()
    _assert_close(a, b)
    assert a["n_reference"] == 900 and a["n_current"] == 700
    assert a["quality"]["reservoir_rows"] == [300, 300]


def test_sketch_histograms_use_the_binning_of_the_engine() -> None:
    ref, cur = _data(2, 400), _data(3, 300, shift=1.0)
    edges = reference_edges(ref, 8)
    sk = RunningStats.from_vectors(cur, edges=edges, reservoir_size=10, key="x#0")
    np.testing.assert_array_equal(
        sk.hist, histogram.bin_counts(histogram.bin_indices(cur, edges), 10)
    )


def test_drift_and_no_drift_from_sketches() -> None:
    ref = _data(4, 3000)
    edges = reference_edges(ref, 10)
    ref_sk = RunningStats.from_vectors(ref, edges=edges, reservoir_size=500, key="r#0")
    quiet = RunningStats.from_vectors(_data(5, 2000), edges=edges, reservoir_size=500, key="q#0")
    loud = RunningStats.from_vectors(
        _data(6, 2000, 0.3), edges=edges, reservoir_size=500, key="l#0"
    )
    q = compare_sketches(ref_sk, quiet, **FAST)
    assert not q.drift_detected
    assert set(q.tests) == {"ad", "mmd", "novelty", "mean_shift"}
    # ad 1 + mmd 3 + novelty 1 + mean_shift 1
    assert q.tests["mean_shift"].level == pytest.approx(0.05 / 6)
    assert q.tests["mmd"].level == pytest.approx(0.05 * 3 / 6)
    r = compare_sketches(ref_sk, loud, **FAST)
    assert r.drift_detected
    assert r.tests["mean_shift"].drift
    assert set(r.tests["mean_shift"].details["drifted_dimensions"]) == set(range(6))


def test_mean_shift_can_be_switched_off() -> None:
    ref = _data(7, 500)
    edges = reference_edges(ref, 10)
    a = RunningStats.from_vectors(ref, edges=edges, reservoir_size=100, key="a#0")
    b = RunningStats.from_vectors(_data(8, 400), edges=edges, reservoir_size=100, key="b#0")
    report = compare_sketches(a, b, tests=["ks"], mean_shift=False, **FAST)
    assert set(report.tests) == {"ks"}
    assert report.tests["ks"].level == pytest.approx(0.05)


def test_incompatible_sketches_are_rejected() -> None:
    ref = _data(9, 100)
    e1 = reference_edges(ref, 10)
    e2 = reference_edges(ref, 5)
    a = RunningStats.from_vectors(ref, edges=e1, reservoir_size=50, key="a#0")
    b = RunningStats.from_vectors(ref, edges=e2, reservoir_size=50, key="b#0")
    with pytest.raises(ValidationError, match="edges"):
        compare_sketches(a, b)
    c = RunningStats.from_vectors(
        _data(9, 100, d=8),
        edges=reference_edges(_data(9, 100, d=8), 10),
        reservoir_size=50,
        key="c#0",
    )
    with pytest.raises(ValidationError, match="dimension"):
        compare_sketches(a, c)
    tiny = RunningStats.from_vectors(ref[:1], edges=e1, reservoir_size=50, key="t#0")
    with pytest.raises(ValidationError, match="at least 2"):
        compare_sketches(a, tiny)


def test_quality_from_sketches_uses_full_window_norms() -> None:
    ref = _data(10, 400)
    edges = reference_edges(ref, 10)
    a = RunningStats.from_vectors(ref, edges=edges, reservoir_size=100, key="a#0")
    shrunk = RunningStats.from_vectors(
        _data(11, 300) * np.float32(0.1), edges=edges, reservoir_size=100, key="b#0"
    )
    q = compare_sketches(a, shrunk, tests=["mmd"], **FAST).quality
    assert "norm_collapse" in q["issues"]
    assert q["norm_ratio"] == pytest.approx(shrunk.norm_mean / a.norm_mean)
    assert any(note.startswith("mean vector norm fell") for note in q["notes"])
    assert not any(note.startswith("median vector norm") for note in q["notes"])
