"""Two-sample Kolmogorov–Smirnov test on every dimension at once.

``ks_columns(x, y)`` gives, for each column ``j``, the same statistic and p-value as
``scipy.stats.ks_2samp(x[:, j], y[:, j])`` (two-sided, ``method="auto"``), without a Python
loop over columns: one stable sort of the pooled sample per column, cumulative label counts
for the two empirical CDFs, and a tie mask so the CDFs are compared only after all tied values
(what scipy's ``searchsorted(side="right")`` does).

p-values follow scipy's choice of method exactly:

* ``exact`` when ``max(n, m) <= 10000``: the statistic is rounded to the lattice ``h / lcm(n, m)``
  and the p-value is the probability that a random lattice path leaves the band ``|x/n - y/m| < h
  / lcm`` (Hodges; Viehmann's ``1 - p`` recursion). The p-value depends on the column only through
  ``h``, so it is computed once per distinct ``h`` (there are far fewer distinct values than
  columns) and shared.
* ``asymp`` otherwise: ``scipy.stats.kstwo.sf(D, round(n m / (n + m)))``, vectorised.

The KS statistic is scale-free: a column whose values all move by ``1e-8`` can have ``D = 1``.
So each column also gets the first Wasserstein distance between its two empirical
distributions (how far the probability mass moved, in the units of the data), which the drift
decision uses as a practical effect size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

FloatArray = npt.NDArray[np.float64]

#: scipy's ``ks_2samp(method="auto")`` uses the exact distribution up to this sample size.
MAX_EXACT_N = 10000

try:  # scipy's compiled kernel of the same recursion (used by ks_2samp itself)
    from scipy.stats._stats_pythran import (  # type: ignore[import-not-found]
        _compute_outer_prob_inside_method as _inside_kernel,
    )
except ImportError:  # pragma: no cover - depends on the scipy build
    _inside_kernel = None


@dataclass(frozen=True)
class KSColumns:
    """Per-column two-sample K–S results.

    Attributes
    ----------
    statistic
        ``D_j = sup_t |F_x(t) - F_y(t)|`` per column, in ``[0, 1]``.
    pvalue
        Two-sided p-value per column (identical to ``scipy.stats.ks_2samp``).
    wasserstein
        ``W1_j = integral |F_x - F_y| dt`` per column, in data units.
    method
        ``"exact"`` or ``"asymp"``, as scipy would choose.
    """

    statistic: FloatArray
    pvalue: FloatArray
    wasserstein: FloatArray
    method: str


def ks_columns(x: npt.ArrayLike, y: npt.ArrayLike, *, method: str = "auto") -> KSColumns:
    """Two-sided two-sample K–S test of ``x[:, j]`` against ``y[:, j]`` for every column ``j``.

    Parameters
    ----------
    x, y
        Samples of shape ``(n, d)`` and ``(m, d)`` (1-D inputs are treated as one column).
    method
        ``"auto"`` (scipy's rule: exact when ``max(n, m) <= 10000``), ``"exact"`` or ``"asymp"``.

    Returns
    -------
    KSColumns
        Statistic, p-value and Wasserstein-1 distance per column.

    Notes
    -----
    Prefer K–S for a cheap, assumption-free, per-dimension screen that also says *which*
    dimensions moved. It is most sensitive to shifts near the middle of a distribution and
    weak in the tails (use Anderson–Darling there) and blind to changes in the joint structure
    that leave every marginal unchanged, such as a rotation (use MMD).
    """
    a = _as_2d(x)
    b = _as_2d(y)
    n, m = a.shape[0], b.shape[0]
    if n == 0 or m == 0:
        raise ValueError("K-S needs non-empty samples")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"dimension mismatch: {a.shape[1]} vs {b.shape[1]}")
    # Work on (d, n + m) rows: sorting contiguous rows is much faster than strided columns.
    stat, wasserstein = _statistics(a, b)

    if method == "auto":
        method = "exact" if max(n, m) <= MAX_EXACT_N else "asymp"
    if method == "exact":
        stat, pvalue, ok = _exact_pvalues(stat, n, m)
        if not ok.all():  # scipy falls back to the asymptotic form where exact fails
            pvalue[~ok] = _asymp_pvalues(stat[~ok], n, m)
    elif method == "asymp":
        pvalue = _asymp_pvalues(stat, n, m)
    else:
        raise ValueError(f"unknown K-S method {method!r}")
    return KSColumns(
        statistic=stat.astype(np.float64),
        pvalue=np.clip(pvalue, 0.0, 1.0),
        wasserstein=wasserstein.astype(np.float64),
        method=method,
    )


def _as_2d(x: npt.ArrayLike) -> npt.NDArray[np.floating]:
    arr = np.asarray(x)
    if arr.dtype not in (np.float32, np.float64):  # float32 sorts the same; keep it compact
        arr = arr.astype(np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"expected a 1-D or 2-D sample, got shape {arr.shape}")
    return arr


# Dimensions handled per block: the block's sort keys and counts stay in cache.
_BLOCK = 16


def _statistics(
    a: npt.NDArray[np.floating], b: npt.NDArray[np.floating]
) -> tuple[FloatArray, FloatArray]:
    """K–S statistic and Wasserstein-1 distance of every column, exactly as scipy's D."""
    if _fits_float32(a) and _fits_float32(b):
        return _statistics_float32(
            a.astype(np.float32, copy=False), b.astype(np.float32, copy=False)
        )
    return _statistics_generic(a, b)


def _fits_float32(arr: npt.NDArray[np.floating]) -> bool:
    if arr.dtype == np.float32:
        return True
    with np.errstate(over="ignore"):
        return bool(np.array_equal(arr.astype(np.float32).astype(arr.dtype), arr))


def _statistics_generic(
    a: npt.NDArray[np.floating], b: npt.NDArray[np.floating]
) -> tuple[FloatArray, FloatArray]:
    n, m = a.shape[0], b.shape[0]
    pooled = np.concatenate([a, b], axis=0).T.astype(np.float64)
    # Any sort order will do: ties are handled by the run mask below, not by the sort.
    order = np.argsort(pooled, axis=1)
    values = np.take_along_axis(pooled, order, axis=1)
    cx = np.cumsum(order < n, axis=1, dtype=np.int64)
    cy = np.arange(1, n + m + 1, dtype=np.int64)[None, :] - cx
    absdiff = np.abs(cx * m - cy * n)
    gaps = np.diff(values, axis=1)
    tie = gaps == 0
    absdiff[:, :-1][tie] = -1  # never the argmax: the last position is always a run end
    pos = absdiff.argmax(axis=1)
    stat = _scipy_statistic(cy[np.arange(pooled.shape[0]), pos], pos, n, m)
    return stat, np.einsum("ij,ij->i", absdiff[:, :-1], gaps) / (n * m)


def _scipy_statistic(
    cy: npt.NDArray[np.int64], pos: npt.NDArray[np.intp], n: int, m: int
) -> FloatArray:
    """D from the counts at the supremum, with scipy's float operations (``cdf1 - cdf2``)."""
    cx = pos + 1 - cy
    return np.abs(cx / n - cy / m)


def _longest_run(flags: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    """Length of the longest streak of True along each row."""
    counts = np.cumsum(flags, axis=1, dtype=np.int64)
    reset = np.maximum.accumulate(np.where(flags, 0, counts), axis=1)
    return np.asarray((counts - reset).max(axis=1, initial=0), dtype=np.int64)


def _sort_keys(v: npt.NDArray[np.float32]) -> npt.NDArray[np.int32]:
    """Signed 32-bit integers that sort like the float32 values (``-0.0`` equals ``0.0``).

    Negative floats get their magnitude bits flipped (so larger magnitudes sort lower), then
    move up by one so that ``-0.0`` lands on the key of ``+0.0``; ``v`` must be a fresh copy
    (it is modified).
    """
    keys = v.view(np.int32)
    sign = keys >> 31  # -1 for negative floats, 0 otherwise
    keys ^= sign & np.int32(0x7FFFFFFF)
    keys -= sign
    return keys


def _key_values(keys: npt.NDArray[np.integer]) -> npt.NDArray[np.float32]:
    """Inverse of :func:`_sort_keys` (``0`` gives ``+0.0``)."""
    bits = keys.astype(np.int32)
    sign = bits >> 31
    bits += sign
    bits ^= sign & np.int32(0x7FFFFFFF)
    return bits.view(np.float32)


def _statistics_float32(
    a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]
) -> tuple[FloatArray, FloatArray]:
    """Fast path: sort 32-bit keys whose lowest bit is the sample label.

    32-bit sorts are several times faster than 64-bit ones or argsort. Stealing the lowest bit
    merges values one float32 step apart into one run; within a run the label order can then
    be wrong, which matters only for runs holding both samples. Columns with such a run are
    redone with exact 64-bit keys, so the statistic is always scipy's.
    """
    n, d = a.shape
    m = b.shape[0]
    total = n + m
    stat = np.empty(d)
    w1 = np.empty(d)
    # Integer |cx m - cy n| fits in int32 for all practical sizes: half the memory traffic.
    itype: type[np.signedinteger[Any]] = np.int32 if total * max(n, m) < 2**31 - 1 else np.int64
    idx_m = np.arange(1, total + 1, dtype=itype) * m
    redo: list[int] = []
    keys_a = _sort_keys(a.T.copy())
    keys_a &= np.int32(-2)
    keys_b = _sort_keys(b.T.copy())
    keys_b |= np.int32(1)
    for s in range(0, d, _BLOCK):
        e = min(d, s + _BLOCK)
        rows_idx = np.arange(e - s)
        keys = np.concatenate([keys_a[s:e], keys_b[s:e]], axis=1)
        keys.sort(axis=1)
        label = keys & np.int32(1)
        cy: npt.NDArray[np.signedinteger[Any]] = np.cumsum(label, axis=1, dtype=itype)
        # |F_a - F_b| * n * m at every pooled point: |cx m - cy n| with cx = i - cy.
        diff = cy * total
        np.subtract(idx_m, diff, out=diff)
        np.abs(diff, out=diff)
        high = keys >> 1
        tie = high[:, 1:] == high[:, :-1]
        # Only the last of a run of tied values has counted the whole run; -1 is never the
        # argmax because the last position always ends a run.
        masked = np.where(tie, -1, diff[:, :-1]).astype(itype, copy=False)
        pos = np.maximum(masked.argmax(axis=1), 0)
        last_best = diff[:, -1]
        best = masked[rows_idx, pos]
        at_end = last_best >= best
        pos = np.where(at_end, total - 1, pos)
        best = np.where(at_end, last_best, best)
        mixed = (tie & (label[:, 1:] != label[:, :-1])).any(axis=1)
        if mixed.any():
            # Inside a run the true |F_a - F_b| stays within (run length) * max(n, m) of the
            # value seen in label order; only runs that could beat the maximum need the exact
            # path (rare: a near-tie right at the supremum).
            rows = np.flatnonzero(mixed)
            inside_max = np.where(tie[rows], diff[rows, :-1], 0).max(axis=1)
            longest = _longest_run(tie[rows]) + 1
            risky = inside_max + longest * max(n, m) > best[rows]
            redo.extend((s + rows[risky]).tolist())
        stat[s:e] = _scipy_statistic(cy[rows_idx, pos].astype(np.int64), pos, n, m)
        # Wasserstein-1 in float32: an effect size, 7 digits are plenty.
        gaps = np.diff(_key_values(high << 1), axis=1)
        w1[s:e] = np.einsum("ij,ij->i", masked.astype(np.float32), gaps, dtype=np.float64) / (n * m)
    if redo:
        cols = np.asarray(redo)
        stat[cols], w1[cols] = _statistics_int64(a[:, cols], b[:, cols])
    return stat, w1


def _statistics_int64(
    a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]
) -> tuple[FloatArray, FloatArray]:
    """Exact float32 path: 64-bit keys (the full 32-bit value, then the label)."""
    n, d = a.shape
    m = b.shape[0]
    total = n + m
    stat = np.empty(d)
    w1 = np.empty(d)
    idx_m = np.arange(1, total + 1, dtype=np.int64) * m
    for s in range(0, d, _BLOCK):
        e = min(d, s + _BLOCK)
        keys = np.empty((e - s, total), dtype=np.int64)
        keys[:, :n] = _sort_keys(a[:, s:e].T.copy()).astype(np.int64) << 1
        keys[:, n:] = (_sort_keys(b[:, s:e].T.copy()).astype(np.int64) << 1) | 1
        keys.sort(axis=1)
        cy = np.cumsum(keys & 1, axis=1, dtype=np.int64)
        diff = np.abs(idx_m - cy * total)
        high = keys >> 1
        tie = high[:, 1:] == high[:, :-1]
        diff[:, :-1][tie] = -1  # never the argmax: the last position is always a run end
        pos = diff.argmax(axis=1)
        stat[s:e] = _scipy_statistic(cy[np.arange(e - s), pos], pos, n, m)
        gaps = np.diff(_key_values(high), axis=1).astype(np.float64)
        w1[s:e] = np.einsum("ij,ij->i", diff[:, :-1].astype(np.float64), gaps) / (n * m)
    return stat, w1


def _asymp_pvalues(stat: FloatArray, n: int, m: int) -> FloatArray:
    big, small = max(n, m), min(n, m)
    en = float(big) * small / (big + small)
    return np.asarray(stats.kstwo.sf(stat, np.round(en)), dtype=np.float64)


def _exact_pvalues(
    stat: FloatArray, n: int, m: int
) -> tuple[FloatArray, FloatArray, npt.NDArray[np.bool_]]:
    """Exact p-values; returns (lattice-rounded statistic, p-value, success mask)."""
    g = math.gcd(n, m)
    lcm = (n // g) * m
    h = np.round(stat * lcm).astype(np.int64)
    unique_h, inverse = np.unique(h, return_inverse=True)
    probs = np.array([_exact_prob(n, m, int(hh)) for hh in unique_h], dtype=np.float64)
    pvalue = probs[inverse]
    ok = np.isfinite(pvalue) & (pvalue >= 0.0) & (pvalue <= 1.0)
    return h / lcm, pvalue, ok


@lru_cache(maxsize=65536)
def _exact_prob(n: int, m: int, h: int) -> float:
    """P(D >= h / lcm(n, m)) under H0, as scipy computes it (NaN when it cannot)."""
    if h == 0:
        return 1.0
    g = math.gcd(n, m)
    try:
        with np.errstate(invalid="raise", over="raise"):
            if n == m:
                return _prob_outside_square(n, h)
            if _inside_kernel is not None:
                return float(_inside_kernel(n, m, g, h))
            return _outer_prob_inside_method(n, m, g, h)
    except (FloatingPointError, OverflowError):
        return math.nan


def _prob_outside_square(n: int, h: int) -> float:
    """Pr(D_{n,n} >= h/n): 2 * A0 * (1 - A1 * (1 - A2 * ...)), Horner form (as scipy)."""
    kmax = n // h
    k = np.arange(kmax + 1, dtype=np.float64)[:, None]
    j = np.arange(h, dtype=np.float64)[None, :]
    # A_k = prod_j (n - k h - j) / (n + k h + j + 1); one row per k, all at once.
    terms = np.prod((n - k * h - j) / (n + k * h + j + 1), axis=1)
    p = 0.0
    for a_k in terms[::-1]:
        p = float(a_k) * (1.0 - p)
    return 2.0 * p


def _outer_prob_inside_method(m: int, n: int, g: int, h: int) -> float:
    """Pure-Python port of scipy's ``_compute_outer_prob_inside_method`` (fallback only)."""
    if m < n:
        m, n = n, m
    mg = m // g
    ng = n // g
    minj, maxj = 0, min(math.ceil(h / mg), n + 1)
    curlen = maxj - minj
    len_a = min(2 * maxj + 2, n + 1)
    a = np.ones(len_a)
    a[minj:maxj] = 0.0
    for i in range(1, m + 1):
        lastminj, lastlen = minj, curlen
        minj = max(math.floor((ng * i - h) / mg) + 1, 0)
        minj = min(minj, n)
        maxj = min(math.ceil((ng * i + h) / mg), n + 1)
        if maxj <= minj:
            return 1.0
        val = 0.0 if minj == 0 else 1.0
        for jj in range(maxj - minj):
            j = jj + minj
            val = (a[jj + minj - lastminj] * i + val * j) / (i + j)
            a[jj] = val
        curlen = maxj - minj
        if lastlen > curlen:
            a[maxj - minj : maxj - minj + (lastlen - curlen)] = 1
    return float(a[maxj - minj - 1])


def ks_1d(x: npt.ArrayLike, y: npt.ArrayLike) -> tuple[float, float, float]:
    """K–S statistic, p-value and Wasserstein-1 distance of two 1-D samples."""
    res = ks_columns(np.ravel(np.asarray(x)), np.ravel(np.asarray(y)))
    return float(res.statistic[0]), float(res.pvalue[0]), float(res.wasserstein[0])


__all__ = ["MAX_EXACT_N", "KSColumns", "ks_1d", "ks_columns"]
