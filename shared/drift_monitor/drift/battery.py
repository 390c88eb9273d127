"""The test battery shared by ``compare`` (raw windows) and ``compare_sketches`` (sketches).

:func:`run_battery` takes the two samples the sample-based tests need, the per-dimension
histograms and moments (exact from raw windows, or from sketches), and one
:class:`~drift_monitor.drift.options.BatteryOptions`; it runs the selected tests at their
shares of ``alpha`` (``decision``) and assembles the :class:`DriftReport`. A new test is added
here and in ``decision.TEST_NAMES``; both entry points then offer it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from drift_monitor.drift import histogram
from drift_monitor.drift.ad import ad_columns
from drift_monitor.drift.cosine import cosine_test
from drift_monitor.drift.decision import (
    DEFAULT_KL_THRESHOLD,
    DEFAULT_MIN_EFFECT,
    DEFAULT_WEIGHTS,
    decide_dimensions,
    test_levels,
)
from drift_monitor.drift.ks import KSColumns, ks_columns
from drift_monitor.drift.mmd import mmd_agg_test, mmd_block_test, mmd_permutation_test
from drift_monitor.drift.novelty import novelty_test
from drift_monitor.drift.options import BatteryOptions
from drift_monitor.drift.quality import dead_dimensions
from drift_monitor.drift.report import DriftReport, TestResult

FloatArray = npt.NDArray[np.float64]

MAX_LISTED_DIMENSIONS = 20


@dataclass(frozen=True)
class Histograms:
    """Per-dimension bin counts of both windows on the reference bins."""

    ref_counts: npt.NDArray[np.int64]
    cur_counts: npt.NDArray[np.int64]
    # Per-row bin indices of the samples, for the bootstrap (may be subsamples).
    ref_idx: npt.NDArray[np.int16]
    cur_idx: npt.NDArray[np.int16]


def run_battery(
    *,
    ref_sample: np.ndarray,
    cur_sample: np.ndarray,
    n_reference: int,
    n_current: int,
    hist: Histograms,
    ref_mean: FloatArray,
    ref_std: FloatArray,
    cur_mean: FloatArray,
    quality: dict[str, Any],
    options: BatteryOptions,
    extra_tests: dict[str, TestResult],
) -> DriftReport:
    """Run the selected tests and the drift decision.

    Parameters
    ----------
    ref_sample, cur_sample
        Rows the sample-based tests use (the windows, or uniform samples of them).
    n_reference, n_current
        Full window sizes (reported).
    hist
        Per-dimension histograms of the windows on the reference bins.
    ref_mean, ref_std, cur_mean
        Per-dimension moments of the windows (explanations and the effect-size unit).
    quality
        Data-quality report (never sets ``drift_detected``).
    options
        Validated settings; ``options.tests`` selects the tests.
    extra_tests
        p-value tests the caller already decided at their weighted share of ``alpha`` (the
        sketch-only mean-shift test); their weights count in the split.
    """
    tests = options.selected
    alpha, seed, correction = options.alpha, options.seed, options.correction
    floors = {**DEFAULT_MIN_EFFECT, **(options.min_effect or {})}
    all_weights = {**DEFAULT_WEIGHTS, **(options.weights or {})}
    levels = test_levels(
        tests,
        alpha,
        weights=options.weights,
        extra_weight=sum(all_weights[t] for t in extra_tests),
    )
    kl_threshold = DEFAULT_KL_THRESHOLD if options.threshold is None else float(options.threshold)
    dimension = ref_sample.shape[1]

    # Typical spread of one dimension: the unit of the per-dimension effect sizes.
    scale = float(np.median(ref_std))
    if not scale > 0:
        scale = float(ref_std.max()) if ref_std.max() > 0 else 1.0

    ks = ks_columns(ref_sample, cur_sample)
    dim_effect = ks.wasserstein / scale
    div = histogram.divergence_columns(hist.ref_counts, hist.cur_counts, seed=seed)
    # Quantile bins of a dead (near-constant) dimension slice numerical noise: a float16
    # round-trip moves all its mass to one bin and gives a huge divergence for a change of
    # 1e-8. Such dimensions count only if they moved by a practical amount (came alive).
    live = np.ones(dimension, dtype=bool)
    live[dead_dimensions(ref_std)] = False
    live |= dim_effect >= floors["ks"]
    if not live.any():
        live[:] = True
    kl_mean = float(div.kl_corrected[live].mean())
    psi_mean = float(div.psi_corrected[live].mean())

    results: dict[str, TestResult] = {}
    drifted_dims: dict[str, npt.NDArray[np.bool_]] = {}
    for name in tests:
        level = levels[name]
        if name == "ks":
            assert level is not None
            results[name], drifted_dims[name] = _per_dimension_result(
                name,
                ks.statistic,
                ks.pvalue,
                dim_effect,
                level,
                floors[name],
                correction,
                {"method": ks.method},
            )
        elif name == "ad":
            assert level is not None
            ad = ad_columns(ref_sample, cur_sample, seed=seed)
            results[name], drifted_dims[name] = _per_dimension_result(
                name,
                ad.statistic,
                ad.pvalue,
                dim_effect,
                level,
                floors[name],
                correction,
                {"method": "asymptotic"},
            )
        elif name == "mmd":
            assert level is not None
            if options.mmd_method == "block":
                mmd = mmd_block_test(ref_sample, cur_sample, seed=seed)
            else:
                mmd = mmd_permutation_test(
                    ref_sample,
                    cur_sample,
                    n_permutations=options.n_permutations,
                    seed=seed,
                    max_samples=options.mmd_max_samples,
                )
            results[name] = _sample_result(
                name,
                mmd.statistic,
                mmd.pvalue,
                mmd.statistic,
                level,
                floors[name],
                {
                    "method": mmd.method,
                    "bandwidth": mmd.bandwidth,
                    "n_permutations": mmd.n_permutations,
                    "null_mean": mmd.null_mean,
                    "null_std": mmd.null_std,
                    "rows_used": [mmd.n_reference, mmd.n_current],
                },
            )
        elif name == "cosine":
            assert level is not None
            cos = cosine_test(ref_sample, cur_sample)
            results[name] = _sample_result(
                name,
                cos.statistic,
                cos.pvalue,
                cos.effect_size,
                level,
                floors[name],
                {
                    "centroid_cosine": cos.centroid_cosine,
                    "mean_cosine_reference": cos.reference_mean,
                    "mean_cosine_current": cos.current_mean,
                    "wasserstein": cos.wasserstein,
                },
            )
        elif name == "mmd_agg":
            assert level is not None
            agg = mmd_agg_test(
                ref_sample,
                cur_sample,
                n_permutations=options.n_permutations,
                seed=seed,
                max_samples=options.mmd_max_samples,
            )
            results[name] = _sample_result(
                name,
                agg.statistic,
                agg.pvalue,
                agg.statistic,
                level,
                floors[name],
                {
                    "method": "permutation",
                    "bandwidth": agg.bandwidth,
                    "bandwidths": list(agg.bandwidths),
                    "statistics": list(agg.statistics),
                    "bandwidth_p_values": list(agg.pvalues),
                    "n_permutations": agg.n_permutations,
                    "rows_used": [agg.n_reference, agg.n_current],
                },
            )
        elif name == "novelty":
            assert level is not None
            nov = novelty_test(ref_sample, cur_sample, k=options.novelty_k, seed=seed)
            results[name] = _sample_result(
                name,
                nov.statistic,
                nov.pvalue,
                nov.effect_size,
                level,
                floors[name],
                {
                    "n_novel": nov.n_novel,
                    "novel_share": nov.n_novel / nov.n_current,
                    "expected_share": nov.expected_share,
                    "quantile": nov.level_q,
                    "score_threshold": nov.threshold,
                    "k": nov.k,
                    "examples": nov.examples,
                    "levels": nov.per_level,
                    "rows_used": [nov.n_fit, nov.n_calibration, nov.n_current],
                },
            )
        else:  # threshold tests
            corrected = (div.kl_corrected if name == "kl" else div.psi_corrected)[live]
            raw = (div.kl if name == "kl" else div.psi)[live]
            limit = kl_threshold if name == "kl" else options.psi_threshold
            value = max(float(corrected.mean()), 0.0)
            results[name] = TestResult(
                name=name,
                statistic=value,
                p_value=None,
                drift=bool(value > limit),
                effect_size=value,
                effect_threshold=limit,
                level=None,
                details={
                    "mean": value,
                    "max": float(corrected.max()),
                    "max_dimension": int(np.flatnonzero(live)[corrected.argmax()]),
                    "raw_mean": float(raw.mean()),
                    "bias": float((raw - corrected).mean()),
                    "excluded_dead_dimensions": int(dimension - live.sum()),
                },
            )
    results.update(extra_tests)

    ci = _kl_interval(hist, live, options.n_bootstrap, seed, options.confidence_level, kl_mean)
    top = _top_dimensions(
        ks, dim_effect, ref_mean, ref_std, cur_mean, div, drifted_dims, options.top_k
    )
    drift = any(t.drift for t in results.values())
    return DriftReport(
        drift_detected=drift,
        tests=results,
        n_reference=n_reference,
        n_current=n_current,
        dimension=dimension,
        alpha=alpha,
        correction=correction,
        quality=quality,
        kl_divergence=max(kl_mean, 0.0),
        confidence_interval=ci,
        confidence_level=options.confidence_level,
        psi=max(psi_mean, 0.0),
        top_dimensions=top,
        seed=seed,
        summary=_summary(drift, results, quality),
    )


def _sample_result(
    name: str,
    statistic: float,
    pvalue: float,
    effect: float,
    level: float,
    floor: float,
    details: dict[str, Any],
) -> TestResult:
    """A whole-sample test's result: drift when significant at its level and ``effect`` is at
    least the practical floor."""
    significant = pvalue <= level
    return TestResult(
        name=name,
        statistic=statistic,
        p_value=pvalue,
        drift=bool(significant and effect >= floor),
        effect_size=effect,
        effect_threshold=floor,
        level=level,
        details={"significant": bool(significant), **details},
    )


def _per_dimension_result(
    name: str,
    statistic: FloatArray,
    pvalues: FloatArray,
    effects: FloatArray,
    level: float,
    floor: float,
    correction: str,
    extra: dict[str, Any],
) -> tuple[TestResult, npt.NDArray[np.bool_]]:
    dec = decide_dimensions(pvalues, effects, level=level, min_effect=floor, correction=correction)
    drifted = np.flatnonzero(dec.drifted)
    # Dimensions ordered by effect, so the list names the largest moves first.
    listed = drifted[np.argsort(-effects[drifted], kind="stable")][:MAX_LISTED_DIMENSIONS]
    sig_effects = effects[dec.significant]
    result = TestResult(
        name=name,
        statistic=float(statistic.max()),
        p_value=dec.family_pvalue,
        drift=bool(drifted.size > 0),
        effect_size=float(sig_effects.max()) if sig_effects.size else float(effects.max()),
        effect_threshold=floor,
        level=level,
        details={
            **extra,
            "significant": bool(dec.significant.any()),
            "n_significant_dimensions": int(dec.significant.sum()),
            "n_drifted_dimensions": int(drifted.size),
            "drifted_dimensions": [int(j) for j in listed],
            "mean_statistic": float(statistic.mean()),
        },
    )
    return result, dec.drifted


def _kl_interval(
    hist: Histograms,
    live: npt.NDArray[np.bool_],
    n_bootstrap: int,
    seed: int,
    level: float,
    estimate: float,
) -> tuple[float, float] | None:
    """Basic bootstrap interval for the bias-corrected mean KL.

    Resampled plug-in values are themselves biased upwards by about the plug-in bias; the basic
    interval ``[2 t - q_hi, 2 t - q_lo]`` (``t`` the plug-in estimate) cancels that, and is
    centred near the bias-corrected estimate. Clipped at 0 (a divergence is not negative).
    """
    if n_bootstrap <= 0:
        return None
    n_bins = int(hist.ref_counts.shape[1])
    boot = histogram.bootstrap_mean_kl(
        hist.ref_idx[:, live], hist.cur_idx[:, live], n_bins, n_bootstrap=n_bootstrap, seed=seed + 1
    )
    _, kl = histogram.divergences(hist.ref_counts[live], hist.cur_counts[live])
    plug_in = float(kl.mean())
    lo_q, hi_q = np.quantile(boot, [(1 - level) / 2, 1 - (1 - level) / 2])
    lo = max(2 * plug_in - float(hi_q), 0.0)
    hi = max(2 * plug_in - float(lo_q), 0.0)
    # The interval always contains the point estimate it accompanies.
    point = max(estimate, 0.0)
    return min(lo, point), max(hi, point)


def _top_dimensions(
    ks: KSColumns,
    effects: FloatArray,
    ref_mean: FloatArray,
    ref_std: FloatArray,
    cur_mean: FloatArray,
    div: histogram.DivergenceColumns,
    drifted: dict[str, npt.NDArray[np.bool_]],
    top_k: int,
) -> list[dict[str, Any]]:
    """Dimensions with the largest practical shift, with every per-dimension statistic."""
    order = np.lexsort((-ks.statistic, -effects))[:top_k]
    out = []
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(ref_std > 0, (cur_mean - ref_mean) / ref_std, 0.0)
    for j in order:
        out.append(
            {
                "dimension": int(j),
                "effect_size": float(effects[j]),
                "ks_statistic": float(ks.statistic[j]),
                "ks_p_value": float(ks.pvalue[j]),
                "wasserstein": float(ks.wasserstein[j]),
                "mean_shift_std": float(shift[j]),
                "psi": float(div.psi_corrected[j]),
                "kl": float(div.kl_corrected[j]),
                "drift": bool(any(mask[j] for mask in drifted.values())),
            }
        )
    return out


def _summary(drift: bool, results: dict[str, TestResult], quality: dict[str, Any]) -> str:
    flagged = [name for name, t in results.items() if t.drift]
    significant_only = [
        name
        for name, t in results.items()
        if not t.drift and t.details.get("significant") and t.p_value is not None
    ]
    parts = [f"drift detected by {', '.join(flagged)}" if drift else "no drift"]
    if significant_only:
        parts.append(
            f"significant but below the practical threshold: {', '.join(significant_only)}"
        )
    if not quality.get("ok", True):
        parts.append(f"data quality: {', '.join(quality.get('issues', []))}")
    return "; ".join(parts)


__all__ = ["MAX_LISTED_DIMENSIONS", "Histograms", "run_battery"]
