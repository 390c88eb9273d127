"""K-S per dimension: agreement with scipy.stats.ks_2samp, statistic and p-value."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from drift_monitor.drift import ks
from scipy import stats


def _scipy(x: np.ndarray, y: np.ndarray, method: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = [stats.ks_2samp(x[:, j], y[:, j], method=method) for j in range(x.shape[1])]
    return np.array([r.statistic for r in res]), np.array([r.pvalue for r in res])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matches_scipy_on_many_small_random_cases(dtype: type) -> None:
    rng = np.random.default_rng(0)
    for case in range(150):
        n, m = int(rng.integers(1, 40)), int(rng.integers(1, 40))
        x = rng.normal(size=(n, 3)).astype(dtype)
        y = rng.normal(rng.uniform(0, 1.5), size=(m, 3)).astype(dtype)
        if case % 3 == 0:  # heavy ties, across and within samples
            x, y = np.round(x, 1), np.round(y, 1)
        res = ks.ks_columns(x, y)
        d_ref, p_ref = _scipy(x, y)
        np.testing.assert_array_equal(res.statistic, d_ref)
        np.testing.assert_allclose(res.pvalue, p_ref, rtol=1e-12, atol=1e-300)
        assert res.method == "exact"


def test_equal_sizes_use_the_square_formula_exactly() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 8)).astype(np.float32)
    y = rng.normal(0.2, size=(300, 8)).astype(np.float32)
    res = ks.ks_columns(x, y)
    d_ref, p_ref = _scipy(x, y)
    np.testing.assert_array_equal(res.statistic, d_ref)
    np.testing.assert_allclose(res.pvalue, p_ref, rtol=1e-12)


def test_forced_asymptotic_mode_matches_scipy() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(400, 6))
    y = rng.normal(0.1, size=(250, 6))
    res = ks.ks_columns(x, y, method="asymp")
    d_ref, p_ref = _scipy(x, y, method="asymp")
    np.testing.assert_array_equal(res.statistic, d_ref)
    np.testing.assert_allclose(res.pvalue, p_ref, rtol=1e-12)
    assert res.method == "asymp"


def test_auto_switches_to_asymptotic_above_10000_rows() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(10001, 2)).astype(np.float32)
    y = rng.normal(0.03, size=(900, 2)).astype(np.float32)
    res = ks.ks_columns(x, y)
    d_ref, p_ref = _scipy(x, y)
    assert res.method == "asymp"
    np.testing.assert_array_equal(res.statistic, d_ref)
    np.testing.assert_allclose(res.pvalue, p_ref, rtol=1e-12)


def test_float32_near_ties_fall_back_to_exact_keys() -> None:
    # Values one float32 step apart across the samples: the 31-bit fast path merges them, so
    # the columns must be redone with full keys; the result must still be scipy's.
    rng = np.random.default_rng(4)
    base = rng.normal(size=(200, 4)).astype(np.float32)
    x = base
    y = np.nextafter(base, np.float32(np.inf))[:150]
    res = ks.ks_columns(x, y)
    d_ref, p_ref = _scipy(x, y)
    np.testing.assert_array_equal(res.statistic, d_ref)
    np.testing.assert_allclose(res.pvalue, p_ref, rtol=1e-12)


def test_python_port_of_the_inside_method_matches_scipy_kernel() -> None:
    if ks._inside_kernel is None:
        pytest.skip("scipy build without the compiled kernel")
    for n, m in [(7, 11), (30, 45), (100, 37)]:
        g = np.gcd(n, m)
        for h in (1, 5, (n // g) * m // 3):
            assert ks._outer_prob_inside_method(n, m, int(g), int(h)) == pytest.approx(
                float(ks._inside_kernel(n, m, int(g), int(h))), rel=1e-12
            )


def test_wasserstein_matches_scipy() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(120, 5))
    y = rng.standard_t(3, size=(80, 5))
    res = ks.ks_columns(x, y)
    ref = [stats.wasserstein_distance(x[:, j], y[:, j]) for j in range(5)]
    np.testing.assert_allclose(res.wasserstein, ref, rtol=1e-10)


def test_constant_columns_and_bad_input() -> None:
    x = np.zeros((10, 2))
    y = np.zeros((12, 2))
    res = ks.ks_columns(x, y)
    assert res.statistic.tolist() == [0.0, 0.0]
    assert res.pvalue.tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="dimension mismatch"):
        ks.ks_columns(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="non-empty"):
        ks.ks_columns(np.zeros((0, 2)), np.zeros((3, 2)))


def test_unequal_larger_samples_match_scipy() -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(size=(700, 5)).astype(np.float32)
    y = rng.normal(0.05, 1.1, size=(450, 5)).astype(np.float32)
    res = ks.ks_columns(x, y)
    d_ref, p_ref = _scipy(x, y)
    np.testing.assert_array_equal(res.statistic, d_ref)
    np.testing.assert_allclose(res.pvalue, p_ref, rtol=1e-12)
