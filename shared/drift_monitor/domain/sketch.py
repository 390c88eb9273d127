"""Mergeable running statistics of a stream of embedding vectors.

A :class:`RunningStats` summarises any number of vectors in fixed space:

* ``count``, per-dimension ``mean`` and ``m2`` (sum of squared deviations) merged with Chan's
  parallel form of Welford's update, so variances stay accurate when the data sit far from
  zero (``1e6 + noise`` loses nothing to cancellation);
* the same moments plus min/max for the L2 norm of each vector;
* per-dimension histograms on fixed reference bin edges, with an underflow and an overflow
  bin so values outside the reference range are counted, never dropped;
* a bottom-k sample: every row gets a 64-bit priority hashed from ``(part key, row index)``
  and the sketch keeps the ``k`` rows with the smallest priorities. Because priorities depend
  only on the row's identity, merging is exact (merging partial sketches yields the sample of
  the concatenated data), independent of order and tree shape, and folding the same rows twice
  keeps the same sample. The sample is uniform without replacement over all rows seen.

``merge`` of two partial sketches equals ``from_vectors`` of the concatenated rows: histograms,
counts and samples exactly, moments to floating-point rounding. Counts and moments are not
idempotent (merging a sketch with itself doubles them); the stores that hold sketches
deduplicate on the part key before merging.

Sketches serialise to a compact, versioned binary form (a fixed header then raw little-endian
arrays; no pickle) so they can live in Redis.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Float64Array = npt.NDArray[np.float64]
Float32Array = npt.NDArray[np.float32]
Int64Array = npt.NDArray[np.int64]
UInt64Array = npt.NDArray[np.uint64]

SKETCH_FORMAT_VERSION = 1
MAGIC = b"EDMS"
# magic, version, hist dtype code, dimension, bins, reservoir capacity, reservoir rows,
# count, norm_count, norm_mean, norm_m2, norm_min, norm_max
_HEADER = struct.Struct("<4sBBIIIIQQdddd")
SKETCH_HEADER_SIZE = _HEADER.size
_HIST_DTYPES: dict[int, np.dtype[Any]] = {
    2: np.dtype("<u2"),
    4: np.dtype("<u4"),
    8: np.dtype("<u8"),
}
# Rows are processed in blocks of about this many values (1 MiB of float64), which stay in
# cache between the passes over a block.
_BLOCK_VALUES = 1 << 17
_TRANSPOSE_ROWS = 256
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _splitmix64(x: UInt64Array) -> UInt64Array:
    """Finaliser of SplitMix64: a fast, well-mixed bijection on 64-bit integers."""
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def row_priorities(key: str, count: int, start: int = 0) -> UInt64Array:
    """Deterministic 64-bit sampling priorities for rows ``start .. start+count-1`` of ``key``.

    Parameters
    ----------
    key
        Identity of the group of rows, normally :attr:`BatchPart.key` (``batch_id#part``).
    count
        Number of rows.
    start
        Index of the first row within ``key``.

    Returns
    -------
    numpy.ndarray
        ``uint64`` array of shape ``(count,)``; the same ``(key, row)`` always gets the same
        value, different rows get independent, uniformly distributed values.
    """
    seed = np.uint64(
        int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")
    )
    rows = np.arange(start, start + count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        return _splitmix64(_splitmix64(rows * _GOLDEN) ^ seed)


def reference_edges(vectors: npt.ArrayLike, bins: int) -> Float32Array:
    """Per-dimension histogram bin edges derived from a reference sample.

    The inner edges are the reference quantiles at ``1/bins, ..., (bins-1)/bins`` so each bin
    holds about the same share of reference data; the outer edges are the reference minimum and
    maximum widened by 5 % of the range, so modest growth still lands in a regular bin (values
    beyond go to the open-ended under/overflow bins of the histogram). Edges are made strictly
    increasing (ties in the reference, e.g. a constant dimension, are pulled apart by a few
    float32 steps) so every bin is a proper interval.

    Parameters
    ----------
    vectors
        Reference vectors, shape ``(n, d)`` with ``n >= 1``, finite.
    bins
        Number of regular bins per dimension (``>= 1``).

    Returns
    -------
    numpy.ndarray
        ``float32`` array of shape ``(d, bins + 1)``, strictly increasing along axis 1.
    """
    data = np.asarray(vectors, dtype=np.float64)
    if data.ndim != 2 or data.shape[0] < 1 or data.shape[1] < 1:
        raise ValueError(f"reference vectors must have shape (n>=1, d>=1), got {data.shape}")
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    if not np.isfinite(data).all():
        raise ValueError("reference vectors must be finite")
    probs = np.linspace(0.0, 1.0, bins + 1)
    q = np.quantile(data, probs, axis=0).T  # (d, bins+1)
    lo, hi = q[:, 0], q[:, -1]
    span = hi - lo
    scale = np.maximum(np.abs(lo), np.abs(hi))
    pad = 0.05 * span
    q[:, 0] = lo - pad
    q[:, -1] = hi + pad
    # Minimum gap between consecutive edges: a small fraction of the range, but never below a
    # few float32 steps at this magnitude, so the float32 edges stay strictly increasing.
    ulp = np.spacing(np.float32(scale + pad + 1e-30).astype(np.float32)).astype(np.float64)
    gap = np.maximum(np.maximum(span * 1e-6, 4.0 * ulp), 1e-12)[:, None]
    # Strictly increasing with min gap: e'_i = max(e_i, e'_{i-1} + gap)
    #                                        = i*gap + cummax_j(e_j - j*gap).
    idx = np.arange(bins + 1, dtype=np.float64)[None, :]
    fixed = idx * gap + np.maximum.accumulate(q - idx * gap, axis=1)
    edges: Float32Array = np.asarray(fixed, dtype=np.float32)
    if not (np.diff(edges, axis=1) > 0).all():  # pragma: no cover - guarded by the gap
        raise ValueError("could not derive strictly increasing bin edges")
    return edges


def _check_edges(edges: npt.ArrayLike) -> Float32Array:
    e = np.ascontiguousarray(edges, dtype=np.float32)
    if e.ndim != 2 or e.shape[0] < 1 or e.shape[1] < 2:
        raise ValueError(f"edges must have shape (d, bins+1) with bins >= 1, got {e.shape}")
    if not np.isfinite(e).all() or not (np.diff(e, axis=1) > 0).all():
        raise ValueError("edges must be finite and strictly increasing along each dimension")
    return e


def _histogram(vectors: Float32Array, edges: Float32Array) -> Int64Array:
    """Counts per dimension: bin 0 underflow (< e0), bin i in [e_{i-1}, e_i), last >= e_B.

    One transposed copy of the block is sorted along each dimension at once (numpy's
    vectorised sort), then the ``bins + 1`` edges of each dimension are located in its sorted
    values: ``below[j, i]`` = number of values ``< e_i``. The counts are differences of those
    ranks, exactly the counts of a per-dimension ``np.searchsorted(edges[j], column, side="right")``
    (the same float32 comparisons; ``tests/unit/stats_store/test_sketch.py`` checks it).
    """
    n, d = vectors.shape
    b1 = edges.shape[1]
    ordered = np.empty((d, n), dtype=np.float32)
    for s in range(0, n, _TRANSPOSE_ROWS):  # blocks that stay in cache: 4x a plain .T copy
        ordered[:, s : s + _TRANSPOSE_ROWS] = vectors[s : s + _TRANSPOSE_ROWS].T
    ordered.sort(axis=1)
    below = np.empty((d, b1), dtype=np.int64)
    for j in range(d):  # d calls on bins + 1 needles each: negligible next to the sort
        below[j] = np.searchsorted(ordered[j], edges[j], side="left")
    counts = np.empty((d, b1 + 1), dtype=np.int64)
    counts[:, 0] = below[:, 0]
    counts[:, 1:b1] = np.diff(below, axis=1)
    counts[:, b1] = n - below[:, -1]
    return counts


def _combine(n_a: int, mean_a: Any, m2_a: Any, n_b: int, mean_b: Any, m2_b: Any) -> tuple[Any, Any]:
    """Chan et al. pairwise update of (mean, M2); stable for data far from zero."""
    n = n_a + n_b
    delta = mean_b - mean_a
    mean = mean_a + delta * (n_b / n)
    m2 = m2_a + m2_b + delta * delta * (n_a * n_b / n)
    return mean, m2


def _moments(data: Float32Array) -> tuple[Float64Array, Float64Array, Float64Array]:
    """Per-dimension mean and M2, and each row's L2 norm, in float64.

    One read of the data: blocks of rows small enough to stay in cache are converted to
    float64 once; each block's mean and M2 take two passes over the block (exact centring,
    so data far from zero lose nothing), and blocks are combined with Chan's update, the
    same arithmetic as :meth:`RunningStats.merge`. Norms are computed per row exactly as a
    whole-array ``np.sqrt((x * x).sum(axis=1))`` would.
    """
    n, d = data.shape
    rows = max(1, _BLOCK_VALUES // d)
    block = np.empty((min(rows, n), d))
    square = np.empty_like(block)
    norms = np.empty(n)
    count = 0
    mean: Float64Array = np.zeros(d)
    m2: Float64Array = np.zeros(d)
    for s in range(0, n, rows):
        m = min(rows, n - s)
        x, sq = block[:m], square[:m]
        np.copyto(x, data[s : s + m])
        np.multiply(x, x, out=sq)
        norms[s : s + m] = sq.sum(axis=1)
        block_mean = x.sum(axis=0) / m
        np.subtract(x, block_mean, out=x)
        np.multiply(x, x, out=x)
        block_m2 = x.sum(axis=0)
        if count == 0:
            mean, m2 = block_mean, block_m2
        else:
            mean, m2 = _combine(count, mean, m2, m, block_mean, block_m2)
        count += m
    np.sqrt(norms, out=norms)
    return mean, m2, norms


@dataclass(eq=False)
class RunningStats:
    """Mergeable summary of a set of vectors (see the module docstring).

    Build one with :meth:`from_vectors` or :meth:`empty`, combine with :meth:`merge`.
    ``reservoir_size`` is the sample capacity ``k``; ``reservoir`` holds ``min(k, count)`` rows
    ordered by their priority ``reservoir_keys`` (ascending).
    """

    dimension: int
    count: int
    mean: Float64Array
    m2: Float64Array
    norm_count: int
    norm_mean: float
    norm_m2: float
    norm_min: float
    norm_max: float
    edges: Float32Array
    hist: Int64Array
    reservoir_keys: UInt64Array
    reservoir: Float32Array
    reservoir_size: int

    # ------------------------------------------------------------------ construction
    @classmethod
    def empty(cls, dimension: int, *, edges: npt.ArrayLike, reservoir_size: int) -> RunningStats:
        """The sketch of no vectors: the identity of :meth:`merge`."""
        e = _check_edges(edges)
        if e.shape[0] != dimension:
            raise ValueError(f"edges are for dimension {e.shape[0]}, not {dimension}")
        if reservoir_size < 0:
            raise ValueError("reservoir_size must be >= 0")
        return cls(
            dimension=dimension,
            count=0,
            mean=np.zeros(dimension),
            m2=np.zeros(dimension),
            norm_count=0,
            norm_mean=0.0,
            norm_m2=0.0,
            norm_min=float("inf"),
            norm_max=float("-inf"),
            edges=e,
            hist=np.zeros((dimension, e.shape[1] + 1), dtype=np.int64),
            reservoir_keys=np.zeros(0, dtype=np.uint64),
            reservoir=np.zeros((0, dimension), dtype=np.float32),
            reservoir_size=reservoir_size,
        )

    @classmethod
    def from_vectors(
        cls,
        vectors: npt.ArrayLike,
        *,
        edges: npt.ArrayLike,
        reservoir_size: int,
        key: str | None = None,
        priorities: npt.ArrayLike | None = None,
    ) -> RunningStats:
        """Summarise ``vectors``.

        Parameters
        ----------
        vectors
            Shape ``(n, d)``, finite; converted to float32 (the pipeline's storage type).
        edges
            Bin edges, shape ``(d, bins + 1)`` (see :func:`reference_edges`).
        reservoir_size
            Capacity ``k`` of the bottom-k sample.
        key
            Identity of these rows (normally ``BatchPart.key``); row ``i`` gets priority
            ``row_priorities(key, n)[i]``.
        priorities
            Alternatively, one explicit ``uint64`` priority per row (to summarise rows from
            several parts at once). Give exactly one of ``key`` and ``priorities``.
        """
        data = np.ascontiguousarray(vectors, dtype=np.float32)
        if data.ndim != 2:
            raise ValueError(f"vectors must be 2-D (n, d), got shape {data.shape}")
        n, d = data.shape
        base = cls.empty(d, edges=edges, reservoir_size=reservoir_size)
        if (key is None) == (priorities is None):
            raise ValueError("give exactly one of key and priorities")
        if priorities is None:
            assert key is not None
            prio = row_priorities(key, n)
        else:
            prio = np.ascontiguousarray(priorities, dtype=np.uint64)
            if prio.shape != (n,):
                raise ValueError(f"priorities must have shape ({n},), got {prio.shape}")
        if n == 0:
            return base
        if not np.isfinite(data).all():
            raise ValueError("vectors must be finite")

        mean, m2, norms = _moments(data)
        norm_mean = float(norms.mean())
        norm_m2 = float(((norms - norm_mean) ** 2).sum())

        order = np.argsort(prio, kind="stable")[:reservoir_size]
        return cls(
            dimension=d,
            count=n,
            mean=mean,
            m2=m2,
            norm_count=n,
            norm_mean=norm_mean,
            norm_m2=norm_m2,
            norm_min=float(norms.min()),
            norm_max=float(norms.max()),
            edges=base.edges,
            hist=_histogram(data, base.edges),
            reservoir_keys=prio[order].copy(),
            reservoir=data[order].copy(),
            reservoir_size=reservoir_size,
        )

    # ------------------------------------------------------------------ algebra
    def merge(self, other: RunningStats) -> RunningStats:
        """The sketch of the union of both inputs (neither operand is modified).

        Raises ``ValueError`` if the dimensions or bin edges differ. The result's sample
        capacity is the larger of the two.
        """
        if other.dimension != self.dimension:
            raise ValueError(f"cannot merge dimension {self.dimension} with {other.dimension}")
        if other.edges.shape != self.edges.shape or not np.array_equal(other.edges, self.edges):
            raise ValueError("cannot merge sketches built on different bin edges")
        k = max(self.reservoir_size, other.reservoir_size)
        if self.count == 0 or other.count == 0:
            src = other if self.count == 0 else self
            return src._copy(reservoir_size=k)

        mean, m2 = _combine(self.count, self.mean, self.m2, other.count, other.mean, other.m2)
        norm_mean, norm_m2 = _combine(
            self.norm_count, self.norm_mean, self.norm_m2,
            other.norm_count, other.norm_mean, other.norm_m2,
        )  # fmt: skip

        keys = np.concatenate([self.reservoir_keys, other.reservoir_keys])
        rows = np.concatenate([self.reservoir, other.reservoir])
        # np.unique sorts and drops a row seen in both operands, which keeps the sample exact
        # whatever the order or grouping of merges.
        uniq, first = np.unique(keys, return_index=True)
        take = first[:k]
        return RunningStats(
            dimension=self.dimension,
            count=self.count + other.count,
            mean=np.asarray(mean, dtype=np.float64),
            m2=np.asarray(m2, dtype=np.float64),
            norm_count=self.norm_count + other.norm_count,
            norm_mean=float(norm_mean),
            norm_m2=float(norm_m2),
            norm_min=min(self.norm_min, other.norm_min),
            norm_max=max(self.norm_max, other.norm_max),
            edges=self.edges,
            hist=self.hist + other.hist,
            reservoir_keys=uniq[:k].copy(),
            reservoir=rows[take].copy(),
            reservoir_size=k,
        )

    def _copy(self, *, reservoir_size: int) -> RunningStats:
        return RunningStats(
            dimension=self.dimension,
            count=self.count,
            mean=self.mean.copy(),
            m2=self.m2.copy(),
            norm_count=self.norm_count,
            norm_mean=self.norm_mean,
            norm_m2=self.norm_m2,
            norm_min=self.norm_min,
            norm_max=self.norm_max,
            edges=self.edges,
            hist=self.hist.copy(),
            reservoir_keys=self.reservoir_keys[:reservoir_size].copy(),
            reservoir=self.reservoir[:reservoir_size].copy(),
            reservoir_size=reservoir_size,
        )

    @staticmethod
    def merge_all(sketches: list[RunningStats]) -> RunningStats | None:
        """Merge a list of sketches (``None`` for an empty list)."""
        if not sketches:
            return None
        result = sketches[0]
        for s in sketches[1:]:
            result = result.merge(s)
        return result

    # ------------------------------------------------------------------ derived values
    @property
    def bins(self) -> int:
        """Number of regular bins per dimension (histograms have ``bins + 2`` counts)."""
        return int(self.edges.shape[1] - 1)

    @property
    def variance(self) -> Float64Array:
        """Per-dimension sample variance (``ddof=1``); NaN when fewer than two vectors."""
        if self.count < 2:
            return np.full(self.dimension, np.nan)
        return self.m2 / (self.count - 1)

    @property
    def std(self) -> Float64Array:
        """Per-dimension sample standard deviation (``ddof=1``)."""
        return np.sqrt(self.variance)

    @property
    def norm_variance(self) -> float:
        """Sample variance of the L2 norms (``ddof=1``); NaN when fewer than two vectors."""
        return self.norm_m2 / (self.norm_count - 1) if self.norm_count >= 2 else float("nan")

    @property
    def nbytes(self) -> int:
        """Size of :meth:`to_bytes` output (without building it)."""
        width = _hist_dtype(self.hist).itemsize
        d, b1 = int(self.edges.shape[0]), int(self.edges.shape[1])
        r = int(self.reservoir_keys.shape[0])
        return _HEADER.size + 16 * d + 4 * d * b1 + width * d * (b1 + 1) + r * (8 + 4 * d)

    def equals(self, other: RunningStats, *, rtol: float = 1e-9, atol: float = 1e-9) -> bool:
        """Exact equality of counts, edges, histograms and sample; moments within tolerance."""
        return (
            self.dimension == other.dimension
            and self.count == other.count
            and self.norm_count == other.norm_count
            and self.reservoir_size == other.reservoir_size
            and np.array_equal(self.edges, other.edges)
            and np.array_equal(self.hist, other.hist)
            and np.array_equal(self.reservoir_keys, other.reservoir_keys)
            and np.array_equal(self.reservoir, other.reservoir)
            and np.allclose(self.mean, other.mean, rtol=rtol, atol=atol)
            and np.allclose(self.m2, other.m2, rtol=rtol, atol=atol)
            and bool(np.isclose(self.norm_mean, other.norm_mean, rtol=rtol, atol=atol))
            and bool(np.isclose(self.norm_m2, other.norm_m2, rtol=rtol, atol=atol))
            and self.norm_min == other.norm_min
            and self.norm_max == other.norm_max
        )

    # ------------------------------------------------------------------ serialisation
    def to_bytes(self) -> bytes:
        """Compact versioned binary form: a fixed little-endian header, then raw arrays.

        Layout (version 1): header ``<4sBBIIIIQQdddd`` = magic ``b"EDMS"``, version, histogram
        item size (2, 4 or 8: the smallest unsigned type that holds the largest count),
        dimension ``d``, bins ``B``, reservoir capacity ``k``, reservoir rows ``r``, count,
        norm count, norm mean, norm M2, norm min, norm max; then ``mean`` f64[d], ``m2`` f64[d],
        ``edges`` f32[d, B+1], ``hist`` u{2,4,8}[d, B+2], ``reservoir_keys`` u64[r],
        ``reservoir`` f32[r, d].
        """
        hist_dtype = _hist_dtype(self.hist)
        header = _HEADER.pack(
            MAGIC,
            SKETCH_FORMAT_VERSION,
            hist_dtype.itemsize,
            self.dimension,
            self.bins,
            self.reservoir_size,
            int(self.reservoir_keys.shape[0]),
            self.count,
            self.norm_count,
            self.norm_mean,
            self.norm_m2,
            self.norm_min,
            self.norm_max,
        )
        return b"".join(
            [
                header,
                self.mean.astype("<f8").tobytes(),
                self.m2.astype("<f8").tobytes(),
                self.edges.astype("<f4").tobytes(),
                self.hist.astype(hist_dtype).tobytes(),
                self.reservoir_keys.astype("<u8").tobytes(),
                self.reservoir.astype("<f4").tobytes(),
            ]
        )

    @classmethod
    def from_bytes(cls, blob: bytes) -> RunningStats:
        """Inverse of :meth:`to_bytes`; ``ValueError`` on anything malformed or unknown."""
        if len(blob) < _HEADER.size:
            raise ValueError("sketch blob is shorter than its header")
        (magic, version, hist_width, d, bins, k, r, count, norm_count,
         norm_mean, norm_m2, norm_min, norm_max) = _HEADER.unpack_from(blob)  # fmt: skip
        if magic != MAGIC:
            raise ValueError("not a sketch blob (bad magic)")
        if version != SKETCH_FORMAT_VERSION:
            raise ValueError(f"unsupported sketch format version {version}")
        if hist_width not in _HIST_DTYPES:
            raise ValueError(f"bad histogram item size {hist_width}")
        if d < 1 or bins < 1 or r > k or r > count:
            raise ValueError("inconsistent sketch header")
        b1 = bins + 1
        sizes = [8 * d, 8 * d, 4 * d * b1, hist_width * d * (b1 + 1), 8 * r, 4 * r * d]
        if len(blob) != _HEADER.size + sum(sizes):
            raise ValueError("sketch blob length does not match its header")
        pos = _HEADER.size

        def take(dtype: str, n_bytes: int) -> Any:
            nonlocal pos
            arr = np.frombuffer(blob, dtype=dtype, count=n_bytes // np.dtype(dtype).itemsize,
                                offset=pos)  # fmt: skip
            pos += n_bytes
            return arr

        mean = take("<f8", sizes[0]).astype(np.float64)
        m2 = take("<f8", sizes[1]).astype(np.float64)
        edges = take("<f4", sizes[2]).astype(np.float32).reshape(d, b1)
        hist = take(_HIST_DTYPES[hist_width].str, sizes[3]).astype(np.int64).reshape(d, b1 + 1)
        keys = take("<u8", sizes[4]).astype(np.uint64)
        reservoir = take("<f4", sizes[5]).astype(np.float32).reshape(r, d)
        return cls(
            dimension=d,
            count=count,
            mean=mean,
            m2=m2,
            norm_count=norm_count,
            norm_mean=norm_mean,
            norm_m2=norm_m2,
            norm_min=norm_min,
            norm_max=norm_max,
            edges=edges,
            hist=hist,
            reservoir_keys=keys,
            reservoir=reservoir,
            reservoir_size=k,
        )


def sketch_count(head: bytes) -> int:
    """Vector count from the first :data:`SKETCH_HEADER_SIZE` bytes of a sketch blob."""
    if len(head) < _HEADER.size or head[:4] != MAGIC:
        raise ValueError("not a sketch header")
    if head[4] != SKETCH_FORMAT_VERSION:
        raise ValueError(f"unsupported sketch format version {head[4]}")
    return int(_HEADER.unpack_from(head)[7])


def _hist_dtype(hist: Int64Array) -> np.dtype[Any]:
    top = int(hist.max()) if hist.size else 0
    if top < 2**16:
        return _HIST_DTYPES[2]
    if top < 2**32:
        return _HIST_DTYPES[4]
    return _HIST_DTYPES[8]


def edges_to_bytes(edges: npt.ArrayLike) -> bytes:
    """Serialise bin edges: ``<II`` (d, bins) then float32 ``(d, bins+1)`` little-endian."""
    e = _check_edges(edges)
    return struct.pack("<II", e.shape[0], e.shape[1] - 1) + e.astype("<f4").tobytes()


def edges_from_bytes(blob: bytes) -> Float32Array:
    """Inverse of :func:`edges_to_bytes`."""
    if len(blob) < 8:
        raise ValueError("edges blob is too short")
    d, bins = struct.unpack_from("<II", blob)
    if len(blob) != 8 + 4 * d * (bins + 1):
        raise ValueError("edges blob length does not match its header")
    arr = np.frombuffer(blob, dtype="<f4", offset=8).astype(np.float32).reshape(d, bins + 1)
    return _check_edges(arr)
