"""Seeded data generators and a trial runner for the calibration and power studies.

Used by ``test_drift_calibration.py`` / ``test_drift_power.py`` and by ``drift_study.py``
(which prints the tables quoted in docs/statistics.md). Everything is seeded: a trial's data
depend only on (scenario, n, d, trial index).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from drift_monitor.drift.ad import ad_columns
from drift_monitor.drift.cosine import cosine_test
from drift_monitor.drift.decision import DEFAULT_MIN_EFFECT, decide_dimensions
from drift_monitor.drift.ks import ks_columns
from drift_monitor.drift.mmd import mmd_agg_test, mmd_permutation_test
from drift_monitor.drift.novelty import novelty_test

Sampler = Callable[[np.random.Generator, int], np.ndarray]

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

# Permutations in the studies: the smallest p-value, 1/201, is below every test's level
# (alpha/4 = 0.0125 with four tests); more permutations only sharpen p-values far from the
# decision boundary, at proportional cost.
STUDY_PERMUTATIONS = 200


# ----------------------------------------------------------------------------- distributions
def gaussian(d: int) -> Sampler:
    def draw(rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.standard_normal((n, d))

    return draw


def heavy_tailed(d: int, df: float = 3.0) -> Sampler:
    """Multivariate Student t (a Gaussian scale mixture): heavy tails, tail-dependent dims."""

    def draw(rng: np.random.Generator, n: int) -> np.ndarray:
        g = rng.standard_normal((n, d))
        w = np.sqrt(df / rng.chisquare(df, size=(n, 1)))
        return g * w

    return draw


@dataclass(frozen=True)
class Anisotropic:
    """Unit-norm, anisotropic vectors with a few dead dimensions, like real embeddings.

    ``x = normalise(mu + L z)`` with decaying spectrum ``lambda_j ~ 1/j``, a common offset
    ``mu`` (mean cosine between vectors ~0.2), and 2 dead dimensions with spread 1e-7 around a
    tiny constant (they round to exactly 0 in float16).
    """

    d: int
    seed: int = 12345

    def basis(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.seed)
        q, _ = np.linalg.qr(rng.standard_normal((self.d, self.d)))
        spectrum = 1.0 / np.arange(1, self.d + 1)
        mu = rng.standard_normal(self.d)
        mu *= 0.5 * np.sqrt(spectrum.sum()) / np.linalg.norm(mu)
        return q * np.sqrt(spectrum)[None, :], mu, q

    def sampler(
        self, *, mean: np.ndarray | None = None, transform: np.ndarray | None = None
    ) -> Sampler:
        factor, mu, _ = self.basis()
        centre = mu if mean is None else mean
        d = self.d

        def draw(rng: np.random.Generator, n: int) -> np.ndarray:
            x = centre + rng.standard_normal((n, d)) @ factor.T
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            if transform is not None:
                x = x @ transform.T
            x[:, :2] = 1e-6 + 1e-7 * rng.standard_normal((n, 2))
            return x

        return draw


def null_samplers(d: int) -> dict[str, Sampler]:
    return {
        "gaussian": gaussian(d),
        "heavy_tailed_t3": heavy_tailed(d),
        "anisotropic_unit": Anisotropic(d).sampler(),
    }


# ----------------------------------------------------------------------------- alternatives
def mean_shift(d: int, share: float = 0.1, shift: float = 0.15) -> tuple[Sampler, Sampler]:
    """Gaussian; ``share`` of the dimensions move by ``shift`` standard deviations."""
    k = max(1, round(share * d))
    delta = np.zeros(d)
    delta[:k] = shift

    def cur(rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.standard_normal((n, d)) + delta

    return gaussian(d), cur


def covariance_change(d: int, rho: float = 0.3) -> tuple[Sampler, Sampler]:
    """Gaussian; pairs of dimensions become correlated (``rho``), marginals unchanged."""

    def cur(rng: np.random.Generator, n: int) -> np.ndarray:
        z = rng.standard_normal((n, d))
        out = z.copy()
        a = np.sqrt((1 + np.sqrt(1 - rho**2)) / 2)
        b = rho / (2 * a)
        out[:, 0::2] = a * z[:, 0::2] + b * z[:, 1::2]
        out[:, 1::2] = b * z[:, 0::2] + a * z[:, 1::2]
        return out

    return gaussian(d), cur


def rotation(d: int, angle: float = 0.15) -> tuple[Sampler, Sampler]:
    """Anisotropic unit vectors; the current ones pass through a random rotation.

    A rotation by a small ``angle`` (radians, in random planes) rather than a uniformly random
    orthogonal matrix, which any test detects trivially; a swapped model is the extreme case.
    """
    gen = Anisotropic(d)
    rng = np.random.default_rng(777)
    skew = rng.standard_normal((d, d))
    skew = (skew - skew.T) / 2
    skew *= angle / np.linalg.norm(skew, 2)
    w, v = np.linalg.eig(skew)
    rot = np.real(v @ np.diag(np.exp(w)) @ np.linalg.inv(v))
    return gen.sampler(), gen.sampler(transform=rot)


def mixture(d: int, share: float = 0.25) -> tuple[Sampler, Sampler]:
    """Anisotropic unit vectors; ``share`` of the current ones come from another topic."""
    gen = Anisotropic(d)
    _, mu, _ = gen.basis()
    rng = np.random.default_rng(99)
    other = rng.standard_normal(d)
    other *= np.linalg.norm(mu) / np.linalg.norm(other)
    base = gen.sampler()
    alt = gen.sampler(mean=0.75 * mu + 0.25 * other)

    def cur(r: np.random.Generator, n: int) -> np.ndarray:
        k = int(r.binomial(n, share))
        return np.concatenate([base(r, n - k), alt(r, k)])[r.permutation(n)]

    return base, cur


def power_scenarios(d: int) -> dict[str, tuple[Sampler, Sampler]]:
    return {
        "mean_shift_10pct_dims": mean_shift(d),
        "covariance_change": covariance_change(d),
        "rotation": rotation(d),
        "mixture_25pct": mixture(d),
    }


# ----------------------------------------------------------------------------- trials
@dataclass(frozen=True)
class Trial:
    """Raw per-test outcomes of one (reference, current) pair, before any decision."""

    ks_p: np.ndarray
    ad_p: np.ndarray
    dim_effect: np.ndarray
    mmd_p: float
    mmd_stat: float
    cos_p: float
    cos_effect: float
    # Outcomes of the novelty and aggregated-MMD tests (neutral unless run_trial ran them).
    nov_p: float = 1.0
    nov_effect: float = 0.0
    agg_p: float = 1.0
    agg_stat: float = 0.0


def run_trial(
    ref: np.ndarray,
    cur: np.ndarray,
    *,
    seed: int,
    with_ad: bool = True,
    with_new: bool = False,
    with_agg: bool = False,
) -> Trial:
    """Raw outcomes of every test on one pair (``with_new``: also novelty; ``with_agg``:
    also the aggregated MMD), with the seeds ``compare(seed=seed)`` uses."""
    ks = ks_columns(ref, cur)
    scale = float(np.median(ref.std(axis=0, ddof=1)))
    ad_p = ad_columns(ref, cur).pvalue if with_ad else np.ones(ref.shape[1])
    mmd = mmd_permutation_test(ref, cur, n_permutations=STUDY_PERMUTATIONS, seed=seed)
    cos = cosine_test(ref, cur)
    nov = novelty_test(ref, cur, seed=seed) if with_new else None
    agg = mmd_agg_test(ref, cur, n_permutations=STUDY_PERMUTATIONS, seed=seed) if with_agg else None
    return Trial(
        ks_p=ks.pvalue,
        ad_p=ad_p,
        dim_effect=ks.wasserstein / scale,
        mmd_p=mmd.pvalue,
        mmd_stat=mmd.statistic,
        cos_p=cos.pvalue,
        cos_effect=cos.effect_size,
        nov_p=nov.pvalue if nov is not None else 1.0,
        nov_effect=nov.effect_size if nov is not None else 0.0,
        agg_p=agg.pvalue if agg is not None else 1.0,
        agg_stat=agg.statistic if agg is not None else 0.0,
    )


def decide(trial: Trial, battery: Sequence[str] | Mapping[str, float], alpha: float = 0.05) -> bool:
    """The decision rule of ``compare`` applied to a trial's raw outcomes.

    ``battery`` lists the tests (equal shares of ``alpha``) or maps them to weights.
    """
    weights = dict(battery) if isinstance(battery, Mapping) else {t: 1.0 for t in battery}
    total = sum(weights.values())
    floors = DEFAULT_MIN_EFFECT
    for name, weight in weights.items():
        level = alpha * weight / total
        if name in ("ks", "ad"):
            p = trial.ks_p if name == "ks" else trial.ad_p
            dec = decide_dimensions(
                p, trial.dim_effect, level=level, min_effect=floors[name], correction="bonferroni"
            )
            if dec.drifted.any():
                return True
        else:
            p, effect = {
                "mmd": (trial.mmd_p, trial.mmd_stat),
                "cosine": (trial.cos_p, trial.cos_effect),
                "mmd_agg": (trial.agg_p, trial.agg_stat),
                "novelty": (trial.nov_p, trial.nov_effect),
            }[name]
            if p <= level and effect >= floors[name]:
                return True
    return False


def trials(
    ref_sampler: Sampler,
    cur_sampler: Sampler,
    *,
    n: int,
    count: int,
    seed: int,
    with_ad: bool = True,
) -> list[Trial]:
    out = []
    for i in range(count):
        rng = np.random.default_rng([seed, n, i])
        out.append(
            run_trial(ref_sampler(rng, n), cur_sampler(rng, n), seed=seed + i, with_ad=with_ad)
        )
    return out


def binomial_upper(alpha: float, trials_count: int, z: float = 2.326) -> float:
    """One-sided 99% upper bound of an observed rate when the true rate is ``alpha``."""
    return alpha + z * float(np.sqrt(alpha * (1 - alpha) / trials_count))


BATTERIES: dict[str, tuple[str, ...] | dict[str, float]] = {
    "ks": ("ks",),
    "ad": ("ad",),
    "mmd": ("mmd",),
    "cosine": ("cosine",),
    "ks+mmd": ("ks", "mmd"),
    "ad+mmd": ("ad", "mmd"),
    "ad+mmd+cosine": ("ad", "mmd", "cosine"),
    "ks+mmd+cosine": ("ks", "mmd", "cosine"),
    "ks+ad+mmd+cosine": ("ks", "ad", "mmd", "cosine"),
    "ad+mmd 1:3 (default)": {"ad": 1.0, "mmd": 3.0},
    "ad+mmd+cosine 1:2:1": {"ad": 1.0, "mmd": 2.0, "cosine": 1.0},
}
