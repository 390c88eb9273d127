"""BATCH_RETENTION_DAYS: default, range, 0 disables, and never shorter than the baseline window."""

from __future__ import annotations

import pytest
from drift_monitor.config import ConfigError, Settings


def test_default_is_thirty_days() -> None:
    assert Settings.from_env({}).batch_retention_days == 30
    assert Settings().batch_retention_days == 30


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"BATCH_RETENTION_DAYS": "0"}, 0),  # disabled
        ({"BATCH_RETENTION_DAYS": "8"}, 8),  # HISTORICAL_WINDOW_DAYS (7) + 1
        ({"BATCH_RETENTION_DAYS": "365"}, 365),
        ({"HISTORICAL_WINDOW_DAYS": "29"}, 30),  # the default still covers 29 + 1
        ({"HISTORICAL_WINDOW_DAYS": "90", "BATCH_RETENTION_DAYS": "91"}, 91),
        ({"HISTORICAL_WINDOW_DAYS": "365", "BATCH_RETENTION_DAYS": "0"}, 0),
    ],
)
def test_accepted(env: dict[str, str], expected: int) -> None:
    assert Settings.from_env(env).batch_retention_days == expected


@pytest.mark.parametrize(
    "env",
    [
        {"BATCH_RETENTION_DAYS": "7"},  # = HISTORICAL_WINDOW_DAYS: the window's edge would go
        {"BATCH_RETENTION_DAYS": "1"},
        {"HISTORICAL_WINDOW_DAYS": "30"},  # the default 30 no longer covers 30 + 1
        {"HISTORICAL_WINDOW_DAYS": "60", "BATCH_RETENTION_DAYS": "45"},
    ],
)
def test_shorter_than_the_baseline_window_names_both_variables(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(env)
    message = str(raised.value)
    assert "BATCH_RETENTION_DAYS" in message and "HISTORICAL_WINDOW_DAYS" in message


@pytest.mark.parametrize("value", ["-1", "thirty", "2.5", "36501"])
def test_bad_values_name_the_variable(value: str) -> None:
    with pytest.raises(ConfigError, match="BATCH_RETENTION_DAYS"):
        Settings.from_env({"BATCH_RETENTION_DAYS": value})
