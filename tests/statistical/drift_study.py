"""Print the calibration / power tables quoted in docs/statistics.md.

    .venv/bin/python tests/statistical/drift_study.py [--null-trials 200] [--power-trials 100]

Not a test (the assertions live in test_drift_calibration.py and test_drift_power.py); this
sweeps every candidate battery over the same seeded trials so they can be compared.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import drift_scenarios as sc


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--null-trials", type=int, default=200)
    parser.add_argument("--power-trials", type=int, default=100)
    parser.add_argument("--d", type=int, default=32)
    parser.add_argument("--skip-real", action="store_true")
    args = parser.parse_args()
    names = list(sc.BATTERIES)
    header = "| scenario | n | " + " | ".join(names) + " |"
    rule = "|---|---|" + "---|" * len(names)

    print(f"## False-positive rate (alpha = 0.05, {args.null_trials} trials, d = {args.d})")
    print(header)
    print(rule)
    start = time.time()
    for dist, sampler in sc.null_samplers(args.d).items():
        for n in (50, 200, 1000):
            ts = sc.trials(sampler, sampler, n=n, count=args.null_trials, seed=1)
            rates = [np.mean([sc.decide(t, sc.BATTERIES[b]) for t in ts]) for b in names]
            print(f"| {dist} | {n} | " + " | ".join(f"{r:.3f}" for r in rates) + " |", flush=True)
    bound = sc.binomial_upper(0.05, args.null_trials)
    print(f"(99% binomial bound for a true rate of 0.05: {bound:.3f})")
    print(f"\n## Power at n = 1000 ({args.power_trials} trials, d = {args.d})")
    print(header)
    print(rule)
    for scen, (ref_s, cur_s) in sc.power_scenarios(args.d).items():
        ts = sc.trials(ref_s, cur_s, n=1000, count=args.power_trials, seed=2)
        rates = [np.mean([sc.decide(t, sc.BATTERIES[b]) for t in ts]) for b in names]
        print(f"| {scen} | 1000 | " + " | ".join(f"{r:.2f}" for r in rates) + " |", flush=True)
    if not args.skip_real and sc.SHARED_DATA.is_dir():
        real_data_table(names, args.power_trials)
    print(f"\n(study time {time.time() - start:.0f} s)")


def real_data_table(names: list[str], count: int) -> None:
    nouns = np.load(sc.SHARED_DATA / "wordnet_noun_minilm384.npy")
    verbs = np.load(sc.SHARED_DATA / "wordnet_verb_minilm384.npy")
    print(f"\n## Real embeddings (all-MiniLM-L6-v2, d = 384, {count} trials each)")
    print("| scenario | reference n | current n | " + " | ".join(names) + " |")
    print("|---|---|---|" + "---|" * len(names))
    for label, n_ref, share in (
        ("noun split (no drift)", 1000, 0.0),
        ("noun split (no drift)", 200, 0.0),
        ("25% verbs in nouns", 1000, 0.25),
        ("25% verbs in nouns", 200, 0.25),
        ("noun split, current float16", 1000, -1.0),
        ("one dimension shifted 0.6 sd", 1000, -2.0),
    ):
        out = []
        for i in range(count):
            rng = np.random.default_rng([7, n_ref, i])
            perm = rng.permutation(len(nouns))
            ref = nouns[perm[:n_ref]]
            if share > 0:
                k = round(share * 200)
                cur = np.concatenate(
                    [nouns[perm[n_ref : n_ref + 200 - k]], verbs[rng.permutation(len(verbs))[:k]]]
                )
            else:
                cur = nouns[perm[n_ref : n_ref + 200]].copy()
                if share == -1.0:
                    cur = cur.astype(np.float16).astype(np.float32)
                elif share == -2.0:  # one broken dimension
                    cur[:, 7] += 0.6 * ref[:, 7].std()
            out.append(sc.run_trial(ref, cur, seed=i))
        rates = [np.mean([sc.decide(t, sc.BATTERIES[b]) for t in out]) for b in names]
        print(
            f"| {label} | {n_ref} | 200 | " + " | ".join(f"{r:.2f}" for r in rates) + " |",
            flush=True,
        )


if __name__ == "__main__":
    main()
