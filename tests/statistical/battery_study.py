"""Print the tables behind the default battery (docs/statistics.md, "Choosing the battery").

    nice -n 10 .venv/bin/python tests/statistical/battery_study.py \
        [--null-trials 200] [--power-trials 100] [--power-trials-1000 50] [--sizes 50,200,1000]

Not a test (the guards live in test_battery_real_embeddings.py). For every trial it computes
each test's raw outcome once (AD, MMD, aggregated MMD, novelty; ``drift_scenarios.run_trial``)
and applies each candidate battery's decision rule to the same outcomes, so the batteries are
compared on identical data and seeds. n is the size of both windows. Nulls: disjoint random
splits of the real nouns and Debian pools and the synthetic anisotropic unit vectors (d = 32);
alternatives: ``embedding_scenarios.ALTERNATIVES``. Needs ../shared/data.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import drift_scenarios as sc
import embedding_scenarios as es
from drift_monitor.drift.decision import DEFAULT_TESTS, DEFAULT_WEIGHTS

#: Candidate batteries (test -> weight of alpha). "before" is the default this study replaced.
BATTERIES: dict[str, dict[str, float]] = {
    "ad+mmd 1:3 (before)": {"ad": 1.0, "mmd": 3.0},
    "ad+mmd+novelty 1:3:1": {"ad": 1.0, "mmd": 3.0, "novelty": 1.0},
    "ad+mmd+novelty 1:2:1": {"ad": 1.0, "mmd": 2.0, "novelty": 1.0},
    "ad+mmd_agg 1:3": {"ad": 1.0, "mmd_agg": 3.0},
    "mmd": {"mmd": 1.0},
    "mmd_agg": {"mmd_agg": 1.0},
    "novelty": {"novelty": 1.0},
}


#: Largest n at which the aggregated MMD is run (it triples MMD's cost; "-" above).
AGG_MAX_N = 200


def _row(label: str, n: int, outcomes: list[sc.Trial], digits: int) -> str:
    cells = []
    for battery in BATTERIES.values():
        if "mmd_agg" in battery and n > AGG_MAX_N:
            cells.append("-")
        else:
            cells.append(f"{np.mean([sc.decide(t, battery) for t in outcomes]):.{digits}f}")
    return f"| {label} | {n} | " + " | ".join(cells) + " |"


def _trials(draw: es.Scenario, n: int, count: int, seed: int) -> list[sc.Trial]:
    out = []
    for i in range(count):
        ref, cur = draw(np.random.default_rng([seed, n, i]), n)
        out.append(sc.run_trial(ref, cur, seed=i, with_new=True, with_agg=n <= AGG_MAX_N))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--null-trials", type=int, default=200)
    parser.add_argument("--power-trials", type=int, default=100)
    parser.add_argument("--power-trials-1000", type=int, default=50)
    parser.add_argument("--sizes", default="50,200,1000")
    parser.add_argument("--only", default="", help="comma-separated scenario names")
    parser.add_argument("--part", choices=("all", "null", "power"), default="all")
    args = parser.parse_args()
    if not es.available():
        sys.exit(f"needs the real embeddings in {sc.SHARED_DATA}")
    sizes = [int(s) for s in args.sizes.split(",")]
    only = set(filter(None, args.only.split(",")))
    current = {t: DEFAULT_WEIGHTS[t] for t in DEFAULT_TESTS}
    print(f"current default: {current}")
    header = "| scenario | n | " + " | ".join(BATTERIES) + " |"
    rule = "|---|---|" + "---|" * len(BATTERIES)
    start = time.time()

    if args.part in ("all", "null"):
        null_table(args, sizes, only, header, rule)
    if args.part in ("all", "power"):
        power_table(args, sizes, only, header, rule)
    print(f"\n(study time {time.time() - start:.0f} s)")


def null_table(
    args: argparse.Namespace, sizes: list[int], only: set[str], header: str, rule: str
) -> None:
    print(f"\n## False alarms (alpha = 0.05, {args.null_trials} trials per cell)")
    print(header)
    print(rule)
    synthetic = sc.Anisotropic(32).sampler()
    nulls: dict[str, es.Scenario] = {
        **es.NULLS,
        "anisotropic_unit_d32": lambda rng, n: (synthetic(rng, n), synthetic(rng, n)),
    }
    for name, draw in nulls.items():
        if only and name not in only:
            continue
        for n in sizes:
            print(_row(name, n, _trials(draw, n, args.null_trials, 41), 3), flush=True)
    bound = sc.binomial_upper(0.05, args.null_trials)
    print(f"(99% binomial bound for a true rate of 0.05 over {args.null_trials}: {bound:.3f})")


def power_table(
    args: argparse.Namespace, sizes: list[int], only: set[str], header: str, rule: str
) -> None:
    print(f"\n## Power ({args.power_trials} trials; {args.power_trials_1000} at n = 1000)")
    print(header)
    print(rule)
    for name, draw in es.ALTERNATIVES.items():
        if only and name not in only:
            continue
        for n in sizes:
            count = args.power_trials_1000 if n >= 1000 else args.power_trials
            print(_row(name, n, _trials(draw, n, count, 42), 2), flush=True)


if __name__ == "__main__":
    main()
