"""Novelty-rate test: exact exceedance null, novel rows found, report fields, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from drift_monitor.cli import main
from drift_monitor.drift import compare
from drift_monitor.drift.knn import knn_distances
from drift_monitor.drift.novelty import exceedance_sf, novelty_test
from scipy import stats


@pytest.mark.parametrize(("n_cal", "m", "rank"), [(25, 50, 2), (100, 40, 10), (10, 200, 1)])
def test_exceedance_distribution_matches_simulated_ranks(n_cal: int, m: int, rank: int) -> None:
    """P(E >= e) from the closed form equals the frequency over 20000 simulated windows.

    The plain binomial tail with success rate rank / (n_cal + 1) does not (a finite calibration
    set makes the threshold random); the test checks the closed form is the one that matches.
    """
    rng = np.random.default_rng(7)
    sims = 20000
    cal = rng.random((sims, n_cal))
    cur = rng.random((sims, m))
    threshold = -np.sort(-cal, axis=1)[:, rank - 1]
    counts = (cur > threshold[:, None]).sum(axis=1)
    for e in np.unique(np.quantile(counts, [0.5, 0.9, 0.99]).astype(int)):
        exact = exceedance_sf(int(e), n_cal, m, rank)
        freq = float(np.mean(counts >= e))
        # 4 standard errors of a frequency over 20000 draws
        assert abs(exact - freq) <= 4 * np.sqrt(exact * (1 - exact) / sims) + 1e-3, (e, exact)
    assert exceedance_sf(0, n_cal, m, rank) == 1.0
    assert 0.0 < exceedance_sf(m, n_cal, m, rank) < 1e-3


def test_exceedance_tail_is_heavier_than_the_binomial_for_small_calibration() -> None:
    from scipy import stats

    # 10 calibration scores, top one as threshold: binomial(200, 1/11) would call 40
    # exceedances extremely unlikely; with the threshold itself random they are not.
    exact = exceedance_sf(40, 10, 200, 1)
    binomial = float(stats.binom.sf(39, 200, 1 / 11))
    assert exact > 100 * binomial


def _cloud(rng: np.random.Generator, n: int, d: int = 16) -> np.ndarray:
    x = rng.standard_normal((n, d)) * 0.1 + 1.0
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_finds_the_novel_rows_and_reports_their_share() -> None:
    rng = np.random.default_rng(0)
    ref = _cloud(rng, 400)
    cur = _cloud(rng, 200)
    novel = np.array([3, 50, 77, 120, 199, 10, 11, 12, 13, 14])
    away = -np.ones(16) / 4.0  # the opposite direction: nothing in the reference is near
    cur[novel] = away + 0.05 * rng.standard_normal((novel.size, 16))
    result = novelty_test(ref, cur, seed=1)
    assert result.pvalue < 0.01
    assert result.n_novel >= novel.size
    assert {e["row"] for e in result.examples} <= set(novel.tolist())
    assert len(result.examples) == 5
    # the excess share estimates the novel share (5%), up to the null counts' noise
    assert 0.02 <= result.effect_size <= 0.1
    scores = [e["score"] for e in result.examples]
    assert scores == sorted(scores, reverse=True)
    smallest = 1 / (result.n_calibration + 1)
    assert all(0 < e["conformal_p_value"] <= smallest for e in result.examples)


def test_same_distribution_is_quiet_and_p_values_are_never_zero() -> None:
    rng = np.random.default_rng(1)
    result = novelty_test(_cloud(rng, 300), _cloud(rng, 300), seed=2)
    assert result.pvalue > 0.05
    assert abs(result.effect_size) < 0.05
    far = novelty_test(_cloud(rng, 50), -_cloud(rng, 3000), seed=0)
    assert 0.0 < far.pvalue < 1e-10


def test_deterministic_for_a_seed_and_rejects_tiny_inputs() -> None:
    rng = np.random.default_rng(2)
    ref, cur = _cloud(rng, 100), _cloud(rng, 80)
    assert novelty_test(ref, cur, seed=5) == novelty_test(ref, cur, seed=5)
    with pytest.raises(ValueError):
        novelty_test(ref[:1], cur)
    # The smallest windows compare() accepts still get a valid (if powerless) p-value.
    tiny = novelty_test(ref[:2], cur[:2], seed=0)
    assert 0.0 < tiny.pvalue <= 1.0 and tiny.n_fit == 1 and tiny.n_calibration == 1
    assert compare(ref[:2], cur[:2], n_bootstrap=0).tests["novelty"].p_value is not None
    with pytest.raises(ValueError):
        novelty_test(ref, cur, levels=(1.0,))


def test_compare_json_exposes_the_novel_count_and_examples() -> None:
    rng = np.random.default_rng(3)
    ref = _cloud(rng, 300)
    cur = _cloud(rng, 200)
    cur[:30] = -cur[:30]
    out = compare(ref, cur, tests="novelty", n_bootstrap=0).to_dict()
    test = out["tests"]["novelty"]
    json.dumps(out, allow_nan=False)
    assert out["drift_detected"] and test["drift"]
    assert test["n_novel"] >= 30
    assert {e["row"] for e in test["examples"]} <= set(range(30))
    assert test["effect_size"] >= 0.1 and test["effect_threshold"] == 0.02
    assert 0.0 < test["p_value"] <= test["level"]


def test_cli_selects_novelty_by_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(4)
    ref, cur = _cloud(rng, 200), _cloud(rng, 100)
    cur[:20] = -cur[:20]
    np.save(tmp_path / "ref.npy", ref)
    np.save(tmp_path / "cur.npy", cur)
    files = [str(tmp_path / "ref.npy"), str(tmp_path / "cur.npy")]
    assert main(["compare", *files, "--tests", "ad,novelty"]) == 0
    text = capsys.readouterr().out
    assert "novel rows: " in text
    assert main(["compare", *files, "--tests", "novelty", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out["tests"]) == ["novelty"] and out["tests"]["novelty"]["n_novel"] >= 20


def test_windows_of_a_few_distinct_vectors_stay_at_the_level() -> None:
    """Both windows drawn from the same five vectors: every score ties with a calibration
    copy of the same vector. Scored in batches of different sizes, float32 rounding used to
    put a duplicate a hair above its own calibration copy, and the test rejected 12 % of these
    null windows at the 1 % level."""
    rng = np.random.default_rng(31)
    pool = rng.normal(size=(5, 384))
    pool /= np.linalg.norm(pool, axis=1, keepdims=True)
    trials, alpha = 300, 0.01
    rejected = 0
    for t in range(trials):
        ref, cur = pool[rng.integers(0, 5, 50)], pool[rng.integers(0, 5, 50)]
        rejected += novelty_test(ref, cur, seed=t).pvalue <= alpha
    assert rejected <= stats.binom.ppf(0.99, trials, alpha)


def test_an_exact_duplicate_scores_zero_in_any_batch() -> None:
    rng = np.random.default_rng(32)
    ref = np.repeat(rng.normal(size=(7, 384)), 6, axis=0) + 3.0  # a large common offset
    for rows in (1, 7, 42):
        assert np.all(knn_distances(ref, ref[:rows], k=5) == 0.0)
    other = rng.normal(size=(3, 384))
    assert np.all(knn_distances(ref, other, k=5) > 1.0)
    for scale in (1e20, 1e-20):  # squares that overflow or underflow float32
        assert knn_distances(ref * scale, other * scale, k=5) == pytest.approx(
            knn_distances(ref, other, k=5) * scale, rel=1e-5
        )
