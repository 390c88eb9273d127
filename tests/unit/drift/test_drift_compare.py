"""compare(): the report, the decision rules, validation and determinism."""

from __future__ import annotations

import json

import numpy as np
import pytest
from drift_monitor.domain.errors import ValidationError
from drift_monitor.drift import DEFAULT_TESTS, TEST_NAMES, DriftReport, compare
from drift_monitor.drift.decision import DEFAULT_WEIGHTS, P_VALUE_TESTS

FAST = {"n_permutations": 99, "n_bootstrap": 50}


def _embeddings(rng: np.random.Generator, n: int, d: int = 48, dead: int = 2) -> np.ndarray:
    """Unit-norm anisotropic vectors with a few near-constant dimensions."""
    spectrum = 1.0 / np.arange(1, d + 1)
    x = 0.4 + rng.normal(size=(n, d)) * np.sqrt(spectrum)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    x[:, :dead] = 2e-8 + 1e-9 * rng.normal(size=(n, dead))
    return x.astype(np.float32)


def test_report_shape_and_json() -> None:
    rng = np.random.default_rng(0)
    report = compare(_embeddings(rng, 300), _embeddings(rng, 200), tests=TEST_NAMES, **FAST)
    assert isinstance(report, DriftReport)
    out = report.to_dict()
    json.dumps(out, allow_nan=False)
    for key in (
        "drift_detected",
        "tests",
        "n_reference",
        "n_current",
        "dimension",
        "quality",
        "kl_divergence",
        "confidence_interval",
        "top_dimensions",
        "alpha",
        "correction",
        "psi",
    ):
        assert key in out
    assert (out["n_reference"], out["n_current"], out["dimension"]) == (300, 200, 48)
    assert set(out["tests"]) == set(TEST_NAMES)
    for name, t in out["tests"].items():
        assert {"statistic", "p_value", "drift", "effect_size"} <= set(t)
        if name in ("psi", "kl"):
            assert t["p_value"] is None and t["level"] is None
        else:
            assert 0.0 <= t["p_value"] <= 1.0
            # weighted Bonferroni: shares of 0.05 proportional to the weights
            total = sum(DEFAULT_WEIGHTS[t] for t in P_VALUE_TESTS)
            assert t["level"] == pytest.approx(0.05 * DEFAULT_WEIGHTS[name] / total)
    lo, hi = out["confidence_interval"]
    assert 0.0 <= lo <= out["kl_divergence"] <= hi
    assert len(out["top_dimensions"]) == 10


def test_default_battery() -> None:
    rng = np.random.default_rng(1)
    report = compare(_embeddings(rng, 100), _embeddings(rng, 100), **FAST)
    assert tuple(report.tests) == DEFAULT_TESTS


def test_no_drift_between_samples_of_one_distribution() -> None:
    rng = np.random.default_rng(2)
    report = compare(_embeddings(rng, 400), _embeddings(rng, 300), **FAST)
    assert not report.drift_detected
    assert report.summary.startswith("no drift")


def test_shift_is_detected_and_explained() -> None:
    rng = np.random.default_rng(3)
    ref = rng.normal(size=(400, 30))
    cur = rng.normal(size=(300, 30))
    cur[:, [4, 17]] += 1.0
    report = compare(ref, cur, tests=["ks", "mmd"], **FAST)
    assert report.drift_detected
    assert report.tests["ks"].drift
    assert set(report.tests["ks"].details["drifted_dimensions"]) == {4, 17}
    assert {d["dimension"] for d in report.top_dimensions[:2]} == {4, 17}
    assert report.top_dimensions[0]["drift"] is True


def test_huge_windows_do_not_flag_trivial_shifts() -> None:
    rng = np.random.default_rng(4)
    ref = rng.normal(size=(20000, 4)).astype(np.float32)
    cur = (rng.normal(size=(20000, 4)) + np.array([0.05, 0, 0, 0])).astype(np.float32)
    report = compare(ref, cur, tests=["ks"], n_bootstrap=0)
    ks = report.tests["ks"]
    assert ks.details["significant"]  # 0.05 sd is detectable with 20 000 rows...
    assert not ks.drift  # ...but below the practical floor of 0.1 sd
    assert not report.drift_detected
    assert "below the practical threshold" in report.summary
    bigger = (rng.normal(size=(20000, 4)) + np.array([0.3, 0, 0, 0])).astype(np.float32)
    assert compare(ref, bigger, tests=["ks"], n_bootstrap=0).drift_detected


def test_float16_round_trip_is_not_drift() -> None:
    rng = np.random.default_rng(5)
    ref = _embeddings(rng, 500)
    cur = _embeddings(rng, 300).astype(np.float16).astype(np.float32)
    assert (cur[:, :2] == 0).all()  # the dead dimensions rounded to exactly zero
    report = compare(ref, cur, tests=["ks", "ad", "mmd", "cosine", "psi", "kl"], **FAST)
    assert report.tests["ks"].details["significant"]  # D = 1 on the dead dimensions...
    assert not report.drift_detected  # ...which moved by ~1e-6: not a practical change
    assert report.quality["reduced_precision"]
    assert report.quality["dead_dimensions_zeroed"] == [0, 1]


def test_threshold_tests_use_the_kl_threshold_and_bias_correction() -> None:
    rng = np.random.default_rng(6)
    # 30 vs 30 rows: the raw plug-in KL is ~0.2, above the seed's 0.15 threshold.
    ref = rng.normal(size=(30, 20))
    cur = rng.normal(size=(30, 20))
    report = compare(ref, cur, tests=["kl", "psi"], n_bootstrap=0)
    kl = report.tests["kl"]
    assert kl.details["raw_mean"] > 0.15
    assert not kl.drift and kl.p_value is None
    assert kl.effect_threshold == 0.15
    shifted = compare(ref, cur + 1.5, tests=["kl"], threshold=0.15, n_bootstrap=0)
    assert shifted.tests["kl"].drift
    assert not compare(ref, cur + 1.5, tests=["kl"], threshold=50.0, n_bootstrap=0).drift_detected


def test_same_seed_same_report() -> None:
    rng = np.random.default_rng(7)
    ref, cur = _embeddings(rng, 200), _embeddings(rng, 150)
    a = compare(ref, cur, seed=11, **FAST).to_dict()
    b = compare(ref, cur, seed=11, **FAST).to_dict()
    assert a == b


def test_correction_options_and_string_tests() -> None:
    rng = np.random.default_rng(8)
    ref, cur = rng.normal(size=(200, 10)), rng.normal(size=(200, 10))
    cur[:, 0] += 1
    for correction in ("bonferroni", "holm", "fdr_bh"):
        report = compare(ref, cur, tests="ks, cosine", correction=correction, **FAST)
        assert tuple(report.tests) == ("ks", "cosine")
        assert report.tests["ks"].drift
    with pytest.raises(ValueError, match="unknown test"):
        compare(ref, cur, tests=["ks", "chi2"])
    with pytest.raises(ValueError, match="alpha"):
        compare(ref, cur, alpha=1.5)
    with pytest.raises(ValueError, match="correction"):
        compare(ref, cur, correction="sidak")


@pytest.mark.parametrize(
    ("ref", "cur", "field", "message"),
    [
        (np.zeros((5, 3)), np.zeros((5, 4)), "current", "does not match"),
        (np.zeros(5), np.zeros((5, 4)), "reference", "2-D"),
        (np.zeros((1, 3)), np.zeros((5, 3)), "reference", "at least 2 rows"),
        (np.zeros((5, 3)), np.full((5, 3), np.nan), "current", "NaN"),
        (np.array([["a"], ["b"]]), np.zeros((5, 1)), "reference", "numeric"),
    ],
)
def test_validation_errors(ref: np.ndarray, cur: np.ndarray, field: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as info:
        compare(ref, cur)
    assert info.value.field == field


def test_block_mmd_option() -> None:
    rng = np.random.default_rng(9)
    ref, cur = rng.normal(size=(400, 8)), rng.normal(0.5, size=(400, 8))
    report = compare(ref, cur, tests=["mmd"], mmd_method="block", n_bootstrap=0)
    assert report.tests["mmd"].details["method"] == "block"
    assert report.drift_detected
