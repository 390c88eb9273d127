"""Power of the default drift decision at n = 1000 (rates printed; floors asserted).

Scenarios (d = 32, 100 seeded trials each, see drift_scenarios.py): a 0.15 sd mean shift in
10% of the dimensions; pairwise correlation 0.3 with unchanged marginals; a small random
rotation (0.15 rad) of anisotropic unit vectors; 25% of the vectors from another topic. The
floors sit below the measured rates (docs/statistics.md) with room for seed noise, and far
above the 5% a test without power would show.
"""

from __future__ import annotations

import numpy as np
import pytest
from drift_monitor.drift import compare
from drift_scenarios import power_scenarios

pytestmark = pytest.mark.statistical

TRIALS = 100
FLOORS = {
    "mean_shift_10pct_dims": 0.8,
    "covariance_change": 0.1,
    "rotation": 0.4,
    "mixture_25pct": 0.4,
}


@pytest.mark.parametrize("scenario", list(FLOORS))
def test_power_at_n_1000(scenario: str) -> None:
    ref_draw, cur_draw = power_scenarios(32)[scenario]
    hits = 0
    for i in range(TRIALS):
        rng = np.random.default_rng([21, i])
        report = compare(
            ref_draw(rng, 1000), cur_draw(rng, 1000), seed=i, n_permutations=200, n_bootstrap=0
        )
        hits += report.drift_detected
    rate = hits / TRIALS
    print(f"power {scenario} n=1000: {rate:.2f}")
    assert rate >= FLOORS[scenario], f"{scenario}: power {rate:.2f}"
