"""Typed results of a drift comparison and their JSON form."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


def _num(value: float | None) -> float | None:
    """JSON-safe float: NaN and infinities become None."""
    if value is None:
        return None
    v = float(value)
    return v if math.isfinite(v) else None


@dataclass(frozen=True)
class TestResult:
    """One test's outcome.

    Attributes
    ----------
    name
        One of ``TEST_NAMES``.
    statistic
        The test statistic (K–S/AD: largest per-dimension value; MMD: unbiased MMD²; PSI/KL:
        bias-corrected mean over dimensions; cosine: K–S statistic of the cosine samples).
    p_value
        Family p-value compared with ``level`` (per-dimension tests: corrected over
        dimensions); ``None`` for the threshold tests PSI and KL.
    drift
        This test's decision: significant (``p_value <= level``) *and* ``effect_size >=
        effect_threshold`` (threshold tests: ``statistic > effect_threshold``).
    effect_size
        Practical size of the change, in the unit documented per test.
    effect_threshold
        Smallest effect that counts as drift.
    level
        Share of ``alpha`` spent on this test (``None`` for threshold tests).
    details
        Test-specific extras (JSON-ready).
    """

    __test__ = False  # not a pytest class

    name: str
    statistic: float
    p_value: float | None
    drift: bool
    effect_size: float
    effect_threshold: float
    level: float | None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "statistic": _num(self.statistic),
            "p_value": _num(self.p_value),
            "drift": bool(self.drift),
            "effect_size": _num(self.effect_size),
            "effect_threshold": _num(self.effect_threshold),
            "level": _num(self.level),
        }
        out.update(self.details)
        return out


@dataclass(frozen=True)
class DriftReport:
    """Everything :func:`drift_monitor.drift.compare` found.

    ``drift_detected`` is true when at least one test in ``tests`` decided drift; the
    family-wise false-alarm rate of the p-value tests is at most ``alpha`` (see
    ``docs/statistics.md``). ``quality`` is reported separately and never sets it.
    """

    drift_detected: bool
    tests: dict[str, TestResult]
    n_reference: int
    n_current: int
    dimension: int
    alpha: float
    correction: str
    quality: dict[str, Any]
    kl_divergence: float | None
    confidence_interval: tuple[float, float] | None
    confidence_level: float
    psi: float | None
    top_dimensions: list[dict[str, Any]]
    seed: int
    summary: str

    @property
    def drifted_tests(self) -> list[str]:
        """Names of the tests that decided drift."""
        return [name for name, t in self.tests.items() if t.drift]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (keys documented in ``docs/statistics.md``)."""
        ci = self.confidence_interval
        return {
            "drift_detected": bool(self.drift_detected),
            "drifted_tests": self.drifted_tests,
            "summary": self.summary,
            "tests": {name: t.to_dict() for name, t in self.tests.items()},
            "n_reference": int(self.n_reference),
            "n_current": int(self.n_current),
            "dimension": int(self.dimension),
            "alpha": float(self.alpha),
            "correction": self.correction,
            "kl_divergence": _num(self.kl_divergence),
            "psi": _num(self.psi),
            "confidence_interval": [_num(ci[0]), _num(ci[1])] if ci is not None else None,
            "confidence_level": float(self.confidence_level),
            "top_dimensions": self.top_dimensions,
            "quality": self.quality,
            "seed": int(self.seed),
        }


__all__ = ["DriftReport", "TestResult"]
