"""k-nearest-neighbour distances to a reference sample, batched as matrix products.

The novelty score of a vector is its Euclidean distance to its ``k``-th nearest neighbour in a
reference sample: small inside the reference's support, large for a vector unlike anything the
reference holds (a new topic, a new language, a swapped model). Both the one-window novelty
test and the sequential monitor score vectors this way; ranking such scores against the scores
of held-out reference vectors gives conformal p-values (Bates et al., "Testing for outliers
with conformal p-values", Ann. Statist. 2023).

Distances come from ``|a - b|² = |a|² + |b|² - 2 a·b`` in blocks of query rows, so memory is
``O(block × n_reference)`` whatever the number of queries.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

DEFAULT_K = 5
_BLOCK_ROWS = 512


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
    ref = np.ascontiguousarray(reference, dtype=np.float32)
    qry = np.ascontiguousarray(queries, dtype=np.float32)
    if ref.ndim != 2 or qry.ndim != 2 or ref.shape[1] != qry.shape[1]:
        raise ValueError("reference and queries must be 2-D with the same number of columns")
    if k < 1:
        raise ValueError("k must be at least 1")
    n = ref.shape[0]
    rank = k if not exclude_self else k + 1
    rank = min(rank, n)
    if rank < 1:
        raise ValueError("the reference sample is empty")
    ref_sq = np.einsum("ij,ij->i", ref, ref, dtype=np.float64)
    out = np.empty(qry.shape[0], dtype=np.float64)
    for start in range(0, qry.shape[0], _BLOCK_ROWS):
        block = qry[start : start + _BLOCK_ROWS]
        block_sq = np.einsum("ij,ij->i", block, block, dtype=np.float64)
        sq = block_sq[:, None] + ref_sq[None, :] - 2.0 * (block @ ref.T).astype(np.float64)
        np.maximum(sq, 0.0, out=sq)
        kth = np.partition(sq, rank - 1, axis=1)[:, rank - 1]
        out[start : start + block.shape[0]] = np.sqrt(kth)
    return out
