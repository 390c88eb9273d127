#!/usr/bin/env python3
"""Build a timestamped embedding stream (``STREAM.npz``) for ``drift-monitor backtest``.

Draws rows at random (with replacement) from a base corpus at a steady rate, Poisson arrival
times, and from ``--shift-at`` hours on replaces a share ``--mix`` of them with rows of
another corpus (a new kind of traffic), until ``--back-at`` hours if given. With ``--ramp H``
the share grows linearly from 0 at ``--shift-at`` to ``--mix`` ``H`` hours later (gradual
drift: a new kind of traffic taking over slowly); with ``--recur H`` the shift comes back every
``H`` hours, for as long as it lasted the first time (recurring drift)::

    .venv/bin/python scripts/make_stream.py --base ../shared/data/wordnet_noun_minilm384.npy \\
        --days 15 --rate 120 --out /tmp/nouns.npz
    .venv/bin/python scripts/make_stream.py --base ../shared/data/debian_package_minilm384.npy \\
        --other ../shared/data/python_docstring_minilm384.npy --mix 0.1 --shift-at 200 \\
        --days 15 --rate 120 --out /tmp/debian-docstrings.npz

``--base synthetic`` needs no data: 5000 anisotropic 64-d unit vectors (``synthetic:D``: D
dimensions, power-law spectrum; ``gaussian:D``: unnormalised correlated Gaussians around an
offset). ``--other synthetic:NAME`` makes the other corpus from the base itself: ``other`` (the
same spectrum on other axes: a new kind of traffic), ``rotation`` (a random rotation by 0.3 rad
of the base rows), ``noise`` (noise then renormalisation, cosine about 0.98), ``zeros``
(all-zero vectors).

Stationary streams that real traffic resembles more than Poisson arrivals do, to check the
false-page budget against (none of them changes *what* is sent):

* ``--volume daily``: the hourly rate follows a daily cycle from ``0.17 x`` to ``1.83 x``
  ``--rate``, with nothing from 02:00 to 06:00; ``--volume bursty``: half the rate, and one
  hour in 20 at 12.5 times it;
* ``--repeats SHARE``: that share of the rows repeat one of the previous 50 rows exactly (a
  client retrying, a user re-sending a query);
* ``--popular SHARE``: that share of the rows are one of 20 popular rows of the base corpus,
  with Zipf weights (the most popular one ``1/k``-times as often as the ``k``-th): the same
  few queries sent all day, every day;
* ``--cycle AMPLITUDE``: a daily cycle in *what* is sent. The base corpus is cut at the median
  of its first principal component into two halves (two "topics"); at hour ``h`` a row comes
  from the first half with probability ``0.5 + AMPLITUDE sin(2 pi h / 24)``. Over a day the
  mix is the base corpus; an hour's is not.
* ``--weekly AMPLITUDE``: a weekly pattern in what is sent: the two halves of ``--cycle``; on
  the weekend (days 5 and 6 of every 7, counted from the stream's start) a row comes from the
  first half with probability ``0.5 + AMPLITUDE``, on weekdays ``0.5 - AMPLITUDE 2/5``, so over
  a week the mix is the base corpus's.
* ``--clump SHARE``: traffic clumped in time. The base corpus is cut into 12 topics (each row
  with the nearest of 12 random rows); every clock hour one topic, drawn by its size, makes
  up that share of the hour's rows (a batch job, a campaign, one busy client). Over many hours
  every topic keeps its share.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import numpy.typing as npt

START = np.datetime64("2026-01-01T00:00:00", "s")
POPULAR_ROWS = 20
CLUMP_TOPICS = 12


def anisotropic(seed: int, reverse: bool = False) -> npt.NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    scales = np.linspace(1.0, 0.2, 64)
    x = rng.normal(size=(5000, 64)) * (scales[::-1] if reverse else scales)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def base_corpus(spec: str) -> npt.NDArray[np.float32]:
    """``--base``: a ``.npy`` file or one of the synthetic corpora."""
    if spec == "synthetic":
        return anisotropic(7)
    kind, _, dims = spec.partition(":")
    if kind in ("synthetic", "gaussian") and dims.isdigit() and int(dims) > 0:
        d = int(dims)
        rng = np.random.default_rng(7)
        if kind == "synthetic":
            x = rng.normal(size=(5000, d)) / np.sqrt(np.arange(1, d + 1))
            return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
        return (rng.normal(size=(5000, d)) @ rng.normal(size=(d, d)) + 3.0).astype(np.float32)
    return np.load(spec).astype(np.float32)


def arrivals(
    rng: np.random.Generator, rate: float, hours: float, volume: str
) -> npt.NDArray[np.int64]:
    """Sorted arrival offsets in seconds: Poisson within each hour at the volume's rate."""
    if volume == "flat":
        n = int(rng.poisson(rate * hours))
        return np.sort(rng.uniform(0.0, hours * 3600.0, size=n)).astype(np.int64)
    starts = np.arange(int(np.ceil(hours)), dtype=np.float64)
    if volume == "daily":
        hod = starts % 24
        rates = rate * (1.0 + 0.83 * np.sin(2 * np.pi * (hod - 9.0) / 24.0))
        rates[(hod >= 2) & (hod < 6)] = 0.0
    elif volume == "bursty":
        rates = np.where(rng.random(starts.size) < 0.05, 12.5 * rate, 0.5 * rate)
    else:
        raise SystemExit(f"unknown volume {volume!r}: flat, daily or bursty")
    counts = rng.poisson(rates)
    offsets = np.repeat(starts, counts) * 3600.0 + rng.uniform(0.0, 3600.0, counts.sum())
    return np.sort(offsets[offsets < hours * 3600.0]).astype(np.int64)


def synthetic(base: npt.NDArray[np.float32], name: str, rng: np.random.Generator) -> np.ndarray:
    d = base.shape[1]
    if name == "other":
        return anisotropic(8, reverse=True)
    if name == "zeros":
        return np.zeros((16, d), dtype=np.float32)
    if name == "noise":
        noise = rng.normal(0.0, 0.2 / np.sqrt(d), size=base.shape)
        moved = base + noise
        return (moved / np.linalg.norm(moved, axis=1, keepdims=True)).astype(np.float32)
    if name == "rotation":
        q, _ = np.linalg.qr(rng.normal(size=(d, 2)))
        theta = 0.3
        a, b = q[:, 0], q[:, 1]
        x = base.astype(np.float64)
        pa, pb = x @ a, x @ b
        rotated = (
            x
            + np.outer(pa * (np.cos(theta) - 1) - pb * np.sin(theta), a)
            + np.outer(pa * np.sin(theta) + pb * (np.cos(theta) - 1), b)
        )
        return rotated.astype(np.float32)
    raise SystemExit(f"unknown synthetic corpus {name!r}: other, rotation, noise or zeros")


def topic_halves(base: npt.NDArray[np.float32]) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the base corpus below and above the median of its first principal
    component."""
    x = base.astype(np.float64) - base.mean(axis=0)
    _, _, vt = np.linalg.svd(x[:: max(1, x.shape[0] // 2000)], full_matrices=False)
    projection = x @ vt[0]
    cut = np.median(projection)
    return np.flatnonzero(projection <= cut), np.flatnonzero(projection > cut)


def half_picks(
    halves: tuple[np.ndarray, np.ndarray], first: npt.NDArray[np.bool_], rng: np.random.Generator
) -> npt.NDArray[np.int64]:
    """Row indices of the base corpus: a random row of the first half where ``first``, of the
    second half elsewhere."""
    picks = np.empty(first.shape[0], dtype=np.int64)
    for half, rows_in in zip(halves, (first, ~first), strict=True):
        picks[rows_in] = half[rng.integers(0, half.size, size=int(rows_in.sum()))]
    return picks


def weekly_share(hours: npt.NDArray[np.float64], amplitude: float) -> npt.NDArray[np.float64]:
    """Probability that a row sent at ``hours`` (from the stream's start) is from the first half
    of :func:`topic_halves`: ``0.5 + amplitude`` on days 5 and 6 of every 7, else
    ``0.5 - amplitude 2/5``."""
    weekend = (np.floor(hours / 24.0) % 7) >= 5
    return np.where(weekend, 0.5 + amplitude, 0.5 - amplitude * 2.0 / 5.0)


def topics(base: npt.NDArray[np.float32], rng: np.random.Generator) -> list[np.ndarray]:
    """Row indices of the base corpus per topic: the nearest of :data:`CLUMP_TOPICS` random
    rows."""
    anchors = base[rng.choice(base.shape[0], CLUMP_TOPICS, replace=False)].astype(np.float64)
    x = base.astype(np.float64)
    distances = (x**2).sum(1)[:, None] - 2.0 * x @ anchors.T + (anchors**2).sum(1)[None]
    nearest = np.argmin(distances, axis=1)
    return [np.flatnonzero(nearest == t) for t in range(CLUMP_TOPICS)]


def build(
    base: npt.NDArray[np.float32],
    other: npt.NDArray[np.float32] | None,
    *,
    days: float,
    rate: float,
    mix: float,
    shift_at: float | None,
    back_at: float | None,
    seed: int,
    volume: str = "flat",
    repeats: float = 0.0,
    popular: float = 0.0,
    cycle: float = 0.0,
    clump: float = 0.0,
    ramp: float = 0.0,
    recur: float | None = None,
    weekly: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Rows and Unix-second timestamps of one stream (rows in time order)."""
    rng = np.random.default_rng(seed)
    hours = days * 24.0
    offsets = arrivals(rng, rate, hours, volume)
    n = offsets.size
    picks = rng.integers(0, base.shape[0], size=n)
    if cycle > 0:
        first = rng.random(n) < 0.5 + cycle * np.sin(2 * np.pi * offsets / 86400.0)
        picks = half_picks(topic_halves(base), first, rng)
    if weekly > 0:
        first = rng.random(n) < weekly_share(offsets / 3600.0, weekly)
        picks = half_picks(topic_halves(base), first, rng)
    if clump > 0:
        groups = topics(base, np.random.default_rng([seed, 1]))  # the same topics per seed
        sizes = np.array([g.size for g in groups], dtype=np.float64)
        hour = (offsets // 3600).astype(np.int64)
        hot = rng.choice(len(groups), size=int(hour.max()) + 1, p=sizes / sizes.sum())
        chosen = np.flatnonzero(rng.random(n) < clump)
        for i in chosen:
            group = groups[hot[hour[i]]]
            picks[i] = group[rng.integers(0, group.size)]
    if popular > 0:
        head = rng.choice(base.shape[0], size=min(POPULAR_ROWS, base.shape[0]), replace=False)
        weights = 1.0 / np.arange(1, head.size + 1)
        chosen = np.flatnonzero(rng.random(n) < popular)
        picks[chosen] = rng.choice(head, size=chosen.size, p=weights / weights.sum())
    if repeats > 0:
        for i in np.flatnonzero(rng.random(n) < repeats):
            if i > 0:
                picks[i] = picks[max(0, i - int(rng.integers(1, 51)))]
    rows = base[picks].copy()
    if other is not None and shift_at is not None and mix > 0:
        hour = offsets / 3600.0
        since = hour - shift_at
        if recur is not None and back_at is not None:
            since = np.where(since >= 0, since % recur, since)
        length = back_at - shift_at if back_at is not None else np.inf
        live = (since >= 0) & (since < length)
        share = mix * np.clip(since / ramp, 0.0, 1.0) if ramp > 0 else mix
        swap = live & (rng.random(n) < share)
        rows[swap] = other[rng.integers(0, other.shape[0], size=int(swap.sum()))]
    stamps = START.astype(np.int64) + offsets
    return rows, stamps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", required=True, help="base corpus (.npy, n x d) or synthetic")
    parser.add_argument("--other", default=None, help="corpus mixed in (.npy) or synthetic:NAME")
    parser.add_argument("--mix", type=float, default=0.0, help="share of rows replaced")
    parser.add_argument("--shift-at", type=float, default=None, help="hour the mixing starts")
    parser.add_argument("--back-at", type=float, default=None, help="hour the mixing stops")
    parser.add_argument("--days", type=float, default=15.0)
    parser.add_argument("--rate", type=float, default=120.0, help="vectors per hour")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--volume", choices=["flat", "daily", "bursty"], default="flat")
    parser.add_argument("--repeats", type=float, default=0.0, help="share of exact repeats")
    parser.add_argument("--popular", type=float, default=0.0, help="share of popular rows")
    parser.add_argument("--cycle", type=float, default=0.0, help="daily topic cycle amplitude")
    parser.add_argument(
        "--clump", type=float, default=0.0, help="share of each hour from one topic"
    )
    parser.add_argument("--weekly", type=float, default=0.0, help="weekly topic pattern amplitude")
    parser.add_argument(
        "--ramp", type=float, default=0.0, help="hours over which the share grows to --mix"
    )
    parser.add_argument(
        "--recur", type=float, default=None, help="hours after which the shift comes back"
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    for name in ("cycle", "weekly"):
        if not 0.0 <= getattr(args, name) <= 0.5:
            parser.error(f"--{name} must be in [0, 0.5]")
    if args.ramp < 0:
        parser.error("--ramp must be >= 0")
    if args.recur is not None and (
        args.shift_at is None or args.back_at is None or args.recur < args.back_at - args.shift_at
    ):
        parser.error("--recur needs --shift-at and --back-at, and at least their distance")
    for name in ("repeats", "popular", "clump"):
        if not 0.0 <= getattr(args, name) < 1.0:
            parser.error(f"--{name} must be in [0, 1)")
    base = base_corpus(args.base)
    rng = np.random.default_rng(args.seed + 1)
    other = None
    if args.other is not None:
        if args.other.startswith("synthetic:"):
            other = synthetic(base, args.other.split(":", 1)[1], rng)
        else:
            other = np.load(args.other).astype(np.float32)
    rows, stamps = build(
        base,
        other,
        days=args.days,
        rate=args.rate,
        mix=args.mix,
        shift_at=args.shift_at,
        back_at=args.back_at,
        seed=args.seed,
        volume=args.volume,
        repeats=args.repeats,
        popular=args.popular,
        cycle=args.cycle,
        clump=args.clump,
        ramp=args.ramp,
        recur=args.recur,
        weekly=args.weekly,
    )
    np.savez(args.out, embeddings=rows, timestamps=stamps)
    print(f"{args.out}: {rows.shape[0]} rows x {rows.shape[1]}, {args.days:g} days")


if __name__ == "__main__":
    main()
