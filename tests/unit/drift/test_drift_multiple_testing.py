"""Multiple-testing corrections against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
from drift_monitor.drift.multiple_testing import correct

P = np.array([0.01, 0.04, 0.03, 0.005])


def test_bonferroni() -> None:
    c = correct(P, 0.05, "bonferroni")
    np.testing.assert_allclose(c.adjusted, [0.04, 0.16, 0.12, 0.02])
    assert c.reject.tolist() == [True, False, False, True]
    assert c.family_pvalue == pytest.approx(0.02)


def test_holm() -> None:
    c = correct(P, 0.05, "holm")
    # sorted 0.005, 0.01, 0.03, 0.04 -> 0.02, 0.03, 0.06, 0.06 (monotone)
    np.testing.assert_allclose(c.adjusted, [0.03, 0.06, 0.06, 0.02])
    assert c.family_pvalue == pytest.approx(0.02)


def test_benjamini_hochberg_and_simes_family_pvalue() -> None:
    c = correct(P, 0.05, "fdr_bh")
    # sorted 0.005, 0.01, 0.03, 0.04 -> 0.02, 0.02, 0.04, 0.04
    np.testing.assert_allclose(c.adjusted, [0.02, 0.04, 0.04, 0.02])
    assert c.reject.all()
    assert c.family_pvalue == pytest.approx(min(4 * 0.005, 4 * 0.01 / 2, 4 * 0.03 / 3, 0.04))


def test_unknown_method_and_empty_input() -> None:
    with pytest.raises(ValueError, match="unknown correction"):
        correct(P, 0.05, "sidak")
    assert correct([], 0.05).family_pvalue == 1.0
