"""The default decision on real sentence embeddings (../shared/data; skipped when absent).

Reference: 1000 random nouns; current: 200 vectors. Disjoint splits of the nouns must stay
quiet (false-alarm rate within alpha plus binomial slack), 25% verbs mixed into the nouns
must be flagged, and a float16 round-trip of the current vectors (which zeroes the dead
dimensions) must not change any decision.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from drift_monitor.drift import compare
from drift_scenarios import binomial_upper

pytestmark = pytest.mark.statistical

TRIALS = 100


@pytest.fixture(scope="module")
def pools(shared_data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    return (
        np.load(shared_data_dir / "wordnet_noun_minilm384.npy"),
        np.load(shared_data_dir / "wordnet_verb_minilm384.npy"),
    )


def test_noun_splits_stay_quiet_and_float16_changes_nothing(
    pools: tuple[np.ndarray, np.ndarray],
) -> None:
    nouns, _ = pools
    alarms = 0
    for i in range(TRIALS):
        perm = np.random.default_rng([31, i]).permutation(len(nouns))
        ref, cur = nouns[perm[:1000]], nouns[perm[1000:1200]]
        report = compare(ref, cur, seed=i, n_permutations=200, n_bootstrap=0)
        alarms += report.drift_detected
        half = cur.astype(np.float16).astype(np.float32)
        rounded = compare(ref, half, seed=i, n_permutations=200, n_bootstrap=0)
        assert rounded.drift_detected == report.drift_detected, f"trial {i}"
        assert rounded.quality["reduced_precision"]
    rate = alarms / TRIALS
    print(f"real nouns, disjoint splits: FPR {rate:.2f}")
    assert rate <= binomial_upper(0.05, TRIALS)


def test_quarter_verbs_in_nouns_is_flagged_at_n_200(pools: tuple[np.ndarray, np.ndarray]) -> None:
    nouns, verbs = pools
    hits = 0
    for i in range(TRIALS):
        rng = np.random.default_rng([32, i])
        perm = rng.permutation(len(nouns))
        cur = np.concatenate([nouns[perm[1000:1150]], verbs[rng.permutation(len(verbs))[:50]]])
        hits += compare(
            nouns[perm[:1000]], cur, seed=i, n_permutations=200, n_bootstrap=0
        ).drift_detected
    rate = hits / TRIALS
    print(f"real nouns + 25% verbs, n=200: power {rate:.2f}")
    assert rate >= 0.85
