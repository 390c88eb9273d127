"""Novelty-rate test: does the current window hold more vectors outside the reference's support?

A new kind of traffic (a new product category, a new language, a bot) starts as a small share
of the window. A test of the whole distribution (the MMD of mean embeddings, per-dimension
marginals) dilutes it by that share; this test looks at the vectors one by one.

* **Score.** A vector's novelty score is its Euclidean distance to its ``k``-th nearest
  neighbour in a *fitting* part of the reference (:func:`drift_monitor.drift.knn.knn_distances`):
  small inside the reference's support, large for a vector unlike anything the reference holds.
* **Calibration (split conformal).** The reference is split at random into the fitting part and
  a *calibration* part (half each). Calibration vectors are scored against the fitting part
  exactly like current vectors, so under H0 (current and reference drawn from the same
  distribution) the ``n_c`` calibration scores and the ``m`` current scores are exchangeable
  given the fitting part (Bates et al., "Testing for outliers with conformal p-values",
  Ann. Statist. 2023). A current row's conformal p-value is
  ``(1 + #{calibration scores >= its score}) / (n_c + 1)``.
* **Statistic.** For a few tail levels ``q`` (``EXCEEDANCE_LEVELS``) the threshold is the
  ``r``-th largest calibration score, ``r = max(1, floor((1 - q) n_c))``, and ``E_q`` counts
  the current scores strictly above it.
* **Null distribution and p-value.** Under exchangeability the ranks of the ``n_c + m`` scores
  are a uniform random arrangement, so ``E_q`` follows exactly
  ``P(E = e) = C(e + r - 1, e) C(m - e + n_c - r, m - e) / C(n_c + m, m)``
  (the number of current rows ranked above the ``r``-th calibration row). This accounts for the
  finite calibration set: given the calibration set ``E_q`` is binomial with a random success
  rate, and the plain binomial test on it is anti-conservative for small ``n_c``. Each level's
  p-value is ``P(E >= e_obs)``; the test's p-value is the Bonferroni minimum over the levels,
  ``min(1, L min_q p_q)``. Ties only lower ``E_q`` (strict ``>``), so they keep the test valid;
  a score counts as above the threshold only when it clears it by a rounding margin
  (:func:`~drift_monitor.drift.knn.tie_margin`), so that an exact duplicate of a calibration
  vector, scored in another batch, ties with it instead of exceeding it by float32 rounding.
  p-values are at least ``1 / C(n_c + m, m)`` > 0 and clipped to ``[1e-300, 1]``.
* **Effect size.** The *excess novel share* at the deciding level: ``E_q / m`` minus its null
  expectation ``r / (n_c + 1)``; e.g. 0.05 means about 5% of the window is new beyond the
  false-positive rate of the threshold. Its practical floor (``DEFAULT_MIN_EFFECT["novelty"]``)
  keeps a tiny but significant excess in a huge window from alarming.
* **Novel rows.** The current rows above the deciding level's threshold (count) and the
  highest-scoring ones (indices into the current sample, score, conformal p-value).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.special import gammaln

from drift_monitor.drift.knn import DEFAULT_K, knn_distances, tie_margin

FloatArray = npt.NDArray[np.float64]

#: Tail levels of the calibration scores at which exceedances are counted.
EXCEEDANCE_LEVELS = (0.8, 0.95, 0.99)
#: Rows of each part (fitting, calibration, current) used at most; larger parts are
#: subsampled at random (the test stays exact; cost is O(m n_fit d)).
DEFAULT_MAX_ROWS = 5000
MAX_EXAMPLES = 5
_P_FLOOR = 1e-300


@dataclass(frozen=True)
class NoveltyResult:
    """Outcome of :func:`novelty_test`.

    Attributes
    ----------
    statistic
        Exceedance count ``E_q`` at the deciding level (the level with the smallest p-value).
    pvalue
        Bonferroni-combined exact p-value over the levels.
    effect_size
        Excess novel share at the deciding level: ``E_q / m - r / (n_c + 1)``.
    level_q
        The deciding tail level ``q``.
    threshold
        Score threshold at that level (the ``r``-th largest calibration score).
    expected_share
        Null expectation ``r / (n_c + 1)`` of ``E_q / m``.
    n_novel
        Current rows above the threshold (``E_q`` on the rows tested).
    examples
        Highest-scoring current rows: ``{"row", "score", "conformal_p_value"}``.
    per_level
        ``{"q", "threshold", "exceedances", "expected", "p_value"}`` for every level.
    n_fit, n_calibration, n_current
        Rows in each part.
    k
        Neighbour rank of the score.
    """

    statistic: float
    pvalue: float
    effect_size: float
    level_q: float
    threshold: float
    expected_share: float
    n_novel: int
    examples: list[dict[str, Any]] = field(default_factory=list)
    per_level: list[dict[str, Any]] = field(default_factory=list)
    n_fit: int = 0
    n_calibration: int = 0
    n_current: int = 0
    k: int = DEFAULT_K


def exceedance_sf(observed: int, n_calibration: int, n_current: int, rank: int) -> float:
    """Exact ``P(E >= observed)`` for exchangeable scores.

    ``E`` is the number of the ``n_current`` current scores above the ``rank``-th largest of
    ``n_calibration`` calibration scores when all ``n_calibration + n_current`` scores are
    exchangeable and distinct: ``P(E = e) = C(e + r - 1, e) C(m - e + n_c - r, m - e) /
    C(n_c + m, m)``.
    """
    n_c, m, r = n_calibration, n_current, rank
    if not 1 <= r <= n_c:
        raise ValueError("rank must be between 1 and the calibration size")
    if observed <= 0:
        return 1.0
    e = np.arange(m + 1, dtype=np.float64)
    log_pmf = (
        _log_comb(e + r - 1, e)
        + _log_comb(m - e + n_c - r, m - e)
        - _log_comb(np.float64(n_c + m), np.float64(m))
    )
    tail = log_pmf[min(observed, m + 1) :]
    if tail.size == 0:
        return _P_FLOOR
    top = float(tail.max())
    return float(min(1.0, max(_P_FLOOR, np.exp(top) * np.exp(tail - top).sum())))


def _log_comb(a: Any, b: Any) -> Any:
    return gammaln(a + 1) - gammaln(b + 1) - gammaln(a - b + 1)


def novelty_test(
    reference: npt.ArrayLike,
    current: npt.ArrayLike,
    *,
    k: int = DEFAULT_K,
    levels: tuple[float, ...] = EXCEEDANCE_LEVELS,
    seed: int = 0,
    max_rows: int = DEFAULT_MAX_ROWS,
    fit_share: float = 0.5,
) -> NoveltyResult:
    """Test whether more current vectors lie outside the reference's support than chance allows.

    Parameters
    ----------
    reference, current
        Samples of shape ``(n, d)`` (``n >= 2``: at least one row to fit, one to calibrate)
        and ``(m, d)`` (``m >= 1``).
    k
        Neighbour rank of the novelty score (clipped to the fitting part's size).
    levels
        Tail levels ``q`` in ``(0, 1)`` of the calibration scores at which exceedances are
        counted; the p-value is Bonferroni over them.
    seed
        Seeds the split of the reference and any subsampling.
    max_rows
        Cap on the rows of each part (fitting, calibration, current).
    fit_share
        Share of the reference used for fitting; the rest calibrates.

    Returns
    -------
    NoveltyResult
        Statistic, p-value, excess novel share and the novel rows (see the module docstring).
    """
    ref = np.asarray(reference, dtype=np.float32)
    cur = np.asarray(current, dtype=np.float32)
    if ref.shape[0] < 2 or cur.shape[0] < 1:
        raise ValueError("the novelty test needs at least 2 reference rows and 1 current row")
    if not levels or not all(0.0 < q < 1.0 for q in levels):
        raise ValueError("levels must be in (0, 1)")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(ref.shape[0])
    n_fit = min(max(1, round(fit_share * ref.shape[0])), ref.shape[0] - 1)
    fit_rows = perm[:n_fit][:max_rows]
    cal_rows = perm[n_fit:][:max_rows]
    cur_rows = np.arange(cur.shape[0])
    if cur_rows.size > max_rows:
        cur_rows = np.sort(rng.choice(cur.shape[0], max_rows, replace=False))
    fit = ref[fit_rows]
    cal_scores = knn_distances(fit, ref[cal_rows], k=k)
    cur_scores = knn_distances(fit, cur[cur_rows], k=k)
    n_c, m = cal_scores.size, cur_scores.size
    cal_desc = np.sort(cal_scores)[::-1]
    margin = tie_margin(cal_scores)

    per_level = []
    best: tuple[float, int] | None = None
    for i, q in enumerate(levels):
        r = max(1, int(np.floor((1.0 - q) * n_c)))
        threshold = float(cal_desc[r - 1])
        exceed = int(np.count_nonzero(cur_scores > threshold + margin))
        p = exceedance_sf(exceed, n_c, m, r)
        per_level.append(
            {
                "q": float(q),
                "threshold": threshold,
                "exceedances": exceed,
                "expected": m * r / (n_c + 1),
                "p_value": p,
                "rank": r,
            }
        )
        if best is None or p < best[0]:
            best = (p, i)
    assert best is not None
    chosen = per_level[best[1]]
    expected_share = chosen["rank"] / (n_c + 1)
    pvalue = float(min(1.0, max(_P_FLOOR, len(levels) * best[0])))

    # Conformal p-value of each listed row: rank of its score among the calibration scores.
    cal_sorted = np.sort(cal_scores)
    order = np.argsort(-cur_scores, kind="stable")[:MAX_EXAMPLES]
    examples = []
    for j in order:
        at_least = n_c - int(np.searchsorted(cal_sorted, cur_scores[j] - margin, side="left"))
        examples.append(
            {
                "row": int(cur_rows[j]),
                "score": float(cur_scores[j]),
                "conformal_p_value": (1 + at_least) / (n_c + 1),
            }
        )
    return NoveltyResult(
        statistic=float(chosen["exceedances"]),
        pvalue=pvalue,
        effect_size=float(chosen["exceedances"] / m - expected_share),
        level_q=float(chosen["q"]),
        threshold=float(chosen["threshold"]),
        expected_share=float(expected_share),
        n_novel=int(chosen["exceedances"]),
        examples=examples,
        per_level=per_level,
        n_fit=int(fit.shape[0]),
        n_calibration=int(n_c),
        n_current=int(m),
        k=int(k),
    )


__all__ = ["EXCEEDANCE_LEVELS", "NoveltyResult", "exceedance_sf", "novelty_test"]
