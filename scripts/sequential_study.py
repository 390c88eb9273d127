#!/usr/bin/env python3
"""Measure the sequential monitor: false pages per model-month and detection delays.

Streams are timestamped draws (with replacement) from a real corpus of ``../shared/data`` or
a synthetic one, as ``scripts/make_stream.py`` builds them; a shifted stream mixes another
corpus in from a chosen hour. Each model starts with a baseline of the traffic's first
``--baseline-days`` (a full rolling baseline: ``max_samples`` fitting vectors plus
``CALIBRATION_VECTORS`` calibration vectors, fewer if the days hold fewer) and is then run on
the schedule with the monitor's own code (``drift.sequential``: scores, bets, e-CUSUM,
recovery). The instant window check is not part of this loop (its level is the budget's other
half, ``1 / (2 N)`` per run, and the engine's calibration tests cover it);
``drift-monitor backtest`` runs the whole production path on a few of the same streams.

    .venv/bin/python scripts/sequential_study.py null --months 1 --rate 120 --every 60
    .venv/bin/python scripts/sequential_study.py delay --rate 120 --every 60
    .venv/bin/python scripts/sequential_study.py null --months 1 --clump 0.3 [--no-discount]
    .venv/bin/python scripts/sequential_study.py null --months 1 --weekly 0.15 --corpus debian
    .venv/bin/python scripts/sequential_study.py separation  # corpora along the discriminant
    .venv/bin/python scripts/sequential_study.py all       # the tables of docs/statistics.md

Prints Markdown tables. Fixed seeds: the same command prints the same numbers.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "shared"))

from drift_monitor.drift import dispersion as dp  # noqa: E402
from drift_monitor.drift import sequential as sq  # noqa: E402

sys.path.insert(0, str(ROOT / "scripts"))
import make_stream  # noqa: E402  (the stream builder's topics)

DATA = ROOT.parent / "shared" / "data"
FIT = 2000  # the default max_samples


def corpus(name: str) -> npt.NDArray[np.float32]:
    files = {
        "nouns": "wordnet_noun_minilm384.npy",
        "verbs": "wordnet_verb_minilm384.npy",
        "animals": "wordnet_animal_minilm384.npy",
        "debian": "debian_package_minilm384.npy",
        "docstrings": "python_docstring_minilm384.npy",
    }
    if name in ("gaussian", "gaussian-other"):
        # anisotropic unit vectors; "other" uses the same spectrum along other axes: a new
        # kind of traffic that overlaps the base's support
        rng = np.random.default_rng(7 if name == "gaussian" else 8)
        scales = np.linspace(1.0, 0.2, 64)
        x = rng.normal(size=(5000, 64)) * (scales if name == "gaussian" else scales[::-1])
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return np.load(DATA / files[name]).astype(np.float32)


@dataclass
class Outcome:
    triggers: list[float]  # hours (from the shift when there is one)
    resolves: list[float]
    hours: float
    runs: int = 0
    max_evidence: float = 0.0  # log10
    crossings: dict[float, int] | None = None  # lower thresholds -> times reached (null runs)


@dataclass(frozen=True)
class Traffic:
    """How the stationary traffic is shaped in time (see :func:`simulate`).

    Attributes
    ----------
    clump
        Share of each run from one topic (``make_stream.py --clump``); 0: none.
    weekly
        Amplitude of a weekly mix (``make_stream.py --weekly``); 0: none.
    discount
        Whether runs are discounted by the clumping measured on the baseline, as the
        detection service does (False: every row counts as independent).
    """

    clump: float = 0.0
    weekly: float = 0.0
    discount: bool = True


def simulate(
    base: npt.NDArray[np.float32],
    other: npt.NDArray[np.float32] | None,
    *,
    mix: float,
    shift_at: float | None,
    back_at: float | None,
    hours: float,
    rate: float,
    every: float,
    seed: int,
    days: float = 365.0,
    baseline_days: float = 7.0,
    lower: tuple[float, ...] = (),
    traffic: Traffic = Traffic(),
) -> Outcome:
    """One model: a baseline from the stream's first days, then the monitor on the schedule.

    ``traffic.clump > 0`` makes the traffic clumped in time: the corpus is cut into 12 topics as
    ``make_stream.py --clump`` does (nearest of as many random rows) and in every run one topic,
    drawn by its size, makes up ``clump`` of the run's rows, so over many runs every topic keeps
    its share. ``traffic.weekly > 0`` gives the traffic a weekly mix instead: the corpus is cut into
    two halves as ``make_stream.py --weekly`` does, the first half ``0.5 + weekly`` of the
    weekend's traffic (days 5 and 6 of every 7) and ``0.5 - weekly · 2/5`` of the weekdays'.
    Either way the baseline is then built run by run too (a 7-day one holds one whole week), its
    clumping measured (``drift.dispersion``) and, with ``traffic.discount``, each run's evidence
    discounted by it, as the detection service does.
    """
    rng = np.random.default_rng(seed)
    n_base = int(min(rate * 24 * baseline_days, FIT + sq.CALIBRATION_VECTORS))
    draw = (
        _clumped_draw(base, traffic.clump, rng)
        if traffic.clump > 0
        else _weekly_draw(base, traffic.weekly, rng)
        if traffic.weekly > 0
        else None
    )
    measured, blocks = dp.BaselineDispersion(), None
    if draw is None:
        baseline = base[rng.integers(0, base.shape[0], size=n_base)]
        reference = sq.fit_reference(baseline, seed, fit_size=FIT)
        calibration = reference.score(reference.calibration)
    else:
        per_run = int(baseline_days * 24 * 60 / every)
        runs_rows = [
            draw(int(rng.poisson(rate * every / 60.0)), i * every / 60.0) for i in range(per_run)
        ]
        baseline = np.concatenate(runs_rows)  # in time order
        if baseline.shape[0] > n_base:
            baseline = baseline[np.sort(rng.choice(baseline.shape[0], n_base, replace=False))]
        reference = sq.fit_reference(baseline, seed, fit_size=FIT)
        calibration = reference.score(reference.calibration)
        measured = dp.measure(baseline, calibration, reference.calibration_index, per_run)
        if traffic.discount:
            blocks = dp.block_means(baseline, per_run)
    basis = sq.shift_basis(reference, blocks=blocks)
    state = sq.MonitorState().with_calibration(np.sort(calibration))
    budget = sq.Budget(days, every)
    triggers: list[float] = []
    resolves: list[float] = []
    runs = int(hours * 60 / every)
    # the same monitor against lower thresholds c' (each restarts after reaching c'): the
    # e-detector bound says the mean run length to c' is at least c' runs
    shadows = {c: sq.MonitorState().with_calibration(state.calibration) for c in lower}
    crossings = dict.fromkeys(lower, 0)
    max_evidence = 0.0
    for i in range(runs):
        hour = (i + 1) * every / 60.0
        n = int(rng.poisson(rate * every / 60.0))
        rows = base[rng.integers(0, base.shape[0], size=n)] if draw is None else draw(n, hour)
        live = (
            other is not None
            and shift_at is not None
            and hour > shift_at
            and (back_at is None or hour <= back_at)
        )
        if live and other is not None:
            swap = rng.random(n) < mix
            rows[swap] = other[rng.integers(0, other.shape[0], size=int(swap.sum()))]
        scores = reference.score(rows)
        shift = sq.shift_run(state, basis, rows)
        phi = measured.for_run(n) if traffic.discount else None
        result = sq.step(
            state, scores, budget=budget, window_fires=False, shift=shift, overdispersion=phi
        )
        state = sq.observe_shift(result.state, basis, reference.fit, rows)
        max_evidence = max(max_evidence, result.evidence)
        if result.triggered:
            triggers.append(hour - (shift_at or 0.0))
        if result.resolved:
            resolves.append(hour - (back_at if back_at is not None else 0.0))
        for c, shadow in shadows.items():
            # (the shadows bet along the monitor's own shift direction)
            shadow = sq.step(
                shadow, scores, budget=budget, window_fires=False, shift=shift, overdispersion=phi
            ).state
            if shadow.log_mixture >= np.log(c):
                crossings[c] += 1
                shadow = sq.MonitorState().with_calibration(shadow.calibration)
            shadows[c] = shadow
    return Outcome(triggers, resolves, hours, runs, max_evidence, crossings)


def _clumped_draw(
    base: npt.NDArray[np.float32], clump: float, rng: np.random.Generator
) -> Callable[[int, float], npt.NDArray[np.float32]]:
    """``draw(n, hour)``: one run's rows, ``clump`` of them from one topic
    (``make_stream.topics``) drawn by its size."""
    members = make_stream.topics(base, rng)
    sizes = np.array([m.size for m in members], dtype=np.float64)

    def draw(n: int, hour: float) -> npt.NDArray[np.float32]:
        rows = base[rng.integers(0, base.shape[0], size=n)]
        hot = rng.random(n) < clump
        chosen = members[int(rng.choice(len(members), p=sizes / sizes.sum()))]
        rows[hot] = base[chosen[rng.integers(0, chosen.size, size=int(hot.sum()))]]
        return rows

    return draw


def _weekly_draw(
    base: npt.NDArray[np.float32], weekly: float, rng: np.random.Generator
) -> Callable[[int, float], npt.NDArray[np.float32]]:
    """``draw(n, hour)``: one run's rows with the weekly mix of ``make_stream.weekly_share``."""
    halves = make_stream.topic_halves(base)

    def draw(n: int, hour: float) -> npt.NDArray[np.float32]:
        first = rng.random(n) < make_stream.weekly_share(np.array([hour]), weekly)[0]
        return base[make_stream.half_picks(halves, first, rng)]

    return draw


LOWER = (10.0, 100.0, 1000.0)


def null_table(
    corpora: list[str],
    months: int,
    rates: list[float],
    everies: list[float],
    days: float = 365,
    traffic: Traffic = Traffic(),
) -> None:
    print(
        "| corpus | vectors/h | every | model-months | false pages | max evidence (log10) "
        "/ threshold | reached 10, 100, 1000 (bound: runs / c') |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in corpora:
        base = corpus(name)
        for rate in rates:
            for every in everies:
                pages, runs, top = 0, 0, 0.0
                reached = dict.fromkeys(LOWER, 0)
                for m in range(months):
                    out = simulate(base, None, mix=0, shift_at=None, back_at=None, hours=720,
                                   rate=rate, every=every, seed=1000 + m, lower=LOWER,
                                   days=days, traffic=traffic)  # fmt: skip
                    pages += len(out.triggers)
                    runs += out.runs
                    top = max(top, out.max_evidence)
                    for c in LOWER:
                        reached[c] += (out.crossings or {}).get(c, 0)
                threshold = sq.Budget(days, every).log_threshold / np.log(10)
                counts = ", ".join(f"{reached[c]} ({runs / c:.0f})" for c in LOWER)
                print(
                    f"| {name} | {rate:g} | {every:g} min | {months} | {pages} | "
                    f"{top:.2f} / {threshold:.2f} | {counts} |",
                    flush=True,
                )


SHIFTS = (("debian", "docstrings"), ("nouns", "verbs"), ("gaussian", "gaussian-other"))


def delay_table(
    rates: list[float],
    every: float,
    seeds: int,
    mixes: list[float],
    days: float = 365,
    shifts: tuple[tuple[str, str], ...] = SHIFTS,
    traffic: Traffic = Traffic(),
) -> None:
    print("| base | mixed in | vectors/h | share | paged | delay h (median, max) | "
          "pages before the shift | triggers per shift | resolved after return, h |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    shift_at, back_at, hours = 48.0, 48.0 + 96.0, 48.0 + 96.0 + 48.0
    for base_name, other_name in shifts:
        base, other = corpus(base_name), corpus(other_name)
        for rate in rates:
            for mix in mixes:
                delays, early, per_shift, back = [], 0, [], []
                for s in range(seeds):
                    out = simulate(base, other, mix=mix, shift_at=shift_at, back_at=back_at,
                                   hours=hours, rate=rate, every=every, seed=2000 + s,
                                   days=days, traffic=traffic)  # fmt: skip
                    early += sum(t <= 0 for t in out.triggers)
                    during = [t for t in out.triggers if 0 < t <= back_at - shift_at]
                    per_shift.append(len(during))
                    if during:
                        delays.append(during[0])
                    back += [r for r in out.resolves if r > 0]
                paged = f"{len(delays)}/{seeds}"
                delay = f"{np.median(delays):.1f}, {max(delays):.1f}" if delays else "-"
                resolved = f"{np.median(back):.1f}" if back else "-"
                print(
                    f"| {base_name} | {other_name} | {rate:g} | {mix:.0%} | {paged} | {delay} | "
                    f"{early} | {max(per_shift) if per_shift else 0} | {resolved} |",
                    flush=True,
                )


def separation_table(shifts: tuple[tuple[str, str], ...] = SHIFTS[:2], seed: int = 1) -> None:
    """How far apart each pair of corpora lies along the discriminant of a mean shift.

    The squared Mahalanobis distance ``δ₁ᵀ (Σ + λ I)⁻¹ δ₂`` with ``δ₁`` and ``δ₂`` the mean
    differences measured on disjoint halves of both corpora (cross-fitted, so sampling noise does
    not inflate it) and ``Σ`` the covariance of 2,000 further base rows, for the ridge ``λ`` of the
    shift direction before (the mean eigenvalue), at a tenth of it, at Ledoit and Wolf's
    intensity (what :func:`sequential.shift_direction` uses) and without a ridge. A likelihood
    ratio along that direction gains about ``share² × distance / 2`` nats per vector. (The
    synthetic pair is left out: its two laws share their mean.)
    """
    print("| base | mixed in | ridge = mean eigenvalue | a tenth | Ledoit-Wolf (ρ) | none |")
    print("|---|---|---|---|---|---|")
    rng = np.random.default_rng(seed)
    for base_name, other_name in shifts:
        base, other = corpus(base_name).astype(np.float64), corpus(other_name).astype(np.float64)
        p, q = rng.permutation(base.shape[0]), rng.permutation(other.shape[0])
        third = min(FIT, base.shape[0] // 3)
        fit = base[p[2 * third : 3 * third]]
        d1 = other[q[: q.size // 2]].mean(axis=0) - base[p[:third]].mean(axis=0)
        d2 = other[q[q.size // 2 :]].mean(axis=0) - base[p[third : 2 * third]].mean(axis=0)
        x = fit - fit.mean(axis=0)
        eigenvalues, vectors = np.linalg.eigh(x.T @ x / x.shape[0])
        scale = float(eigenvalues.mean())
        rho = sq.ledoit_wolf_shrinkage(x)
        a, b = vectors.T @ d1, vectors.T @ d2
        ridges = (scale, scale / 10, rho / (1 - rho) * scale, 0.0)
        cells = [float(np.sum(a * b / (eigenvalues + ridge))) for ridge in ridges]
        print(f"| {base_name} | {other_name} | {cells[0]:.1f} | {cells[1]:.1f} | "
              f"{cells[2]:.1f} ({rho:.2f}) | {cells[3]:.1f} |")  # fmt: skip


def run_cost(rate: float, every: float) -> None:
    base = corpus("debian")
    rng = np.random.default_rng(0)
    reference = sq.fit_reference(base[rng.integers(0, 4000, 10000)], 0, fit_size=FIT)
    started = time.perf_counter()
    scores = reference.calibration_scores()
    fit_cost = time.perf_counter() - started
    state = sq.MonitorState().with_calibration(scores)
    rows = base[rng.integers(0, 4000, int(rate * every / 60))]
    started = time.perf_counter()
    for _ in range(20):
        result = sq.step(state, reference.score(rows), budget=sq.Budget(365, every),
                         window_fires=False)  # fmt: skip
    per_run = (time.perf_counter() - started) / 20
    print(f"cost: refit (score {len(scores)} calibration vectors) {fit_cost:.3f} s; "
          f"per run ({rows.shape[0]} vectors scored) {per_run * 1000:.1f} ms; "
          f"state {result.state.calibration.nbytes // 1024} KiB calibration + "
          f"{reference.fit.nbytes // 1024} KiB reference")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=["null", "delay", "cost", "separation", "all"])
    parser.add_argument("--months", type=int, default=2)
    parser.add_argument("--rate", type=float, action="append")
    parser.add_argument("--every", type=float, action="append")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--corpus", action="append")
    parser.add_argument("--budget", type=float, default=365.0, help="false_alarm_interval_days")
    parser.add_argument("--mix", type=float, action="append", help="shares mixed in (delay)")
    parser.add_argument(
        "--clump",
        type=float,
        default=0.0,
        help="share of each run from one topic (clumped traffic)",
    )
    parser.add_argument(
        "--weekly", type=float, default=0.0, help="weekly topic pattern amplitude (0 to 0.5)"
    )
    parser.add_argument(
        "--no-discount", action="store_true", help="count clumped rows as independent"
    )
    args = parser.parse_args()
    if not 0.0 <= args.clump < 1.0:
        parser.error("--clump must be in [0, 1)")
    if not 0.0 <= args.weekly <= 0.5 or (args.weekly and args.clump):
        parser.error("--weekly must be in [0, 0.5], and not with --clump")
    traffic = Traffic(clump=args.clump, weekly=args.weekly, discount=not args.no_discount)
    rates = args.rate or [120.0]
    everies = args.every or [60.0]
    corpora = args.corpus or ["nouns", "debian", "gaussian"]
    if args.what in ("null", "all"):
        null_table(corpora, args.months, rates, everies, args.budget, traffic)
    if args.what in ("delay", "all"):
        shifts = tuple(s for s in SHIFTS if s[0] in corpora) if args.corpus else SHIFTS
        mixes = args.mix or [0.05, 0.10, 0.25, 1.0]
        delay_table(rates, everies[0], args.seeds, mixes, args.budget, shifts, traffic)
    if args.what in ("separation", "all"):
        separation_table()
    if args.what in ("cost", "all"):
        run_cost(rates[0], everies[0])


if __name__ == "__main__":
    main()
