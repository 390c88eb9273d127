"""Seeded real-embedding scenarios (../shared/data) for the battery study and its guards.

Every scenario draws a reference window and a current window of ``n`` rows each from the
all-MiniLM-L6-v2 pools described in ``../shared/data/README.md``; a trial's data depend only on
(scenario, n, trial index). Nulls are disjoint random splits of one pool; alternatives:

* ``verbs_in_nouns_{5,10,25}``: that share of the current window are WordNet verb glosses;
* ``python_in_debian_{5,10,25}``: that share are Python docstrings among Debian descriptions;
* ``animal_prior``: animal-noun glosses raised to 40% of the current window (a sub-topic of
  nouns, so a prior shift, not new support);
* ``section_prior``: the Debian ``libs`` section (12% of packages) raised to 30%;
* ``rotation``: the current vectors pass through a fixed random rotation, mean cosine 0.98 to
  the original vectors (a retrained model of the same geometry);
* ``noise``: Gaussian noise added and the vectors re-normalised, mean cosine 0.98 to the
  original vectors (a subtly changed model or a quantised serving path).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable

import numpy as np
from drift_scenarios import SHARED_DATA

Scenario = Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray]]

TARGET_COSINE = 0.98


@functools.cache
def pool(name: str) -> np.ndarray:
    return np.load(SHARED_DATA / f"{name}_minilm384.npy").astype(np.float32)


@functools.cache
def _sections() -> np.ndarray:
    data = json.loads((SHARED_DATA / "debian_package_sections.json").read_text())
    return np.asarray(data["debian_package_sections"])


def available() -> bool:
    return (SHARED_DATA / "wordnet_noun_minilm384.npy").is_file()


def _split(rng: np.random.Generator, base: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    perm = rng.permutation(len(base))
    return base[perm[:n]], base[perm[n : 2 * n]]


def null(base_name: str) -> Scenario:
    def draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        return _split(rng, pool(base_name), n)

    return draw


def mixture(base_name: str, other_name: str, share: float) -> Scenario:
    def draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        base, other = pool(base_name), pool(other_name)
        k = round(share * n)
        perm = rng.permutation(len(base))
        cur = np.concatenate([base[perm[n : 2 * n - k]], other[rng.permutation(len(other))[:k]]])
        return base[perm[:n]], cur[rng.permutation(n)]

    return draw


def _raised(
    rng: np.random.Generator, base: np.ndarray, special: np.ndarray, n: int, share: float
) -> tuple[np.ndarray, np.ndarray]:
    """Reference: ``n`` random rows of ``base``; current: ``share`` from ``special``."""
    perm = rng.permutation(len(base))
    k = round(share * n)
    cur = np.concatenate([base[perm[n : 2 * n - k]], special[rng.permutation(len(special))[:k]]])
    return base[perm[:n]], cur[rng.permutation(n)]


def animal_prior(share: float = 0.4) -> Scenario:
    def draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        return _raised(rng, pool("wordnet_noun"), pool("wordnet_animal"), n, share)

    return draw


def section_prior(section: str = "libs", share: float = 0.3) -> Scenario:
    def draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        deb = pool("debian_package")
        inside = _sections() == section
        # The reference keeps the natural mix; the current window's other rows exclude the
        # section, so its share is exactly ``share``.
        perm = rng.permutation(len(deb))
        ref = deb[perm[:n]]
        rest = perm[n:]
        others = rest[~inside[rest]]
        chosen = rest[inside[rest]]
        # (At n = 1000 about 370 section rows remain outside the reference: enough for 30%.)
        k = min(round(share * n), chosen.size)
        cur = np.concatenate([deb[others[: n - k]], deb[chosen[:k]]])
        return ref, cur[rng.permutation(n)]

    return draw


@functools.cache
def _rotation(d: int = 384, seed: int = 777) -> np.ndarray:
    """A random rotation ``exp(S)`` scaled so that mean ``cos(x, R x)`` over nouns is 0.98."""
    rng = np.random.default_rng(seed)
    skew = rng.standard_normal((d, d))
    skew = (skew - skew.T) / 2
    sample = pool("wordnet_noun")[:500].astype(np.float64)
    w, v = np.linalg.eigh(1j * skew)  # skew is i * Hermitian: exp via eigendecomposition
    inv = v.conj().T

    def rot(scale: float) -> np.ndarray:
        return np.real(v @ np.diag(np.exp(-1j * w * scale)) @ inv)

    lo, hi = 0.0, 1.0
    for _ in range(40):
        mid = (lo + hi) / 2
        cos = float(np.mean(np.sum(sample * (sample @ rot(mid).T), axis=1)))
        lo, hi = (mid, hi) if cos > TARGET_COSINE else (lo, mid)
    return rot(lo).astype(np.float32)


def rotation() -> Scenario:
    def draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        ref, cur = _split(rng, pool("wordnet_noun"), n)
        return ref, cur @ _rotation().T

    return draw


def noise() -> Scenario:
    # For unit x and g ~ N(0, s² I_d): cos(x, x + g) ~ 1 / sqrt(1 + s² d).
    d = 384
    s = float(np.sqrt((1.0 / TARGET_COSINE**2 - 1.0) / d))

    def draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        ref, cur = _split(rng, pool("wordnet_noun"), n)
        noisy = cur + s * rng.standard_normal(cur.shape).astype(np.float32)
        return ref, noisy / np.linalg.norm(noisy, axis=1, keepdims=True)

    return draw


NULLS: dict[str, Scenario] = {
    "nouns": null("wordnet_noun"),
    "debian": null("debian_package"),
}

ALTERNATIVES: dict[str, Scenario] = {
    **{
        f"verbs_in_nouns_{round(s * 100)}": mixture("wordnet_noun", "wordnet_verb", s)
        for s in (0.05, 0.10, 0.25)
    },
    **{
        f"python_in_debian_{round(s * 100)}": mixture("debian_package", "python_docstring", s)
        for s in (0.05, 0.10, 0.25)
    },
    "animal_prior_40": animal_prior(),
    "section_prior_libs_30": section_prior(),
    "rotation_cos98": rotation(),
    "noise_cos98": noise(),
}
