"""``compare``: the one entry point shared by the detection function, the CLI and notebooks."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from drift_monitor.domain.errors import ValidationError
from drift_monitor.drift import histogram
from drift_monitor.drift.battery import MAX_LISTED_DIMENSIONS, Histograms, run_battery
from drift_monitor.drift.options import BatteryOptions, resolve_options
from drift_monitor.drift.quality import quality_report
from drift_monitor.drift.report import DriftReport


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


def compare(
    reference: npt.ArrayLike,
    current: npt.ArrayLike,
    options: BatteryOptions | None = None,
    /,
    **overrides: Any,
) -> DriftReport:
    """Compare a current window of embeddings with a reference window.

    Parameters
    ----------
    reference, current
        Samples of shape ``(n, d)`` and ``(m, d)`` (``n, m >= 2``, same ``d``, finite).
    options
        Settings of the battery (:class:`~drift_monitor.drift.options.BatteryOptions`:
        ``tests``, ``alpha``, ``seed``, ``correction``, ``min_effect``, ``weights``,
        ``n_permutations``, ...); default: all defaults.
    **overrides
        Any ``BatteryOptions`` field as a keyword, applied on top of ``options``
        (``compare(ref, cur, tests="ad,novelty", alpha=0.01)``). The default battery is
        ``DEFAULT_TESTS``; ``tests`` picks any of ``"ks"``, ``"ad"`` (per-dimension),
        ``"mmd"``, ``"mmd_agg"`` (kernel two-sample tests on whole vectors), ``"novelty"``
        (share of current vectors outside the reference's support), ``"cosine"``, and the
        threshold tests ``"psi"``, ``"kl"``.

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
    TypeError
        An unknown option name.
    """
    opts = resolve_options(options, overrides)
    ref, cur = validate_samples(reference, current)
    edges = histogram.quantile_edges(ref, opts.bins)
    ref_idx, cur_idx = histogram.bin_indices(ref, edges), histogram.bin_indices(cur, edges)
    hist = Histograms(
        ref_counts=histogram.bin_counts(ref_idx, opts.bins + 2),
        cur_counts=histogram.bin_counts(cur_idx, opts.bins + 2),
        ref_idx=ref_idx,
        cur_idx=cur_idx,
    )
    return run_battery(
        ref_sample=ref,
        cur_sample=cur,
        n_reference=ref.shape[0],
        n_current=cur.shape[0],
        hist=hist,
        ref_mean=ref.mean(axis=0, dtype=np.float64),
        ref_std=ref.std(axis=0, ddof=1, dtype=np.float64),
        cur_mean=cur.mean(axis=0, dtype=np.float64),
        quality=quality_report(ref, cur, max_listed=MAX_LISTED_DIMENSIONS),
        options=opts,
        extra_tests={},
    )


__all__ = ["BatteryOptions", "compare", "validate_samples"]
