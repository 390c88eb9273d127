"""The drift decision: test results become one ``drift_detected`` with bounded false alarms.

Two rules, both required for a test to report drift:

1. **Significance, with the family-wise error over tests and dimensions bounded by alpha.**
   The p-value tests that run (of ``ks``, ``ad``, ``mmd``, ``mmd_agg``, ``cosine``,
   ``novelty``) split ``alpha`` by weight (weighted Bonferroni: ``alpha_t = alpha w_t / sum w``;
   the MMD tests weigh 3, the others 1; the default AD + MMD + novelty splits 1 : 3 : 1).
   A per-dimension test (K–S, AD) then corrects over its ``d`` dimensions at its ``alpha_t``
   (Bonferroni by default: ``alpha_t / d`` per dimension; Holm or Benjamini–Hochberg on
   request). By the union bound, when nothing changed the probability that any test flags is
   at most ``sum_t alpha_t = alpha``, whatever the dependence between tests and dimensions
   (with ``fdr_bh`` the within-test step is Simes' test, valid for independent or positively
   dependent dimensions).
2. **Practical size.** With huge windows every test becomes significant for trivial changes,
   and a scale-free statistic (K–S ``D``) calls a ``1e-8`` move of a dead dimension a total
   change. So each test also needs an effect above a floor:

   * K–S / AD, per dimension: the Wasserstein-1 distance between the two marginals divided by
     the median reference standard deviation over all dimensions (how far the mass moved, in
     units of a typical dimension's spread). A dimension drifts only if it is significant *and*
     moved at least ``0.1`` typical spreads. Rounding to float16 moves nothing that far.
   * MMD: the unbiased ``MMD²`` itself (kernel units); ``mmd_agg``: the same at its deciding
     bandwidth.
   * novelty: the excess share of current vectors beyond a calibrated k-NN distance
     threshold (``E_q / m - r / (n_c + 1)``, see ``novelty``); floor 0.02.
   * cosine: Wasserstein-1 distance of the cosine-to-centroid samples divided by the reference
     cosines' standard deviation.

Threshold tests (``psi``, ``kl``) have no p-value: they decide drift when the bias-corrected
mean over dimensions exceeds their threshold (KL: the seed's ``DRIFT_THRESHOLD``, 0.15). They
spend no ``alpha`` and are outside the guarantee above, so they are not in the default battery;
their no-drift exceedance rates are measured in the statistical tests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from drift_monitor.drift.multiple_testing import correct

TEST_NAMES = ("ks", "ad", "mmd", "psi", "kl", "cosine", "novelty", "mmd_agg")
P_VALUE_TESTS = ("ks", "ad", "mmd", "cosine", "novelty", "mmd_agg")
THRESHOLD_TESTS = ("psi", "kl")

#: Tests that decide ``drift_detected`` by default (chosen by measured power at controlled
#: false-positive rate, see docs/statistics.md and tests/statistical/battery_study.py).
DEFAULT_TESTS = ("ad", "mmd", "novelty")

#: Weighted Bonferroni: a test's share of alpha is proportional to its weight. The omnibus
#: whole-vector tests (MMD, aggregated MMD) get 3; the others 1 (so the default AD + MMD +
#: novelty splits alpha 1 : 3 : 1: 0.01, 0.03, 0.01 of 0.05).
DEFAULT_WEIGHTS: Mapping[str, float] = {
    "ks": 1.0,
    "ad": 1.0,
    "mmd": 3.0,
    "cosine": 1.0,
    "mean_shift": 1.0,
    "novelty": 1.0,
    "mmd_agg": 3.0,
}

#: Practical-effect floors (units: see the module docstring).
DEFAULT_MIN_EFFECT: Mapping[str, float] = {
    "ks": 0.1,
    "ad": 0.1,
    "mmd": 1e-4,
    "cosine": 0.1,
    "mean_shift": 0.1,
    "novelty": 0.02,
    "mmd_agg": 1e-4,
}
DEFAULT_KL_THRESHOLD = 0.15
DEFAULT_PSI_THRESHOLD = 0.25


def normalise_tests(tests: Sequence[str] | str | None) -> tuple[str, ...]:
    """Validated, de-duplicated test names in canonical order (``None``: the default battery)."""
    if tests is None:
        return DEFAULT_TESTS
    names = [t.strip().lower() for t in (tests.split(",") if isinstance(tests, str) else tests)]
    names = [t for t in names if t]
    unknown = sorted(set(names) - set(TEST_NAMES))
    if unknown:
        raise ValueError(
            f"unknown test(s) {', '.join(unknown)}; choose from {', '.join(TEST_NAMES)}"
        )
    if not names:
        raise ValueError("no test selected")
    return tuple(t for t in TEST_NAMES if t in names)


def test_levels(
    tests: Sequence[str],
    alpha: float,
    *,
    weights: Mapping[str, float] | None = None,
    extra_weight: float = 0.0,
) -> dict[str, float | None]:
    """Share of ``alpha`` for each test (weighted Bonferroni); None for threshold tests.

    Test ``t`` gets ``alpha * w_t / sum(w)`` over the p-value tests that run, so the shares
    add up to ``alpha``. ``extra_weight`` is the weight of p-value tests run outside ``tests``
    (the streaming mean-shift test), which take their share from the same budget.
    """
    w = {**DEFAULT_WEIGHTS, **(weights or {})}
    for name, value in w.items():
        if not value > 0:
            raise ValueError(f"test weight for {name} must be positive, got {value}")
    total = sum(w[t] for t in tests if t in P_VALUE_TESTS) + extra_weight
    return {t: (alpha * w[t] / total if t in P_VALUE_TESTS else None) for t in tests}


@dataclass(frozen=True)
class DimensionDecision:
    """Per-dimension outcome of a K–S or AD test."""

    family_pvalue: float
    significant: npt.NDArray[np.bool_]
    drifted: npt.NDArray[np.bool_]
    adjusted: npt.NDArray[np.float64]


def decide_dimensions(
    pvalues: npt.ArrayLike,
    effects: npt.ArrayLike,
    *,
    level: float,
    min_effect: float,
    correction: str,
) -> DimensionDecision:
    """Dimensions that are significant after correction at ``level`` and practically large."""
    corr = correct(pvalues, level, correction)
    eff = np.asarray(effects, dtype=np.float64)
    return DimensionDecision(
        family_pvalue=corr.family_pvalue,
        significant=corr.reject,
        drifted=corr.reject & (eff >= min_effect),
        adjusted=corr.adjusted,
    )


__all__ = [
    "DEFAULT_KL_THRESHOLD",
    "DEFAULT_MIN_EFFECT",
    "DEFAULT_PSI_THRESHOLD",
    "DEFAULT_TESTS",
    "DEFAULT_WEIGHTS",
    "P_VALUE_TESTS",
    "TEST_NAMES",
    "THRESHOLD_TESTS",
    "DimensionDecision",
    "decide_dimensions",
    "normalise_tests",
    "test_levels",
]
