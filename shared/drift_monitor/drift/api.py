"""``compare``: the one entry point shared by the detection function, the CLI and notebooks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from drift_monitor.domain.errors import ValidationError
from drift_monitor.drift import histogram
from drift_monitor.drift.ad import ad_columns
from drift_monitor.drift.cosine import cosine_test
from drift_monitor.drift.decision import (
    DEFAULT_KL_THRESHOLD,
    DEFAULT_MIN_EFFECT,
    DEFAULT_PSI_THRESHOLD,
    DEFAULT_WEIGHTS,
    decide_dimensions,
    normalise_tests,
    test_levels,
)
from drift_monitor.drift.ks import KSColumns, ks_columns
from drift_monitor.drift.mmd import mmd_block_test, mmd_permutation_test
from drift_monitor.drift.multiple_testing import CORRECTIONS
from drift_monitor.drift.quality import dead_dimensions, quality_report
from drift_monitor.drift.report import DriftReport, TestResult

FloatArray = npt.NDArray[np.float64]

#: Per-side row cap of the exact MMD permutation test (kernel matrix of at most 4000²).
DEFAULT_MMD_MAX_SAMPLES = 2000
DEFAULT_PERMUTATIONS = 300
DEFAULT_BOOTSTRAP = 200
MAX_LISTED_DIMENSIONS = 20


def validate_samples(reference: Any, current: Any) -> tuple[np.ndarray, np.ndarray]:
    """Check two samples and return them as float arrays.

    Raises
    ------
    ValidationError
        With ``field`` ``"reference"`` or ``"current"``: not numeric, not 2-D ``(rows,
        dimension)``, fewer than 2 rows, non-finite values, or different dimensions.
    """
    out = []
    for name, value in (("reference", reference), ("current", current)):
        arr = np.asarray(value)
        if arr.dtype.kind not in "fiu":
            raise ValidationError(name, f"must be numeric, got dtype {arr.dtype}")
        if arr.ndim != 2:
            raise ValidationError(
                name, f"must be a 2-D array (rows, dimension), got shape {arr.shape}"
            )
        if arr.shape[0] < 2 or arr.shape[1] < 1:
            raise ValidationError(
                name, f"needs at least 2 rows and 1 dimension, got shape {arr.shape}"
            )
        if arr.dtype.kind != "f" or arr.dtype == np.float16:
            arr = arr.astype(np.float64)
        if not np.isfinite(arr).all():
            bad = int(np.count_nonzero(~np.isfinite(arr).all(axis=1)))
            raise ValidationError(name, f"contains NaN or infinite values ({bad} row(s))")
        out.append(arr)
    if out[0].shape[1] != out[1].shape[1]:
        raise ValidationError(
            "current",
            f"dimension {out[1].shape[1]} does not match the reference dimension {out[0].shape[1]}",
        )
    return out[0], out[1]


@dataclass(frozen=True)
class _Histograms:
    ref_counts: npt.NDArray[np.int64]
    cur_counts: npt.NDArray[np.int64]
    # Per-row bin indices of the samples, for the bootstrap (may be subsamples).
    ref_idx: npt.NDArray[np.int16]
    cur_idx: npt.NDArray[np.int16]


def compare(
    reference: npt.ArrayLike,
    current: npt.ArrayLike,
    *,
    tests: Sequence[str] | str | None = None,
    alpha: float = 0.05,
    seed: int = 0,
    threshold: float | None = None,
    correction: str = "bonferroni",
    min_effect: Mapping[str, float] | None = None,
    weights: Mapping[str, float] | None = None,
    psi_threshold: float = DEFAULT_PSI_THRESHOLD,
    bins: int = histogram.DEFAULT_BINS,
    n_permutations: int = DEFAULT_PERMUTATIONS,
    mmd_method: str = "permutation",
    mmd_max_samples: int | None = DEFAULT_MMD_MAX_SAMPLES,
    n_bootstrap: int = DEFAULT_BOOTSTRAP,
    confidence_level: float = 0.95,
    top_k: int = 10,
) -> DriftReport:
    """Compare a current window of embeddings with a reference window.

    Parameters
    ----------
    reference, current
        Samples of shape ``(n, d)`` and ``(m, d)`` (``n, m >= 2``, same ``d``, finite).
    tests
        Tests that decide ``drift_detected``: any of ``"ks"`` (per-dimension K–S),
        ``"ad"`` (per-dimension Anderson–Darling), ``"mmd"`` (kernel two-sample test on whole
        vectors), ``"psi"``, ``"kl"`` (histogram threshold tests), ``"cosine"`` (cosines to the
        reference centroid), as a sequence or a comma-separated string. ``None``: the default
        battery ``DEFAULT_TESTS`` = ``("ad", "mmd")``, splitting ``alpha`` 1 : 3.
    alpha
        Family-wise false-alarm budget shared by the p-value tests (see ``decision``).
    seed
        Seeds every random step (MMD permutations and subsampling, bootstrap, PSI/KL bias
        simulation): the same inputs and seed give the same report.
    threshold
        KL threshold for the ``kl`` test (the seed's ``DRIFT_THRESHOLD``); default 0.15.
    correction
        Correction over dimensions: ``"bonferroni"`` (default), ``"holm"`` or ``"fdr_bh"``.
    min_effect
        Practical-effect floors overriding ``DEFAULT_MIN_EFFECT`` per test.
    weights
        Shares of ``alpha`` per p-value test, overriding ``DEFAULT_WEIGHTS`` (MMD 3, others 1).
    psi_threshold
        Threshold of the ``psi`` test (mean bias-corrected PSI over dimensions).
    bins
        Reference-quantile bins per dimension for PSI/KL.
    n_permutations
        MMD permutations.
    mmd_method
        ``"permutation"`` (exact; on at most ``mmd_max_samples`` rows per side) or ``"block"``
        (linear-time block MMD on all rows, asymptotic normal calibration).
    mmd_max_samples
        Row cap per side for the permutation MMD (``None``: no cap; memory grows as
        ``(n + m)²``).
    n_bootstrap
        Bootstrap resamples for ``confidence_interval`` (0 disables it).
    confidence_level
        Coverage of ``confidence_interval``.
    top_k
        Number of dimensions listed in ``top_dimensions``.

    Returns
    -------
    DriftReport
        ``to_dict()`` is the JSON form: ``drift_detected``, ``tests`` (per test: ``statistic``,
        ``p_value``, ``drift``, ``effect_size``, ...), ``kl_divergence`` (bias-corrected mean
        KL over dimensions, the seed's headline score) with its bootstrap
        ``confidence_interval``, ``top_dimensions``, ``quality`` and sizes.

    Raises
    ------
    ValidationError
        Bad samples (see :func:`validate_samples`).
    ValueError
        Unknown test, correction or method, or ``alpha`` outside ``(0, 1)``.
    """
    ref, cur = validate_samples(reference, current)
    selected = _check_options(tests, alpha, correction, mmd_method)
    ref_idx, cur_idx = _bin(ref, cur, bins)
    hist = _Histograms(
        ref_counts=histogram.bin_counts(ref_idx, bins + 2),
        cur_counts=histogram.bin_counts(cur_idx, bins + 2),
        ref_idx=ref_idx,
        cur_idx=cur_idx,
    )
    return _run(
        ref_sample=ref,
        cur_sample=cur,
        n_reference=ref.shape[0],
        n_current=cur.shape[0],
        hist=hist,
        ref_mean=ref.mean(axis=0, dtype=np.float64),
        ref_std=ref.std(axis=0, ddof=1, dtype=np.float64),
        cur_mean=cur.mean(axis=0, dtype=np.float64),
        quality=quality_report(ref, cur, max_listed=MAX_LISTED_DIMENSIONS),
        tests=selected,
        alpha=alpha,
        seed=seed,
        threshold=threshold,
        correction=correction,
        min_effect=min_effect,
        weights=weights,
        psi_threshold=psi_threshold,
        n_permutations=n_permutations,
        mmd_method=mmd_method,
        mmd_max_samples=mmd_max_samples,
        n_bootstrap=n_bootstrap,
        confidence_level=confidence_level,
        top_k=top_k,
        extra_tests={},
    )


def _check_options(
    tests: Sequence[str] | str | None, alpha: float, correction: str, mmd_method: str
) -> tuple[str, ...]:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if correction not in CORRECTIONS:
        raise ValueError(f"unknown correction {correction!r}; choose one of {CORRECTIONS}")
    if mmd_method not in ("permutation", "block"):
        raise ValueError(f"unknown mmd_method {mmd_method!r}; choose permutation or block")
    return normalise_tests(tests)


def _bin(
    ref: np.ndarray, cur: np.ndarray, bins: int
) -> tuple[npt.NDArray[np.int16], npt.NDArray[np.int16]]:
    edges = histogram.quantile_edges(ref, bins)
    return histogram.bin_indices(ref, edges), histogram.bin_indices(cur, edges)


def _run(
    *,
    ref_sample: np.ndarray,
    cur_sample: np.ndarray,
    n_reference: int,
    n_current: int,
    hist: _Histograms,
    ref_mean: FloatArray,
    ref_std: FloatArray,
    cur_mean: FloatArray,
    quality: dict[str, Any],
    tests: tuple[str, ...],
    alpha: float,
    seed: int,
    threshold: float | None,
    correction: str,
    min_effect: Mapping[str, float] | None,
    weights: Mapping[str, float] | None,
    psi_threshold: float,
    n_permutations: int,
    mmd_method: str,
    mmd_max_samples: int | None,
    n_bootstrap: int,
    confidence_level: float,
    top_k: int,
    extra_tests: dict[str, TestResult],
) -> DriftReport:
    """Shared core of :func:`compare` and ``compare_sketches``.

    ``extra_tests`` are p-value tests the caller already decided at their weighted share of
    ``alpha``; their weights count in the split.
    """
    floors = {**DEFAULT_MIN_EFFECT, **(min_effect or {})}
    all_weights = {**DEFAULT_WEIGHTS, **(weights or {})}
    levels = test_levels(
        tests, alpha, weights=weights, extra_weight=sum(all_weights[t] for t in extra_tests)
    )
    kl_threshold = DEFAULT_KL_THRESHOLD if threshold is None else float(threshold)
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
            ad = ad_columns(ref_sample, cur_sample)
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
            if mmd_method == "block":
                mmd = mmd_block_test(ref_sample, cur_sample, seed=seed)
            else:
                mmd = mmd_permutation_test(
                    ref_sample,
                    cur_sample,
                    n_permutations=n_permutations,
                    seed=seed,
                    max_samples=mmd_max_samples,
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
        else:  # threshold tests
            corrected = (div.kl_corrected if name == "kl" else div.psi_corrected)[live]
            raw = (div.kl if name == "kl" else div.psi)[live]
            limit = kl_threshold if name == "kl" else psi_threshold
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

    ci = _kl_interval(hist, live, n_bootstrap, seed, confidence_level, kl_mean)
    top = _top_dimensions(ks, dim_effect, ref_mean, ref_std, cur_mean, div, drifted_dims, top_k)
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
        confidence_level=confidence_level,
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
    hist: _Histograms,
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


__all__ = ["compare", "validate_samples"]
