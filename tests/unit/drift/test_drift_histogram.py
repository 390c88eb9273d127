"""PSI / KL histograms: binning convention, smoothing, bias correction, bootstrap counts."""

from __future__ import annotations

import numpy as np
import pytest
from drift_monitor.drift import histogram


def test_bin_indices_follow_searchsorted_right() -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(200, 5))
    cur = rng.normal(0.5, 2.0, size=(150, 5))
    edges = histogram.quantile_edges(ref, 10)
    idx = histogram.bin_indices(cur, edges)
    for j in range(5):
        np.testing.assert_array_equal(idx[:, j], np.searchsorted(edges[j], cur[:, j], side="right"))
    counts = histogram.bin_counts(idx, 12)
    assert counts.shape == (5, 12)
    assert (counts.sum(axis=1) == 150).all()
    # Reference quantile bins: the reference fills the regular bins evenly, none outside.
    ref_counts = histogram.bin_counts(histogram.bin_indices(ref, edges), 12)
    assert (ref_counts[:, 0] == 0).all() and (ref_counts[:, -1] == 0).all()
    assert ref_counts[:, 1:-1].min() >= 19 and ref_counts[:, 1:-1].max() <= 21


def test_divergences_formulas_and_empty_bins_stay_finite() -> None:
    ref = np.array([[10, 0, 10]])
    cur = np.array([[0, 20, 0]])
    psi, kl = histogram.divergences(ref, cur, smoothing=0.5)
    p = (ref + 0.5) / (ref + 0.5).sum()
    q = (cur + 0.5) / (cur + 0.5).sum()
    assert kl[0] == pytest.approx(float((q * np.log(q / p)).sum()))
    assert psi[0] == pytest.approx(float(((q - p) * np.log(q / p)).sum()))
    assert np.isfinite(psi).all() and np.isfinite(kl).all()


@pytest.mark.parametrize("n", [50, 200])
def test_bias_correction_centres_the_null_at_zero(n: int) -> None:
    rng = np.random.default_rng(n)
    ref = rng.normal(size=(n, 300))
    cur = rng.normal(size=(n, 300))
    edges = histogram.quantile_edges(ref, 10)
    rc = histogram.bin_counts(histogram.bin_indices(ref, edges), 12)
    cc = histogram.bin_counts(histogram.bin_indices(cur, edges), 12)
    cols = histogram.divergence_columns(rc, cc)
    # Raw plug-in KL is ~ (K-1)/2 (1/n + 1/m): 0.18 at n=50, far above the 0.15 threshold.
    assert cols.kl.mean() > 4.0 / n
    assert abs(cols.kl_corrected.mean()) < 0.2 * cols.kl.mean()
    assert abs(cols.psi_corrected.mean()) < 0.2 * cols.psi.mean()


def test_bias_correction_keeps_real_shifts() -> None:
    rng = np.random.default_rng(1)
    ref = rng.normal(size=(500, 50))
    cur = rng.normal(1.0, size=(500, 50))
    edges = histogram.quantile_edges(ref, 10)
    rc = histogram.bin_counts(histogram.bin_indices(ref, edges), 12)
    cc = histogram.bin_counts(histogram.bin_indices(cur, edges), 12)
    cols = histogram.divergence_columns(rc, cc)
    assert cols.kl_corrected.mean() > 0.3  # KL(N(1,1) || N(0,1)) = 0.5, binned a bit less


def test_bootstrap_counts_equal_histograms_of_resampled_rows() -> None:
    rng = np.random.default_rng(2)
    idx = rng.integers(0, 12, size=(40, 3)).astype(np.int16)
    cur = rng.integers(0, 12, size=(30, 3)).astype(np.int16)
    boot = histogram.bootstrap_mean_kl(idx, cur, 12, n_bootstrap=5, seed=3)
    # Rebuild the same resamples: the function draws reference weights first, then current.
    draw = np.random.default_rng(3)
    wr = draw.multinomial(40, np.full(40, 1 / 40), size=5)
    wc = draw.multinomial(30, np.full(30, 1 / 30), size=5)
    for b in range(5):
        rr = np.repeat(idx, wr[b], axis=0)
        cc = np.repeat(cur, wc[b], axis=0)
        _, kl = histogram.divergences(histogram.bin_counts(rr, 12), histogram.bin_counts(cc, 12))
        assert boot[b] == pytest.approx(kl.mean(), rel=1e-6)
