"""The mergeable sketch: merging partial sketches equals summarising the concatenated data."""

from __future__ import annotations

import numpy as np
import pytest
from drift_monitor.domain.sketch import (
    RunningStats,
    edges_from_bytes,
    edges_to_bytes,
    reference_edges,
    row_priorities,
)


def _parts(rng: np.random.Generator, sizes: list[int], d: int, offset: float = 0.0):
    return [
        (f"batch-{i}#0", (offset + rng.normal(size=(n, d))).astype(np.float32))
        for i, n in enumerate(sizes)
    ]


def _whole(parts, edges, k) -> RunningStats:
    data = np.concatenate([v for _, v in parts])
    prio = np.concatenate([row_priorities(key, len(v)) for key, v in parts])
    return RunningStats.from_vectors(data, edges=edges, reservoir_size=k, priorities=prio)


def _assert_same(a: RunningStats, b: RunningStats, rtol: float = 1e-10) -> None:
    assert a.count == b.count
    np.testing.assert_array_equal(a.hist, b.hist)
    np.testing.assert_array_equal(a.reservoir_keys, b.reservoir_keys)
    np.testing.assert_array_equal(a.reservoir, b.reservoir)
    np.testing.assert_allclose(a.mean, b.mean, rtol=rtol, atol=1e-12)
    np.testing.assert_allclose(a.m2, b.m2, rtol=rtol, atol=1e-12)
    assert a.norm_min == b.norm_min and a.norm_max == b.norm_max
    assert a.norm_mean == pytest.approx(b.norm_mean, rel=rtol)
    assert a.norm_m2 == pytest.approx(b.norm_m2, rel=1e-8)
    assert a.equals(b, rtol=1e-8)


@pytest.mark.parametrize("seed", range(8))
def test_merge_of_parts_in_any_order_and_tree_shape_equals_whole(seed: int) -> None:
    rng = np.random.default_rng(seed)
    d = int(rng.integers(1, 20))
    sizes = [int(s) for s in rng.integers(0, 60, size=int(rng.integers(1, 9)))]
    sizes[0] = max(sizes[0], 1)
    parts = _parts(rng, sizes, d)
    edges = reference_edges(parts[0][1], bins=int(rng.integers(1, 12)))
    k = int(rng.integers(0, 40))
    sketches = [
        RunningStats.from_vectors(v, edges=edges, reservoir_size=k, key=key) for key, v in parts
    ]
    whole = _whole(parts, edges, k)

    # left fold in a random order
    order = rng.permutation(len(sketches))
    left = RunningStats.merge_all([sketches[i] for i in order])
    assert left is not None
    _assert_same(left, whole)

    # random binary tree: repeatedly merge two random members of a pool
    pool = list(sketches)
    while len(pool) > 1:
        i, j = sorted(rng.choice(len(pool), size=2, replace=False))
        b = pool.pop(j)
        a = pool.pop(i)
        pool.append(b.merge(a) if rng.random() < 0.5 else a.merge(b))
    _assert_same(pool[0], whole)


def test_statistics_match_numpy() -> None:
    rng = np.random.default_rng(1)
    v = rng.normal(size=(500, 7)).astype(np.float32)
    edges = reference_edges(v, bins=10)
    s = RunningStats.from_vectors(v, edges=edges, reservoir_size=50, key="b#0")
    x = v.astype(np.float64)
    np.testing.assert_allclose(s.mean, x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(s.variance, x.var(axis=0, ddof=1), rtol=1e-10)
    norms = np.linalg.norm(x, axis=1)
    assert s.norm_mean == pytest.approx(norms.mean(), rel=1e-12)
    assert s.norm_variance == pytest.approx(norms.var(ddof=1), rel=1e-10)
    assert s.norm_min == pytest.approx(norms.min()) and s.norm_max == pytest.approx(norms.max())
    for j in range(7):
        expected, _ = np.histogram(v[:, j], bins=edges[j])
        # numpy closes the last bin on the right; ours sends the top edge to overflow
        np.testing.assert_array_equal(s.hist[j, 1:-2], expected[:-1])
    assert s.hist.sum(axis=1).tolist() == [500] * 7
    # the reference data never falls outside its own widened range
    assert s.hist[:, 0].sum() == 0 and s.hist[:, -1].sum() == 0
    # the sample holds the 50 rows with the smallest priorities, in priority order
    prio = row_priorities("b#0", 500)
    chosen = np.argsort(prio)[:50]
    np.testing.assert_array_equal(s.reservoir, v[chosen])
    assert (np.diff(s.reservoir_keys.astype(np.float64)) > 0).all()


def test_under_and_overflow_are_counted() -> None:
    edges = np.array([[0.0, 1.0, 2.0]], dtype=np.float32)
    v = np.array([[-5.0], [0.0], [0.5], [1.0], [1.999], [2.0], [9.0]], dtype=np.float32)
    s = RunningStats.from_vectors(v, edges=edges, reservoir_size=3, key="k#0")
    assert s.hist.tolist() == [[1, 2, 2, 2]]


def test_large_offset_keeps_variance_accurate() -> None:
    rng = np.random.default_rng(7)
    d = 4
    # float32 cannot carry 1e6 + 1e-3 noise, so build float32 data exactly representable
    # around 1e6: steps of 1/16 (float32 spacing at 1e6 is 1/16).
    parts = [
        (f"p{i}#0", (1e6 + rng.integers(-8, 9, size=(200, d)) / 16.0).astype(np.float32))
        for i in range(10)
    ]
    edges = reference_edges(parts[0][1], bins=8)
    merged = RunningStats.merge_all(
        [RunningStats.from_vectors(v, edges=edges, reservoir_size=16, key=k) for k, v in parts]
    )
    assert merged is not None
    x = np.concatenate([v for _, v in parts]).astype(np.float64)
    np.testing.assert_allclose(merged.variance, x.var(axis=0, ddof=1), rtol=1e-10)
    np.testing.assert_allclose(merged.mean, x.mean(axis=0), rtol=1e-15)
    # the naive sum-of-squares formula is badly off here, which is why Chan/Welford is used
    naive = ((x**2).sum(axis=0) - x.sum(axis=0) ** 2 / len(x)) / (len(x) - 1)
    assert not np.allclose(naive, x.var(axis=0, ddof=1), rtol=1e-6)


def test_large_offset_float64_moments_merge_stably() -> None:
    # The merge itself in float64: 1e6 offset, 1e-3 noise, many small parts. Subtracting the
    # offset is exact in float64 here, so the centred variance is an accurate reference.
    rng = np.random.default_rng(3)
    from drift_monitor.domain.sketch import _combine

    chunks = [1e6 + 1e-3 * rng.normal(size=(50, 3)) for _ in range(40)]
    n, mean, m2 = 0, np.zeros(3), np.zeros(3)
    for c in chunks:
        c_mean = c.mean(axis=0)
        c_m2 = ((c - c_mean) ** 2).sum(axis=0)
        if n == 0:
            n, mean, m2 = len(c), c_mean, c_m2
        else:
            mean, m2 = _combine(n, mean, m2, len(c), c_mean, c_m2)
            n += len(c)
    x = np.concatenate(chunks)
    reference = (x - 1e6).var(axis=0, ddof=1)
    np.testing.assert_allclose(m2 / (n - 1), reference, rtol=1e-7)
    naive = ((x**2).sum(axis=0) - x.sum(axis=0) ** 2 / len(x)) / (len(x) - 1)
    assert not np.allclose(naive, reference, rtol=1e-2)


def test_reservoir_is_bounded_and_idempotent() -> None:
    rng = np.random.default_rng(2)
    v = rng.normal(size=(1000, 3)).astype(np.float32)
    edges = reference_edges(v, bins=4)
    a = RunningStats.from_vectors(v, edges=edges, reservoir_size=32, key="x#1")
    assert a.reservoir.shape == (32, 3) and a.reservoir_keys.shape == (32,)
    twice = a.merge(a)
    np.testing.assert_array_equal(twice.reservoir_keys, a.reservoir_keys)
    np.testing.assert_array_equal(twice.reservoir, a.reservoir)
    assert twice.count == 2 * a.count  # moments are not idempotent: stores dedupe by key
    small = RunningStats.from_vectors(v[:5], edges=edges, reservoir_size=32, key="y#0")
    assert small.reservoir.shape == (5, 3)


def test_reservoir_is_a_uniform_sample() -> None:
    # Each of 100 rows lands in a 10-row sample with probability 0.1 over many keys.
    hits = np.zeros(100)
    trials = 2000
    for t in range(trials):
        hits[np.argsort(row_priorities(f"trial-{t}#0", 100))[:10]] += 1
    freq = hits / trials
    # binomial sd = sqrt(0.1*0.9/2000) ~ 0.0067; 5 sd margin
    assert np.abs(freq - 0.1).max() < 0.034


def test_empty_is_identity() -> None:
    rng = np.random.default_rng(4)
    v = rng.normal(size=(30, 5)).astype(np.float32)
    edges = reference_edges(v, bins=6)
    s = RunningStats.from_vectors(v, edges=edges, reservoir_size=8, key="a#0")
    e = RunningStats.empty(5, edges=edges, reservoir_size=8)
    _assert_same(e.merge(s), s)
    _assert_same(s.merge(e), s)
    assert np.isnan(e.variance).all() and e.count == 0


def test_serialisation_round_trip() -> None:
    rng = np.random.default_rng(5)
    v = rng.normal(size=(300, 9)).astype(np.float32)
    edges = reference_edges(v, bins=12)
    s = RunningStats.from_vectors(v, edges=edges, reservoir_size=40, key="z#3")
    blob = s.to_bytes()
    assert len(blob) == s.nbytes
    back = RunningStats.from_bytes(blob)
    _assert_same(back, s, rtol=0)
    assert back.reservoir_size == 40
    empty = RunningStats.empty(9, edges=edges, reservoir_size=40)
    back_empty = RunningStats.from_bytes(empty.to_bytes())
    assert back_empty.count == 0 and back_empty.norm_min == float("inf")
    # large counts switch the histogram to a wider integer type and still round-trip
    s.hist[0, 0] = 2**40
    assert RunningStats.from_bytes(s.to_bytes()).hist[0, 0] == 2**40


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b[:10],
        lambda b: b"XXXX" + b[4:],
        lambda b: b[:4] + bytes([99]) + b[5:],
        lambda b: b + b"\0",
        lambda b: b[:-1],
    ],
)
def test_malformed_blobs_are_rejected(mutate) -> None:
    v = np.ones((3, 2), dtype=np.float32)
    s = RunningStats.from_vectors(v, edges=reference_edges(v, 3), reservoir_size=2, key="q#0")
    with pytest.raises(ValueError):
        RunningStats.from_bytes(mutate(s.to_bytes()))


def test_reference_edges_are_strictly_increasing_even_for_constant_dimensions() -> None:
    rng = np.random.default_rng(6)
    v = rng.normal(size=(200, 4))
    v[:, 1] = 0.0  # dead dimension
    v[:, 2] = 1e6  # constant far from zero
    v[:, 3] = np.round(v[:, 3])  # heavy ties
    edges = reference_edges(v, bins=16)
    assert edges.shape == (4, 17) and edges.dtype == np.float32
    assert (np.diff(edges, axis=1) > 0).all()
    assert edges_from_bytes(edges_to_bytes(edges)).tolist() == edges.tolist()
    # quantile bins: each regular bin holds roughly 1/16 of the reference mass
    s = RunningStats.from_vectors(v.astype(np.float32), edges=edges, reservoir_size=0, key="r#0")
    assert s.hist[0, 1:-1].min() >= 200 / 16 - 2 and s.hist[0, 1:-1].max() <= 200 / 16 + 2


def test_bad_inputs_raise() -> None:
    v = np.ones((4, 3), dtype=np.float32)
    edges = reference_edges(v, 2)
    with pytest.raises(ValueError):
        RunningStats.from_vectors(v[:, :2], edges=edges, reservoir_size=1, key="a#0")
    with pytest.raises(ValueError):
        RunningStats.from_vectors(v, edges=edges, reservoir_size=1)
    bad = v.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError):
        RunningStats.from_vectors(bad, edges=edges, reservoir_size=1, key="a#0")
    other = reference_edges(v * 2, 2)
    a = RunningStats.from_vectors(v, edges=edges, reservoir_size=1, key="a#0")
    b = RunningStats.from_vectors(v, edges=other, reservoir_size=1, key="b#0")
    with pytest.raises(ValueError):
        a.merge(b)
    with pytest.raises(ValueError):
        reference_edges(np.zeros((0, 3)), 4)


def _histogram_per_dimension(vectors: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The former per-dimension fold: bin index of every value by searchsorted, column by
    column, then one bincount with per-dimension offsets."""
    n, d = vectors.shape
    width = edges.shape[1] + 1
    idx = np.empty((n, d), dtype=np.int64)
    for j in range(d):
        idx[:, j] = np.searchsorted(edges[j], vectors[:, j], side="right")
    idx += np.arange(d, dtype=np.int64)[None, :] * width
    return np.bincount(idx.ravel(), minlength=d * width).reshape(d, width)


@pytest.mark.parametrize("seed", range(12))
def test_vectorised_histogram_equals_the_per_dimension_fold(seed: int) -> None:
    rng = np.random.default_rng(1000 + seed)
    n, d, bins = int(rng.integers(1, 3000)), int(rng.integers(1, 70)), int(rng.integers(1, 40))
    reference = rng.normal(size=(int(rng.integers(1, 500)), d)) * rng.uniform(0.01, 100, d)
    edges = reference_edges(reference, bins)
    data = (rng.normal(size=(n, d)) * rng.uniform(0.01, 200, d)).astype(np.float32)
    # Values exactly on edges, repeated values, zeros of both signs and far outliers: every
    # tie rule shows up.
    on_edge = rng.random((n, d)) < 0.2
    pick = rng.integers(0, bins + 1, size=(n, d))
    data[on_edge] = edges[np.arange(d)[None, :].repeat(n, 0), pick][on_edge]
    data[rng.random((n, d)) < 0.05] = 0.0
    data[rng.random((n, d)) < 0.05] = -0.0
    data[rng.random((n, d)) < 0.02] = 1e30
    data[rng.random((n, d)) < 0.02] = -1e30
    sketch = RunningStats.from_vectors(data, edges=edges, reservoir_size=8, key="b#0")
    expected = _histogram_per_dimension(data, edges)
    np.testing.assert_array_equal(sketch.hist, expected)
    assert sketch.hist.dtype == np.int64 and sketch.hist.shape == (d, bins + 2)


@pytest.mark.parametrize(("n", "d"), [(70_000, 3), (5_000, 384), (1, 5), (2, 1)])
def test_blocked_moments_equal_the_two_pass_whole_array_form(n: int, d: int) -> None:
    # Many cache-sized blocks (d = 3: about 1600 blocks) far from zero: the blocked single
    # read must agree with a plain two-pass float64 computation to rounding, and the norms
    # (hence norm min/max) bit for bit.
    rng = np.random.default_rng(n + d)
    v = (1e4 + rng.normal(size=(n, d)) * rng.uniform(0.01, 10, d)).astype(np.float32)
    edges = reference_edges(v[:100], bins=4)
    s = RunningStats.from_vectors(v, edges=edges, reservoir_size=4, key="m#0")
    x = v.astype(np.float64)
    mean = x.sum(axis=0) / n
    np.testing.assert_allclose(s.mean, mean, rtol=1e-13)
    np.testing.assert_allclose(s.m2, ((x - mean) ** 2).sum(axis=0), rtol=1e-9, atol=1e-9)
    norms = np.sqrt((x * x).sum(axis=1))
    assert s.norm_min == norms.min() and s.norm_max == norms.max()
    assert s.norm_mean == pytest.approx(norms.mean(), rel=1e-13)
