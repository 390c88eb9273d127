"""False-positive rate of the default drift decision over seeded no-drift trials.

For each null distribution (Gaussian, multivariate t3, anisotropic unit-norm with dead
dimensions) and n = 50, 200, 1000 (reference and current alike), 200 trials where both windows
come from the same distribution: ``compare()``'s default ``drift_detected`` must fire in at
most ``alpha`` plus the 99% binomial slack. d = 32 and 200 MMD permutations keep the whole
sweep around a minute on one core (docs/statistics.md has the full tables).
"""

from __future__ import annotations

import numpy as np
import pytest
from drift_monitor.drift import compare
from drift_monitor.drift.mmd import mmd_block_test
from drift_scenarios import binomial_upper, null_samplers

pytestmark = pytest.mark.statistical

TRIALS = 200
ALPHA = 0.05
D = 32


@pytest.mark.parametrize("n", [50, 200, 1000])
@pytest.mark.parametrize("dist", ["gaussian", "heavy_tailed_t3", "anisotropic_unit"])
def test_false_positive_rate_is_at_most_alpha(dist: str, n: int) -> None:
    draw = null_samplers(D)[dist]
    alarms = 0
    for i in range(TRIALS):
        rng = np.random.default_rng([11, n, i])
        report = compare(
            draw(rng, n), draw(rng, n), alpha=ALPHA, seed=i, n_permutations=200, n_bootstrap=0
        )
        alarms += report.drift_detected
    rate = alarms / TRIALS
    print(f"FPR {dist} n={n}: {rate:.3f}")
    assert rate <= binomial_upper(ALPHA, TRIALS), f"{dist} n={n}: FPR {rate:.3f}"


def test_threshold_tests_do_not_alarm_on_small_windows() -> None:
    """PSI/KL with the seed's 0.15 KL threshold: the bias correction keeps small windows quiet."""
    draw = null_samplers(D)["anisotropic_unit"]
    alarms = {"psi": 0, "kl": 0}
    raw_over = 0
    for i in range(100):
        rng = np.random.default_rng([12, i])
        report = compare(draw(rng, 30), draw(rng, 30), tests=["psi", "kl"], n_bootstrap=0)
        for name in alarms:
            alarms[name] += report.tests[name].drift
        raw_over += report.tests["kl"].details["raw_mean"] > 0.15
    print(f"threshold tests at n=30: alarms {alarms}, raw KL above 0.15 in {raw_over}/100")
    assert raw_over >= 90  # without the correction almost every small window would alarm
    assert alarms["kl"] <= 5 and alarms["psi"] <= 5


@pytest.mark.parametrize("n", [1000, 5000])
def test_block_mmd_variant_is_calibrated(n: int) -> None:
    """The linear-time block MMD relies on a normal approximation: check its own error rate."""
    draw = null_samplers(D)["anisotropic_unit"]
    rejections = 0
    for i in range(TRIALS):
        rng = np.random.default_rng([13, n, i])
        result = mmd_block_test(draw(rng, n), draw(rng, n), seed=i)
        rejections += result.pvalue <= ALPHA
    rate = rejections / TRIALS
    print(f"block MMD at alpha={ALPHA}, n={n}: rejection rate {rate:.3f}")
    assert rate <= binomial_upper(ALPHA, TRIALS)
