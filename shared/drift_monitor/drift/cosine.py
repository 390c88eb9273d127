"""Cosine-similarity drift: centroid direction and the distribution of cosines to it.

Embeddings are compared by angle, so the most direct drift signal is whether current vectors
point where reference vectors used to. Two views:

* ``centroid_cosine``: cosine between the reference and current mean vectors (1 = same mean
  direction). A single number, easy to read, but blind to changes that keep the mean.
* the distribution of each vector's cosine to the reference centroid, tested like any 1-D
  sample with the two-sample K–S test. Reference vectors are scored against the centroid of
  the *other* reference vectors (leave-one-out), so they are not favoured by having helped
  build the centroid; current vectors against the full reference centroid.

Prefer it as a cheap, interpretable whole-vector check; it sees topic shifts and model swaps
(cosines to the old centroid collapse) but not changes orthogonal to the centroid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from drift_monitor.drift.ks import ks_1d

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class CosineResult:
    """Outcome of the cosine test.

    Attributes
    ----------
    centroid_cosine
        Cosine between the two mean vectors.
    statistic, pvalue
        Two-sample K–S on the cosine-to-reference-centroid samples.
    wasserstein
        Wasserstein-1 distance between those two samples (cosine units).
    reference_mean, current_mean
        Mean cosine to the reference centroid in each sample.
    reference_std
        Standard deviation of the reference cosines (the unit of the effect size).
    """

    centroid_cosine: float
    statistic: float
    pvalue: float
    wasserstein: float
    reference_mean: float
    current_mean: float
    reference_std: float

    @property
    def effect_size(self) -> float:
        """Wasserstein distance of the cosine samples in reference standard deviations."""
        return self.wasserstein / self.reference_std if self.reference_std > 0 else 0.0


def _safe_cos(dots: FloatArray, norms_a: FloatArray, norms_b: FloatArray) -> FloatArray:
    denom = norms_a * norms_b
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denom > 0, dots / np.where(denom > 0, denom, 1.0), 0.0)


def cosines_to_reference(
    reference: npt.ArrayLike, current: npt.ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """Leave-one-out cosines of reference rows and cosines of current rows to the centroid."""
    r = np.asarray(reference, dtype=np.float64)
    c = np.asarray(current, dtype=np.float64)
    total = r.sum(axis=0)
    r_norm = np.linalg.norm(r, axis=1)
    dots_r = r @ total
    # |total - r_i|² = |total|² - 2 r_i.total + |r_i|²
    loo_norm = np.sqrt(np.maximum(total @ total - 2.0 * dots_r + r_norm**2, 0.0))
    ref_cos = _safe_cos(dots_r - r_norm**2, r_norm, loo_norm)
    cur_cos = _safe_cos(
        c @ total, np.linalg.norm(c, axis=1), np.full(c.shape[0], np.linalg.norm(total))
    )
    return ref_cos, cur_cos


def cosine_test(reference: npt.ArrayLike, current: npt.ArrayLike) -> CosineResult:
    """Centroid cosine plus a K–S test on cosines to the reference centroid.

    Parameters
    ----------
    reference, current
        Samples ``(n, d)`` and ``(m, d)``, ``n >= 2``.

    Returns
    -------
    CosineResult
    """
    r = np.asarray(reference, dtype=np.float64)
    c = np.asarray(current, dtype=np.float64)
    ref_cos, cur_cos = cosines_to_reference(r, c)
    mr, mc = r.mean(axis=0), c.mean(axis=0)
    centroid = float(
        _safe_cos(
            np.array([mr @ mc]), np.array([np.linalg.norm(mr)]), np.array([np.linalg.norm(mc)])
        )[0]
    )
    stat, pvalue, w1 = ks_1d(ref_cos, cur_cos)
    return CosineResult(
        centroid_cosine=centroid,
        statistic=stat,
        pvalue=pvalue,
        wasserstein=w1,
        reference_mean=float(ref_cos.mean()),
        current_mean=float(cur_cos.mean()),
        reference_std=float(ref_cos.std(ddof=1)) if ref_cos.size > 1 else 0.0,
    )


__all__ = ["CosineResult", "cosine_test", "cosines_to_reference"]
