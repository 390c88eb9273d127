"""The sequential monitor: calibrated bets, e-CUSUM floors, instant pages, recovery, budget."""

from __future__ import annotations

import json
import math
from dataclasses import replace

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


def obvious_page(
    reference: sq.Reference, state: sq.MonitorState, budget: sq.Budget
) -> sq.MonitorState:
    """The state after a run of vectors far off the baseline's support: paged at once."""
    result = sq.step(
        state, reference.score(unit_rows(120, shift=2.0, seed=5)), budget=budget, window_fires=False
    )
    assert result.triggered
    return result.state


def quiet_until_resolved(
    reference: sq.Reference, state: sq.MonitorState, budget: sq.Budget, runs: int = 10
) -> tuple[sq.Step, int]:
    """Baseline-like runs until the page resolves, at most ``runs``: the last step and how many
    runs came before it. Every run that does not resolve must leave the page open."""
    for i in range(runs):
        result = sq.step(
            state, reference.score(unit_rows(120, seed=40 + i)), budget=budget, window_fires=False
        )
        if result.resolved:
            return result, i
        assert result.status == "drift"
        state = result.state
    return result, runs


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
    delta = sq.risk_per_cut()
    # 5 novelty cuts, 3 shift cuts per horizon
    assert delta == pytest.approx(sq.CALIBRATION_RISK / (5 + 3 * len(sq.SHIFT_HORIZONS)))
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
    result, _ = quiet_until_resolved(reference, state, budget)
    assert result.resolved and result.status == "ok"
    assert np.all(result.state.log_evidence == 0)


def test_a_page_stays_open_while_the_evidence_grows_though_the_watched_bet_looks_recovered():
    """The watched bet can look like the baseline again while the change goes on in a form
    other bets see (its own direction re-estimated, a small shift's noisy share, or here: new
    vectors give way to vectors more typical than any baseline one); the page stays open while
    the evidence keeps growing, and resolves once it has fallen 100-fold from its peak."""
    reference, state = fitted()
    budget = sq.Budget(365, 60)
    rng = np.random.default_rng(3)
    for i in range(72):  # a quarter of the traffic off the baseline's support, until paged
        rows = unit_rows(120, seed=700 + i)
        novel = rng.random(120) < 0.25
        rows[novel] = unit_rows(int(novel.sum()), shift=1.0, seed=900 + i)
        result = sq.step(state, reference.score(rows), budget=budget, window_fires=False)
        state = result.state
        if result.triggered:
            break
    assert result.triggered and state.recovery_bet is not None
    assert sq.BETS[state.recovery_bet].side == "high"
    assert state.peak_log == pytest.approx(state.log_mixture)
    packed = np.full(120, 0.5 * state.calibration[0])  # the high bets lose, the low ones win
    for _ in range(3):
        result = sq.step(state, packed, budget=budget, window_fires=False)
        state = result.state
        assert result.status == "drift" and not result.resolved
        assert state.peak_log == pytest.approx(state.log_mixture)  # still growing
    # the watched bet alone would have resolved
    assert state.recovery_log >= math.log(sq.RECOVERY_EVIDENCE)
    for _ in range(24):  # baseline-like traffic again
        quiet = rng.choice(state.calibration, 120)
        result = sq.step(state, quiet, budget=budget, window_fires=False)
        state = result.state
        if result.resolved:
            break
    assert result.resolved
    assert state.peak_log == 0.0 and state.recovery_bet is None


def test_a_page_whose_watched_bet_rose_little_resolves_once_the_evidence_lost_a_threshold():
    """When the shift raised the watched bet's rate only a little (a small share along a shift
    direction), its reverse test takes long; the page also resolves once the evidence has
    fallen from its peak by as much as it takes to page."""
    reference, state = fitted()
    budget = sq.Budget(365, 60)
    paged = obvious_page(reference, state, budget)
    assert paged.recovery_bet is not None
    watched = sq.calibrate(paged.calibration)[paged.recovery_bet]
    # a watched rate 1 % above the baseline's: its test gains about 0.01 nats a run
    state = replace(paged, recovery_rate=watched.rate0 * 1.01)
    result, i = quiet_until_resolved(reference, state, budget)
    assert result.resolved
    # the watched bet's test alone could not have passed yet: at most this much per loss
    per_loss = math.log((1 - watched.rate0) / (1 - watched.rate0 * 1.01))
    assert 120 * (i + 1) * per_loss < math.log(sq.RECOVERY_EVIDENCE)


def test_a_window_page_while_the_evidence_was_building_resolves_when_the_bet_recovers():
    """The window's tests page while one bet's evidence is past the freeze level but the
    mixture's is far below 100: the page cannot wait for a 100-fold fall; back below the
    freeze level, the watched bet's recovery resolves it."""
    reference, state = fitted()
    budget = sq.Budget(365, 60)
    j = next(i for i, b in enumerate(sq.BETS) if b.side == "high" and b.q == 0.05)
    log_evidence = np.zeros(len(sq.BETS))
    log_evidence[j] = 0.45 * budget.log_threshold  # past the freeze level (a quarter)
    wins, scored = np.zeros(len(sq.BETS)), np.zeros(len(sq.BETS))
    wins[j], scored[j] = 30, 100
    state = replace(state, log_evidence=log_evidence, wins=wins, scored=scored)
    quiet = reference.score(unit_rows(120, seed=77))
    first = sq.step(state, quiet, budget=budget, window_fires=True)
    assert first.triggered and first.state.cause == "window"
    assert first.state.recovery_bet == j
    assert first.state.peak_log < math.log(sq.RECOVERY_EVIDENCE)
    result, _ = quiet_until_resolved(reference, first.state, budget)
    assert result.resolved


def test_a_page_opened_before_the_peak_was_kept_resolves_as_before():
    reference, state = fitted()
    budget = sq.Budget(365, 60)
    paged = obvious_page(reference, state, budget)
    doc = json.loads(json.dumps(paged.to_document()))
    del doc["peak_log"]
    loaded = sq.MonitorState.from_document(doc, paged.calibration_blob())
    assert loaded.alarm and loaded.peak_log == math.inf
    result, _ = quiet_until_resolved(reference, loaded, budget)
    assert result.resolved
    # by the watched bet alone, as that version did: a watched rate 1 % above the baseline's
    # does not resolve within a few quiet runs, though the evidence falls at once
    watched = sq.calibrate(loaded.calibration)[loaded.recovery_bet or 0]
    slow = replace(loaded, recovery_rate=watched.rate0 * 1.01)
    result, runs = quiet_until_resolved(reference, slow, budget, runs=3)
    assert not result.resolved and runs == 3


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


# --- shift bets: a small share of traffic inside the baseline's support that moves the mean ---


def mean_shifted_rows(n: int, share: float, seed: int) -> np.ndarray:
    """Baseline-like rows where a ``share`` comes from the same law pulled along the baseline's
    *largest* axis: inside its support (no novelty), but the mean moves."""
    rng = np.random.default_rng(seed)
    rows = unit_rows(n, seed=seed)
    moved = rng.random(n) < share
    if moved.any():
        x = rng.normal(size=(int(moved.sum()), 16)) * np.linspace(1.0, 0.05, 16)
        x[:, 0] = np.abs(x[:, 0]) + 0.8
        rows[moved] = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return rows


def monitor_run(reference, state, basis, rows, budget, *, with_shift=True):
    shift = sq.shift_run(state, basis, rows) if with_shift else None
    result = sq.step(state, reference.score(rows), budget=budget, window_fires=False, shift=shift)
    return result, sq.observe_shift(result.state, basis, reference.fit, rows)


def test_shift_basis_keeps_its_calibration_rows_out_of_the_mean():
    reference, _ = fitted(n=4000)
    basis = sq.shift_basis(reference)
    assert basis is not None
    rows = basis.calibration.shape[0]
    assert rows == reference.calibration.shape[0] // 2
    assert basis.calibration.dtype == np.float16
    rest = np.concatenate([reference.fit, reference.calibration[:-rows]]).astype(np.float64)
    assert np.allclose(basis.mean, rest.mean(axis=0))
    assert np.allclose(basis.calibration, reference.calibration[-rows:], atol=1e-3)
    # too small a calibration part keeps no shift bets
    assert sq.shift_basis(sq.fit_reference(unit_rows(150), 0, fit_size=100)) is None


def _ledoit_wolf_by_definition(x: np.ndarray) -> float:
    """The intensity written out as in Ledoit & Wolf (2004), with ‖A‖² = tr(A Aᵀ) / d."""
    x = x - x.mean(axis=0)
    n, d = x.shape
    s = x.T @ x / n
    m = np.trace(s) / d
    delta2 = np.sum((s - m * np.eye(d)) ** 2) / d
    b2 = sum(np.sum((np.outer(row, row) - s) ** 2) / d for row in x) / n**2
    return float(min(b2, delta2) / delta2)


def test_ledoit_wolf_shrinkage_matches_its_definition_and_follows_the_sample_size():
    rng = np.random.default_rng(3)
    scales = np.linspace(3.0, 0.2, 12)
    for n in (8, 40, 400):  # fewer, about as many and many more rows than dimensions
        x = rng.normal(size=(n, 12)) * scales
        centred = x - x.mean(axis=0)
        assert sq.ledoit_wolf_shrinkage(centred) == pytest.approx(_ledoit_wolf_by_definition(x))
    # the n × n route (d > n) gives the same intensity as the d × d one
    wide = rng.normal(size=(15, 40)) * np.linspace(2.0, 0.5, 40)
    wide -= wide.mean(axis=0)
    assert sq.ledoit_wolf_shrinkage(wide) == pytest.approx(_ledoit_wolf_by_definition(wide))
    # more rows: less of S's anisotropy is noise, so less shrinkage
    few, many = (rng.normal(size=(n, 12)) * scales for n in (30, 3000))
    rho_few = sq.ledoit_wolf_shrinkage(few - few.mean(axis=0))
    rho_many = sq.ledoit_wolf_shrinkage(many - many.mean(axis=0))
    assert 0.0 < rho_many < 0.05 < rho_few <= 1.0
    # an isotropic sample is all noise: shrink fully (the direction is then m - μ itself)
    iso = rng.normal(size=(50, 12))
    assert sq.ledoit_wolf_shrinkage(iso - iso.mean(axis=0)) > 0.9
    assert sq.ledoit_wolf_shrinkage(np.zeros((10, 4))) == 1.0


def test_shift_direction_is_the_shrunk_discriminant_in_both_dimension_regimes():
    rng = np.random.default_rng(0)
    fit = rng.normal(size=(50, 8)) * np.linspace(2.0, 0.5, 8)
    mean, moved = np.zeros(8), np.ones(8)
    x = fit - fit.mean(axis=0)
    rho = _ledoit_wolf_by_definition(fit)
    assert 0.0 < rho < 1.0
    covariance = (1 - rho) * x.T @ x / 50 + rho * float((x * x).sum()) / x.size * np.eye(8)
    expected = np.linalg.solve(covariance, moved)
    w = sq.shift_direction(fit, mean, moved)
    assert w is not None
    assert np.allclose(w, expected / np.linalg.norm(expected))
    # more dimensions than rows: the Woodbury form gives the same direction
    wide = rng.normal(size=(20, 60)) * np.linspace(3.0, 0.3, 60)
    xw = wide - wide.mean(axis=0)
    rho = _ledoit_wolf_by_definition(wide)
    assert 0.0 < rho < 1.0
    covariance = (1 - rho) * xw.T @ xw / 20 + rho * float((xw * xw).sum()) / xw.size * np.eye(60)
    target = rng.normal(size=60)
    direct = np.linalg.solve(covariance, target)
    w = sq.shift_direction(wide, np.zeros(60), target)
    assert w is not None and np.allclose(w, direct / np.linalg.norm(direct))
    # an isotropic baseline: the direction is the mean's own move
    assert np.allclose(sq.shift_direction(np.zeros((10, 8)), mean, moved), moved / np.sqrt(8))
    assert sq.shift_direction(fit, mean, mean) is None  # the stream did not move


def test_shift_bets_are_e_values_along_any_direction_chosen_without_their_rows():
    """For a direction that does not depend on the shift calibration rows, each shift bet's null
    win rate stays under its bound, so its e-value has mean at most 1."""
    reference, state = fitted(n=6000)
    basis = sq.shift_basis(reference)
    assert basis is not None
    null = unit_rows(40_000, seed=21)
    rng = np.random.default_rng(5)
    for index in (1, 7):
        w = rng.normal(size=16)
        state = replace_direction(state, w / np.linalg.norm(w), index)
        runs = sq.shift_run(state, basis, null)
        assert runs is not None and len(runs) == len(sq.SHIFT_HORIZONS)
        run = runs[0]
        assert run is not None and run.index == index and runs[1] is None
        bets = [b for b in sq.calibrate(state.calibration, runs) if b.bet.side == "shift"]
        assert len(bets) == len(sq.SHIFT_BETS)
        bets = [b for b in bets if b.bet.horizon == 0]
        for bet in bets:
            rate = float(np.mean(bet.wins(run.projections)))
            assert rate <= bet.bound + 3 * math.sqrt(bet.bound / null.shape[0])
            assert bet.rate0 == pytest.approx(bet.bet.q, abs=1e-3)
    # later directions spend less risk: their bounds are wider
    first = sq.calibrate(state.calibration, [sq.ShiftRun(np.zeros(0), run.calibration, 1)])
    later = sq.calibrate(state.calibration, [sq.ShiftRun(np.zeros(0), run.calibration, 50)])
    assert all(
        b.bound < c.bound
        for b, c in zip(first, later, strict=True)
        if b.bet.side == "shift" and b.bet.horizon == 0
    )


def replace_direction(state: sq.MonitorState, w: np.ndarray, index: int) -> sq.MonitorState:
    from dataclasses import replace

    track = sq.ShiftTrack(total=np.zeros(w.shape), direction=w, index=index)
    idle = tuple(sq.ShiftTrack(total=np.zeros(w.shape)) for _ in sq.SHIFT_HORIZONS[1:])
    return replace(state, shift=(track, *idle))


def test_a_mixture_inside_the_support_pages_through_the_shift_bets_only():
    reference, state = fitted(n=8000)
    basis = sq.shift_basis(reference)
    budget = sq.Budget(365, 60)
    plain = state
    paged_at = paged_plain_at = None
    for i in range(72):
        rows = mean_shifted_rows(120, 0.20, seed=3000 + i)
        result, state = monitor_run(reference, state, basis, rows, budget)
        plain_result, plain = monitor_run(reference, plain, basis, rows, budget, with_shift=False)
        if result.triggered and paged_at is None:
            paged_at = i + 1
            assert result.best_bet.startswith("shift:")
        if plain_result.triggered and paged_plain_at is None:
            paged_plain_at = i + 1
    assert paged_at is not None and paged_at <= 48, paged_at
    assert paged_plain_at is None or paged_plain_at > paged_at
    assert all(t.index >= 1 for t in state.shift)
    assert state.shift_count == state.total_scored
    # the directions found point along the axis the mixture pulled
    for track in state.shift:
        assert track.direction is not None and track.direction[0] > 0.5


def test_quiet_traffic_moves_no_shift_evidence_and_the_state_round_trips():
    reference, state = fitted(n=6000)
    basis = sq.shift_basis(reference)
    budget = sq.Budget(365, 60)
    for i in range(60):
        result, state = monitor_run(reference, state, basis, unit_rows(120, seed=4000 + i), budget)
        assert not result.triggered
    shift = np.array([b.side == "shift" for b in sq.BETS])
    assert all(t.index >= 2 for t in state.shift)
    assert np.max(state.log_evidence[shift]) < 0.25 * budget.log_threshold
    back = sq.MonitorState.from_document(state.to_document(), state.calibration_blob())
    assert back.shift_count == state.shift_count
    assert len(back.shift) == len(state.shift) == len(sq.SHIFT_HORIZONS)
    for got, want in zip(back.shift, state.shift, strict=True):
        assert (got.index, got.updated_at) == (want.index, want.updated_at)
        assert got.weight == pytest.approx(want.weight)
        assert np.array_equal(got.total, want.total)
        assert got.direction is not None and want.direction is not None
        assert np.array_equal(got.direction, want.direction)
    assert np.allclose(back.calibration, state.calibration, rtol=1e-6)
    # a new baseline starts the direction afresh but keeps the evidence
    refit = back.with_calibration(back.calibration)
    assert refit.shift == () and refit.shift_count == 0
    assert np.array_equal(refit.log_evidence, back.log_evidence)


def test_a_group_of_repeats_is_one_bet_with_the_null_expectation_kept():
    """A group of ``m`` identical rows loses what ``m`` losses would, wins less than ``m`` wins
    would, and its e-value still has expectation 1 at the bound rate."""
    _, state = fitted()
    bet = next(b for b in sq.calibrate(state.calibration) if b.stake > 0)
    assert bet.log_e_grouped(np.array([1]), 3) == pytest.approx(bet.log_e(1, 3))
    for m in (2, 5, 30):
        grouped = bet.log_e_grouped(np.array([m]), 0)
        assert grouped < bet.log_e(m, 0)
        lost = bet.log_e(0, m)
        assert bet.bound * math.exp(grouped) + (1 - bet.bound) * math.exp(lost) == pytest.approx(1)


def test_repeats_of_groups_identical_rows_with_stable_digests():
    rows = unit_rows(5, seed=4)
    run = np.concatenate([rows, rows[:2], rows[:1]])
    repeats = sq.repeats_of(run)
    assert len(repeats.keys) == 5
    assert repeats.groups[5] == repeats.groups[0] == repeats.groups[7]
    assert repeats.groups[6] == repeats.groups[1]
    assert sorted(repeats.sizes.tolist()) == [1, 1, 1, 2, 3]
    # the largest group first; single rows are not remembered
    assert repeats.repeated_keys() == (
        repeats.keys[repeats.groups[0]],
        repeats.keys[repeats.groups[1]],
    )
    assert sq.repeats_of(rows[:1]).keys[0] in repeats.keys


def bursty(n: int, seed: int, share: float = 0.5) -> np.ndarray:
    """``n`` baseline-like rows of which ``share`` repeat an earlier row of the same run."""
    rng = np.random.default_rng(seed)
    rows = unit_rows(n, seed=seed)
    for i in np.flatnonzero(rng.random(n) < share):
        if i > 0:
            rows[i] = rows[rng.integers(max(0, i - 20), i)]
    return rows


def test_bursts_of_repeats_build_no_evidence_but_a_returning_vector_pages():
    """Stationary traffic in which half the rows repeat a recent one stays far below the
    threshold when each burst is one bet (counted row by row, the same runs build much more);
    one off-support vector taking a fifth of the traffic run after run still pages within two
    runs, because a vector the previous run held twice bets per row again."""
    reference, start = fitted()
    budget = sq.Budget(365, 60)
    grouped, rowwise = start, start
    top_grouped = top_rowwise = 0.0
    for i in range(150):
        rows = bursty(120, seed=2000 + i)
        scores = reference.score(rows)
        grouped = sq.step(grouped, scores, budget=budget, window_fires=False,
                          repeats=sq.repeats_of(rows)).state  # fmt: skip
        rowwise = sq.step(rowwise, scores, budget=budget, window_fires=False).state
        top_grouped = max(top_grouped, grouped.log_mixture)
        top_rowwise = max(top_rowwise, rowwise.log_mixture)
    print(f"bursty null: max log evidence {top_grouped:.2f} grouped, {top_rowwise:.2f} row-wise")
    assert not grouped.alarm
    assert top_grouped < 0.25 * budget.log_threshold
    assert top_rowwise > top_grouped + math.log(10)

    stuck = unit_rows(1, shift=2.0, seed=77)
    state, forgetful = grouped, grouped
    pages = {"remembered": None, "forgotten": None}
    for i in range(12):
        rows = unit_rows(120, seed=3000 + i)
        rows[::5] = stuck
        scores = reference.score(rows)
        result = sq.step(state, scores, budget=budget, window_fires=False,
                         repeats=sq.repeats_of(rows))  # fmt: skip
        state = result.state
        if result.triggered and pages["remembered"] is None:
            pages["remembered"] = i + 1
        # the same runs without the memory of the previous run's repeats
        forgot = sq.step(replace(forgetful, atoms={}), scores, budget=budget,
                         window_fires=False, repeats=sq.repeats_of(rows))  # fmt: skip
        forgetful = forgot.state
        if forgot.triggered and pages["forgotten"] is None:
            pages["forgotten"] = i + 1
    print(f"one vector at a fifth of the traffic: paged after {pages} runs")
    assert pages["remembered"] is not None and pages["remembered"] <= 2
    assert pages["forgotten"] is None or pages["forgotten"] > pages["remembered"]


def test_a_streak_of_repeats_keeps_its_start_and_ends_when_a_run_does_not_repeat_it():
    """``repeated_since`` names the vectors every run has repeated since traffic that ended
    before a window began: popular queries, not a burst inside the window."""
    reference, state = fitted()
    budget = sq.Budget(365, 60)
    rows = unit_rows(40, seed=5)
    popular, burst = rows[:1], rows[1:2]

    def run(state: sq.MonitorState, extra: list[np.ndarray], until: float) -> sq.MonitorState:
        batch = np.concatenate([unit_rows(40, seed=int(until)), *extra])
        return sq.step(state, reference.score(batch), budget=budget, window_fires=False,
                       repeats=sq.repeats_of(batch, until=until)).state  # fmt: skip

    key_popular = sq.repeats_of(popular).keys[0]
    key_burst = sq.repeats_of(burst).keys[0]
    state = run(state, [popular, popular], until=3600.0)
    state = run(state, [popular, popular, burst, burst], until=7200.0)
    assert state.atoms == {key_popular: 3600.0, key_burst: 7200.0}
    assert sq.repeated_since(state, 3600.0) == (key_popular,)
    assert set(sq.repeated_since(state, 7200.0)) == {key_popular, key_burst}
    state = run(state, [popular, popular], until=10800.0)  # the burst is over
    assert state.atoms == {key_popular: 3600.0}
    same = sq.step(state, np.zeros(0), budget=budget, window_fires=False,
                   repeats=sq.repeats_of(np.zeros((0, 16)), until=14400.0)).state  # fmt: skip
    assert same.atoms == state.atoms  # a run without traffic does not break a streak
    restored = sq.MonitorState.from_document(state.to_document(), state.calibration_blob())
    assert restored.atoms == state.atoms
    # without the traffic's end the streak start is unknown: never "before" a window, and the
    # document stays plain JSON
    pair = np.concatenate([burst, burst])
    unknown = sq.step(state, reference.score(pair), budget=budget, window_fires=False,
                      repeats=sq.repeats_of(pair)).state  # fmt: skip
    assert unknown.atoms == {key_burst: math.inf}
    assert sq.repeated_since(unknown, 1e12) == ()
    document = json.loads(json.dumps(unknown.to_document(), allow_nan=False))
    assert sq.MonitorState.from_document(document, b"").atoms == {key_burst: math.inf}


def test_a_score_must_clear_its_cut_by_more_than_rounding_to_win() -> None:
    """A duplicate of the calibration vector at the cut, scored in another batch, lands a few
    units in the seventh digit from the cut; it ties instead of winning (on either side)."""
    c = np.sort(np.random.default_rng(4).uniform(0.5, 2.0, size=999))
    high = sq._calibrated(sq.Bet("high", 0.05, 0.15), c, 0.01)
    low = sq._calibrated(sq.Bet("low", 0.2, 0.3), c, 0.01)
    assert high.margin == pytest.approx(1e-4 * c.max())
    nudge = np.array([1e-7, -1e-7]) * high.cut
    assert not high.wins(high.cut + nudge).any()
    assert not low.wins(low.cut + nudge).any()
    assert high.wins(np.array([high.cut + 2 * high.margin])).all()
    assert low.wins(np.array([low.cut - 2 * low.margin])).all()
