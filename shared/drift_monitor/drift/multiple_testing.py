"""Multiple-testing corrections: one p-value for "some dimension changed".

A per-dimension test on ``d`` dimensions makes ``d`` chances for a false alarm. Each function
returns per-dimension rejections at family level ``alpha`` and the *family p-value*: the
smallest ``alpha`` at which at least one dimension would be rejected, which is the number the
drift decision compares across tests.

* ``bonferroni`` (default): reject ``p_j <= alpha / d``. Controls the family-wise error rate
  (any false rejection) under any dependence between dimensions. Family p = ``min(1, d min p)``.
* ``holm``: step-down Bonferroni; same guarantee, rejects at least as many dimensions. Same
  family p-value as Bonferroni.
* ``fdr_bh``: Benjamini–Hochberg; controls the expected share of false rejections among the
  rejected dimensions (more dimensions listed as drifted when drift is real). Its family p is
  Simes' ``min_j d p_(j) / j``; "any rejection" is then Simes' test of the global null, valid
  at level ``alpha`` for independent or positively dependent dimensions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

CORRECTIONS = ("bonferroni", "holm", "fdr_bh")


@dataclass(frozen=True)
class Correction:
    """Per-dimension rejections and the family p-value of a correction."""

    reject: npt.NDArray[np.bool_]
    adjusted: npt.NDArray[np.float64]
    family_pvalue: float


def correct(pvalues: npt.ArrayLike, alpha: float, method: str = "bonferroni") -> Correction:
    """Apply a multiple-testing correction.

    Parameters
    ----------
    pvalues
        One p-value per hypothesis (1-D).
    alpha
        Family level.
    method
        ``"bonferroni"``, ``"holm"`` or ``"fdr_bh"``.

    Returns
    -------
    Correction
        ``adjusted`` p-values (reject where ``adjusted <= alpha``) and the family p-value.
    """
    p = np.asarray(pvalues, dtype=np.float64).ravel()
    k = p.size
    if k == 0:
        return Correction(np.zeros(0, dtype=bool), np.zeros(0), 1.0)
    if method == "bonferroni":
        adjusted = np.minimum(1.0, p * k)
    elif method == "holm":
        order = np.argsort(p, kind="stable")
        steps = np.maximum.accumulate(p[order] * (k - np.arange(k)))
        adjusted = np.empty(k)
        adjusted[order] = np.minimum(1.0, steps)
    elif method == "fdr_bh":
        order = np.argsort(p, kind="stable")
        ranked = p[order] * k / np.arange(1, k + 1)
        steps = np.minimum.accumulate(ranked[::-1])[::-1]
        adjusted = np.empty(k)
        adjusted[order] = np.minimum(1.0, steps)
    else:
        raise ValueError(f"unknown correction {method!r}; choose one of {CORRECTIONS}")
    return Correction(
        reject=adjusted <= alpha, adjusted=adjusted, family_pvalue=float(adjusted.min())
    )


__all__ = ["CORRECTIONS", "Correction", "correct"]
