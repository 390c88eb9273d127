"""One comparison each on the real embeddings (../shared/data; skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from drift_monitor.drift import compare


@pytest.fixture(scope="module")
def nouns_verbs(shared_data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    return (
        np.load(shared_data_dir / "wordnet_noun_minilm384.npy"),
        np.load(shared_data_dir / "wordnet_verb_minilm384.npy"),
    )


def test_real_embeddings_split_float16_and_topic_shift(
    nouns_verbs: tuple[np.ndarray, np.ndarray],
) -> None:
    nouns, verbs = nouns_verbs
    perm = np.random.default_rng(0).permutation(len(nouns))
    ref, cur = nouns[perm[:1000]], nouns[perm[1000:1200]]
    quiet = compare(ref, cur, n_bootstrap=50)
    assert not quiet.drift_detected
    rounded = compare(ref, cur.astype(np.float16).astype(np.float32), n_bootstrap=50)
    assert not rounded.drift_detected
    assert rounded.quality["reduced_precision"]
    assert len(rounded.quality["dead_dimensions_zeroed"]) >= 2
    # Dead dimensions are excluded from the KL mean, so rounding barely moves the headline.
    assert abs(rounded.kl_divergence - quiet.kl_divergence) < 0.005
    verbs_in = np.concatenate([cur[:150], verbs[:50]])
    shifted = compare(ref, verbs_in, n_bootstrap=50)
    assert shifted.drift_detected and shifted.tests["mmd"].drift
