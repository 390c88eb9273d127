"""What the browser drift report shows beyond the stored results: reference-versus-current
histograms of the most drifted dimensions of the latest run.

The stored result keeps each top dimension's statistics, not the data; the histograms are
drawn from a fresh seeded sample of the two windows the latest run compared
(``DetectionRepository.sample_vectors``), with bin edges common to both windows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

MAX_ROWS = 2000  # per window: enough for a 24-bin histogram, cheap to read
BINS = 24
TOP = 4
SEED = 20240607


class VectorSource(Protocol):
    def sample_vectors(
        self, model_id: str, start: datetime, end: datetime, max_rows: int, seed: int
    ) -> npt.NDArray[Any]: ...


@dataclass(frozen=True)
class DimensionHistogram:
    """Shares of each window's values per bin (each sums to 1) on common ``edges``."""

    dimension: int
    edges: tuple[float, ...]
    reference: tuple[float, ...]
    current: tuple[float, ...]
    effect_size: float | None


def histograms(
    reference: npt.NDArray[Any],
    current: npt.NDArray[Any],
    dimensions: Sequence[int],
    effects: Sequence[float | None] | None = None,
    bins: int = BINS,
) -> list[DimensionHistogram]:
    """Histograms of ``dimensions`` (columns) of the two samples on shared bin edges."""
    out = []
    for i, dim in enumerate(dimensions):
        if not (0 <= dim < reference.shape[1] and dim < current.shape[1]):
            continue
        ref = np.asarray(reference[:, dim], dtype=np.float64)
        cur = np.asarray(current[:, dim], dtype=np.float64)
        both = np.concatenate([ref, cur])
        both = both[np.isfinite(both)]
        if both.size == 0:
            continue
        low, high = float(both.min()), float(both.max())
        if high <= low:
            high = low + 1.0
        edges = np.linspace(low, high, bins + 1)
        ref_counts, _ = np.histogram(ref, bins=edges)
        cur_counts, _ = np.histogram(cur, bins=edges)
        out.append(
            DimensionHistogram(
                dimension=int(dim),
                edges=tuple(float(e) for e in edges),
                reference=tuple(float(c) for c in ref_counts / max(ref_counts.sum(), 1)),
                current=tuple(float(c) for c in cur_counts / max(cur_counts.sum(), 1)),
                effect_size=None if effects is None else effects[i],
            )
        )
    return out


def latest_histograms(
    repository: VectorSource,
    model_id: str,
    latest: Mapping[str, Any] | None,
    *,
    top: int = TOP,
    max_rows: int = MAX_ROWS,
) -> list[DimensionHistogram]:
    """Histograms of the latest run's top dimensions (empty when it compared nothing)."""
    if not latest:
        return []
    windows = latest.get("windows") or {}
    top_dims = [d for d in latest.get("top_dimensions") or [] if isinstance(d, Mapping)][:top]
    try:
        base = windows["baseline"]
        cur = windows["current"]
        spans = [
            (datetime.fromisoformat(w["start"]), datetime.fromisoformat(w["end"]))
            for w in (base, cur)
        ]
    except (KeyError, TypeError, ValueError):
        return []
    if not top_dims:
        return []
    reference = repository.sample_vectors(model_id, *spans[0], max_rows, SEED)
    current = repository.sample_vectors(model_id, *spans[1], max_rows, SEED + 1)
    if len(reference) == 0 or len(current) == 0:
        return []
    dims = [int(d["dimension"]) for d in top_dims if isinstance(d.get("dimension"), int)]
    effects = [_number(d.get("effect_size")) for d in top_dims]
    return histograms(reference, current, dims, effects)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
