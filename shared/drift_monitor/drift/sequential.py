"""Sequential drift monitoring: novelty evidence accumulated across runs, paged on a budget in time.

A scheduled run that re-tests its window at level ``alpha`` pages about ``alpha`` × runs times
on stationary traffic (hourly at 0.05: once a day), and misses a small change that no single
window shows. This module turns the runs into one **monitor** whose false pages are bounded in
*time* and whose evidence *accumulates*:

1. **Novelty scores.** A baseline sample is split at random into a fitting part ``R`` and a
   calibration part ``C``. Every vector is scored by its distance to its ``k``-th nearest
   neighbour in ``R`` (:func:`drift_monitor.drift.knn.knn_distances`); the scores of ``C`` say
   what "usual" looks like.
2. **Bets (e-values), one per vector.** A bet wins when a vector scores above the ``j``-th
   largest calibration score (the baseline's top share ``q ≈ j / (|C| + 1)`` of novelty:
   "more new kinds of vectors than usual") or below the ``j``-th smallest (the low side: "more
   vectors packed inside the reference than usual", e.g. one topic's share growing, or repeated
   vectors). Given ``R`` and ``C``, the chance ``π`` that a baseline-like vector wins is fixed,
   and exactly ``Beta(j, |C| + 1 - j)``-distributed over the draw of ``C`` (order statistics of
   exchangeable scores). The bet pays ``e = 1 - λ + λ 1{win} / π⁺`` with ``π⁺`` the
   ``1 - δ`` quantile of that Beta law, so ``E[e | R, C] <= 1`` unless ``C`` was a
   ``δ``-unlucky draw (``δ`` = :data:`CALIBRATION_RISK` shared over the distinct cuts).
   ``λ = (r - π⁺) / (1 - π⁺)`` is Kelly's stake for an alternative win rate ``r``; the bets
   cover ``r`` from 1.5 ``q`` (a few per cent of the traffic is new) to 0.95 (all of it).
2b. **Shift bets.** A small share of traffic *inside* the baseline's support (verbs mixed into
   nouns) scores like the baseline, but it moves the mean. Part of ``C`` (the shift calibration
   rows, :func:`shift_basis`) is set aside; the rest of the baseline gives its mean ``μ``. For
   each of three horizons (:data:`SHIFT_HORIZONS`) the monitor follows an exponentially weighted
   mean ``m`` of the traffic it scored and, every few hundred vectors, takes the direction
   ``w = (Σ_R + λ I)⁻¹ (m - μ)`` (:func:`shift_direction`). A shift bet wins when a vector's
   projection on ``w`` lies above the shift calibration rows' median (or top 20 %, or top
   5 %). ``w`` depends on past traffic and ``R`` only, never on the shift calibration rows,
   so for each direction the null win rate is again ``Beta(j, n + 1 - j)``-distributed over
   their draw; the ``i``-th direction of a horizon gets the risk ``δ / (i (i + 1))`` of its
   cut, so all its directions together spend one cut's ``δ``.
2c. **Repeats.** Exact repeats within a run (a burst of the same query) win or lose
   together, so they are one bet, not many (:meth:`Calibrated.log_e_grouped`); counted row by
   row, a burst multiplies one lucky win. A vector that the previous run also held more than
   once (one vector taking a share of the traffic run after run, e.g. a client stuck on one
   output) bets once per row again, so it accumulates as fast as any other shift.
3. **e-CUSUM per bet, mixed.** Per run the bet's e-values multiply, and the bet's statistic is
   ``M = e_run × max(M_previous, 1)`` (in logs: a CUSUM floored at 0, so quiet periods build no
   credit). The monitor's evidence is the average of the bets' ``M``. Given ``R`` and ``C``
   the runs' e-values are independent on stationary traffic, so this is an *e-detector*
   (Shin, Ramdas & Rinaldo, "E-detectors: a nonparametric framework for sequential change
   detection", 2023): its average run length to a value ``c`` is at least ``c`` runs, for any
   mixture of bets. Conditioning on the baseline sample is what makes reusing it in every run
   harmless: the bets are calibrated *for that sample*, not on average over samples.

The budget. With ``D = false_alarm_interval_days`` and runs every ``Δ`` minutes there are
``N = D × 1440 / Δ`` runs in the budget. Half of it goes to the evidence (threshold ``c =
2 N``: expected run length to a false page at least ``2 D`` days) and half to an **instant**
check of each window by the two-sample battery at level ``1 / (2 N)``, which pages an obvious
change at the first run that sees it (expected false instant pages at most ``1/2`` per ``D``
days, by linearity of expectation, whatever the dependence between windows). Together: at most
one false page per ``D`` days in expectation.

Honest assumptions. The guarantee needs the stream to be exchangeable with the baseline sample
while nothing changes: real traffic with daily cycles is not (it may then be paged rightly as
"different from its baseline"), nor are bursts of repeated queries (grouped, 2c, which makes
each run's e-value valid when a burst's rows share one outcome); with probability at most ``δ``
per baseline the calibration draw is unlucky and the bound holds only approximately; a rolling
baseline refreshes (a new ``R`` and ``C``) while the evidence carries over, which is fine for
an e-detector as long as each period's bets are calibrated for it. The measurements in
``docs/statistics.md`` check the false-page rate on real streams rather than trust the argument.

Recovery. After a page the monitor watches the bet that saw the shift (the one with the most
evidence, if that evidence is past the freeze level): a reverse CUSUM of the likelihood ratio
"baseline rate ``q``" against "half-way to the rate seen during the shift", resolving when it
reaches :data:`RECOVERY_EVIDENCE` (the recent traffic is 100 times better explained by the
baseline) and the evidence has fallen by the same factor from its peak since the page (or
below the freeze level), or
when the evidence has fallen from its peak by the page threshold itself (the watched bet's test
is slow when the shift raised its rate only a little), in both cases with the window's instant
check quiet. While the shift persists that ratio has negative drift and the evidence keeps
growing, so the status stays ``drift`` without flapping. A page no bet saw (the
window's tests alone) resolves at the first run whose window is quiet.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

from drift_monitor.drift.dispersion import BlockMeans, Dispersion, RunDispersion
from drift_monitor.drift.knn import DEFAULT_K, knn_distances, tie_margin
from drift_monitor.drift.quality import row_groups

FloatArray = npt.NDArray[np.float64]

# Evidence is reported in log10 units: 4 means the traffic since the change point is 10^4
# times better explained by a shift than by the baseline, under the best mixture of bets.
RECOVERY_EVIDENCE = 100.0
# The evidence level (as a share of the log-threshold) above which a rolling baseline does not
# refresh: a shift that is building up evidence must not become its own reference.
FREEZE_SHARE = 0.25
# Chance that the calibration sample makes any bet's null win rate exceed its bound.
CALIBRATION_RISK = 0.05
# Calibration vectors scored per baseline (beside the fitting part): more of them make the
# bounds on the null win rates tighter, hence the bets bolder.
CALIBRATION_VECTORS = 16000
# Schedule interval estimate: clamped to [1 minute, 1 day], smoothed over runs.
# Calibration vectors kept (as float16) for the shift bets: at most this many bytes, so a
# 384-d model keeps about 5,400 and a 1,536-d one about 1,400.
SHIFT_CALIBRATION_BYTES = 4 << 20
SHIFT_MIN_VECTORS = 100
MIN_INTERVAL_MINUTES = 1.0
MAX_INTERVAL_MINUTES = 1440.0
_INTERVAL_SMOOTHING = 0.2
# Smallest ridge of the shift direction, as a share of tr Σ / d.
_MIN_RIDGE = 1e-6


@dataclass(frozen=True)
class Horizon:
    """How one shift direction follows the traffic.

    Attributes
    ----------
    half_life
        Half-life, in vectors, of the exponentially weighted mean of the scored traffic the
        direction points along.
    update
        The direction is re-estimated every this many vectors (once :data:`SHIFT_MIN_VECTORS`
        were seen).
    """

    half_life: int
    update: int


#: The first horizon (about 2,900 vectors' worth of weight) sees a 10 % mixture's direction;
#: the short one (about 720) follows the first hours of a larger shift, while the longer means
#: are still diluted by the traffic before it; the longest (about 11,500) resolves the direction
#: of a 5 % mixture, which the others cannot (its mean moves less than their noise), where
#: traffic is heavy enough to fill it within a day or two.
SHIFT_HORIZONS: tuple[Horizon, ...] = (
    Horizon(1000, 500),
    Horizon(250, 125),
    Horizon(4000, 2000),
)


@dataclass(frozen=True)
class Bet:
    """One fixed bet on the novelty scores.

    Attributes
    ----------
    side
        ``"high"``: wins above the baseline's top ``q`` share of novelty scores (a vector more
        novel than usual); ``"low"``: wins below the bottom ``q`` share (more typical than
        usual); ``"shift"``: wins above the top ``q`` share of the baseline's projections onto
        the shift direction.
    q
        Nominal share of baseline vectors on the winning side.
    rate
        The alternative win rate the stake is sized for (Kelly).
    horizon
        For a shift bet, which of :data:`SHIFT_HORIZONS` its direction follows.
    """

    side: str
    q: float
    rate: float
    horizon: int = 0

    @property
    def name(self) -> str:
        name = f"{self.side}:q={self.q:g}:r={self.rate:g}"
        if self.side == "shift":
            name += f":h={SHIFT_HORIZONS[self.horizon].half_life}"
        return name


NOVELTY_BETS: tuple[Bet, ...] = (
    Bet("high", 0.2, 0.3),
    Bet("high", 0.2, 0.6),
    Bet("high", 0.2, 0.95),
    Bet("high", 0.05, 0.08),
    Bet("high", 0.05, 0.15),
    Bet("high", 0.05, 0.5),
    Bet("high", 0.01, 0.03),
    Bet("high", 0.01, 0.1),
    Bet("high", 0.01, 0.5),
    Bet("low", 0.2, 0.3),
    Bet("low", 0.2, 0.6),
    Bet("low", 0.05, 0.15),
    Bet("low", 0.05, 0.5),
)

#: Bets on the projections onto the shift direction (side ``"shift"``): "more of the traffic
#: than usual lies beyond the baseline's median (top 20 %, top 5 %) along the direction the
#: stream has been moving". They catch a small share of traffic that is *inside* the baseline's
#: support but pulls the mean, which the novelty scores cannot see (e.g. verbs mixed into
#: nouns). The top-5 % bets carry most of that: a mixed-in share lies mostly beyond the
#: baseline's median along its own direction, so it doubles the top 5 % long before it moves
#: the median's share by a few per cent (10 % verbs among nouns: about 0.09 against 0.05 in
#: the top 5 %, 0.54 against 0.5 above the median; 2.5 to 10 times the information per vector).
SHIFT_BETS: tuple[Bet, ...] = tuple(
    Bet("shift", q, rate, horizon)
    for horizon in range(len(SHIFT_HORIZONS))
    for q, rate in (
        (0.5, 0.56),
        (0.5, 0.62),
        (0.5, 0.75),
        (0.2, 0.3),
        (0.2, 0.45),
        (0.05, 0.1),
        (0.05, 0.2),
    )
)

BETS: tuple[Bet, ...] = NOVELTY_BETS + SHIFT_BETS


@dataclass(frozen=True)
class Budget:
    """The false-page budget of one run.

    Attributes
    ----------
    runs
        ``N = false_alarm_interval_days × 1440 / interval_minutes``: runs per budget interval.
    threshold
        ``c = 2 N``: the evidence (as a plain ratio) at which the monitor pages.
    instant_alpha
        ``1 / (2 N)``: the family-wise level of the instant check of one window.
    """

    false_alarm_interval_days: float
    interval_minutes: float

    @property
    def runs(self) -> float:
        return self.false_alarm_interval_days * 1440.0 / self.interval_minutes

    @property
    def threshold(self) -> float:
        return max(2.0 * self.runs, 20.0)

    @property
    def log_threshold(self) -> float:
        return math.log(self.threshold)

    @property
    def instant_alpha(self) -> float:
        return min(0.5 / self.runs, 0.05)


@dataclass(frozen=True)
class Calibrated:
    """A bet made concrete by a calibration sample.

    Attributes
    ----------
    cut
        Score threshold: the ``j``-th largest (high side) or smallest (low side) score of ``C``.
    rate0
        ``j / (|C| + 1)``: the expected null win rate.
    bound
        ``π⁺``: the null win rate's upper ``1 - δ`` quantile, ``Beta(j, |C| + 1 - j)``.
    stake
        ``λ`` (0 when the bet cannot win money: its alternative rate is below ``π⁺``).
    margin
        A score wins only when it clears the cut by this much (``tie_margin`` of ``C``'s
        scores, :mod:`drift_monitor.drift.knn`): rounding must not turn a duplicate of the
        cut's vector into wins.
    """

    bet: Bet
    cut: float
    rate0: float
    bound: float
    stake: float
    margin: float = 0.0

    def wins(self, scores: FloatArray) -> npt.NDArray[np.bool_]:
        if self.bet.side == "low":
            return scores < self.cut - self.margin
        return scores > self.cut + self.margin

    def log_e(self, wins: int, losses: int) -> float:
        if self.stake <= 0.0:
            return 0.0
        lam = self.stake
        return wins * math.log1p(lam * (1.0 / self.bound - 1.0)) + losses * math.log1p(-lam)

    def log_e_grouped(self, win_sizes: npt.NDArray[np.int64], losses: int) -> float:
        """Log e-value of a run in which exact repeats share one bet.

        A group of ``m`` identical rows wins or loses as one, so it is one bet with the stake
        ``λ_m = 1 - (1 - λ)^m``: it loses what ``m`` separate losses would, ``(1 - λ)^m``, and a
        win pays ``(1 - λ)^m + λ_m / π⁺`` instead of ``(1 + λ (1/π⁺ - 1))^m``. Its expectation
        under the null is at most 1 for any ``m``, so a burst of repeated queries cannot
        multiply one lucky win; single rows (``m = 1``) pay exactly as :meth:`log_e`.

        Parameters
        ----------
        win_sizes
            The sizes ``m`` of the winning groups.
        losses
            Rows (not groups) that lost.
        """
        if self.stake <= 0.0:
            return 0.0
        keep = np.log1p(-self.stake) * np.asarray(win_sizes, dtype=np.float64)  # log (1-λ)^m
        paid = np.exp(keep) + (-np.expm1(keep)) / self.bound
        return float(np.sum(np.log(paid))) + losses * math.log1p(-self.stake)


@dataclass(frozen=True)
class ShiftRun:
    """One run's view along the shift direction.

    Attributes
    ----------
    projections
        The arrived vectors' projections onto the direction (the shift bets' scores).
    calibration
        Sorted projections of the shift calibration rows onto the same direction.
    index
        ``i >= 1``: the direction is the ``i``-th estimated since the baseline was fitted.
    clumping
        How clumped in time the baseline is along this direction (its block means' projections
        against the shift calibration rows' variance); a run's shift bets along it are
        discounted by its factor.
    """

    projections: FloatArray
    calibration: FloatArray
    index: int
    clumping: Dispersion = field(default_factory=Dispersion)


def calibrate(
    calibration_scores: FloatArray,
    shift: Sequence[ShiftRun | None] | None = None,
    bets: tuple[Bet, ...] = BETS,
) -> list[Calibrated]:
    """Cut points, null-rate bounds and stakes of ``bets``.

    Bets with the same side and share use the same cut, so they fail together or not at all:
    the risk ``δ`` is shared over the distinct cuts (:func:`risk_per_cut`), not over every bet.
    Novelty bets are cut on the calibration part's novelty scores. Shift bets are cut on the
    shift calibration rows' projections onto this run's direction; the ``i``-th direction of a
    baseline gets the risk ``δ / (i (i + 1))``, so all directions together spend at most the
    ``δ`` of one bet. ``shift`` holds one run per horizon (:func:`shift_run`); a shift bet whose
    horizon has no direction yet stakes nothing.
    """
    delta = risk_per_cut(bets)
    novelty = np.sort(np.asarray(calibration_scores, dtype=np.float64))
    out = []
    for bet in bets:
        run = _run_for(bet, shift)
        if bet.side != "shift":
            out.append(_calibrated(bet, novelty, delta))
        elif run is None:
            out.append(_inactive(bet))
        else:
            share = delta / (run.index * (run.index + 1))
            out.append(_calibrated(bet, run.calibration, share))
    return out


def risk_per_cut(bets: tuple[Bet, ...] = BETS) -> float:
    """``δ`` over the number of distinct cuts ``(side, q, horizon)``: each cut's bound may fail
    with this probability, all bets on that cut fail together, and a union bound covers the
    rest."""
    return CALIBRATION_RISK / len({(bet.side, bet.q, bet.horizon) for bet in bets})


def _run_for(bet: Bet, shift: Sequence[ShiftRun | None] | None) -> ShiftRun | None:
    if bet.side != "shift" or shift is None or bet.horizon >= len(shift):
        return None
    return shift[bet.horizon]


def _inactive(bet: Bet) -> Calibrated:
    return Calibrated(bet, -math.inf if bet.side == "low" else math.inf, 0.0, 1.0, 0.0)


def _calibrated(bet: Bet, c: FloatArray, delta: float) -> Calibrated:
    """``bet`` cut at an order statistic of the sorted sample ``c`` with a ``δ``-risk bound."""
    n = c.shape[0]
    j = math.floor(bet.q * (n + 1))
    if j < 1:
        return _inactive(bet)
    cut = float(c[j - 1]) if bet.side == "low" else float(c[n - j])
    bound = float(stats.beta.ppf(1.0 - delta, j, n + 1 - j))
    stake = max((bet.rate - bound) / (1.0 - bound), 0.0) if bound < 1 else 0.0
    return Calibrated(bet, cut, j / (n + 1), bound, stake, tie_margin(c))


@dataclass(frozen=True)
class Reference:
    """The fitted baseline: the fitting part ``R`` and the calibration part ``C``.

    ``calibration_index`` holds the position of each row of ``C`` in the baseline sample it
    was drawn from (which is in time order), or ``None`` when unknown.
    """

    fit: npt.NDArray[np.float32]
    calibration: npt.NDArray[np.float32]
    k: int = DEFAULT_K
    calibration_index: npt.NDArray[np.intp] | None = None

    def score(self, vectors: npt.ArrayLike) -> FloatArray:
        """Novelty scores of ``vectors``: distance to their ``k``-th neighbour in ``R``."""
        return knn_distances(self.fit, vectors, k=self.k)

    def calibration_scores(self) -> FloatArray:
        """Sorted scores of ``C``."""
        return np.sort(self.score(self.calibration))


def fit_reference(
    sample: npt.ArrayLike, seed: int, *, fit_size: int, k: int = DEFAULT_K
) -> Reference:
    """Split a baseline sample at random into ``R`` (fit) and ``C`` (calibration).

    Parameters
    ----------
    sample
        Baseline vectors, shape ``(n, d)`` with ``n >= 4``.
    seed
        Seeds the split, so the same baseline sample gives the same reference.
    fit_size
        Rows for ``R``: at most this many and at most half the sample; ``C`` gets the rest.
    k
        Neighbour rank of the novelty score.
    """
    data = np.asarray(sample, dtype=np.float32)
    if data.ndim != 2 or data.shape[0] < 4:
        raise ValueError("a baseline sample needs at least 4 vectors")
    order = np.random.default_rng(seed).permutation(data.shape[0])
    size = max(2, min(fit_size, data.shape[0] // 2))
    fit = np.ascontiguousarray(data[order[:size]])
    return Reference(
        fit=fit,
        calibration=np.ascontiguousarray(data[order[size:]]),
        k=k,
        calibration_index=order[size:],
    )


@dataclass(frozen=True)
class ShiftBasis:
    """What the shift bets keep from a baseline sample.

    Attributes
    ----------
    mean
        The baseline mean over the rows that are *not* shift calibration rows (``R`` and the
        rest of ``C``).
    calibration
        The shift calibration rows (float16, a random part of ``C``). The shift direction never
        depends on them, so their projections onto it are a fresh null sample along it.
    blocks
        The baseline sample's means over blocks of time, so that its clumping along a shift
        direction can be measured (:class:`drift_monitor.drift.dispersion.BlockMeans`);
        ``None`` when unknown.
    """

    mean: FloatArray
    calibration: npt.NDArray[np.float16]
    blocks: BlockMeans | None = None


def shift_basis(reference: Reference, *, blocks: BlockMeans | None = None) -> ShiftBasis | None:
    """Set aside up to half of ``C`` (and :data:`SHIFT_CALIBRATION_BYTES`) for the shift bets.

    ``blocks`` (the block means of the sample the reference was drawn from) is kept with them.
    Returns ``None`` when fewer than :data:`SHIFT_MIN_VECTORS` rows could be kept.
    """
    c = reference.calibration
    d = c.shape[1]
    rows = min(c.shape[0] // 2, SHIFT_CALIBRATION_BYTES // (2 * d))
    if rows < SHIFT_MIN_VECTORS:
        return None
    rest = np.concatenate([reference.fit, c[: c.shape[0] - rows]]).astype(np.float64)
    return ShiftBasis(
        mean=rest.mean(axis=0),
        calibration=np.ascontiguousarray(c[-rows:], dtype=np.float16),
        blocks=blocks,
    )


def shift_direction(
    fit: npt.ArrayLike, baseline_mean: FloatArray, stream_mean: npt.ArrayLike
) -> FloatArray | None:
    """Unit direction ``(Σ + λ I)⁻¹ (m - μ)`` the stream's mean moved along.

    ``m`` is the mean of the traffic seen since the baseline was fitted, ``μ`` the baseline mean
    and ``Σ`` the covariance of ``R``: the discriminant direction of a mean shift. ``Σ`` is
    shrunk towards ``(tr Σ / d) I`` by Ledoit and Wolf's intensity ``ρ``
    (:func:`ledoit_wolf_shrinkage`), so ``λ = ρ / (1 - ρ) × tr Σ / d``: a small ``R`` in many
    dimensions gets a large ridge (the direction tends to the plain difference ``m - μ``), a
    large one little (the direction discounts the baseline's high-variance directions, where a
    mixed-in share moves the mean least against the noise). Uses neither the shift
    calibration rows nor any bet outcome, only past traffic and ``R``, so its bets stay
    calibrated. ``None`` when the stream has not moved at all.
    """
    return shift_directions(fit, baseline_mean, np.atleast_2d(stream_mean))[0]


def ledoit_wolf_shrinkage(centred: FloatArray) -> float:
    """Ledoit and Wolf's shrinkage intensity of a sample covariance towards a multiple of ``I``.

    Parameters
    ----------
    centred
        Sample rows ``x_k`` with their mean removed, shape ``(n, d)``; ``S = Σ x_k x_kᵀ / n``.

    Returns
    -------
    float
        ``ρ`` in ``[0, 1]`` such that ``(1 - ρ) S + ρ (tr S / d) I`` estimates the covariance
        with the least expected squared (Frobenius) error to first order, for any ``n`` and
        ``d`` (O. Ledoit and M. Wolf, "A well-conditioned estimator for large-dimensional
        covariance matrices", J. Multivariate Anal. 88, 2004): ``ρ = b² / δ²`` with
        ``δ² = ‖S - m I‖² / d`` how far ``S`` is from isotropic and ``b² = min(δ², Σ ‖x_k x_kᵀ
        - S‖² / (n² d))`` how much of that is sampling noise. ``1`` when ``S`` is already
        isotropic (or zero). Not a test: no null or p-value.
    """
    n, d = centred.shape
    gram = centred @ centred.T / n if d > n else centred.T @ centred / n
    trace = float(np.trace(gram))
    frobenius = float(np.einsum("ij,ij->", gram, gram))  # ‖S‖², equal for XᵀX and XXᵀ
    spread = (frobenius - trace * trace / d) / d
    if not spread > 0.0:
        return 1.0
    fourth = float(np.sum(np.einsum("ij,ij->i", centred, centred) ** 2))
    noise = max(0.0, fourth - n * frobenius) / (n * n * d)
    return float(min(noise, spread) / spread)


def shift_directions(
    fit: npt.ArrayLike, baseline_mean: FloatArray, stream_means: npt.ArrayLike
) -> list[FloatArray | None]:
    """:func:`shift_direction` for several stream means (rows) with one solve of the system."""
    x = np.asarray(fit, dtype=np.float64)
    v = (
        np.asarray(stream_means, dtype=np.float64) - np.asarray(baseline_mean, dtype=np.float64)
    ).T  # (d, k)
    x = x - x.mean(axis=0)
    n, d = x.shape
    shrinkage = ledoit_wolf_shrinkage(x)
    scale = float(np.einsum("ij,ij->", x, x)) / (n * d)  # tr Σ / d
    if shrinkage < 1.0 and scale > 0.0:
        # floored so that a singular Σ still gives a solvable system
        ridge = max(shrinkage / (1.0 - shrinkage), _MIN_RIDGE) * scale
        if d <= n:
            w = np.linalg.solve(x.T @ x / n + ridge * np.eye(d), v)
        else:  # Woodbury: an n × n system instead of d × d
            inner = x @ x.T + n * ridge * np.eye(n)
            w = (v - x.T @ np.linalg.solve(inner, x @ v)) / ridge
    else:
        w = v
    out: list[FloatArray | None] = []
    for column in w.T:
        norm = float(np.linalg.norm(column))
        ok = math.isfinite(norm) and norm > 0.0
        out.append(np.asarray(column / norm, dtype=np.float64) if ok else None)
    return out


@dataclass(frozen=True)
class ShiftTrack:
    """One horizon's view of where the traffic has been moving since the baseline was fitted.

    Attributes
    ----------
    total, weight
        Exponentially weighted sum of the scored vectors and its total weight.
    direction
        The current unit direction (``None`` before the first estimate).
    index
        How many directions this horizon has had since the baseline was fitted.
    updated_at
        The number of vectors scored when the direction was last estimated.
    """

    total: FloatArray
    weight: float = 0.0
    direction: FloatArray | None = None
    index: int = 0
    updated_at: int = 0


def observe_shift(
    state: MonitorState, basis: ShiftBasis | None, fit: npt.ArrayLike, arrived: npt.ArrayLike
) -> MonitorState:
    """Add this run's (already scored) vectors to each horizon's mean; maybe re-estimate its
    direction.

    Each mean is exponentially weighted with its horizon's half-life (a run's vectors share one
    weight). Call after :func:`step`, so a run's directions only ever depend on earlier runs.
    """
    x = np.asarray(arrived, dtype=np.float64)
    if basis is None or x.ndim != 2 or x.shape[0] == 0:
        return state
    n = x.shape[0]
    batch = x.sum(axis=0)
    count = state.shift_count + n
    tracks = state.shift or tuple(ShiftTrack(np.zeros(x.shape[1])) for _ in SHIFT_HORIZONS)
    updated = [
        replace(
            track,
            total=0.5 ** (n / horizon.half_life) * track.total + batch,
            weight=0.5 ** (n / horizon.half_life) * track.weight + n,
        )
        for horizon, track in zip(SHIFT_HORIZONS, tracks, strict=True)
    ]
    due = [
        h
        for h, (horizon, track) in enumerate(zip(SHIFT_HORIZONS, tracks, strict=True))
        if count >= SHIFT_MIN_VECTORS
        and (track.updated_at == 0 or count - track.updated_at >= horizon.update)
    ]
    if due:  # one solve for every horizon due this run
        means = [updated[h].total / updated[h].weight for h in due]
        for h, w in zip(due, shift_directions(fit, basis.mean, means), strict=True):
            if w is not None:
                t = updated[h]
                updated[h] = replace(t, direction=w, index=t.index + 1, updated_at=count)
    return replace(state, shift=tuple(updated), shift_count=count)


def shift_run(
    state: MonitorState, basis: ShiftBasis | None, arrived: npt.ArrayLike
) -> tuple[ShiftRun | None, ...] | None:
    """This run's projections along each horizon's current direction (``None`` for a horizon
    without one yet; ``None`` overall without a basis).

    Vectors are rounded to float16 like the stored calibration rows, so both sides of the
    comparison went through the same rounding.
    """
    if basis is None or not state.shift:
        return None
    x = np.asarray(arrived, dtype=np.float32)
    rounded = x.astype(np.float16).astype(np.float64) if x.ndim == 2 else np.zeros((0, 0))
    rows = basis.calibration.astype(np.float64)
    runs: list[ShiftRun | None] = []
    for track in state.shift:
        w = track.direction
        if w is None or w.shape[0] != basis.mean.shape[0]:
            runs.append(None)
            continue
        projections = rounded @ w if rounded.shape[0] else np.zeros(0)
        along = rows @ w
        clumping = (
            basis.blocks.along(w, float(along.var())) if basis.blocks is not None else Dispersion()
        )
        runs.append(ShiftRun(projections, np.sort(along), track.index, clumping))
    return tuple(runs)


#: Repeated vectors of a run remembered for the next run (the largest groups first).
MAX_ATOMS = 64


@dataclass(frozen=True)
class Repeats:
    """Which of a run's rows are exact repeats of each other.

    Attributes
    ----------
    groups
        For each row, the index of its group of identical rows.
    keys
        Per group, a digest of the vector's bytes: identifies the same vector in a later run.
    until
        Unix seconds of the end of the traffic the rows came from (``None``: unknown).
    """

    groups: npt.NDArray[np.intp]
    keys: tuple[str, ...]
    until: float | None = None

    @property
    def sizes(self) -> npt.NDArray[np.int64]:
        return np.bincount(self.groups, minlength=len(self.keys)).astype(np.int64)

    def repeated_keys(self) -> tuple[str, ...]:
        """Keys of the groups with two rows or more, the :data:`MAX_ATOMS` largest."""
        sizes = self.sizes
        order = np.argsort(-sizes, kind="stable")
        return tuple(self.keys[i] for i in order[:MAX_ATOMS] if sizes[i] >= 2)


def repeats_of(vectors: npt.ArrayLike, until: float | None = None) -> Repeats:
    """Group a run's rows by exact (byte) equality, with a digest per group; ``until`` is the
    end of the traffic they came from (Unix seconds)."""
    data = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
    if data.ndim != 2 or data.shape[0] == 0:
        return Repeats(np.zeros(0, dtype=np.intp), (), until)
    first, inverse = row_groups(data)
    keys = tuple(hashlib.blake2b(data[i].tobytes(), digest_size=8).hexdigest() for i in first)
    return Repeats(inverse, keys, until)


def repeated_since(state: MonitorState, before: float) -> tuple[str, ...]:
    """Digests of the vectors repeated in every scored run since traffic that ended at or
    before ``before`` (Unix seconds): queries that were popular before a window began."""
    return tuple(key for key, since in state.atoms.items() if since <= before)


def _logmeanexp(values: FloatArray) -> float:
    top = float(np.max(values))
    return top + math.log(float(np.mean(np.exp(values - top))))


@dataclass
class MonitorState:
    """What the monitor carries from one run to the next (persisted per model).

    Attributes
    ----------
    log_evidence
        Per bet, the log of its e-CUSUM statistic after the last run (may be negative; it is
        floored at 0 when the next run starts).
    wins, scored
        Per bet, wins and vectors since its statistic was last at the floor (the rate seen
        during an excursion, used to set up recovery).
    alarm
        A page is open (status ``drift``).
    cause
        ``"evidence"`` (accumulated) or ``"window"`` (instant check) while ``alarm``.
    recovery_bet, recovery_rate, recovery_log
        After an evidence page: the bet watched for recovery, the alternative rate it is
        tested against and the log of the reverse CUSUM.
    peak_log
        While a page is open: the largest log evidence (:attr:`log_mixture`) since it opened.
    calibration
        Sorted calibration scores of the current baseline.
    shift
        Per horizon of :data:`SHIFT_HORIZONS`, where the traffic scored since the baseline was
        fitted has been moving (empty before the first vectors).
    shift_count
        Vectors scored since the baseline was fitted.
    atoms
        Digests of the vectors the last run held more than once (:meth:`Repeats.repeated_keys`),
        each with the end (Unix seconds) of the first traffic of its unbroken streak of runs
        that repeated it: a repeated vector that comes back run after run bets once per row,
        not once per group, and one repeated since before a window began keeps its share in
        that window's instant check (:func:`repeated_since`).
    """

    log_evidence: FloatArray = field(default_factory=lambda: np.zeros(len(BETS)))
    wins: FloatArray = field(default_factory=lambda: np.zeros(len(BETS)))
    scored: FloatArray = field(default_factory=lambda: np.zeros(len(BETS)))
    alarm: bool = False
    cause: str | None = None
    recovery_bet: int | None = None
    recovery_rate: float | None = None
    recovery_log: float = 0.0
    peak_log: float = 0.0
    calibration: FloatArray = field(default_factory=lambda: np.zeros(0))
    total_scored: int = 0
    shift: tuple[ShiftTrack, ...] = ()
    shift_count: int = 0
    atoms: dict[str, float] = field(default_factory=dict)

    @property
    def log_mixture(self) -> float:
        """Log of the monitor's evidence (the mean over bets of their statistics)."""
        return _logmeanexp(np.maximum(self.log_evidence, 0.0))

    def frozen(self, budget: Budget) -> bool:
        """True while a page is open or the evidence is above the freeze level."""
        return self.alarm or self.log_mixture >= FREEZE_SHARE * budget.log_threshold

    def with_calibration(self, scores: FloatArray) -> MonitorState:
        """A new baseline's calibration scores; the evidence is kept, the shift direction starts
        afresh (it is measured from the new baseline)."""
        return replace(
            self,
            calibration=np.sort(np.asarray(scores, dtype=np.float64)),
            shift=(),
            shift_count=0,
        )

    def calibration_blob(self) -> bytes:
        """The array part: calibration scores (float32), then per shift horizon its weighted sum
        and, when it has one, its direction (float64)."""
        parts = [self.calibration.astype("<f4").tobytes()]
        for track in self.shift:
            parts.append(track.total.astype("<f8").tobytes())
            if track.direction is not None:
                parts.append(track.direction.astype("<f8").tobytes())
        return b"".join(parts)

    def to_document(self) -> dict[str, Any]:
        """The JSON-able part (the arrays go to :meth:`calibration_blob`)."""
        dim = int(self.shift[0].total.shape[0]) if self.shift else 0
        return {
            "shift_dim": dim,
            "shift_count": self.shift_count,
            "shift_tracks": [
                {
                    "weight": t.weight,
                    "index": t.index,
                    "updated_at": t.updated_at,
                    "has_direction": t.direction is not None,
                }
                for t in self.shift
            ],
            "log_evidence": [float(v) for v in self.log_evidence],
            "wins": [int(v) for v in self.wins],
            "scored": [int(v) for v in self.scored],
            "alarm": self.alarm,
            "cause": self.cause,
            "recovery_bet": self.recovery_bet,
            "recovery_rate": self.recovery_rate,
            "recovery_log": self.recovery_log,
            "peak_log": self.peak_log,
            "total_scored": self.total_scored,
            "atoms": {k: v if math.isfinite(v) else None for k, v in self.atoms.items()},
            "bets": [bet.name for bet in BETS],
        }

    @classmethod
    def from_document(cls, doc: dict[str, Any], calibration: bytes) -> MonitorState:
        dim = int(doc.get("shift_dim", 0))
        specs = list(doc.get("shift_tracks", [])) if dim else []
        tail = sum(8 * dim * (1 + int(bool(t.get("has_direction")))) for t in specs)
        if len(specs) != len(SHIFT_HORIZONS) or tail > len(calibration):
            specs, tail = [], 0
        head = len(calibration) - tail
        scores = np.frombuffer(calibration[:head], dtype="<f4").astype(np.float64)
        tracks = []
        at = head
        for spec in specs:
            total = np.frombuffer(calibration, dtype="<f8", count=dim, offset=at).copy()
            at += 8 * dim
            direction = None
            if spec.get("has_direction"):
                direction = np.frombuffer(calibration, dtype="<f8", count=dim, offset=at).copy()
                at += 8 * dim
            tracks.append(
                ShiftTrack(
                    total=total,
                    weight=float(spec.get("weight", 0.0)),
                    direction=direction,
                    index=int(spec.get("index", 0)) if direction is not None else 0,
                    updated_at=int(spec.get("updated_at", 0)),
                )
            )
        if doc.get("bets") != [bet.name for bet in BETS]:
            # The bets changed between versions: start the evidence afresh.
            return cls(calibration=scores)
        return cls(
            log_evidence=np.asarray(doc["log_evidence"], dtype=np.float64),
            wins=np.asarray(doc["wins"], dtype=np.float64),
            scored=np.asarray(doc["scored"], dtype=np.float64),
            alarm=bool(doc.get("alarm", False)),
            cause=doc.get("cause"),
            recovery_bet=doc.get("recovery_bet"),
            recovery_rate=doc.get("recovery_rate"),
            recovery_log=float(doc.get("recovery_log", 0.0)),
            # a page opened by a version without it resolves as that version's did (_recovered)
            peak_log=float(doc.get("peak_log", math.inf)),
            calibration=scores,
            total_scored=int(doc.get("total_scored", 0)),
            shift=tuple(tracks),
            shift_count=int(doc.get("shift_count", 0)) if tracks else 0,
            atoms=_atoms(doc.get("atoms")),
        )


@dataclass(frozen=True)
class Step:
    """What one run did to the monitor.

    Attributes
    ----------
    state
        The state to persist.
    status
        ``"drift"`` while a page is open, else ``"ok"``.
    triggered, resolved
        This run opened (closed) a page.
    evidence, threshold
        log10 of the evidence and of the threshold (0 = no evidence).
    scored
        Vectors scored in this run.
    novel, novel_share, novel_rows
        Vectors of this run above the baseline's top 1 % of novelty, their share (about
        0.01 expected) and the indices of up to :data:`NOVEL_EXAMPLES` of them, most novel
        first.
    best_bet
        The bet with the most evidence.
    units
        The first row of each unit the bets counted (a group of repeats or a single row);
        ``None`` when every row was its own unit. :func:`observe_shift` follows these rows, so
        a burst of repeats does not tilt the shift direction either.
    """

    state: MonitorState
    status: str
    triggered: bool
    resolved: bool
    evidence: float
    threshold: float
    scored: int
    novel: int
    novel_share: float | None
    novel_rows: list[int]
    best_bet: str
    units: npt.NDArray[np.intp] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "triggered": self.triggered,
            "resolved": self.resolved,
            "evidence": round(self.evidence, 6),
            "threshold": round(self.threshold, 6),
            "scored": self.scored,
            "novel": self.novel,
            "novel_share": self.novel_share,
            "best_bet": self.best_bet,
            "cause": self.state.cause,
            "shift": {
                "directions": [t.index for t in self.state.shift],
                "vectors": self.state.shift_count,
            },
            "recovery": None
            if self.state.recovery_bet is None
            else {
                "bet": BETS[self.state.recovery_bet].name,
                "rate": self.state.recovery_rate,
                "evidence": round(max(self.state.recovery_log, 0.0) / math.log(10), 6),
                "threshold": round(math.log10(RECOVERY_EVIDENCE), 6),
                # the evidence must also fall RECOVERY_EVIDENCE-fold below this peak
                "peak_evidence": round(self.state.peak_log / math.log(10), 6)
                if math.isfinite(self.state.peak_log)
                else None,
            },
        }


NOVEL_EXAMPLES = 5


def step(
    state: MonitorState,
    scores: npt.ArrayLike,
    *,
    budget: Budget,
    window_fires: bool,
    shift: Sequence[ShiftRun | None] | None = None,
    repeats: Repeats | None = None,
    overdispersion: RunDispersion | None = None,
) -> Step:
    """Advance the monitor by one run.

    Parameters
    ----------
    state
        The state after the previous run (its calibration fitted to the current baseline).
    scores
        Novelty scores of the vectors that arrived since the previous run (may be empty).
    budget
        This run's threshold and instant level.
    window_fires
        The instant check (the window's two-sample battery at ``budget.instant_alpha``)
        found drift in this run's window.
    shift
        The same vectors' projections onto each horizon's shift direction
        (:func:`shift_run`), or ``None`` while there is none yet.
    repeats
        Which scored rows are exact repeats (:func:`repeats_of`). Repeats *within* the run
        share one bet (:meth:`Calibrated.log_e_grouped`): a burst of the same query within
        minutes is one observation, not many. A vector that the previous run held more than
        once too (``state.atoms``) bets once per row: one vector taking a share of the traffic
        run after run (a client stuck on one output) accumulates as it should. ``None``: every
        row is distinct.
    overdispersion
        How much clumping in time inflates the variance of this run's outcomes
        (:meth:`drift_monitor.drift.dispersion.BaselineDispersion.for_run`): the novelty bets'
        log e-values for the run are divided by its ``novelty`` factor ``φ >= 1`` (still
        e-values, by Jensen); the shift bets by the larger of its ``directions`` factor (the
        baseline's top principal directions) and the factor measured along their own
        direction (:attr:`ShiftRun.clumping`). ``None``: no clumping (``φ = 1``).
    """
    phi = overdispersion or RunDispersion()
    if not (phi.novelty >= 1.0 and phi.directions >= 1.0):
        raise ValueError(f"overdispersion factors must be at least 1, got {phi}")
    s = np.asarray(scores, dtype=np.float64)
    first, sizes = _groups(repeats, state.atoms, s.shape[0])
    bets = calibrate(state.calibration, shift)
    run_log = np.zeros(len(bets))
    run_wins = np.zeros(len(bets))
    run_scored = np.zeros(len(bets))
    for j, bet in enumerate(bets):
        values = _values(bet, s, shift)
        won = bet.wins(values)
        wins = int(np.count_nonzero(won))
        run_wins[j], run_scored[j] = wins, values.shape[0]
        if first is None or values.shape[0] != s.shape[0]:
            run_log[j] = bet.log_e(wins, values.shape[0] - wins)
        else:  # identical rows have identical values: each group wins or loses as one
            run_log[j] = bet.log_e_grouped(sizes[won[first]], values.shape[0] - wins)
        if bet.bet.side == "shift":
            run = _run_for(bet.bet, shift)
            along = 1.0 if run is None else run.clumping.factor(values.shape[0])
            run_log[j] /= max(phi.directions, along)
        else:
            run_log[j] /= phi.novelty
    at_floor = state.log_evidence <= 0.0
    new = replace(
        state,
        log_evidence=np.maximum(state.log_evidence, 0.0) + run_log,
        wins=np.where(at_floor, 0.0, state.wins) + run_wins,
        scored=np.where(at_floor, 0.0, state.scored) + run_scored,
        total_scored=state.total_scored + int(s.shape[0]),
        atoms=_streaks(state.atoms, repeats),
    )
    log_mix = new.log_mixture
    evidence_fires = log_mix >= budget.log_threshold
    triggered = resolved = False
    if not new.alarm and (evidence_fires or window_fires):
        triggered = True
        new = _open(new, bets, "evidence" if evidence_fires else "window", budget)
        new = replace(new, peak_log=log_mix)
    elif new.alarm:
        new = _watch_recovery(new, bets, s, shift)
        new = replace(new, peak_log=max(new.peak_log, log_mix))
        if _recovered(new, window_fires, budget):
            resolved = True
            new = replace(
                new,
                alarm=False,
                cause=None,
                recovery_bet=None,
                recovery_rate=None,
                recovery_log=0.0,
                peak_log=0.0,
                log_evidence=np.zeros(len(BETS)),
                wins=np.zeros(len(BETS)),
                scored=np.zeros(len(BETS)),
            )

    top = next((b for b in bets if b.bet.side == "high" and b.bet.q == 0.01), None)
    novel_mask = top.wins(s) if top is not None and top.stake > 0 else np.zeros(s.shape, bool)
    novel_idx = np.flatnonzero(novel_mask)
    novel_idx = novel_idx[np.argsort(-s[novel_idx], kind="stable")][:NOVEL_EXAMPLES]
    return Step(
        state=new,
        status="drift" if new.alarm else "ok",
        triggered=triggered,
        resolved=resolved,
        evidence=max(new.log_mixture, 0.0) / math.log(10),
        threshold=budget.log_threshold / math.log(10),
        scored=int(s.shape[0]),
        novel=int(np.count_nonzero(novel_mask)),
        novel_share=None if s.shape[0] == 0 else float(np.mean(novel_mask)),
        novel_rows=[int(i) for i in novel_idx],
        best_bet=BETS[int(np.argmax(new.log_evidence))].name,
        units=first,
    )


def _streaks(atoms: dict[str, float], repeats: Repeats | None) -> dict[str, float]:
    """The next state's repeated vectors: this run's, each keeping the start of its streak."""
    if repeats is None or not repeats.keys:
        return atoms  # nothing scored: the streaks go on
    start = math.inf if repeats.until is None else repeats.until
    return {key: atoms.get(key, start) for key in repeats.repeated_keys()}


def _atoms(document: Any) -> dict[str, float]:
    """Read back :attr:`MonitorState.atoms` (an unknown streak start is stored as null)."""
    if not isinstance(document, dict):
        return {}
    return {
        str(k): math.inf if v is None else float(v)
        for k, v in document.items()
        if v is None or isinstance(v, int | float)
    }


def _groups(
    repeats: Repeats | None, atoms: dict[str, float], rows: int
) -> tuple[npt.NDArray[np.intp] | None, npt.NDArray[np.int64]]:
    """The bets' units: first row and size of each group, where a group of a vector in
    ``atoms`` is split back into single rows. ``(None, [])`` when every row is its own unit."""
    if repeats is None:
        return None, np.zeros(0, dtype=np.int64)
    g = np.asarray(repeats.groups, dtype=np.intp)
    if g.shape != (rows,):
        raise ValueError(f"repeats must give one group per scored row ({rows}), not {g.shape}")
    known = set(atoms)
    persistent = np.array([key in known for key in repeats.keys], dtype=bool)
    if persistent.any():  # rows of a returning vector are units of their own
        g = np.where(persistent[g], len(repeats.keys) + np.arange(rows), g)
    if rows == 0 or np.unique(g).size == rows:
        return None, np.zeros(0, dtype=np.int64)
    _, first, sizes = np.unique(g, return_index=True, return_counts=True)
    return first, sizes.astype(np.int64)


def _open(state: MonitorState, bets: list[Calibrated], cause: str, budget: Budget) -> MonitorState:
    best = int(np.argmax(state.log_evidence))
    base = bets[best].rate0
    seen = state.wins[best] / state.scored[best] if state.scored[best] > 0 else base
    building = state.log_evidence[best] >= FREEZE_SHARE * budget.log_threshold
    if not building or seen <= base or bets[best].stake <= 0:
        # Nothing the bets saw clearly (an instant page on the window's tests): the page
        # resolves once the window is quiet again.
        return replace(state, alarm=True, cause=cause, recovery_bet=None, recovery_rate=None)
    # Watch the bet that saw the shift; test recovery against half-way between the baseline
    # rate and the rate seen: robust to the excursion's rate being an overestimate (it was
    # selected for being large).
    rate = min(base + 0.5 * (seen - base), 0.99)
    return replace(
        state, alarm=True, cause=cause, recovery_bet=best, recovery_rate=rate, recovery_log=0.0
    )


def _values(
    bet: Calibrated, novelty: FloatArray, shift: Sequence[ShiftRun | None] | None
) -> FloatArray:
    """The scores ``bet`` is made on: novelty scores, or projections for a shift bet."""
    if bet.bet.side != "shift":
        return novelty
    run = _run_for(bet.bet, shift)
    return np.zeros(0) if run is None else run.projections


def _watch_recovery(
    state: MonitorState,
    bets: list[Calibrated],
    s: FloatArray,
    shift: Sequence[ShiftRun | None] | None,
) -> MonitorState:
    if state.recovery_bet is None or state.recovery_rate is None:
        return state
    bet = bets[state.recovery_bet]
    values = _values(bet, s, shift)
    if values.shape[0] == 0 or bet.rate0 <= 0.0:
        return state
    base = min(max(bet.rate0, 1e-9), state.recovery_rate)
    wins = int(np.count_nonzero(bet.wins(values)))
    losses = values.shape[0] - wins
    r = state.recovery_rate
    llr = wins * math.log(base / r) + losses * math.log((1.0 - base) / (1.0 - r))
    return replace(state, recovery_log=max(state.recovery_log, 0.0) + llr)


def _recovered(state: MonitorState, window_fires: bool, budget: Budget) -> bool:
    if window_fires:
        return False
    if state.recovery_bet is None:
        return True  # an instant page with no bet watching: the window is quiet again
    if not math.isfinite(state.peak_log):  # opened by a version that kept no peak: its rule
        return state.recovery_log >= math.log(RECOVERY_EVIDENCE)
    # The evidence as a whole has stopped growing: it fell 100-fold from its peak since the
    # page, or below the freeze level (a page the window's tests opened while the evidence
    # was only building). Alone, the watched bet can look recovered while the shift goes on
    # (its direction is re-estimated, or its share of a small shift is noisy) and other bets
    # keep gaining. Then either the watched bet looks like the baseline again, or the evidence
    # has lost as much as it takes to page: the watched bet's test is slow when the shift
    # raised its rate only a little (a small share along a shift direction).
    fell = state.peak_log - state.log_mixture
    low = state.log_mixture <= FREEZE_SHARE * budget.log_threshold
    if not (fell >= math.log(RECOVERY_EVIDENCE) or low):
        return False
    return state.recovery_log >= math.log(RECOVERY_EVIDENCE) or fell >= budget.log_threshold


def next_interval(previous: float | None, observed_minutes: float | None, default: float) -> float:
    """Smoothed estimate of the schedule interval in minutes (clamped to [1, 1440])."""
    if observed_minutes is None or observed_minutes <= 0:
        value = previous if previous is not None else default
    elif previous is None:
        value = observed_minutes
    else:
        value = (1 - _INTERVAL_SMOOTHING) * previous + _INTERVAL_SMOOTHING * observed_minutes
    return min(max(value, MIN_INTERVAL_MINUTES), MAX_INTERVAL_MINUTES)
