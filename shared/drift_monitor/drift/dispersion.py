"""Overdispersion of a baseline in time: is its traffic clumped run by run?

Every test and bet of the monitor treats the vectors of a run as independent draws from the
traffic's distribution. Real traffic is often clumped instead: a topic bursts for an hour (a
batch job, a campaign, one busy user), or the mix follows the time of day. Then one run's
vectors move together and a run carries less information than its row count says. Tests that
count rows mistake the clumping for a shift: 8 days of Debian descriptions in which one of 12 topics
made up 60 % of each hour (every topic in its usual share over the day) were paged 36 times,
and when one Debian section made up 30 % of each hour, 3 times.

The baseline shows the clumping before any shift does, so the monitor measures it there and
discounts what a run can prove by it.

* **Statistic.** The baseline sample, in time order, is cut into ``B`` consecutive blocks
  (about one schedule interval each). Along each of the sample's top ``K`` principal
  directions ``u_k`` the between-block variance of the block means is compared with the
  within-sample variance:
  ``F_k = Σ_b n_b (m_bk - m_k)² / ((B - 1) λ_k)``, where ``m_bk`` is block ``b``'s mean of
  ``x · u_k``, ``n_b`` its size, ``m_k`` the overall mean and ``λ_k`` the variance along
  ``u_k``. ``F = max_k F_k``.
* **Null.** When the rows are exchangeable in time (no clumping), each ``F_k`` is a one-way
  ANOVA ratio, about ``F(B - 1, n - B)``: mean 1 and standard deviation about
  ``sqrt(2 / (B - 1))``.
* **Excess.** ``max(0, F - 1 - 3 sqrt(2 / (B - 1)))``: only clumping beyond three standard
  deviations of the null (and the maximum over ``K`` directions) counts, so exchangeable
  traffic gets 0 (measured: ``F`` of 1.13 to 1.23 on stationary real and synthetic streams,
  against 6.3 for 30 % section bursts and 7.6 for a daily topic cycle).
* **Time scales.** A clump can last longer than a block (a weekend's mix lasts 48 hourly
  runs), and the evidence sums runs: a sum of ``L`` runs is inflated by the clumping of blocks
  ``L`` times as long. So ``F`` is also taken with ``L = 2, 4, 8, ...`` consecutive blocks
  merged (while at least :data:`MIN_BLOCKS` remain), each against its own null margin (the
  coarse scales' few blocks make ``F`` skewed: their margin is the exact ``χ²`` quantile,
  their tail shared among them), and the scale with the largest excess is used
  (:attr:`Dispersion.scale`).
* **Novelty.** The same ratio for the novelty scores: for the calibration rows ``C``
  (placed in their blocks by their position in the sample), the rank of the score and the
  indicators of a score above the baseline's top 20 % and top 5 % and below its bottom 20 %
  (the bets' outcomes), ``F_j = Σ_b n_b (m_bj - m_j)² / ((B - 1) s_j²)``; ``F = max_j F_j``,
  the same margin.
* **Along a shift direction.** The block means are kept (:class:`BlockMeans`), so that the
  same ratio can be taken along whatever direction the shift bets follow later
  (:meth:`BlockMeans.along`).
* **Use.** A clumped stream's block means vary by ``τ²`` beyond sampling noise, and
  ``F - 1 ≈ n_b τ² / σ²``. A run of ``n`` rows then has its variance inflated by
  ``φ(n) = 1 + (F - 1) n / n_b`` (:meth:`Dispersion.factor`, with the excess over the margin
  in place of ``F - 1``; at scale ``L``, ``F_L - 1 ≈ L n_b τ_L² / σ²`` inflates a sum of ``L``
  runs by the same expression, ``n_b`` still one block's rows). The monitor divides each run's
  log e-value by ``φ`` (tempering: ``E[e^{1/φ}] <= E[e]^{1/φ} <= 1`` by Jensen, so the
  guarantee on exchangeable traffic is untouched, and on clumped traffic a Gaussian
  approximation of the run's log e-value gets back the exponent it has without clumping): the
  novelty bets by the novelty ``φ``, the shift bets by the larger of the principal directions'
  ``φ`` and their own direction's (either can be the larger: a daily cycle clumps the first
  principal direction, a topic's bursts the direction of that topic). The instant check's
  level is deflated as if its statistics' variance were inflated by ``φ``
  (:func:`deflated_level`): the novelty test by the novelty ``φ``, the others by the principal
  directions'.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

#: Principal directions the clumping is looked for along.
DIRECTIONS = 8
#: Fewest blocks, and fewest sample rows per block, for a measurement; otherwise no discount.
MIN_BLOCKS = 12
MIN_BLOCK_ROWS = 20
#: Null standard deviations of ``F`` that do not count as clumping.
MARGIN_SDS = 3.0
#: Rows centred at a time when measuring (bounds the memory of a measurement).
CHUNK_ROWS = 2048


@dataclass(frozen=True)
class Dispersion:
    """Clumping of a baseline sample over time (see the module docstring).

    Attributes
    ----------
    statistic
        ``F = max_k F_k`` (1 on average for exchangeable rows); 0 when not measured.
    excess
        ``max(0, F - 1 - MARGIN_SDS sqrt(2 / (B - 1)))``.
    block_rows
        Sample rows per block ``n_b``.
    blocks
        ``B``; 0 when the sample was too short to measure.
    scale
        ``L``: ``F`` and its excess were measured on blocks of ``L`` consecutive blocks (the
        time scale whose clumping inflates a run the most; see :func:`grouped_dispersion`).
        ``block_rows`` stays the rows of one block, so :meth:`factor` applies unchanged.
    """

    statistic: float = 0.0
    excess: float = 0.0
    block_rows: float = 1.0
    blocks: int = 0
    scale: int = 1

    @property
    def per_row(self) -> float:
        """``(F - 1) / n_b`` beyond the margin: a run of ``n`` rows has ``φ = 1 + n per_row``."""
        return self.excess / self.block_rows if self.blocks else 0.0

    def factor(self, rows: int) -> float:
        """Variance inflation ``φ(n) = 1 + per_row n`` of a run of ``rows`` rows."""
        return 1.0 + self.per_row * max(int(rows), 0)


def grouped_dispersion(values: npt.ArrayLike, groups: npt.ArrayLike, n_groups: int) -> Dispersion:
    """Clumping of each column of ``values`` over ``groups`` (blocks of time); the largest.

    Parameters
    ----------
    values
        Shape ``(n,)`` or ``(n, J)``: one or more variables per row (projections, 0/1
        outcomes).
    groups
        Each row's block, ``0 <= group < n_groups``.
    n_groups
        ``B`` before the :data:`MIN_BLOCK_ROWS` limit; when that limit lowers it, neighbouring
        blocks are merged (``group * B' // B``).

    Returns
    -------
    Dispersion
        ``F = max_j F_j`` with ``F_j = Σ_b n_b (m_bj - m_j)² / ((B - 1) s_j²)``, ``s_j²`` the
        column's variance; its excess over ``1 + 3 sqrt(2 / (B - 1))``; ``n_b = n / B``.
        ``Dispersion()`` when too few rows, blocks or an empty block make it unmeasurable.
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[:, None] if v.ndim == 1 else v
    g = np.asarray(groups, dtype=np.int64)
    if v.ndim != 2 or v.shape[0] == 0 or g.shape != (v.shape[0],) or n_groups < 1:
        return Dispersion()
    n = v.shape[0]
    b = min(int(n_groups), n // MIN_BLOCK_ROWS)
    if b < MIN_BLOCKS:
        return Dispersion()
    if b < n_groups:
        g = g * b // n_groups
    sizes = np.bincount(g, minlength=b).astype(np.float64)
    variance = v.var(axis=0)
    usable = variance > 1e-12 * max(float(np.abs(v).max()) ** 2, 1e-300)
    if not usable.any() or (sizes == 0).any() or sizes.shape[0] != b:
        return Dispersion()
    centred = v[:, usable] - v[:, usable].mean(axis=0)
    sums = np.stack([np.bincount(g, weights=column, minlength=b) for column in centred.T], axis=1)
    return _across_scales(sums, sizes, variance[usable], n / b)


#: One-sided null tail of ``F`` per direction that does not count (3 normal sd).
MARGIN_TAIL = float(stats.norm.sf(MARGIN_SDS))


def margin(blocks: int, coarse: int = 0) -> float:
    """``F`` that counts as no clumping with ``blocks`` blocks.

    At the finest scale (``coarse = 0``) ``1 + 3 sqrt(2 / (B - 1))``. At the ``coarse``
    coarser scales, whose few blocks make ``F`` skewed, the ``MARGIN_TAIL / coarse`` upper
    quantile of its null law ``χ²_{B-1} / (B - 1)`` (and at least the normal margin), so that
    looking at several scales adds at most one finest scale's worth of null discounts.
    """
    normal = 1.0 + MARGIN_SDS * math.sqrt(2.0 / (blocks - 1))
    if coarse <= 0:
        return normal
    exact = float(stats.chi2.isf(MARGIN_TAIL / coarse, blocks - 1)) / (blocks - 1)
    return max(normal, exact)


def scales(blocks: int) -> list[int]:
    """Block lengths ``L = 1, 2, 4, ...`` that still leave :data:`MIN_BLOCKS` merged blocks."""
    out, length = [], 1
    while blocks // length >= MIN_BLOCKS:
        out.append(length)
        length *= 2
    return out


def _across_scales(
    sums: npt.ArrayLike, sizes: npt.ArrayLike, variance: npt.ArrayLike, block_rows: float
) -> Dispersion:
    """The largest excess over every time scale, from per-block column sums of centred values.

    At scale ``L`` consecutive blocks are merged (``B_L = B // L`` blocks; a remainder joins the
    last one) and ``F_L`` computed as at scale 1. A clump that lasts ``L`` runs inflates the
    variance of a sum of ``L`` runs of ``n`` rows by ``1 + (F_L - 1) n / n_b`` (``n_b`` the rows
    of one block: ``F_L - 1 ≈ L n_b τ_L² / σ²``), so each scale's excess over its own margin is
    compared per row of one block, and the largest wins. A CUSUM that sums runs over hours is
    then discounted for a clumping that persists for hours (a weekend's mix), not only for one
    that changes run by run.
    """
    sums = np.asarray(sums, dtype=np.float64)
    sizes = np.asarray(sizes, dtype=np.float64)
    variance = np.asarray(variance, dtype=np.float64)
    b = sizes.shape[0]
    lengths = scales(b)
    best = Dispersion(statistic=0.0, excess=0.0, block_rows=block_rows, blocks=b, scale=1)
    for length in lengths:
        b_l = b // length
        merged = np.minimum(np.arange(b) // length, b_l - 1)
        s_l = np.stack([np.bincount(merged, weights=c, minlength=b_l) for c in sums.T], axis=1)
        n_l = np.bincount(merged, weights=sizes, minlength=b_l)
        f = float((((s_l**2) / n_l[:, None]).sum(axis=0) / (b_l - 1) / variance).max())
        excess = max(0.0, f - margin(b_l, coarse=len(lengths) - 1 if length > 1 else 0))
        if length == 1 or excess > best.excess:
            best = Dispersion(
                statistic=f, excess=excess, block_rows=block_rows, blocks=b, scale=length
            )
    return best


def block_dispersion(
    sample: npt.ArrayLike, blocks: int, *, directions: int = DIRECTIONS
) -> Dispersion:
    """Clumping of a time-ordered sample, cut into ``blocks`` equal consecutive blocks, along
    its top ``directions`` principal directions (:func:`grouped_dispersion`).

    Parameters
    ----------
    sample
        Rows in time order, shape ``(n, d)`` (the baseline sample; every row about equally
        likely to be in it, so equal-count blocks cover equal shares of the traffic).
    blocks
        ``B``, e.g. the number of schedule intervals the baseline spans.
    directions
        ``K``, the number of principal directions.
    """
    x = np.asarray(sample)
    if x.ndim != 2 or x.shape[0] < 2:
        return Dispersion()
    n, d = x.shape
    # centred in chunks of rows: no copy of the whole sample
    mean = x.mean(axis=0, dtype=np.float64).astype(np.float32)
    chunks = range(0, n, CHUNK_ROWS)
    scatter = np.zeros((d, d))
    for start in chunks:
        c = np.asarray(x[start : start + CHUNK_ROWS], dtype=np.float32) - mean
        scatter += c.T @ c
    values, vectors = np.linalg.eigh(scatter / (n - 1))
    top = vectors[:, np.argsort(values)[::-1][: min(directions, d)]].astype(np.float32)
    projected = np.concatenate(
        [(np.asarray(x[i : i + CHUNK_ROWS], dtype=np.float32) - mean) @ top for i in chunks]
    )
    return grouped_dispersion(projected, block_of(np.arange(n), n, blocks), blocks)


#: Most bytes the block means kept for the shift bets may take (float16); more blocks are merged.
BLOCK_MEANS_BYTES = 1 << 20


@dataclass(frozen=True)
class BlockMeans:
    """The baseline sample's block means, centred on its mean: enough to measure its clumping
    along any direction later (:meth:`along`).

    Attributes
    ----------
    means
        ``(B, d)`` float16, block mean minus sample mean.
    sizes
        ``(B,)`` rows per block.
    """

    means: npt.NDArray[np.float16]
    sizes: npt.NDArray[np.int32]

    def along(self, direction: npt.ArrayLike, variance: float) -> Dispersion:
        """:func:`grouped_dispersion` of the sample's projections onto ``direction``.

        ``variance`` is the variance of the projections (from rows not used for the means is
        fine: under exchangeability both estimate the same).
        """
        b = self.sizes.shape[0]
        if b < MIN_BLOCKS or not variance > 0:
            return Dispersion()
        projected = self.means.astype(np.float64) @ np.asarray(direction, dtype=np.float64)
        sizes = self.sizes.astype(np.float64)
        sums = (sizes * projected)[:, None]
        return _across_scales(sums, sizes, np.array([float(variance)]), sizes.sum() / b)


def block_means(sample: npt.ArrayLike, blocks: int) -> BlockMeans | None:
    """Block means of a time-ordered sample cut into ``blocks`` equal consecutive blocks.

    ``blocks`` is lowered so that each block holds at least :data:`MIN_BLOCK_ROWS` rows and the
    means fit :data:`BLOCK_MEANS_BYTES`; ``None`` below :data:`MIN_BLOCKS` blocks.
    """
    x = np.asarray(sample)
    if x.ndim != 2 or x.shape[0] == 0:
        return None
    n, d = x.shape
    b = min(int(blocks), n // MIN_BLOCK_ROWS, BLOCK_MEANS_BYTES // (2 * max(d, 1)))
    if b < MIN_BLOCKS:
        return None
    edges = np.linspace(0, n, b + 1).astype(np.int64)
    sizes = np.diff(edges)
    sums = np.add.reduceat(x, edges[:-1], axis=0)  # in the sample's dtype: no copy of it
    means = sums.astype(np.float64) / sizes[:, None] - x.mean(axis=0, dtype=np.float64)
    return BlockMeans(means=means.astype(np.float16), sizes=sizes.astype(np.int32))


def block_of(positions: npt.ArrayLike, sample_rows: int, blocks: int) -> npt.NDArray[np.int64]:
    """Block of each position of a time-ordered sample of ``sample_rows`` rows cut into
    ``blocks`` equal consecutive blocks."""
    pos = np.asarray(positions, dtype=np.int64)
    b = max(int(blocks), 1)
    return np.minimum(pos * b // max(int(sample_rows), 1), b - 1)


def indicator_dispersion(
    indicators: npt.ArrayLike, positions: npt.ArrayLike, sample_rows: int, blocks: int
) -> Dispersion:
    """Clumping of 0/1 outcomes of rows placed in time by their position in a sample.

    Parameters
    ----------
    indicators
        Shape ``(n, J)``: ``J`` outcomes of each of ``n`` rows.
    positions
        Each row's position in the time-ordered sample (``0 <= position < sample_rows``).
    sample_rows
        Rows in the sample the positions refer to; it is cut into ``blocks`` equal blocks as
        in :func:`block_dispersion`.
    blocks
        ``B`` (see :func:`grouped_dispersion`).
    """
    return grouped_dispersion(indicators, block_of(positions, sample_rows, blocks), blocks)


#: Novelty outcomes whose clumping is measured: above the top 20 % and 5 %, below the bottom 20 %.
NOVELTY_CUTS = ((0.2, "high"), (0.05, "high"), (0.2, "low"))


@dataclass(frozen=True)
class RunDispersion:
    """Variance inflation ``φ`` of one run, for each family of bets and tests."""

    novelty: float = 1.0
    directions: float = 1.0


@dataclass(frozen=True)
class BaselineDispersion:
    """The clumping measured in a baseline sample: along its principal directions and in
    its novelty outcomes."""

    directions: Dispersion = field(default_factory=Dispersion)
    novelty: Dispersion = field(default_factory=Dispersion)

    def for_run(self, rows: int) -> RunDispersion:
        """``φ`` for a run (or window) of ``rows`` rows."""
        return RunDispersion(
            novelty=self.novelty.factor(rows), directions=self.directions.factor(rows)
        )

    def to_document(self) -> dict[str, Any]:
        return {"directions": asdict(self.directions), "novelty": asdict(self.novelty)}

    @classmethod
    def from_document(cls, doc: Mapping[str, Any] | None) -> BaselineDispersion:
        if not doc:
            return cls()
        return cls(
            directions=Dispersion(**doc.get("directions", {})),
            novelty=Dispersion(**doc.get("novelty", {})),
        )


def measure(
    sample: npt.ArrayLike,
    calibration_scores: npt.ArrayLike,
    calibration_index: npt.ArrayLike | None,
    blocks: int,
) -> BaselineDispersion:
    """Measure a baseline's clumping (see the module docstring).

    Parameters
    ----------
    sample
        The baseline sample in time order, shape ``(n, d)``.
    calibration_scores
        Novelty scores of the calibration rows ``C`` (unsorted, in ``C``'s order).
    calibration_index
        Position of each row of ``C`` in ``sample``; ``None`` measures the directions only.
    blocks
        ``B``: about the number of schedule intervals the baseline spans.
    """
    x = np.asarray(sample)
    directions = block_dispersion(x, blocks)
    if calibration_index is None:
        return BaselineDispersion(directions=directions)
    scores = np.asarray(calibration_scores, dtype=np.float64)
    if scores.size == 0:
        return BaselineDispersion(directions=directions)
    ordered = np.sort(scores)
    # the scores' ranks (less noisy than the tail outcomes alone), then the bets' outcomes
    columns = [np.searchsorted(ordered, scores, side="left") / scores.size]
    for q, side in NOVELTY_CUTS:
        j = max(1, int(q * scores.size))
        columns.append(scores > ordered[-j] if side == "high" else scores < ordered[j - 1])
    novelty = indicator_dispersion(
        np.stack(columns, axis=1), np.asarray(calibration_index), x.shape[0], blocks
    )
    return BaselineDispersion(directions=directions, novelty=novelty)


def deflated_level(alpha: float, factor: float) -> float:
    """The level ``α'`` at which a test's p-value means ``α`` once its variance is ``φ`` times.

    A p-value ``p`` is read as a chi-square statistic with one degree of freedom,
    ``χ² = F⁻¹(1 - p)``, whose null variance clumping inflates by ``factor``; deflated,
    ``χ² / φ`` has p-value ``p' >= p``. ``p' <= α`` exactly when ``p <= α'`` with
    ``α' = P(χ²₁ > φ F⁻¹(1 - α))``. ``φ <= 1`` returns ``α``. The deflation only lowers the
    level, so the check's false-alarm bound on exchangeable traffic still holds.
    """
    if factor <= 1.0 or alpha <= 0.0:
        return alpha
    return float(max(stats.chi2.sf(factor * stats.chi2.isf(alpha, 1), 1), 1e-300))


__all__ = [
    "BLOCK_MEANS_BYTES",
    "BaselineDispersion",
    "BlockMeans",
    "Dispersion",
    "RunDispersion",
    "block_dispersion",
    "block_means",
    "block_of",
    "deflated_level",
    "grouped_dispersion",
    "indicator_dispersion",
    "margin",
    "measure",
    "scales",
]
