"""Clumping of traffic in time: measured on the baseline, discounted from runs and windows."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import numpy as np
import pytest
from drift_monitor.drift import dispersion as dp
from drift_monitor.drift import sequential as sq
from scipy import stats


def exchangeable(n: int, d: int = 24, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) * np.linspace(2.0, 0.2, d)


def clumped(n: int, blocks: int, share: float, d: int = 24, seed: int = 0) -> np.ndarray:
    """Rows in time order; in each block one of 10 topics makes up ``share`` of the rows."""
    rng = np.random.default_rng(seed)
    topics = rng.normal(size=(10, d)) * 2.0
    x = exchangeable(n, d, seed + 1)
    edges = np.linspace(0, n, blocks + 1).astype(int)
    for a, b in itertools.pairwise(edges):
        hot = rng.random(b - a) < share
        x[a:b][hot] += topics[rng.integers(10)]
    return x


def test_exchangeable_rows_get_no_discount():
    # Over 200 seeds F stays near 1 and within the margin (F ~ F(B-1, n-B) along each of
    # 8 directions: the largest of 8 lies 3 sd above 1 in about 1-2 % of samples).
    excess = [dp.block_dispersion(exchangeable(6000, seed=s), 120) for s in range(200)]
    f = np.array([e.statistic for e in excess])
    assert 1.0 < np.median(f) < 1.0 + 2 * math.sqrt(2 / 119)
    discounted = sum(e.excess > 0 for e in excess)
    assert discounted <= stats.binom.ppf(0.999, 200, 0.03)
    # a null excess at a coarse scale weighs more per row, but stays rare and small
    assert sum(e.factor(200) > 1.2 for e in excess) <= stats.binom.ppf(0.999, 200, 0.01)
    assert all(e.factor(200) < 2.0 for e in excess)


def test_clumped_rows_are_measured_and_discounted_by_run_size():
    x = clumped(6000, 120, 0.3)
    d = dp.block_dispersion(x, 120)
    assert d.statistic > 3.0 and d.blocks == 120 and d.block_rows == 50
    coarse = len(dp.scales(120)) - 1 if d.scale > 1 else 0
    assert d.excess == pytest.approx(d.statistic - dp.margin(120 // d.scale, coarse))
    assert dp.margin(120) == pytest.approx(1 + 3 * math.sqrt(2 / 119))
    # phi(n) = 1 + (F - 1 - margin) n / n_b: a run of one block's size, of twice it
    assert d.factor(50) == pytest.approx(1 + d.excess)
    assert d.factor(100) == pytest.approx(1 + 2 * d.excess)
    assert d.factor(0) == 1.0
    # the same rows shuffled in time are not clumped
    shuffled = x[np.random.default_rng(1).permutation(len(x))]
    assert dp.block_dispersion(shuffled, 120).excess == 0.0


def test_a_clump_that_lasts_many_blocks_is_measured_at_its_own_scale():
    # a weekend-like mix: hourly blocks over 7 days; on the last 2 days one topic makes up
    # 15 % of the rows, on the others 4 %: small hour by hour, large summed over 48 hours
    rng = np.random.default_rng(5)
    n, blocks, d = 16_800, 168, 24
    x = exchangeable(n, d, seed=6)
    topic = rng.normal(size=d) * 2.0
    block = np.arange(n) * blocks // n
    share = np.where(block // 24 >= 5, 0.15, 0.04)
    x[rng.random(n) < share] += topic
    got = dp.block_dispersion(x, blocks)
    assert got.scale >= 8 and got.blocks == blocks and got.block_rows == 100
    # hour by hour (scale 1, a direct one-way ANOVA along the topic) the clumping is smaller
    along = (x - x.mean(0)) @ (topic / np.linalg.norm(topic))
    hourly = np.bincount(block, along) ** 2 / np.bincount(block)
    f_hourly = hourly.sum() / (blocks - 1) / along.var()
    assert got.statistic > 3 * f_hourly > 3.0
    assert got.factor(100) > 3 * (1 + (f_hourly - dp.margin(blocks)) * 100 / 100)
    # the same rows in random order: no clumping at any scale
    assert dp.block_dispersion(x[rng.permutation(n)], blocks).excess == 0.0


def test_short_samples_and_constant_rows_are_not_measured():
    assert dp.block_dispersion(exchangeable(100), 50) == dp.Dispersion()  # 5 blocks of 20
    assert dp.block_dispersion(np.ones((2000, 4)), 50) == dp.Dispersion()
    assert dp.block_dispersion(np.zeros((0, 4)), 50) == dp.Dispersion()
    assert dp.Dispersion().factor(10_000) == 1.0


def test_novelty_outcomes_clumped_in_time_are_measured():
    rng = np.random.default_rng(3)
    n, blocks = 8000, 100
    positions = rng.permutation(n)[:6000]  # C's rows, somewhere in the time-ordered sample
    scores = rng.random(6000)
    flat = dp.indicator_dispersion(
        np.stack([scores > 0.8, scores > 0.95, scores < 0.2], 1), positions, n, blocks
    )
    assert flat.blocks == 100 and flat.excess == 0.0 and 0.7 < flat.statistic < 1.6
    # the high-score rows bunched into some blocks of time
    hot = (positions * blocks // n) % 4 == 0
    bunched = np.where(hot, scores**0.3, scores**3)
    got = dp.indicator_dispersion(
        np.stack([bunched > 0.8, bunched > 0.95, bunched < 0.2], 1), positions, n, blocks
    )
    assert got.statistic > 5.0 and got.excess > 3.0


def test_measure_keeps_directions_and_novelty_apart_and_round_trips():
    x = clumped(6000, 120, 0.3)
    reference = sq.fit_reference(x, 0, fit_size=1000)
    assert reference.calibration_index is not None
    np.testing.assert_array_equal(
        x[reference.calibration_index].astype(np.float32), reference.calibration
    )
    scores = reference.score(reference.calibration)
    measured = dp.measure(x, scores, reference.calibration_index, 120)
    assert measured.directions.excess > 1.0
    run = measured.for_run(100)
    assert run.directions == measured.directions.factor(100)
    assert run.novelty == measured.novelty.factor(100)
    assert dp.BaselineDispersion.from_document(measured.to_document()) == measured
    assert dp.BaselineDispersion.from_document(None) == dp.BaselineDispersion()
    assert dp.measure(x, scores, None, 120).novelty == dp.Dispersion()


def test_deflated_level_reads_a_p_value_as_an_inflated_chi_square():
    assert dp.deflated_level(1e-4, 1.0) == 1e-4
    assert dp.deflated_level(1e-4, 0.5) == 1e-4
    for alpha in (0.05, 1e-4, 5.7e-5):
        for phi in (1.5, 4.0, 30.0):
            level = dp.deflated_level(alpha, phi)
            assert level < alpha
            # a p-value at the deflated level, its chi-square divided by phi, is at alpha
            chi2 = stats.chi2.isf(level, 1) / phi
            assert stats.chi2.sf(chi2, 1) == pytest.approx(alpha, rel=1e-6)
    # a complete change (p at the floor of the battery) still clears any practical discount
    assert dp.deflated_level(5.7e-5, 10.0) > 1e-100


def test_a_run_is_tempered_by_its_familys_factor():
    rng = np.random.default_rng(0)
    x = exchangeable(3000, d=16)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    reference = sq.fit_reference(x.astype(np.float32), 0, fit_size=1000)
    state = sq.MonitorState().with_calibration(reference.calibration_scores())
    budget = sq.Budget(365, 60)
    novel = reference.score(rng.normal(size=(100, 16)).astype(np.float32) * 3)
    plain = sq.step(state, novel, budget=budget, window_fires=False)
    phi = dp.RunDispersion(novelty=4.0, directions=2.0)
    tempered = sq.step(state, novel, budget=budget, window_fires=False, overdispersion=phi)
    # no shift bets yet: every bet is a novelty bet, its log e-value a quarter
    np.testing.assert_allclose(tempered.state.log_evidence, plain.state.log_evidence / 4.0)
    with pytest.raises(ValueError, match="at least 1"):
        sq.step(state, novel, budget=budget, window_fires=False,
                overdispersion=dp.RunDispersion(novelty=0.5))  # fmt: skip


def test_block_means_measure_the_clumping_along_any_direction():
    x = clumped(6000, 120, 0.3)
    means = dp.block_means(x, 120)
    assert means is not None and means.means.shape == (120, 24) and means.sizes.sum() == 6000
    rng = np.random.default_rng(2)
    for _ in range(3):
        w = rng.normal(size=24)
        projected = x @ w
        direct = dp.grouped_dispersion(projected, dp.block_of(np.arange(6000), 6000, 120), 120)
        along = means.along(w, float(projected.var()))
        assert along.statistic == pytest.approx(direct.statistic, rel=1e-2)  # float16 means
        assert along.blocks == 120 and along.block_rows == 50
    flat = dp.block_means(exchangeable(6000), 120)
    assert flat is not None
    w = rng.normal(size=24)
    assert flat.along(w, float((exchangeable(6000) @ w).var())).excess == 0.0
    assert dp.block_means(exchangeable(100), 120) is None  # 5 blocks of 20 rows
    # the means of many blocks of wide vectors are capped in bytes by merging blocks
    wide = dp.block_means(np.zeros((40_000, 2048), dtype=np.float32), 10_000)
    assert wide is not None and wide.means.nbytes <= dp.BLOCK_MEANS_BYTES


def test_shift_bets_are_discounted_along_their_own_direction():
    x = clumped(6000, 120, 0.3, d=16)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    reference = sq.fit_reference(x.astype(np.float32), 0, fit_size=1000)
    basis = sq.shift_basis(reference, blocks=dp.block_means(x, 120))
    assert basis is not None and basis.blocks is not None
    state = sq.MonitorState().with_calibration(reference.calibration_scores())
    state = sq.observe_shift(state, basis, reference.fit, x[-600:].astype(np.float32))
    runs = sq.shift_run(state, basis, x[-120:])
    assert runs is not None
    assert all(r is not None and r.clumping.blocks == 120 for r in runs)
    scores = reference.score(x[-120:])
    budget = sq.Budget(365, 60)
    plain = sq.step(state, scores, budget=budget, window_fires=False, shift=runs)
    unmeasured = tuple(r if r is None else replace(r, clumping=dp.Dispersion()) for r in runs)
    same = sq.step(state, scores, budget=budget, window_fires=False, shift=unmeasured)
    shift = np.array([b.side == "shift" for b in sq.BETS])
    factor = np.array([runs[b.horizon].clumping.factor(120) if b.side == "shift" else 1.0
                       for b in sq.BETS])  # fmt: skip
    assert factor.max() > 1.5  # the clumped topics lie along the learnt directions
    np.testing.assert_allclose(plain.state.log_evidence, same.state.log_evidence / factor)
    # the principal directions' factor applies when it is the larger one
    big = dp.RunDispersion(directions=float(factor.max()) * 2)
    larger = sq.step(state, scores, budget=budget, window_fires=False, shift=runs,
                     overdispersion=big)  # fmt: skip
    np.testing.assert_allclose(
        larger.state.log_evidence[shift], same.state.log_evidence[shift] / big.directions
    )
