"""Aggregated-bandwidth MMD: paired permutations, min-p calibration, report fields."""

from __future__ import annotations

import json

import numpy as np
from drift_monitor.drift import compare, mmd
from drift_monitor.drift.mmd import mmd_agg_test, mmd_permutation_test


def test_one_scale_gives_the_plain_mmd_test() -> None:
    """With the median bandwidth alone, the aggregated test is the ``mmd`` test itself."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 5)), rng.normal(size=(40, 5)) + 0.3
    agg = mmd_agg_test(x, y, n_permutations=199, seed=3, scales=(1.0,))
    plain = mmd_permutation_test(x, y, n_permutations=199, seed=3)
    assert agg.bandwidth == plain.bandwidth
    assert agg.statistic == plain.statistic
    assert agg.pvalue == plain.pvalue


def test_multi_kernel_statistics_share_the_permutations() -> None:
    rng = np.random.default_rng(1)
    z = rng.normal(size=(50, 3))
    kernels = []
    for sigma in (0.5, 2.0):
        k = mmd.gaussian_kernel(z, z, sigma, dtype=np.float64)
        np.fill_diagonal(k, 0.0)
        kernels.append(k)
    both = mmd._permutation_statistics_multi(kernels, 20, 150, np.random.default_rng(5))
    for i, k in enumerate(kernels):
        alone = mmd._permutation_statistics(k, 20, 150, np.random.default_rng(5))
        np.testing.assert_allclose(both[i], alone, rtol=1e-12)


def test_null_p_values_are_roughly_uniform_and_never_zero() -> None:
    """200 seeded null pairs: the rejection rate at 0.1 stays within binomial noise."""
    rejections = 0
    smallest = 1.0
    for i in range(200):
        rng = np.random.default_rng([8, i])
        result = mmd_agg_test(
            rng.normal(size=(30, 4)), rng.normal(size=(30, 4)), n_permutations=99, seed=i
        )
        rejections += result.pvalue <= 0.1
        smallest = min(smallest, result.pvalue)
    # 99% one-sided bound for a true rate of 0.1 over 200 trials: 0.1 + 2.326 * 0.0212
    assert rejections / 200 <= 0.15
    assert smallest >= 1 / 100


def test_finds_a_narrow_change_and_reports_every_bandwidth() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(150, 4))
    y = rng.normal(size=(150, 4))
    y[:, 0] *= 0.4  # same mean, narrower spread in one dimension
    out = compare(x, y, tests="mmd_agg", n_permutations=199, n_bootstrap=0).to_dict()
    json.dumps(out, allow_nan=False)
    test = out["tests"]["mmd_agg"]
    assert len(test["bandwidths"]) == len(mmd.AGG_SCALES) == len(test["bandwidth_p_values"])
    assert test["bandwidth"] in test["bandwidths"]
    assert 1 / 200 <= test["p_value"] <= 0.01 and test["drift"]
