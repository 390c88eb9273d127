"""Drift tests from running statistics (``RunningStats`` sketches) instead of raw windows.

The stats subscriber folds every batch into mergeable sketches (``domain/sketch.py``): counts,
per-dimension means and variances, per-dimension histograms on fixed reference bins, L2-norm
moments and a bottom-k uniform sample (reservoir). :func:`compare_sketches` runs the same
battery and decision as :func:`drift_monitor.drift.compare` from two such sketches:

* sample-based tests (K–S, AD, MMD, cosine) on the reservoirs: a uniform random sample of each
  window, so the tests stay valid (at the reservoir's sample size);
* PSI and KL on the full-window histograms (every vector counted, exactly, not a sample);
  the bootstrap interval of the KL score resamples the reservoirs, so it is conservative
  (wider) when the window holds more vectors than the reservoir;
* a per-dimension **mean-shift** test that only sketches can afford on full windows: Welch's
  ``z = (mean_c - mean_r) / sqrt(var_r / n_r + var_c / n_c)`` from the exact moments,
  two-sided normal p-values, corrected over dimensions like K–S, and a practical floor on
  ``|mean_c - mean_r|`` in typical-dimension spreads. It takes its own share of ``alpha``.

``merge`` is exact for histograms and samples (see ``domain/sketch.py``), so comparing merged
partial sketches gives the same report as comparing the sketch of the concatenated data.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from drift_monitor.domain.errors import ValidationError
from drift_monitor.domain.sketch import RunningStats
from drift_monitor.drift import histogram
from drift_monitor.drift.battery import MAX_LISTED_DIMENSIONS, Histograms, run_battery
from drift_monitor.drift.decision import (
    DEFAULT_MIN_EFFECT,
    DEFAULT_WEIGHTS,
    P_VALUE_TESTS,
    decide_dimensions,
)
from drift_monitor.drift.options import BatteryOptions, resolve_options
from drift_monitor.drift.quality import (
    DEAD_DIMENSION_RATIO,
    NORM_COLLAPSE_RATIO,
    NORM_EXPLOSION_RATIO,
    quality_report,
)
from drift_monitor.drift.report import DriftReport, TestResult


def compare_sketches(
    reference: RunningStats,
    current: RunningStats,
    options: BatteryOptions | None = None,
    /,
    *,
    mean_shift: bool = True,
    **overrides: Any,
) -> DriftReport:
    """Compare two windows summarised as running statistics.

    Parameters
    ----------
    reference, current
        Sketches of the two windows. They must have the same dimension and the same bin
        edges (a model's sketches share its reference edges), and each at least 2 vectors.
    options, **overrides
        As for :func:`drift_monitor.drift.compare` (``bins`` is unused: sketches carry their
        bin edges).
    mean_shift
        Also run the full-window per-dimension mean-shift test (reported as
        ``tests["mean_shift"]``; it takes a share of ``alpha`` of weight 1).

    Returns
    -------
    DriftReport
        ``n_reference`` / ``n_current`` are the full window counts; sample-based tests report
        the reservoir sizes they used (``quality["reservoir_rows"]``).

    Raises
    ------
    ValidationError
        Mismatched dimensions or edges, or a window with fewer than 2 vectors.
    """
    opts = resolve_options(options, overrides)
    _check_sketches(reference, current)
    ref_sample = np.asarray(reference.reservoir, dtype=np.float32)
    cur_sample = np.asarray(current.reservoir, dtype=np.float32)
    ref_std = np.sqrt(np.maximum(reference.variance, 0.0))
    extra: dict[str, TestResult] = {}
    if mean_shift:
        w = {**DEFAULT_WEIGHTS, **(opts.weights or {})}
        total = sum(w[t] for t in opts.selected if t in P_VALUE_TESTS) + w["mean_shift"]
        floors = {**DEFAULT_MIN_EFFECT, **(opts.min_effect or {})}
        extra["mean_shift"] = mean_shift_test(
            reference,
            current,
            level=opts.alpha * w["mean_shift"] / total,
            min_effect=floors["mean_shift"],
            correction=opts.correction,
        )
    edges = reference.edges
    hist = Histograms(
        ref_counts=np.asarray(reference.hist, dtype=np.int64),
        cur_counts=np.asarray(current.hist, dtype=np.int64),
        ref_idx=histogram.bin_indices(ref_sample, edges),
        cur_idx=histogram.bin_indices(cur_sample, edges),
    )
    return run_battery(
        ref_sample=ref_sample,
        cur_sample=cur_sample,
        n_reference=reference.count,
        n_current=current.count,
        hist=hist,
        ref_mean=np.asarray(reference.mean, dtype=np.float64),
        ref_std=ref_std,
        cur_mean=np.asarray(current.mean, dtype=np.float64),
        quality=sketch_quality(reference, current),
        options=opts,
        extra_tests=extra,
    )


def _check_sketches(reference: RunningStats, current: RunningStats) -> None:
    if reference.dimension != current.dimension:
        raise ValidationError(
            "current",
            f"dimension {current.dimension} does not match the reference dimension "
            f"{reference.dimension}",
        )
    if reference.edges.shape != current.edges.shape or not np.array_equal(
        reference.edges, current.edges
    ):
        raise ValidationError("current", "histogram edges differ from the reference sketch's")
    for name, sketch in (("reference", reference), ("current", current)):
        if sketch.count < 2 or sketch.reservoir.shape[0] < 2:
            raise ValidationError(name, f"needs at least 2 vectors, has {sketch.count}")


def mean_shift_test(
    reference: RunningStats,
    current: RunningStats,
    *,
    level: float,
    min_effect: float = DEFAULT_MIN_EFFECT["mean_shift"],
    correction: str = "bonferroni",
) -> TestResult:
    """Per-dimension Welch z-test of equal means from exact window moments.

    Parameters
    ----------
    reference, current
        Window sketches (``count``, ``mean``, ``m2``).
    level
        Share of alpha for this test; dimensions are corrected at this level.
    min_effect
        Smallest ``|mean_c - mean_r|`` (in median reference standard deviations) that counts.
    correction
        Correction over dimensions.

    Returns
    -------
    TestResult
        Named ``"mean_shift"``; ``statistic`` is the largest ``|z|``.
    """
    var_r = np.maximum(reference.variance, 0.0)
    var_c = np.maximum(current.variance, 0.0)
    se = np.sqrt(var_r / reference.count + var_c / current.count)
    delta = np.asarray(current.mean - reference.mean, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, delta / np.where(se > 0, se, 1.0), 0.0)
    pvalues = 2.0 * stats.norm.sf(np.abs(z))
    scale = float(np.median(np.sqrt(var_r)))
    if not scale > 0:
        scale = 1.0
    effects = np.abs(delta) / scale
    dec = decide_dimensions(
        pvalues, effects, level=level, min_effect=min_effect, correction=correction
    )
    drifted = np.flatnonzero(dec.drifted)
    listed = drifted[np.argsort(-effects[drifted], kind="stable")][:MAX_LISTED_DIMENSIONS]
    sig = effects[dec.significant]
    return TestResult(
        name="mean_shift",
        statistic=float(np.abs(z).max()),
        p_value=dec.family_pvalue,
        drift=bool(drifted.size),
        effect_size=float(sig.max()) if sig.size else float(effects.max()),
        effect_threshold=min_effect,
        level=level,
        details={
            "significant": bool(dec.significant.any()),
            "n_significant_dimensions": int(dec.significant.sum()),
            "n_drifted_dimensions": int(drifted.size),
            "drifted_dimensions": [int(j) for j in listed],
        },
    )


def sketch_quality(reference: RunningStats, current: RunningStats) -> dict[str, Any]:
    """Data-quality report from sketches: reservoir checks, full-window norms and constants."""
    report = quality_report(
        reference.reservoir, current.reservoir, max_listed=MAX_LISTED_DIMENSIONS
    )
    ref_std = np.sqrt(np.maximum(reference.variance, 0.0))
    cur_var = current.variance
    scale = float(np.median(ref_std))
    newly_constant = np.flatnonzero((cur_var == 0) & (ref_std > DEAD_DIMENSION_RATIO * scale))
    report["newly_constant_dimensions"] = [int(j) for j in newly_constant[:MAX_LISTED_DIMENSIONS]]
    report["n_newly_constant_dimensions"] = int(newly_constant.size)
    issues = [i for i in report["issues"] if i not in ("constant_dimensions",)]
    if newly_constant.size:
        issues.append("constant_dimensions")
    ratio = current.norm_mean / reference.norm_mean if reference.norm_mean > 0 else 1.0
    report["norm_mean_reference"] = float(reference.norm_mean)
    report["norm_mean_current"] = float(current.norm_mean)
    report["norm_ratio"] = float(ratio)
    issues = [i for i in issues if i not in ("norm_collapse", "norm_explosion")]
    # Norm findings come from the full-window moments, not from the reservoirs.
    notes = [n for n in report["notes"] if not n.startswith("median vector norm")]
    if ratio < NORM_COLLAPSE_RATIO:
        issues.append("norm_collapse")
        notes.append(
            f"mean vector norm fell from {reference.norm_mean:.4g} to {current.norm_mean:.4g}"
        )
    elif ratio > NORM_EXPLOSION_RATIO:
        issues.append("norm_explosion")
        notes.append(
            f"mean vector norm rose from {reference.norm_mean:.4g} to {current.norm_mean:.4g}"
        )
    report["notes"] = notes
    if current.norm_min == 0.0 and "zero_vectors" not in issues and reference.norm_min > 0.0:
        issues.append("zero_vectors")
    report["issues"] = issues
    report["ok"] = not issues
    report["reservoir_rows"] = [int(reference.reservoir.shape[0]), int(current.reservoir.shape[0])]
    return report


__all__ = ["compare_sketches", "mean_shift_test", "sketch_quality"]
