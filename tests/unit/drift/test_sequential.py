"""The sequential monitor: calibrated bets, e-CUSUM floors, instant pages, recovery, budget."""

from __future__ import annotations

import math

import numpy as np
import pytest
from drift_monitor.drift import sequential as sq
from scipy import stats


def unit_rows(n: int, d: int = 16, *, shift: float = 0.0, seed: int = 0) -> np.ndarray:
    """Anisotropic unit vectors (like embeddings); ``shift`` moves mass into a direction the
    baseline barely uses, i.e. off its support."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * np.linspace(1.0, 0.05, d)
    x[:, -1] += shift
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def fitted(seed: int = 0, n: int = 3000) -> tuple[sq.Reference, sq.MonitorState]:
    reference = sq.fit_reference(unit_rows(n, seed=seed), seed, fit_size=1000)
    return reference, sq.MonitorState().with_calibration(reference.calibration_scores())


def test_budget_splits_one_false_page_per_interval():
    budget = sq.Budget(365, 60)
    assert budget.runs == pytest.approx(365 * 24)
    assert budget.threshold == pytest.approx(2 * 365 * 24)
    assert budget.instant_alpha == pytest.approx(1 / (2 * 365 * 24))
    # a faster schedule raises the evidence threshold and lowers the instant level
    fast = sq.Budget(365, 15)
    assert fast.threshold == pytest.approx(4 * budget.threshold)
    assert fast.instant_alpha == pytest.approx(budget.instant_alpha / 4)
    assert sq.Budget(7, 60).threshold < budget.threshold


def test_bounds_cover_the_null_win_rate_as_the_beta_law_says():
    """Over many calibration draws, a bet's true null win rate exceeds its bound rarely."""
    rng = np.random.default_rng(1)
    n, exceed, trials = 500, 0, 400
    delta = sq.CALIBRATION_RISK / len(sq.BETS)
    for _ in range(trials):
        scores = rng.normal(size=n)  # calibration scores from a known law
        bets = sq.calibrate(scores)
        high = next(b for b in bets if b.bet.side == "high" and b.bet.q == 0.05)
        true_rate = float(stats.norm.sf(high.cut))  # P(new score > cut)
        exceed += true_rate > high.bound
    # expected delta * trials = 0.0077 * 400 ~ 3; a 99.9 % binomial bound
    assert exceed <= stats.binom.ppf(0.999, trials, delta)


def test_bets_are_e_values_under_the_null():
    """E[e | R, C] <= 1 when the bound holds: the mean log-growth on null data is negative."""
    reference, state = fitted()
    bets = sq.calibrate(state.calibration)
    null = reference.score(unit_rows(20_000, seed=9))
    for bet in bets:
        wins = int(np.count_nonzero(bet.wins(null)))
        # e-value's sample mean over null vectors stays near or below 1
        lam = bet.stake
        e_mean = (1 - lam) + lam * (wins / null.shape[0]) / bet.bound if lam > 0 else 1.0
        assert e_mean <= 1.0 + 3 * math.sqrt(lam**2 / bet.bound / null.shape[0]) + 1e-9


def test_quiet_traffic_builds_no_credit_and_a_later_shift_still_pages():
    reference, state = fitted()
    budget = sq.Budget(365, 60)
    for i in range(200):  # quiet: evidence stays at its floor
        state = sq.step(
            state, reference.score(unit_rows(120, seed=100 + i)), budget=budget, window_fires=False
        ).state
    assert state.log_mixture < 0.25 * budget.log_threshold
    assert np.all(np.maximum(state.log_evidence, 0) < budget.log_threshold)
    runs_to_page = None
    for i in range(48):
        result = sq.step(
            state,
            reference.score(unit_rows(120, shift=2.0, seed=500 + i)),
            budget=budget,
            window_fires=False,
        )
        state = result.state
        if result.triggered:
            runs_to_page = i + 1
            break
    assert runs_to_page == 1  # an obvious change: the first run that sees it


def test_small_persistent_shift_pages_later_and_once():
    reference, state = fitted()
    budget = sq.Budget(365, 60)
    rng = np.random.default_rng(3)
    triggers = []
    for i in range(72):
        rows = unit_rows(120, seed=700 + i)
        novel = rng.random(120) < 0.25
        rows[novel] = unit_rows(int(novel.sum()), shift=1.0, seed=900 + i)
        result = sq.step(state, reference.score(rows), budget=budget, window_fires=False)
        state = result.state
        triggers += [i] if result.triggered else []
        assert not result.resolved
    assert len(triggers) == 1 and triggers[0] > 0
    assert state.alarm and state.cause == "evidence"


def test_recovery_resolves_after_return_and_not_before():
    reference, state = fitted()
    budget = sq.Budget(365, 60)
    result = sq.step(
        state, reference.score(unit_rows(120, shift=2.0, seed=5)), budget=budget, window_fires=False
    )
    assert result.triggered and result.status == "drift"
    state = result.state
    # still shifted: stays drift
    for i in range(5):
        result = sq.step(
            state,
            reference.score(unit_rows(120, shift=2.0, seed=10 + i)),
            budget=budget,
            window_fires=False,
        )
        state = result.state
        assert result.status == "drift" and not result.resolved
    # back to the baseline: resolves within a few runs, then evidence starts afresh
    for i in range(10):
        result = sq.step(
            state, reference.score(unit_rows(120, seed=40 + i)), budget=budget, window_fires=False
        )
        state = result.state
        if result.resolved:
            break
    assert result.resolved and result.status == "ok"
    assert np.all(state.log_evidence == 0)


def test_instant_window_page_resolves_when_the_window_is_quiet():
    reference, state = fitted()
    budget = sq.Budget(365, 60)
    quiet = reference.score(unit_rows(120, seed=77))
    first = sq.step(state, quiet, budget=budget, window_fires=True)
    assert first.triggered and first.state.cause == "window"
    held = sq.step(first.state, quiet, budget=budget, window_fires=True)
    assert held.status == "drift" and not held.triggered
    done = sq.step(held.state, quiet, budget=budget, window_fires=False)
    assert done.resolved


def test_no_vectors_changes_nothing_and_state_round_trips():
    reference, state = fitted()
    budget = sq.Budget(365, 60)
    state = sq.step(
        state, reference.score(unit_rows(120, shift=0.5, seed=2)), budget=budget, window_fires=False
    ).state
    same = sq.step(state, np.zeros(0), budget=budget, window_fires=False).state
    assert np.array_equal(np.maximum(same.log_evidence, 0), np.maximum(state.log_evidence, 0))
    doc = same.to_document()
    back = sq.MonitorState.from_document(doc, same.calibration.astype(np.float32).tobytes())
    assert np.allclose(back.log_evidence, same.log_evidence)
    assert back.alarm == same.alarm and back.total_scored == same.total_scored
    # a document written with other bets starts the evidence afresh
    stale = sq.MonitorState.from_document({**doc, "bets": ["old"]}, b"")
    assert np.all(stale.log_evidence == 0)


def test_novel_rows_are_reported_most_novel_first():
    reference, state = fitted()
    rows = unit_rows(100, seed=4)
    rows[[7, 42]] = unit_rows(2, shift=3.0, seed=8)
    result = sq.step(state, reference.score(rows), budget=sq.Budget(365, 60), window_fires=False)
    assert {7, 42} <= set(result.novel_rows)
    scores = reference.score(rows)
    ordered = [scores[i] for i in result.novel_rows]
    assert ordered == sorted(ordered, reverse=True)


def test_interval_estimate_is_smoothed_and_clamped():
    assert sq.next_interval(None, None, default=60) == 60
    assert sq.next_interval(None, 15, default=60) == 15
    assert sq.next_interval(60, 15, default=60) == pytest.approx(51)
    assert sq.next_interval(None, 0.01, default=60) == sq.MIN_INTERVAL_MINUTES
    assert sq.next_interval(None, 10_000, default=60) == sq.MAX_INTERVAL_MINUTES
