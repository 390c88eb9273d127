"""Anderson-Darling per dimension: scipy's statistic, unclipped asymptotic p-values."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from drift_monitor.drift import ad
from scipy import integrate, stats


def _imhof_sf(z: float, terms: int = 4000) -> float:
    """P(sum_j chi2_1 / (j (j + 1)) > z) by Imhof's inversion (independent check of the table)."""
    j = np.arange(1, terms + 1, dtype=np.float64)
    lam = 1.0 / (j * (j + 1.0))
    x = z - 1.0 / (terms + 1)  # the omitted terms, by their mean

    def f(u: float) -> float:
        theta = 0.5 * np.sum(np.arctan(lam * u)) - 0.5 * x * u
        rho = np.exp(0.25 * np.sum(np.log1p((lam * u) ** 2)))
        return float(np.sin(theta) / (u * rho))

    val, _ = integrate.quad(f, 0, np.inf, limit=1000, epsabs=1e-14, epsrel=1e-10)
    return 0.5 + val / np.pi


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_statistic_matches_scipy_including_ties(dtype: type) -> None:
    rng = np.random.default_rng(0)
    for case in range(60):
        n, m = int(rng.integers(3, 50)), int(rng.integers(3, 50))
        x = rng.normal(size=(n, 3))
        y = rng.normal(rng.uniform(0, 1), size=(m, 3))
        if case % 2 == 0:
            x, y = np.round(x, 1), np.round(y, 1)
        x, y = x.astype(dtype), y.astype(dtype)
        res = ad.ad_columns(x, y)
        for j in range(3):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                ref = stats.anderson_ksamp([x[:, j], y[:, j]])
            # scipy reports the standardised statistic (A2 - 1) / sigma_N
            assert res.standardized[j] == pytest.approx(ref.statistic, rel=1e-10, abs=1e-10)
            # Inside scipy's interpolation range, and without ties (with ties scipy's p-value
            # is not valid; see test_pvalues_stay_valid_with_ties).
            if 0.002 < ref.pvalue < 0.24 and case % 2 == 1:
                assert res.pvalue[j] == pytest.approx(ref.pvalue, rel=0.05)


@pytest.mark.parametrize("z", [0.6, 2.492, 3.857, 7.3, 12.5])
def test_table_matches_imhof_inversion(z: float) -> None:
    assert ad.adinf_sf(z)[0] == pytest.approx(_imhof_sf(z), rel=2e-3)


def test_classic_critical_values() -> None:
    # Asymptotic 5% and 1% points of A_inf (Marsaglia & Marsaglia 2004: 2.492, 3.878).
    assert ad.adinf_sf(2.492)[0] == pytest.approx(0.05, abs=2e-4)
    assert ad.adinf_sf(3.878)[0] == pytest.approx(0.01, abs=1e-4)


def test_tail_is_monotone_continuous_and_unclipped() -> None:
    z = np.linspace(0.0, 40.0, 4001)
    p = ad.adinf_sf(z)
    assert np.all(np.diff(p) <= 0)
    assert p[0] == 1.0
    below, above = ad.adinf_sf([14.9999, 15.0001])
    assert above == pytest.approx(below, rel=1e-3)
    assert p[-1] < 1e-15


def test_pvalues_reach_bonferroni_levels_for_high_dimensions() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 4))
    y = rng.normal(0.6, size=(300, 4))
    res = ad.ad_columns(x, y)
    assert np.all(res.pvalue < 0.05 / 768)  # scipy would report 0.001 and never get here


def test_null_pvalues_are_roughly_uniform() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(80, 2000))
    y = rng.normal(size=(60, 2000))
    p = ad.ad_columns(x, y).pvalue
    for level in (0.01, 0.05, 0.25):
        assert abs(np.mean(p <= level) - level) < 3 * np.sqrt(level * (1 - level) / 2000) + 0.005


def test_constant_column_gives_no_evidence() -> None:
    res = ad.ad_columns(np.ones((5, 1)), np.ones((7, 1)))
    assert res.statistic[0] == 0.0
    assert res.pvalue[0] == 1.0


@pytest.mark.parametrize(
    ("kind", "n"),
    [("binary", 50), ("binary", 1000), ("point_mass", 200), ("five_levels", 1000)],
)
def test_pvalues_stay_valid_with_ties(kind: str, n: int) -> None:
    """Binary, quantised or ReLU-like columns: the continuous law applied to the midrank
    statistic puts ~1 % of null columns below 0.001 (ten times too many); the randomised
    ranks keep every level at its rate (99.9 % binomial bounds over 1920 columns)."""
    rng = np.random.default_rng(7)

    def draw() -> np.ndarray:
        z = rng.normal(size=(n, 384))
        if kind == "binary":
            return np.sign(z)
        if kind == "point_mass":
            return np.maximum(z - 1.0, 0.0)  # 84 % of each column is exactly 0
        return np.round(z)

    p = np.concatenate([ad.ad_columns(draw(), draw(), seed=s).pvalue for s in range(5)])
    for level in (0.05, 0.01, 0.001):
        assert np.mean(p <= level) <= stats.binom.ppf(0.999, p.size, level) / p.size


def test_tie_breaking_is_seeded_and_leaves_tie_free_columns_alone() -> None:
    rng = np.random.default_rng(8)
    x, y = np.sign(rng.normal(size=(40, 6))), np.sign(rng.normal(size=(30, 6)))
    assert np.array_equal(ad.ad_columns(x, y, seed=3).pvalue, ad.ad_columns(x, y, seed=3).pvalue)
    assert not np.array_equal(
        ad.ad_columns(x, y, seed=3).pvalue, ad.ad_columns(x, y, seed=4).pvalue
    )
    u, v = rng.normal(size=(40, 6)), rng.normal(size=(30, 6))
    assert np.array_equal(ad.ad_columns(u, v, seed=3).pvalue, ad.ad_columns(u, v, seed=4).pvalue)
