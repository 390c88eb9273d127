"""MMD: matrix-product permutations equal the one-at-a-time computation; calibration basics."""

from __future__ import annotations

import numpy as np
import pytest
from drift_monitor.drift import mmd


def _direct_mmd2(x: np.ndarray, y: np.ndarray, sigma: float) -> float:
    def k(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        sq = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        return np.exp(-sq / (2 * sigma * sigma))

    n, m = len(x), len(y)
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    return float(
        (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
        + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        - 2 * kxy.mean()
    )


def test_observed_statistic_is_the_unbiased_mmd2() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 5))
    y = rng.normal(0.3, size=(30, 5))
    res = mmd.mmd_permutation_test(x, y, n_permutations=10, seed=1, bandwidth=2.0)
    assert res.statistic == pytest.approx(_direct_mmd2(x, y, 2.0), abs=2e-6)
    blocks = mmd.mmd2_unbiased(
        mmd.gaussian_kernel(x, x, 2.0, dtype=np.float64),
        mmd.gaussian_kernel(y, y, 2.0, dtype=np.float64),
        mmd.gaussian_kernel(x, y, 2.0, dtype=np.float64),
    )
    assert blocks == pytest.approx(_direct_mmd2(x, y, 2.0), rel=1e-10)


def test_batched_permutations_equal_one_loop_iteration_per_permutation() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(25, 4))
    y = rng.normal(size=(35, 4))
    z = np.concatenate([x, y])
    sigma = 1.7
    kernel = mmd.gaussian_kernel(z, z, sigma, dtype=np.float64)
    np.fill_diagonal(kernel, 0.0)
    batched = mmd._permutation_statistics(kernel, 25, 300, np.random.default_rng(9))
    # Same random permutations, drawn in the same order, evaluated one by one.
    draw = np.random.default_rng(9)
    looped = [_direct_mmd2(x, y, sigma)]
    for _ in range(300):
        idx = draw.permutation(60)
        looped.append(
            _direct_mmd2(z[np.sort(idx[:25])], z[np.setdiff1d(np.arange(60), idx[:25])], sigma)
        )
    np.testing.assert_allclose(batched, looped, rtol=1e-9, atol=1e-12)


def test_pvalue_range_and_determinism() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(50, 3))
    y = rng.normal(size=(50, 3))
    a = mmd.mmd_permutation_test(x, y, n_permutations=99, seed=5)
    b = mmd.mmd_permutation_test(x, y, n_permutations=99, seed=5)
    assert a == b
    assert 0.01 <= a.pvalue <= 1.0
    far = mmd.mmd_permutation_test(x, y + 1.0, n_permutations=99, seed=5)
    assert far.pvalue == pytest.approx(1 / 100)


def test_subsampled_variant_caps_rows() -> None:
    rng = np.random.default_rng(3)
    res = mmd.mmd_permutation_test(
        rng.normal(size=(500, 3)), rng.normal(size=(400, 3)), n_permutations=20, max_samples=100
    )
    assert (res.n_reference, res.n_current) == (100, 100)


def test_null_pvalues_are_uniform_enough() -> None:
    p = []
    for i in range(60):
        rng = np.random.default_rng([4, i])
        p.append(
            mmd.mmd_permutation_test(
                rng.normal(size=(30, 3)), rng.normal(size=(30, 3)), n_permutations=49, seed=i
            ).pvalue
        )
    assert 0.25 < float(np.mean(p)) < 0.75
    assert np.mean(np.array(p) <= 0.1) <= 0.25


def test_block_test_detects_shift_and_stays_quiet_without_one() -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(size=(2000, 8))
    quiet = mmd.mmd_block_test(x, rng.normal(size=(2000, 8)), seed=1)
    loud = mmd.mmd_block_test(x, rng.normal(0.3, size=(2000, 8)), seed=1)
    assert quiet.pvalue > 0.01
    assert loud.pvalue < 1e-6
    assert loud.method == "block"
    with pytest.raises(ValueError, match="two blocks"):
        mmd.mmd_block_test(x[:3], x[:3], block_size=2)


def test_median_bandwidth() -> None:
    pts = np.array([[0.0], [1.0], [3.0]])
    # pairwise distances 1, 3, 2 -> median 2
    assert mmd.median_bandwidth(pts) == pytest.approx(2.0)
    assert mmd.median_bandwidth(np.zeros((4, 2))) == 1.0


def test_a_common_offset_changes_nothing() -> None:
    """Distances come from float32 dot products, whose rounding grows with the norms; the
    pooled sample is centred first, so vectors sharing a large component (or sitting far from
    the origin) are tested as if they did not."""
    rng = np.random.default_rng(9)
    x, y = rng.normal(size=(60, 32)), rng.normal(0.3, size=(50, 32))
    plain = mmd.mmd_permutation_test(x, y, n_permutations=200, seed=1)
    offset = mmd.mmd_permutation_test(x + 1e4, y + 1e4, n_permutations=200, seed=1)
    assert offset.statistic == pytest.approx(plain.statistic, rel=1e-4)
    assert offset.pvalue == plain.pvalue
    assert offset.bandwidth == pytest.approx(plain.bandwidth, rel=1e-5)


@pytest.mark.parametrize("scale", [1e20, 1e-20])
def test_any_scale_gives_the_same_test(scale: float) -> None:
    """Squares of 1e20 overflow float32 and of 1e-20 underflow it; the pooled sample is brought
    to unit spread first, and the bandwidth is reported in the data's unit."""
    rng = np.random.default_rng(10)
    x, y = rng.normal(size=(60, 32)), rng.normal(0.3, size=(50, 32))
    plain = mmd.mmd_permutation_test(x, y, n_permutations=200, seed=1)
    scaled = mmd.mmd_permutation_test(x * scale, y * scale, n_permutations=200, seed=1)
    assert scaled.pvalue == plain.pvalue
    assert scaled.statistic == pytest.approx(plain.statistic, rel=1e-5)
    assert scaled.bandwidth == pytest.approx(plain.bandwidth * scale, rel=1e-5)
    agg = mmd.mmd_agg_test(x * scale, y * scale, n_permutations=50, seed=1)
    assert agg.bandwidths[1] == pytest.approx(plain.bandwidth * scale, rel=1e-5)
    given = mmd.mmd_permutation_test(x * scale, y * scale, bandwidth=2.0 * scale, seed=1)
    assert given.bandwidth == pytest.approx(2.0 * scale)
    assert given.statistic == pytest.approx(
        mmd.mmd_permutation_test(x, y, bandwidth=2.0, seed=1).statistic, rel=1e-5
    )
