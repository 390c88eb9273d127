#!/usr/bin/env python3
"""Benchmark the vectorised drift statistics against straightforward reference implementations.

    nice -n 10 .venv/bin/python scripts/bench_stats.py [--sizes 1000,5000] [--dims 384,768]
        [--permutations 200] [--naive-permutations 10] [--threads 1]

For every n = m and d it times, in the same run and on the same data:

* K–S: ``drift.ks.ks_columns`` vs a Python loop of ``scipy.stats.ks_2samp`` per dimension;
* Anderson–Darling: ``drift.ad.ad_columns`` vs a loop of ``scipy.stats.anderson_ksamp``;
* MMD permutation test: ``drift.mmd.mmd_permutation_test`` (all permutations as matrix
  products over one kernel matrix) vs the same kernel matrix followed by one loop iteration
  per permutation that slices out the permuted blocks and sums them. The loop is timed on
  ``--naive-permutations`` permutations and its per-permutation cost extrapolated to
  ``--permutations`` (printed as "extrapolated"); the kernel matrix is computed once and
  counted in both;
* ``compare()`` end to end with its defaults (AD + MMD on at most 2000 rows per side, KS for
  explanations, PSI/KL with bias correction, 200-resample bootstrap interval).

``--batteries`` instead times ``compare()`` per battery at ``--battery-sizes`` (default 200 and
1000 rows per window, d = 384): the battery before the novelty test (AD + MMD, weights 1 : 3),
today's default, and the aggregated MMD, each the median of ``--repeats`` runs on the same
data in the same process (interleaved rounds, rotating order), with its ratio to the first.

Times are wall-clock without tracing; peak memory is measured with ``tracemalloc`` (numpy
reports its buffers to it) in a separate run of the same call ("-": the per-dimension loops,
which hold one column at a time). BLAS runs on ``--threads`` threads (default 1: the figures are per
core and the machine is shared). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import sys


def _set_threads(argv: list[str]) -> None:
    # Must happen before numpy is imported.
    threads = "1"
    for i, arg in enumerate(argv):
        if arg == "--threads" and i + 1 < len(argv):
            threads = argv[i + 1]
        elif arg.startswith("--threads="):
            threads = arg.split("=", 1)[1]
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = threads


_set_threads(sys.argv)

import time  # noqa: E402
import tracemalloc  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from drift_monitor.drift import compare  # noqa: E402
from drift_monitor.drift.ad import ad_columns  # noqa: E402
from drift_monitor.drift.ks import ks_columns  # noqa: E402
from drift_monitor.drift.mmd import (  # noqa: E402
    gaussian_kernel,
    median_bandwidth,
    mmd_permutation_test,
)
from scipy import stats  # noqa: E402


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Wall time (s) and result of ``fn()``, without memory tracing (it slows allocations)."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def peak_mb(fn: Callable[[], Any]) -> float:
    """Peak memory (MB) that ``fn()`` allocated, traced in a separate run."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def naive_ks(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.array([stats.ks_2samp(x[:, j], y[:, j]).pvalue for j in range(x.shape[1])])


def naive_ad(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.array(
            [stats.anderson_ksamp([x[:, j], y[:, j]]).statistic for j in range(x.shape[1])]
        )


def naive_mmd(x: np.ndarray, y: np.ndarray, permutations: int, seed: int) -> tuple[float, float]:
    """Kernel once, then one loop iteration per permutation; returns (kernel s, per-perm s)."""
    rng = np.random.default_rng(seed)
    z = np.concatenate([x, y]).astype(np.float32)
    n, total = x.shape[0], z.shape[0]
    start = time.perf_counter()
    kernel = gaussian_kernel(z, z, median_bandwidth(z, rng=rng))
    kernel_time = time.perf_counter() - start

    def stat(a: np.ndarray, b: np.ndarray) -> float:
        kxx = kernel[np.ix_(a, a)]
        kyy = kernel[np.ix_(b, b)]
        kxy = kernel[np.ix_(a, b)]
        na, nb = len(a), len(b)
        return float(
            (kxx.sum(dtype=np.float64) - np.trace(kxx)) / (na * (na - 1))
            + (kyy.sum(dtype=np.float64) - np.trace(kyy)) / (nb * (nb - 1))
            - 2 * kxy.sum(dtype=np.float64) / (na * nb)
        )

    observed = stat(np.arange(n), np.arange(n, total))
    start = time.perf_counter()
    count = 0
    for _ in range(permutations):
        perm = rng.permutation(total)
        count += stat(perm[:n], perm[n:]) >= observed
    per_perm = (time.perf_counter() - start) / permutations
    return kernel_time, per_perm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,5000")
    parser.add_argument("--dims", default="384,768")
    parser.add_argument("--permutations", type=int, default=200)
    parser.add_argument("--naive-permutations", type=int, default=10)
    parser.add_argument("--threads", default="1")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batteries", action="store_true", help="time compare() per battery")
    parser.add_argument("--battery-sizes", default="200,1000")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if args.batteries:
        battery_table([int(s) for s in args.battery_sizes.split(",")], args.repeats, args.seed)
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    dims = [int(s) for s in args.dims.split(",")]

    print(
        f"BLAS threads: {os.environ['OPENBLAS_NUM_THREADS']}; MMD permutations: "
        f"{args.permutations} (loop timed on {args.naive_permutations}, extrapolated)"
    )
    print()
    print("| n = m | d | test | vectorised s | peak MB | reference loop s | peak MB | speed-up |")
    print("|---|---|---|---|---|---|---|---|")
    for n in sizes:
        for d in dims:
            rng = np.random.default_rng(args.seed)
            x = rng.standard_normal((n, d)).astype(np.float32)
            y = (rng.standard_normal((n, d)) + 0.02).astype(np.float32)

            t_v, fast = timed(lambda x=x, y=y: ks_columns(x, y))
            m_v = peak_mb(lambda x=x, y=y: ks_columns(x, y))
            t_n, slow = timed(lambda x=x, y=y: naive_ks(x, y))
            assert np.allclose(fast.pvalue, slow, rtol=1e-10, atol=0), "K-S p-values differ"
            row(n, d, f"K-S ({fast.method} p)", t_v, m_v, f"{t_n:.2f}", None, t_n / t_v)

            t_v, fast_ad = timed(lambda x=x, y=y: ad_columns(x, y))
            m_v = peak_mb(lambda x=x, y=y: ad_columns(x, y))
            t_n, slow_ad = timed(lambda x=x, y=y: naive_ad(x, y))
            assert np.allclose(fast_ad.standardized, slow_ad, rtol=1e-8), "AD statistics differ"
            row(n, d, "Anderson-Darling", t_v, m_v, f"{t_n:.2f}", None, t_n / t_v)

            def vec_mmd(x: np.ndarray = x, y: np.ndarray = y) -> object:
                return mmd_permutation_test(
                    x, y, n_permutations=args.permutations, seed=args.seed, max_samples=None
                )

            t_v, _ = timed(vec_mmd)
            m_v = peak_mb(vec_mmd)
            _, (kernel_s, per_perm) = timed(
                lambda x=x, y=y: naive_mmd(x, y, args.naive_permutations, args.seed)
            )
            m_n = peak_mb(lambda x=x, y=y: naive_mmd(x, y, 2, args.seed))
            naive_total = kernel_s + per_perm * args.permutations
            row(
                n,
                d,
                f"MMD, {args.permutations} permutations",
                t_v,
                m_v,
                f"{naive_total:.2f} (kernel {kernel_s:.2f} + {args.permutations} x {per_perm:.3f})",
                m_n,
                naive_total / t_v,
            )

            t_c, report = timed(lambda x=x, y=y: compare(x, y, seed=args.seed))
            m_c = peak_mb(lambda x=x, y=y: compare(x, y, seed=args.seed))
            print(
                f"| {n} | {d} | compare() defaults (drift_detected={report.drift_detected}) "
                f"| {t_c:.2f} | {m_c:.0f} | - | - | - |",
                flush=True,
            )


#: Batteries timed by --batteries: name -> compare() settings. The first is the baseline.
BATTERIES: dict[str, dict[str, Any]] = {
    "ad+mmd 1:3 (before)": {"tests": "ad,mmd"},
    "default": {},
    "ad+mmd_agg 1:3": {"tests": "ad,mmd_agg", "weights": {"mmd_agg": 3.0}},
}


def battery_table(sizes: list[int], repeats: int, seed: int, d: int = 384) -> None:
    print(
        f"compare() per battery, d = {d}, median of {repeats} runs, BLAS threads: "
        f"{os.environ['OPENBLAS_NUM_THREADS']}"
    )
    print()
    print("| n = m | battery | tests | seconds | ratio to before |")
    print("|---|---|---|---|---|")
    for n in sizes:
        rng = np.random.default_rng(seed)
        # Unit-norm anisotropic vectors, like sentence embeddings.
        scale = 1.0 / np.sqrt(np.arange(1, d + 1))
        x = rng.standard_normal((n, d)) * scale + 0.3
        y = rng.standard_normal((n, d)) * scale + 0.3
        x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
        y = (y / np.linalg.norm(y, axis=1, keepdims=True)).astype(np.float32)
        for settings in BATTERIES.values():
            compare(x, y, seed=seed, **settings)  # warm-up
        # Interleaved rounds: load from other processes hits every battery alike.
        times: dict[str, list[float]] = {name: [] for name in BATTERIES}
        tests: dict[str, str] = {}
        names = list(BATTERIES)
        for r in range(repeats):
            # Rotate the order too, so no battery always runs first in a round.
            for name in names[r % len(names) :] + names[: r % len(names)]:
                settings = BATTERIES[name]
                start = time.perf_counter()
                report = compare(x, y, seed=seed + r, **settings)
                times[name].append(time.perf_counter() - start)
                tests[name] = ",".join(report.tests)
        base = float(np.median(times[next(iter(BATTERIES))]))
        for name in BATTERIES:
            median = float(np.median(times[name]))
            print(
                f"| {n} | {name} | {tests[name]} | {median:.3f} | {median / base:.2f} |",
                flush=True,
            )


def row(
    n: int, d: int, name: str, t_v: float, m_v: float, naive: str, m_n: float | None, ratio: float
) -> None:
    naive_mem = f"{m_n:.0f}" if m_n is not None else "-"
    print(
        f"| {n} | {d} | {name} | {t_v:.3f} | {m_v:.0f} | {naive} | {naive_mem} | {ratio:.1f}x |",
        flush=True,
    )


if __name__ == "__main__":
    main()
