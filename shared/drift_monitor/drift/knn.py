"""k-nearest-neighbour distances to a reference sample, batched as matrix products.

The novelty score of a vector is its Euclidean distance to its ``k``-th nearest neighbour in a
reference sample: small inside the reference's support, large for a vector unlike anything the
reference holds (a new topic, a new language, a swapped model). Both the one-window novelty
test and the sequential monitor score vectors this way; ranking such scores against the scores
of held-out reference vectors gives conformal p-values (Bates et al., "Testing for outliers
with conformal p-values", Ann. Statist. 2023).

Distances come from ``|a - b|² = |a|² + |b|² - 2 a·b`` in blocks of query rows, so memory is
``O(block × n_reference)`` whatever the number of queries. Both sides are first centred on the
reference's mean and divided by its RMS spread (the distances are returned in the original
unit): the float32 rounding, relative to ``|a|²``, shrinks to the data's spread, and values of
any magnitude neither overflow nor underflow when squared. A squared distance within float32
rounding of zero is set to exactly 0, so an exact duplicate of a reference row scores 0
whichever batch it is scored in. Without that, the same identical rows scored ``5e-4`` in one
block shape and ``0`` in another, and a window that repeated the reference exactly looked novel.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from drift_monitor.drift.scaling import to_unit_spread

FloatArray = npt.NDArray[np.float64]

DEFAULT_K = 5
_BLOCK_ROWS = 512
#: A squared distance at most this share of ``|a|² + max |b|²`` is rounding: it is set to 0.
_ROUNDING = 1e-5


#: Share of the calibration scores' largest magnitude within which a score counts as tied
#: with a cut (see :func:`tie_margin`).
TIE_SHARE = 1e-4


def tie_margin(calibration: npt.ArrayLike) -> float:
    """How far above a cut taken from ``calibration`` a score must be to count as above it.

    Scores come from float32 matrix products whose rounding depends on the batch a row is
    scored in, so an exact duplicate of a calibration vector can score a few units in the
    seventh digit above its own calibration copy. Conformal and betting tests count scores
    strictly above a cut; with duplicates in both samples (popular queries, a small set of
    distinct outputs) that rounding decided whole groups of rows, and on windows drawn from five
    distinct vectors the novelty test alarmed at 12 % for a level of 1 %. Counting a score only
    when it clears the cut by ``TIE_SHARE`` of the calibration scale treats such rows as ties,
    which can only lower the counts (the tests stay valid) and costs no measurable power.

    Parameters
    ----------
    calibration
        Calibration scores (any shape; empty gives 0).

    Returns
    -------
    float
        ``TIE_SHARE * max |calibration|``.
    """
    c = np.asarray(calibration, dtype=np.float64)
    return float(TIE_SHARE * np.abs(c).max()) if c.size else 0.0


def knn_distances(
    reference: npt.ArrayLike,
    queries: npt.ArrayLike,
    *,
    k: int = DEFAULT_K,
    exclude_self: bool = False,
) -> FloatArray:
    """Distance from each query row to its ``k``-th nearest reference row.

    Parameters
    ----------
    reference
        Reference sample, shape ``(n, d)``.
    queries
        Vectors to score, shape ``(m, d)``.
    k
        Which neighbour: 1 is the nearest. Clipped to the number of reference rows available.
    exclude_self
        ``queries`` is ``reference`` itself and each row must not count as its own neighbour
        (leave-one-out scores): the ``k + 1``-th smallest distance is taken instead.

    Returns
    -------
    numpy.ndarray
        Shape ``(m,)``, float64, non-negative Euclidean distances.
    """
    ref_in = np.asarray(reference)
    qry_in = np.asarray(queries)
    if ref_in.ndim != 2 or qry_in.ndim != 2 or ref_in.shape[1] != qry_in.shape[1]:
        raise ValueError("reference and queries must be 2-D with the same number of columns")
    (ref, qry), unit = to_unit_spread([ref_in, qry_in], basis=1)
    if k < 1:
        raise ValueError("k must be at least 1")
    n = ref.shape[0]
    rank = k if not exclude_self else k + 1
    rank = min(rank, n)
    if rank < 1:
        raise ValueError("the reference sample is empty")
    ref_sq = np.einsum("ij,ij->i", ref, ref, dtype=np.float64)
    out = np.empty(qry.shape[0], dtype=np.float64)
    ref_max = float(ref_sq.max()) if ref_sq.size else 0.0
    for start in range(0, qry.shape[0], _BLOCK_ROWS):
        block = qry[start : start + _BLOCK_ROWS]
        block_sq = np.einsum("ij,ij->i", block, block, dtype=np.float64)
        sq = (block @ ref.T).astype(np.float64)
        sq *= -2.0
        sq += block_sq[:, None]
        sq += ref_sq[None, :]
        # Rounding of |a|² + |b|² - 2 a·b is relative to the norms: per row, the largest pair's.
        sq[sq <= (_ROUNDING * (block_sq + ref_max))[:, None]] = 0.0
        kth = np.partition(sq, rank - 1, axis=1)[:, rank - 1]
        out[start : start + block.shape[0]] = np.sqrt(kth) * unit
    return out
