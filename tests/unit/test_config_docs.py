"""docs/configuration.md lists every variable the code reads; bad values name their variable."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from drift_monitor.config import ENVIRONMENT_VARIABLES, ConfigError, Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def documented_names() -> set[str]:
    # Only names in the first column of a table row count as documented.
    return set(re.findall(r"^\|\s*`([A-Z][A-Z0-9_]+)`\s*\|", DOC.read_text(), re.MULTILINE))


def test_every_environment_variable_is_documented() -> None:
    missing = [name for name in ENVIRONMENT_VARIABLES if name not in documented_names()]
    assert not missing, f"add these to docs/configuration.md: {missing}"


def test_documentation_lists_no_unknown_variables() -> None:
    unknown = documented_names() - set(ENVIRONMENT_VARIABLES)
    assert not unknown, f"documented but never read by Settings.from_env: {sorted(unknown)}"


def test_defaults_parse() -> None:
    settings = Settings.from_env({})
    assert settings.batch_size == 10_000
    assert settings.database_url is None and settings.environment == "local"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BATCH_SIZE", "many"),
        ("BATCH_SIZE", "0"),
        ("EMBEDDING_DIMENSION", "-3"),
        ("MAX_REQUEST_BYTES", "12.5"),
        ("MAX_FUTURE_SECONDS", "86401"),
        ("STATS_BUCKET_SECONDS", "5"),
        ("DRIFT_THRESHOLD", "high"),
        ("DRIFT_THRESHOLD", "-0.1"),
        ("HISTORICAL_WINDOW_DAYS", "0"),
        ("ALERT_COOLDOWN_MINUTES", "forever"),
        ("DB_IAM_AUTH", "maybe"),
        ("DATABASE_URL", "localhost:5432/db"),
        ("REDIS_URL", "localhost:6379"),
        ("DRIFT_MONITOR_ENV", "staging"),
    ],
)
def test_bad_values_are_rejected_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


def test_good_values_are_accepted() -> None:
    settings = Settings.from_env(
        {
            "BATCH_SIZE": "500",
            "DRIFT_THRESHOLD": "0.2",
            "DB_IAM_AUTH": "true",
            "REDIS_URL": "redis://127.0.0.1:6379/0",
            "DATABASE_URL": "postgresql+pg8000://u@h/db",
            "DRIFT_MONITOR_ENV": "production",
        }
    )
    assert settings.batch_size == 500 and settings.drift_threshold == 0.2
    assert settings.db_iam_auth and settings.production
