"""Per-model configuration: defaults, aliases, partial updates, precise validation errors."""

from __future__ import annotations

from typing import Any

import pytest
from drift_monitor.adapters.url_safety import UrlPolicy, validate_webhook_url
from drift_monitor.domain.errors import ValidationError
from drift_monitor.domain.model_config import ModelConfig, parse_tests


def resolve(data: Any, threshold: float = 0.15) -> ModelConfig:
    return ModelConfig.resolve(data, default_threshold=threshold)


def test_defaults_follow_the_environment_threshold() -> None:
    config = resolve(None, threshold=0.2)
    assert config.drift_threshold == 0.2
    assert config.current_window_minutes == 60
    assert config.statistical_test is None
    assert config.overrides == {}


def test_seed_example_is_accepted() -> None:
    config = resolve(
        {
            "drift_threshold": 0.12,
            "statistical_test": "ks_test",
            "alert_webhook": "https://hooks.slack.com/services/T/B/X",
            "baseline_refresh_hours": 24,
        }
    )
    assert config.statistical_test == ("ks",)
    assert config.drift_threshold == 0.12
    assert config.to_dict()["statistical_test"] == ["ks"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("ks", ("ks",)),
        ("KS_TEST", ("ks",)),
        ("ks, mmd", ("ks", "mmd")),
        (["psi", "kl", "psi"], ("psi", "kl")),
        (["anderson-darling", "cosine"], ("ad", "cosine")),
    ],
)
def test_test_names_and_aliases(value: Any, expected: tuple[str, ...]) -> None:
    assert parse_tests(value) == expected


@pytest.mark.parametrize(
    ("data", "field", "fragment"),
    [
        ({"drift_threshold": -1}, "drift_threshold", "must be in (0, 100]"),
        ({"drift_threshold": "0.1"}, "drift_threshold", "must be a number"),
        ({"drift_threshold": True}, "drift_threshold", "must be a number"),
        ({"drift_threshold": float("nan")}, "drift_threshold", "finite"),
        ({"statistical_test": "t_test"}, "statistical_test", "unknown test 't_test'"),
        ({"statistical_test": []}, "statistical_test", "at least one"),
        ({"statistical_test": 3}, "statistical_test", "test name"),
        ({"alert_webhook": 42}, "alert_webhook", "URL"),
        ({"alert_webhook": "ftp://x.example/"}, "alert_webhook", "http"),
        ({"baseline_refresh_hours": 0}, "baseline_refresh_hours", "(0,"),
        ({"current_window_minutes": 10_081}, "current_window_minutes", "10080"),
        ({"min_samples": 1}, "min_samples", "[2,"),
        ({"min_samples": 10.5}, "min_samples", "integer"),
        ({"max_samples": 50, "min_samples": 100}, "max_samples", "at least min_samples"),
        ({"alpha": 0}, "alpha", "(0, 0.5]"),
        ({"window": 5}, "window", "not a configuration field"),
    ],
)
def test_errors_name_the_field(data: dict[str, Any], field: str, fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        resolve(data)
    assert info.value.field == field
    assert info.value.status == 422
    assert fragment in info.value.message


def test_body_must_be_an_object() -> None:
    with pytest.raises(ValidationError) as info:
        resolve([1, 2])
    assert info.value.field == "body"


def test_partial_update_keeps_other_fields_and_null_resets() -> None:
    config = resolve({"alpha": 0.01, "min_samples": 50})
    updated = config.updated({"min_samples": 80}, default_threshold=0.15)
    assert (updated.alpha, updated.min_samples) == (0.01, 80)
    reset = updated.updated({"alpha": None}, default_threshold=0.15)
    assert reset.alpha == 0.05
    assert reset.overrides == {"min_samples": 80}
    assert config.min_samples == 50  # the original is untouched


def test_update_rejects_unknown_even_when_null() -> None:
    with pytest.raises(ValidationError) as info:
        resolve({}).updated({"colour": None}, default_threshold=0.15)
    assert info.value.field == "colour"


def test_json_round_trip_stores_only_overrides() -> None:
    config = resolve({"statistical_test": ["mmd", "ks"], "current_window_minutes": 0.5})
    raw = config.to_json()
    assert b"alpha" not in raw
    again = ModelConfig.from_json(raw, default_threshold=0.15)
    assert again == config
    assert again.statistical_test == ("mmd", "ks")


def test_from_json_rejects_garbage() -> None:
    with pytest.raises(ValidationError) as info:
        ModelConfig.from_json(b"{nope", default_threshold=0.15)
    assert info.value.status == 400


def test_webhook_checked_with_ssrf_rules() -> None:
    strict = UrlPolicy.for_environment("production")

    def check(url: str) -> str:
        return validate_webhook_url(url, strict)

    with pytest.raises(ValidationError) as info:
        ModelConfig.resolve(
            {"alert_webhook": "http://169.254.169.254/latest"},
            default_threshold=0.15,
            url_check=check,
        )
    assert info.value.field == "alert_webhook"
    ok = ModelConfig.resolve(
        {"alert_webhook": "https://hooks.example.com/x"}, default_threshold=0.15, url_check=check
    )
    assert ok.alert_webhook == "https://hooks.example.com/x"
