"""``BatteryOptions``: every setting of the test battery, in one validated, frozen object.

:func:`drift_monitor.drift.compare` (raw windows) and
:func:`drift_monitor.drift.compare_sketches` (running statistics) both take one, or the same
settings as keyword arguments (``compare(ref, cur, alpha=0.01)`` is
``compare(ref, cur, BatteryOptions(alpha=0.01))``), so a new test's settings are added here
once and both entry points get them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from drift_monitor.drift import histogram
from drift_monitor.drift.decision import DEFAULT_PSI_THRESHOLD, DEFAULT_WEIGHTS, normalise_tests
from drift_monitor.drift.knn import DEFAULT_K
from drift_monitor.drift.multiple_testing import CORRECTIONS

#: Per-side row cap of the exact MMD permutation test (kernel matrix of at most 4000²).
DEFAULT_MMD_MAX_SAMPLES = 2000
DEFAULT_PERMUTATIONS = 300
DEFAULT_BOOTSTRAP = 200
MMD_METHODS = ("permutation", "block")


@dataclass(frozen=True)
class BatteryOptions:
    """Settings of one comparison. Invalid values raise ``ValueError`` on construction.

    Attributes
    ----------
    tests
        Tests that decide ``drift_detected`` (names from ``TEST_NAMES``), as a sequence or a
        comma-separated string; ``None``: the default battery ``DEFAULT_TESTS``. Stored as the
        validated tuple in canonical order.
    alpha
        Family-wise false-alarm budget shared by the p-value tests (see ``decision``).
    seed
        Seeds every random step (permutations, subsampling, bootstrap, bias simulation,
        conformal split): the same inputs and seed give the same report.
    threshold
        KL threshold for the ``kl`` test (the seed's ``DRIFT_THRESHOLD``); default 0.15.
    correction
        Correction over dimensions: ``"bonferroni"`` (default), ``"holm"`` or ``"fdr_bh"``.
    min_effect
        Practical-effect floors overriding ``DEFAULT_MIN_EFFECT`` per test.
    weights
        Shares of ``alpha`` per p-value test, overriding ``DEFAULT_WEIGHTS``.
    psi_threshold
        Threshold of the ``psi`` test (mean bias-corrected PSI over dimensions).
    bins
        Reference-quantile bins per dimension for PSI/KL (raw windows only: sketches carry
        their own edges).
    n_permutations
        Permutations of the MMD tests (``mmd``, ``mmd_agg``).
    mmd_method
        ``"permutation"`` (exact; on at most ``mmd_max_samples`` rows per side) or ``"block"``
        (linear-time block MMD on all rows, asymptotic normal calibration).
    mmd_max_samples
        Row cap per side for the permutation MMD tests (``None``: no cap; memory grows as
        ``(n + m)²``).
    n_bootstrap
        Bootstrap resamples for ``confidence_interval`` (0 disables it).
    confidence_level
        Coverage of ``confidence_interval``.
    top_k
        Number of dimensions listed in ``top_dimensions``.
    novelty_k
        Neighbour rank of the ``novelty`` test's score (distance to the k-th nearest
        reference vector).
    """

    tests: Sequence[str] | str | None = None
    alpha: float = 0.05
    seed: int = 0
    threshold: float | None = None
    correction: str = "bonferroni"
    min_effect: Mapping[str, float] | None = None
    weights: Mapping[str, float] | None = None
    psi_threshold: float = DEFAULT_PSI_THRESHOLD
    bins: int = histogram.DEFAULT_BINS
    n_permutations: int = DEFAULT_PERMUTATIONS
    mmd_method: str = "permutation"
    mmd_max_samples: int | None = DEFAULT_MMD_MAX_SAMPLES
    n_bootstrap: int = DEFAULT_BOOTSTRAP
    confidence_level: float = 0.95
    top_k: int = 10
    novelty_k: int = DEFAULT_K

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.correction not in CORRECTIONS:
            raise ValueError(f"unknown correction {self.correction!r}; choose one of {CORRECTIONS}")
        if self.mmd_method not in MMD_METHODS:
            raise ValueError(f"unknown mmd_method {self.mmd_method!r}; choose permutation or block")
        for name, value in {**DEFAULT_WEIGHTS, **(self.weights or {})}.items():
            if not value > 0:
                raise ValueError(f"test weight for {name} must be positive, got {value}")
        if self.n_permutations < 1:
            raise ValueError(f"n_permutations must be at least 1, got {self.n_permutations}")
        if self.novelty_k < 1:
            raise ValueError(f"novelty_k must be at least 1, got {self.novelty_k}")
        object.__setattr__(self, "tests", normalise_tests(self.tests))

    @property
    def selected(self) -> tuple[str, ...]:
        """The validated test names (``tests`` after normalisation)."""
        assert isinstance(self.tests, tuple)
        return self.tests

    def updated(self, **overrides: Any) -> BatteryOptions:
        """A copy with some settings changed (unknown names raise ``TypeError``)."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(f"unknown option(s) {', '.join(unknown)}")
        return replace(self, **overrides) if overrides else self


def resolve_options(options: BatteryOptions | None, overrides: Mapping[str, Any]) -> BatteryOptions:
    """``options`` (default: all defaults) with keyword ``overrides`` applied."""
    base = options if options is not None else BatteryOptions()
    return base.updated(**overrides)


__all__ = [
    "DEFAULT_BOOTSTRAP",
    "DEFAULT_MMD_MAX_SAMPLES",
    "DEFAULT_PERMUTATIONS",
    "BatteryOptions",
    "resolve_options",
]
