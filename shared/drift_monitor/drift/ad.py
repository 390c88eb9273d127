"""Two-sample Anderson–Darling test on every dimension at once, with unclipped p-values.

The statistic is Scholz & Stephens' (1987) k-sample ``A²_kN`` (midrank version for ties), the
same number ``scipy.stats.anderson_ksamp([x, y]).statistic`` reports, computed for all columns
with one sort of the pooled sample per column and cumulative label counts.

**Ties.** The asymptotic law below is that of continuous data. With ties (binary or quantised
embeddings, a ReLU's point mass at zero) the midrank statistic's null law is different and the
continuous p-values are far too small: on ``±1`` columns about 1 % of null columns fall below
0.001, ten times the nominal rate, so a Bonferroni level over 384 dimensions is crossed in
about half of all null windows. The p-value of a column with ties is therefore computed on the
*randomised ranks*: the pooled values are ordered with ties broken at random (seeded), and the
tie-free statistic of that label order is referred to the continuous law. Under H0 the pooled
sample is exchangeable, so the randomised label order is a uniformly random arrangement, exactly
as with continuous data: the p-value is valid for any tie pattern. ``statistic`` stays the
midrank value (scipy's, as is ``standardized``), a description of the column; only
``pvalue`` uses the randomised ranks there. Columns without ties are unchanged.

Why not scipy's p-value: ``anderson_ksamp`` interpolates a small table of critical values and
clips the result to ``[0.001, 0.25]``, so a Bonferroni level such as ``0.05 / 768`` can never
be reached. Here the p-value comes from the same asymptotic theory the table was built from,
evaluated instead of interpolated:

* Scholz & Stephens standardise ``T = (A² - (k - 1)) / sigma_N`` with the exact finite-sample
  variance ``sigma_N²``; under H0, ``A²`` tends to ``A_inf = sum_j chi²_1,j / (j (j + 1))``
  (for two samples), whose mean is 1 and variance ``sigma_inf² = 2 (pi² - 9) / 3``.
* The p-value is ``P(A_inf > 1 + sigma_inf T)``. Its survival function was computed once by
  Imhof's numerical inversion of the characteristic function (20 000 terms of the sum, the rest
  by its mean) on a grid ``0.1 <= z <= 15`` (table below, checked by a unit test), and is
  interpolated monotonically in ``log p``. Beyond ``z = 15`` (p < 8e-8) it uses the exact tail
  asymptote of a weighted chi-square sum, ``sqrt(3) erfc(sqrt(z))`` (the factor sqrt(3) is
  ``prod_{j>=2} (1 - lambda_j / lambda_1)^{-1/2}``), times ``(1 + c / z)`` matched at 15.

The p-values agree with scipy's inside scipy's clipping range (to its interpolation error) and
keep going outside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from scipy import interpolate, special

from drift_monitor.drift.ks import _sort_keys

FloatArray = npt.NDArray[np.float64]

#: Variance of the two-sample asymptotic distribution: 2 (pi² - 9) / 3.
SIGMA_INF = math.sqrt(2.0 * (math.pi**2 - 9.0) / 3.0)

_Z_GRID: FloatArray = np.asarray(
    np.round(np.r_[0.1, np.arange(0.2, 15.01, 0.2)], 2), dtype=np.float64
)
# P(A_inf > z) on _Z_GRID (Imhof inversion; see the module docstring and test_ad.py).
_SF_TABLE: FloatArray = np.array(
    [
        9.9997192189e-01,
        9.9041254725e-01,
        8.4873350075e-01,
        6.4799563572e-01,
        4.8102795301e-01,
        3.5726667321e-01,
        2.6753488419e-01,
        2.0226568658e-01,
        1.5429969051e-01,
        1.1863957896e-01,
        9.1836774941e-02,
        7.1494812466e-02,
        5.5926364304e-02,
        4.3925818504e-02,
        3.4619271897e-02,
        2.7364788334e-02,
        2.1685178968e-02,
        1.7221990714e-02,
        1.3703504197e-02,
        1.0922126757e-02,
        8.7181869137e-03,
        6.9681603648e-03,
        5.5760111409e-03,
        4.4667544400e-03,
        3.5816251856e-03,
        2.8744213045e-03,
        2.3087158301e-03,
        1.8557178383e-03,
        1.4926221135e-03,
        1.2013297209e-03,
        9.6745194156e-04,
        7.7953193158e-04,
        6.2843454457e-04,
        5.0686660385e-04,
        4.0899876798e-04,
        3.3016680214e-04,
        2.6663509436e-04,
        2.1540910497e-04,
        1.7408637620e-04,
        1.4073799479e-04,
        1.1381415563e-04,
        9.2068831298e-05,
        7.4499610106e-05,
        6.0299602462e-05,
        4.8818952270e-05,
        3.9534011411e-05,
        3.2022625346e-05,
        2.5944310345e-05,
        2.1024336185e-05,
        1.7040936989e-05,
        1.3815035157e-05,
        1.1201969983e-05,
        9.0848433804e-06,
        7.3691603490e-06,
        5.9785139426e-06,
        4.8511020992e-06,
        3.9369225650e-06,
        3.1955105255e-06,
        2.5941085661e-06,
        2.1061942082e-06,
        1.7102873062e-06,
        1.3889861659e-06,
        1.1281920068e-06,
        9.1648008116e-07,
        7.4458729682e-07,
        6.0500591154e-07,
        4.9164585258e-07,
        3.9957217746e-07,
        3.2477548062e-07,
        2.6400862191e-07,
        2.1463297201e-07,
        1.7450874218e-07,
        1.4189938197e-07,
        1.1539412614e-07,
        9.3848376015e-08,
        7.6332211163e-08,
    ]
)


@dataclass(frozen=True)
class ADColumns:
    """Per-column two-sample Anderson–Darling results.

    Attributes
    ----------
    statistic
        Scholz–Stephens ``A²_kN`` per column (midrank form; 0 for a column constant in both).
    standardized
        ``(A² - 1) / sigma_N``: how many null standard deviations above its null mean.
    pvalue
        Unclipped asymptotic p-value per column; for a column with ties, that of the
        randomised ranks (see the module docstring), so it stays valid with ties.
    """

    statistic: FloatArray
    standardized: FloatArray
    pvalue: FloatArray


def ad_columns(x: npt.ArrayLike, y: npt.ArrayLike, *, seed: int = 0) -> ADColumns:
    """Two-sample Anderson–Darling test of ``x[:, j]`` against ``y[:, j]`` for every column.

    Parameters
    ----------
    x, y
        Samples of shape ``(n, d)`` and ``(m, d)``, ``n + m >= 4``.
    seed
        Seeds the random tie-breaking of columns with ties (the same inputs and seed give the
        same result).

    Returns
    -------
    ADColumns
        Statistic, standardized statistic and p-value per column.

    Notes
    -----
    Anderson–Darling weights the CDF difference by ``1 / (F (1 - F))``, so it sees changes in
    the tails (spread, outliers, a heavier tail) that K–S, which looks at the largest gap, tends
    to miss. Prefer it when variance or tail changes matter more than location shifts.
    """
    a = np.asarray(x)
    b = np.asarray(y)
    if a.ndim == 1:
        a, b = a[:, None], b[:, None]
    n, m = a.shape[0], b.shape[0]
    total = n + m
    if total < 4 or n == 0 or m == 0:
        raise ValueError("Anderson-Darling needs two non-empty samples with n + m >= 4")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"dimension mismatch: {a.shape[1]} vs {b.shape[1]}")
    d = a.shape[1]
    a2 = np.empty(d)
    a2_tested = np.empty(d)
    constant = np.zeros(d, dtype=bool)
    rng = np.random.default_rng(seed)
    for s in range(0, d, _BLOCK):
        e = min(d, s + _BLOCK)
        values, from_x = _sorted_rows(a[:, s:e], b[:, s:e])
        new_run = np.ones(values.shape, dtype=bool)
        new_run[:, 1:] = values[:, 1:] != values[:, :-1]
        constant[s:e] = ~new_run[:, 1:].any(axis=1)
        no_ties = new_run.all(axis=1)
        if no_ties.any():
            a2[s:e][no_ties] = _a2_distinct(from_x[no_ties], n, m)
        if not no_ties.all():
            rows = ~no_ties
            a2[s:e][rows] = _a2_midrank(values[rows], from_x[rows], new_run[rows], n, m)
            a2_tested[s:e][rows] = _a2_distinct(_break_ties(from_x[rows], new_run[rows], rng), n, m)
        a2_tested[s:e][no_ties] = a2[s:e][no_ties]
    a2[constant] = 0.0
    a2_tested[constant] = 0.0
    sigma = math.sqrt(_null_variance(n, m))
    standardized = (a2 - 1.0) / sigma
    pvalue = adinf_sf(1.0 + SIGMA_INF * (a2_tested - 1.0) / sigma)
    pvalue[constant] = 1.0
    return ADColumns(statistic=a2, standardized=standardized, pvalue=pvalue)


# Columns handled per block (keeps the (block, n + m) temporaries in cache).
_BLOCK = 32


def _sorted_rows(
    a: npt.NDArray[np.generic], b: npt.NDArray[np.generic]
) -> tuple[npt.NDArray[np.generic], npt.NDArray[np.bool_]]:
    """Pooled values sorted per column (as rows) and whether each came from ``a``.

    float32 data (embeddings) sort as packed 64-bit integer keys (order-preserving bits of the
    value, then the label) -- several times faster than argsort; other data use argsort.
    """
    n = a.shape[0]
    if a.dtype == np.float32 and b.dtype == np.float32:
        keys = np.concatenate(
            [
                _float_keys(np.ascontiguousarray(a.T)) << 1,
                (_float_keys(np.ascontiguousarray(b.T)) << 1) | 1,
            ],
            axis=1,
        )
        keys.sort(axis=1)
        return keys >> 1, (keys & 1) == 0
    pooled = np.concatenate([a, b], axis=0).T.astype(np.float64)
    order = np.argsort(pooled, axis=1)
    return np.take_along_axis(pooled, order, axis=1), order < n


def _float_keys(v: npt.NDArray[np.float32]) -> npt.NDArray[np.int64]:
    """int64 keys ordered like the float32 values (``-0.0`` equal to ``0.0``)."""
    return _sort_keys(np.array(v, dtype=np.float32, copy=True)).astype(np.int64)


def _a2_distinct(from_x: npt.NDArray[np.bool_], n: int, m: int) -> FloatArray:
    """A²_kN for rows without ties: every tie group has size 1 (scipy's formula, simplified)."""
    total = n + m
    lab = from_x.astype(np.float64)
    cx = np.cumsum(lab, axis=1)
    i = np.arange(total, dtype=np.float64)
    bj = i + 0.5
    weight = 1.0 / (total * (bj * (total - bj) - total / 4.0))
    mx = cx - lab / 2.0  # x values below, plus half of this one
    my = (i + 1.0 - cx) - (1.0 - lab) / 2.0
    terms = (total * mx - bj * n) ** 2 / n + (total * my - bj * m) ** 2 / m
    return np.asarray((terms @ weight) * (total - 1.0) / total, dtype=np.float64)


def _break_ties(
    from_x: npt.NDArray[np.bool_], new_run: npt.NDArray[np.bool_], rng: np.random.Generator
) -> npt.NDArray[np.bool_]:
    """Labels in a pooled order whose ties are broken at random (each run shuffled)."""
    run = np.cumsum(new_run, axis=1, dtype=np.int64).astype(np.float64)
    run += 0.5 * rng.random(run.shape)
    return np.take_along_axis(from_x, np.argsort(run, axis=1, kind="stable"), axis=1)


def _a2_midrank(
    values: npt.NDArray[np.generic],
    from_x: npt.NDArray[np.bool_],
    new_run: npt.NDArray[np.bool_],
    n: int,
    m: int,
) -> FloatArray:
    """A²_kN with ties (Scholz & Stephens' midrank form, as scipy's ``midrank=True``)."""
    total = n + m
    rows = values.shape[0]
    cx = np.cumsum(from_x, axis=1, dtype=np.int64)  # x values up to and including i
    pos = np.broadcast_to(np.arange(total), (rows, total))
    last = np.ones((rows, total), dtype=bool)
    last[:, :-1] = new_run[:, 1:]
    # Start index of each element's run of equal values, and the run's end (exclusive).
    start = np.maximum.accumulate(np.where(new_run, pos, 0), axis=1)
    stop = np.flip(
        np.minimum.accumulate(np.flip(np.where(last, pos + 1, total + 1), axis=1), axis=1), axis=1
    )
    lj = (stop - start).astype(np.float64)  # size of the tie group
    bj = start + lj / 2.0  # midrank position (scipy's B_j)
    cx_before = np.where(start > 0, np.take_along_axis(cx, np.maximum(start - 1, 0), axis=1), 0)
    cx_upto = np.take_along_axis(cx, stop - 1, axis=1)
    mx = (cx_upto + cx_before) / 2.0  # count of x <= value, ties counted half (scipy's M_ij)
    my = ((stop - cx_upto) + (start - cx_before)) / 2.0
    denom = bj * (total - bj) - total * lj / 4.0
    with np.errstate(divide="ignore", invalid="ignore"):
        weight = np.where(last & (denom > 0), lj / total / denom, 0.0)
        terms = weight * ((total * mx - bj * n) ** 2 / n + (total * my - bj * m) ** 2 / m)
    return np.asarray(terms.sum(axis=1) * (total - 1.0) / total, dtype=np.float64)


@lru_cache(maxsize=1024)
def _null_variance(n: int, m: int) -> float:
    """Exact variance of A²_kN under H0 for k = 2 (Scholz & Stephens 1987, eq. 4)."""
    k = 2
    total = n + m
    h_big = 1.0 / n + 1.0 / m
    hs_cs = np.cumsum(1.0 / np.arange(total - 1, 1, -1))
    h = hs_cs[-1] + 1
    g = float((hs_cs / np.arange(2, total)).sum())
    a = (4 * g - 6) * (k - 1) + (10 - 6 * g) * h_big
    b = (2 * g - 4) * k**2 + 8 * h * k + (2 * g - 14 * h - 4) * h_big - 8 * h + 4 * g - 6
    c = (6 * h + 2 * g - 2) * k**2 + (4 * h - 4 * g + 6) * k + (2 * h - 6) * h_big + 4 * h
    d = (2 * h + 6) * k**2 - 4 * h * k
    return float(
        (a * total**3 + b * total**2 + c * total + d)
        / ((total - 1.0) * (total - 2.0) * (total - 3.0))
    )


@lru_cache(maxsize=1)
def _log_sf_interpolator() -> interpolate.PchipInterpolator:
    z = np.r_[0.0, _Z_GRID]
    log_sf = np.log(np.r_[1.0, _SF_TABLE])
    return interpolate.PchipInterpolator(z, log_sf, extrapolate=False)


def _tail(z: FloatArray) -> FloatArray:
    return np.asarray(np.sqrt(3.0) * special.erfc(np.sqrt(z)), dtype=np.float64)


@lru_cache(maxsize=1)
def _tail_correction() -> float:
    z_end = float(_Z_GRID[-1])
    return (float(_SF_TABLE[-1]) / float(_tail(np.array([z_end]))[0]) - 1.0) * z_end


def adinf_sf(z: npt.ArrayLike) -> FloatArray:
    """Survival function of the two-sample asymptotic Anderson–Darling distribution.

    Parameters
    ----------
    z
        Values of ``A_inf`` (any shape).

    Returns
    -------
    numpy.ndarray
        ``P(A_inf > z)``, in ``(0, 1]``, never clipped away from 0.
    """
    zz = np.atleast_1d(np.asarray(z, dtype=np.float64))
    out = np.ones_like(zz)
    z_end = float(_Z_GRID[-1])
    body = (zz > 0) & (zz <= z_end)
    out[body] = np.exp(_log_sf_interpolator()(zz[body]))
    far = zz > z_end
    out[far] = _tail(zz[far]) * (1.0 + _tail_correction() / zz[far])
    return np.minimum(out, 1.0)


__all__ = ["SIGMA_INF", "ADColumns", "ad_columns", "adinf_sf"]
