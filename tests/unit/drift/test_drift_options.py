"""BatteryOptions: one settings object for compare() and compare_sketches()."""

from __future__ import annotations

import numpy as np
import pytest
from drift_monitor.domain.sketch import RunningStats, reference_edges
from drift_monitor.drift import BatteryOptions, compare, compare_sketches


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    return rng.standard_normal((120, 8)), rng.standard_normal((80, 8)) + 0.3


def test_options_object_and_keywords_give_the_same_report() -> None:
    ref, cur = _data()
    opts = BatteryOptions(tests="ks,mmd", alpha=0.01, seed=4, n_permutations=49, n_bootstrap=20)
    by_object = compare(ref, cur, opts).to_dict()
    by_keywords = compare(
        ref, cur, tests=["mmd", "ks"], alpha=0.01, seed=4, n_permutations=49, n_bootstrap=20
    ).to_dict()
    assert by_object == by_keywords
    assert list(by_object["tests"]) == ["ks", "mmd"]
    assert by_object["tests"]["mmd"]["n_permutations"] == 49
    # Keywords override the object's settings.
    assert compare(ref, cur, opts, alpha=0.02).alpha == 0.02


def test_sketch_entry_point_takes_the_same_object() -> None:
    ref, cur = _data()
    edges = reference_edges(ref, 10)
    ref_sk = RunningStats.from_vectors(ref, edges=edges, reservoir_size=200, key="r")
    cur_sk = RunningStats.from_vectors(cur, edges=edges, reservoir_size=200, key="c")
    opts = BatteryOptions(tests="ks", alpha=0.02, seed=1, n_bootstrap=0)
    a = compare_sketches(ref_sk, cur_sk, opts, mean_shift=False).to_dict()
    b = compare_sketches(
        ref_sk, cur_sk, tests="ks", alpha=0.02, seed=1, n_bootstrap=0, mean_shift=False
    ).to_dict()
    assert a == b
    assert a["tests"]["ks"]["level"] == pytest.approx(0.02)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"alpha": 1.5}, "alpha"),
        ({"correction": "sidak"}, "correction"),
        ({"mmd_method": "linear"}, "mmd_method"),
        ({"tests": "ks,foo"}, "unknown test"),
        ({"weights": {"mmd": 0.0}}, "weight"),
        ({"n_permutations": 0}, "n_permutations"),
    ],
)
def test_invalid_settings_are_rejected_on_construction(
    settings: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        BatteryOptions(**settings)  # type: ignore[arg-type]


def test_unknown_option_name_is_a_type_error() -> None:
    ref, cur = _data()
    with pytest.raises(TypeError, match="permutations"):
        compare(ref, cur, permutations=10)
    with pytest.raises(TypeError):
        BatteryOptions().updated(bogus=1)
