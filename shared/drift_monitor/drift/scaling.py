"""Bring samples to unit spread before float32 distance computations.

Distances are computed as ``|a|² + |b|² - 2 a·b`` in float32 (k-NN scores, Gaussian kernels),
whose rounding is relative to ``|a|²``: vectors that share a large common component would get
distances that are mostly rounding, and values far from 1 overflow or underflow when squared
(``1e20`` or ``1e-20`` per coordinate). Centring on a mean and dividing by the RMS spread
changes every distance by the same factor, so callers get their distances back by
multiplying by the returned unit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt


def to_unit_spread(
    arrays: Sequence[npt.NDArray[Any]], basis: int
) -> tuple[list[npt.NDArray[np.float32]], float]:
    """Centre ``arrays`` on the mean of the first ``basis`` of them and divide by their RMS.

    Parameters
    ----------
    arrays
        2-d arrays with the same number of columns.
    basis
        How many leading arrays define the centre and the spread: the reference alone for k-NN
        scores (a function of the reference only, so conformal calibration stays exact), every
        array for a permutation test (a function of the pooled sample).

    Returns
    -------
    (list of numpy.ndarray, float)
        The arrays as contiguous float32, and the unit (the RMS; 1 when it is 0 or not finite).
        float64 inputs are centred and scaled in float64 before the cast (``1e-40`` would not
        survive a cast first); float32 inputs in float32, so a large array is copied once.
    """
    wide = np.float64 if any(a.dtype == np.float64 for a in arrays) else np.float32
    head = arrays[:basis]
    rows = sum(a.shape[0] for a in head)
    d = arrays[0].shape[1]
    centre = np.zeros(d, dtype=np.float64)
    if rows:
        for a in head:
            centre += a.sum(axis=0, dtype=np.float64)
        centre /= rows
    out: list[npt.NDArray[Any]] = []
    for a in arrays:
        shifted: npt.NDArray[Any] = np.asarray(a, dtype=wide)
        out.append(shifted - centre.astype(wide))
    total = sum(float(np.einsum("ij,ij->", a, a, dtype=np.float64)) for a in out[:basis])
    rms = math.sqrt(total / (rows * d)) if rows * d else 1.0
    unit = rms if math.isfinite(rms) and rms > 0.0 else 1.0
    scaled = []
    for a in out:
        a /= unit
        scaled.append(np.ascontiguousarray(a, dtype=np.float32))
    return scaled, unit


__all__ = ["to_unit_spread"]
