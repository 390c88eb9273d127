"""Data-quality checks, reported next to drift and never mixed into ``drift_detected``.

A broken client (zero vectors, a tokenizer that emits the same vector for every input, a
serialisation bug that rescales vectors) is a different incident from distribution drift, with
a different owner; the report keeps the two apart. Checks on the current window, each compared
with the reference where that makes sense:

* ``zero_vector_share``: rows that are exactly zero;
* ``duplicate_rate``: ``1 - unique rows / rows`` (exact byte equality); above
  ``REPEATS_NOTE_SHARE`` in either window a note says the tests assume independent rows;
* norm collapse / explosion: median L2 norm ratio current / reference below 0.5 or above 2;
* newly constant dimensions: constant in the current window but varying in the reference;
* reduced precision: the current values are all exactly representable in float16 (and the
  reference's are not): the same model sent at lower precision. Near-constant ("dead")
  reference dimensions then round to exactly 0; that is noted here, not flagged as drift.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

NORM_COLLAPSE_RATIO = 0.5
NORM_EXPLOSION_RATIO = 2.0
#: A dimension is "dead" when its reference spread is below this share of the median spread.
DEAD_DIMENSION_RATIO = 1e-3


def row_groups(
    data: npt.NDArray[np.generic],
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Exact (byte) repeats of a 2-d array: per distinct row the index of its first occurrence,
    and per row the index of its distinct row (``np.unique`` over the rows' bytes)."""
    contiguous = np.ascontiguousarray(data)
    view = contiguous.view(np.dtype((np.void, contiguous.dtype.itemsize * contiguous.shape[1])))
    _, first, inverse = np.unique(view.ravel(), return_index=True, return_inverse=True)
    return first, np.asarray(inverse, dtype=np.intp).reshape(-1)


def _first_occurrences(data: npt.NDArray[np.generic]) -> npt.NDArray[np.intp]:
    """Sorted indices of the first occurrence of every distinct row (exact byte equality)."""
    return np.sort(row_groups(data)[0])


#: Share of repeated rows in either window above which the report notes that the tests assume
#: independent rows.
REPEATS_NOTE_SHARE = 0.05


def duplicate_rate(data: npt.NDArray[np.generic]) -> float:
    """Share of rows that repeat an earlier row exactly."""
    rows = data.shape[0]
    if rows == 0:
        return 0.0
    return float(1.0 - _first_occurrences(data).size / rows)


def dead_dimensions(reference_std: npt.NDArray[np.float64]) -> npt.NDArray[np.intp]:
    """Dimensions whose reference standard deviation is negligible next to the median one."""
    scale = float(np.median(reference_std)) if reference_std.size else 0.0
    return np.flatnonzero(reference_std <= DEAD_DIMENSION_RATIO * scale)


def _float16_exact(data: npt.NDArray[np.generic]) -> bool:
    with np.errstate(over="ignore"):
        return bool(np.array_equal(data.astype(np.float16).astype(data.dtype), data))


def quality_report(
    reference: npt.ArrayLike, current: npt.ArrayLike, *, max_listed: int = 20
) -> dict[str, Any]:
    """Data-quality summary of ``current`` (and of ``reference`` where compared).

    Parameters
    ----------
    reference, current
        Samples ``(n, d)`` and ``(m, d)``.
    max_listed
        At most this many dimension indices are listed per finding.

    Returns
    -------
    dict
        JSON-ready: ``ok`` (no issue found), ``issues`` (codes), ``notes`` (human-readable
        lines), and the measured values.
    """
    r = np.asarray(reference)
    c = np.asarray(current)
    r64 = r.astype(np.float64)
    c64 = c.astype(np.float64)
    r_norm = np.linalg.norm(r64, axis=1)
    c_norm = np.linalg.norm(c64, axis=1)
    r_med = float(np.median(r_norm))
    c_med = float(np.median(c_norm))
    ratio = c_med / r_med if r_med > 0 else (1.0 if c_med == 0 else float("inf"))
    r_std = r64.std(axis=0)
    c_std = c64.std(axis=0) if c.shape[0] > 1 else np.zeros(c.shape[1])
    dead = dead_dimensions(r_std)
    scale = float(np.median(r_std))
    newly_constant = np.flatnonzero((c_std == 0) & (r_std > DEAD_DIMENSION_RATIO * scale))
    if c.shape[0] < 2:
        newly_constant = np.zeros(0, dtype=np.intp)
    zero_share = float(np.mean(c_norm == 0)) if c.shape[0] else 0.0
    ref_zero_share = float(np.mean(r_norm == 0)) if r.shape[0] else 0.0
    dup = duplicate_rate(c)
    ref_dup = duplicate_rate(r)
    float16 = c.dtype != np.float16 and _float16_exact(c) and not _float16_exact(r)
    dead_zeroed = [int(j) for j in dead if np.all(c64[:, j] == 0) and not np.all(r64[:, j] == 0)]

    issues: list[str] = []
    notes: list[str] = []
    if zero_share > ref_zero_share:
        issues.append("zero_vectors")
        notes.append(f"{zero_share:.1%} of current vectors are all zeros")
    if dup > max(ref_dup, 0.0) + 0.01:
        issues.append("duplicates")
        notes.append(f"{dup:.1%} of current vectors repeat another current vector exactly")
    if max(dup, ref_dup) > REPEATS_NOTE_SHARE:
        notes.append(
            f"{max(dup, ref_dup):.0%} of the rows of a window repeat another row of it exactly; "
            "the tests assume independent rows, so repeats sent in bursts (retries) can look "
            "like drift"
        )
    if ratio < NORM_COLLAPSE_RATIO:
        issues.append("norm_collapse")
        notes.append(f"median vector norm fell from {r_med:.4g} to {c_med:.4g}")
    elif ratio > NORM_EXPLOSION_RATIO:
        issues.append("norm_explosion")
        notes.append(f"median vector norm rose from {r_med:.4g} to {c_med:.4g}")
    if newly_constant.size:
        issues.append("constant_dimensions")
        notes.append(f"{newly_constant.size} dimension(s) are constant in the current window")
    if float16:
        notes.append("current values are exactly representable in float16: reduced precision")
    if dead_zeroed:
        notes.append(
            f"{len(dead_zeroed)} near-constant reference dimension(s) are exactly 0 now "
            "(rounding of dead dimensions, not drift)"
        )
    return {
        "ok": not issues,
        "issues": issues,
        "notes": notes,
        "zero_vector_share": zero_share,
        "reference_zero_vector_share": ref_zero_share,
        "duplicate_rate": dup,
        "reference_duplicate_rate": ref_dup,
        "norm_median_reference": r_med,
        "norm_median_current": c_med,
        "norm_ratio": ratio,
        "newly_constant_dimensions": [int(j) for j in newly_constant[:max_listed]],
        "n_newly_constant_dimensions": int(newly_constant.size),
        "dead_dimensions": [int(j) for j in dead[:max_listed]],
        "n_dead_dimensions": int(dead.size),
        "dead_dimensions_zeroed": dead_zeroed[:max_listed],
        "reduced_precision": bool(float16),
    }


__all__ = [
    "DEAD_DIMENSION_RATIO",
    "NORM_COLLAPSE_RATIO",
    "NORM_EXPLOSION_RATIO",
    "REPEATS_NOTE_SHARE",
    "dead_dimensions",
    "duplicate_rate",
    "quality_report",
    "row_groups",
]
