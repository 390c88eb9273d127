"""Per-model detection configuration: what ``POST /models/{model_id}/config`` accepts.

A model without a stored configuration runs on the defaults (``DRIFT_THRESHOLD`` for the
threshold, the statistics engine's default battery of tests). The stored form is only the
fields an operator set (:meth:`ModelConfig.overrides`), so changing an environment default
later still reaches every model that never overrode it.

Validation is strict and names the field: unknown keys, wrong types, out-of-range numbers and
unsafe webhook URLs are rejected with :class:`~drift_monitor.domain.errors.ValidationError`
(HTTP 422) and nothing is stored.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from drift_monitor.domain.errors import ValidationError

# The statistics engine's tests (drift_monitor.drift.TEST_NAMES); repeated here so the domain
# validates without importing the engine.
TEST_NAMES = ("ks", "ad", "mmd", "psi", "kl", "cosine", "novelty", "mmd_agg")

# The seed README spells the K-S test "ks_test"; accept "<name>_test" and a few long names.
_ALIASES = {
    **{f"{name}_test": name for name in TEST_NAMES},
    "kolmogorov_smirnov": "ks",
    "anderson_darling": "ad",
    "maximum_mean_discrepancy": "mmd",
    "population_stability_index": "psi",
    "kl_divergence": "kl",
    "cosine_similarity": "cosine",
    "novelty_rate": "novelty",
    "mmdagg": "mmd_agg",
}

DEFAULT_CURRENT_WINDOW_MINUTES = 60.0
DEFAULT_BASELINE_REFRESH_HOURS = 24.0
DEFAULT_MIN_SAMPLES = 100
DEFAULT_MAX_SAMPLES = 2000
DEFAULT_ALPHA = 0.05
DEFAULT_FALSE_ALARM_INTERVAL_DAYS = 365.0
MIN_FALSE_ALARM_INTERVAL_DAYS = 1.0
MAX_FALSE_ALARM_INTERVAL_DAYS = 36_500.0
MAX_WINDOW_MINUTES = 7 * 24 * 60.0
# Below these a window holds no data and a baseline refreshes on every run, silently. Ten
# seconds still lets the demo and the end-to-end tests run a whole drift cycle in a minute.
MIN_WINDOW_MINUTES = 10 / 60
MIN_BASELINE_REFRESH_HOURS = 1 / 60
MAX_SAMPLES_LIMIT = 100_000

# Checks a webhook URL without network access; raises ValidationError. Supplied by the
# caller (the alerting adapters' SSRF rules) so the domain stays free of I/O.
UrlCheck = Callable[[str], str]

FIELDS = (
    "drift_threshold",
    "statistical_test",
    "alert_webhook",
    "baseline_refresh_hours",
    "current_window_minutes",
    "min_samples",
    "max_samples",
    "alpha",
    "false_alarm_interval_days",
)


def _number(name: str, value: object, lo: float, hi: float, *, lo_open: bool = True) -> float:
    # bool is an int subclass: "drift_threshold": true is a client mistake, not 1.0.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(name, "must be a number")
    number = float(value)
    if not math.isfinite(number):
        raise ValidationError(name, "must be a finite number")
    low_ok = number > lo if lo_open else number >= lo
    if not low_ok or number > hi:
        bracket = "(" if lo_open else "["
        raise ValidationError(name, f"must be in {bracket}{lo:g}, {hi:g}], got {number:g}")
    return number


def _at_least(name: str, number: float, minimum: float, spoken: str) -> float:
    if number < minimum - 1e-6:  # the OpenAPI document rounds the minimum down
        raise ValidationError(name, f"must be at least {minimum:.4g} ({spoken}), got {number:g}")
    return number


def _integer(name: str, value: object, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(name, "must be an integer")
    if isinstance(value, float) and not value.is_integer():
        raise ValidationError(name, f"must be an integer, got {value:g}")
    number = int(value)
    if not lo <= number <= hi:
        raise ValidationError(name, f"must be in [{lo}, {hi}], got {number}")
    return number


def parse_tests(value: object) -> tuple[str, ...] | None:
    """Normalise ``statistical_test``: a name, a comma-separated string or a list of names.

    Returns ``None`` for ``null`` (the engine's default battery) and a de-duplicated tuple in
    the order given otherwise.
    """
    if value is None:
        return None
    if isinstance(value, str):
        items: list[object] = [part for part in value.split(",")]
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise ValidationError("statistical_test", "must be a test name or a list of test names")
    if not items:
        raise ValidationError("statistical_test", "must name at least one test")
    names: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ValidationError("statistical_test", "every entry must be a string")
        key = item.strip().lower().replace("-", "_")
        name = _ALIASES.get(key, key)
        if name not in TEST_NAMES:
            raise ValidationError(
                "statistical_test",
                f"unknown test {item.strip()!r}; choose from {', '.join(TEST_NAMES)}",
            )
        if name not in names:
            names.append(name)
    return tuple(names)


def basic_url_check(url: str) -> str:
    """Syntax-only webhook check used when no stricter checker is supplied."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("alert_webhook", "must be an absolute http(s) URL")
    return url


@dataclass(frozen=True)
class ModelConfig:
    """Effective detection settings of one model.

    Attributes
    ----------
    drift_threshold:
        Practical-significance threshold handed to the statistics engine (the seed's KL
        threshold, ``DRIFT_THRESHOLD`` by default).
    statistical_test:
        Tests to run, or ``None`` for the engine's default battery.
    alert_webhook:
        Slack-compatible webhook for this model, or ``None``.
    baseline_refresh_hours:
        How often a rolling baseline moves forward. A pinned baseline never moves.
    current_window_minutes:
        Length of the current window ending at the detection time. Fractions of a minute are
        allowed so demos and tests can run in seconds.
    min_samples:
        Fewer embeddings than this in either window gives status ``insufficient_data``.
    max_samples:
        At most this many embeddings are read per window (uniform sample), bounding the work
        of one detection run whatever the traffic volume.
    alpha:
        Family-wise false-alarm rate across tests and dimensions of one window (``compare``,
        one-off checks and the per-window verdict shown in the status). Paging is decided by
        ``false_alarm_interval_days`` instead.
    false_alarm_interval_days:
        The false-page budget in time: the expected number of days between false pages on
        stationary traffic (``FALSE_ALARM_INTERVAL_DAYS``, 365 by default). The sequential
        monitor (``drift/sequential.py``) sets its evidence threshold and the instant
        window check's level from it and the schedule interval.
    """

    drift_threshold: float
    statistical_test: tuple[str, ...] | None = None
    alert_webhook: str | None = None
    baseline_refresh_hours: float = DEFAULT_BASELINE_REFRESH_HOURS
    current_window_minutes: float = DEFAULT_CURRENT_WINDOW_MINUTES
    min_samples: int = DEFAULT_MIN_SAMPLES
    max_samples: int = DEFAULT_MAX_SAMPLES
    alpha: float = DEFAULT_ALPHA
    false_alarm_interval_days: float = DEFAULT_FALSE_ALARM_INTERVAL_DAYS
    # The fields an operator set explicitly, normalised (what the repository stores).
    overrides: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def resolve(
        cls,
        overrides: Mapping[str, Any] | None,
        *,
        default_threshold: float,
        url_check: UrlCheck | None = None,
        default_false_alarm_interval_days: float = DEFAULT_FALSE_ALARM_INTERVAL_DAYS,
    ) -> ModelConfig:
        """Build the effective configuration from stored (or submitted) overrides.

        Raises :class:`ValidationError` naming the first offending field.
        """
        overrides = {} if overrides is None else overrides
        if not isinstance(overrides, Mapping):
            raise ValidationError("body", "must be a JSON object")
        unknown = sorted(set(overrides) - set(FIELDS))
        if unknown:
            raise ValidationError(
                unknown[0], f"is not a configuration field; allowed: {', '.join(FIELDS)}"
            )
        clean: dict[str, Any] = {}
        for name in FIELDS:
            if name in overrides and overrides[name] is not None:
                clean[name] = _validate_field(name, overrides[name], url_check)
        defaults = {
            "drift_threshold": default_threshold,
            "false_alarm_interval_days": default_false_alarm_interval_days,
        }
        config = cls(**{**defaults, **clean})
        if config.max_samples < config.min_samples:
            name = "max_samples" if "max_samples" in clean else "min_samples"
            raise ValidationError(
                name,
                f"max_samples ({config.max_samples}) must be at least "
                f"min_samples ({config.min_samples})",
            )
        stored = {k: (list(v) if isinstance(v, tuple) else v) for k, v in clean.items()}
        return replace(config, overrides=stored)

    def updated(
        self,
        changes: Mapping[str, Any],
        *,
        default_threshold: float,
        url_check: UrlCheck | None = None,
        default_false_alarm_interval_days: float = DEFAULT_FALSE_ALARM_INTERVAL_DAYS,
    ) -> ModelConfig:
        """Apply a partial update: given fields replace, ``null`` resets to the default.

        The result is validated as a whole; ``self`` is never modified.
        """
        if not isinstance(changes, Mapping):
            raise ValidationError("body", "must be a JSON object")
        merged = dict(self.overrides)
        for name, value in changes.items():
            if value is None:
                merged.pop(name, None)
                if name not in FIELDS:
                    merged[name] = None  # let resolve() name the unknown field
            else:
                merged[name] = value
        return ModelConfig.resolve(
            merged,
            default_threshold=default_threshold,
            url_check=url_check,
            default_false_alarm_interval_days=default_false_alarm_interval_days,
        )

    def to_dict(self) -> dict[str, Any]:
        """Every effective field, JSON-ready (lists, not tuples)."""
        return {
            "drift_threshold": self.drift_threshold,
            "statistical_test": list(self.statistical_test)
            if self.statistical_test is not None
            else None,
            "alert_webhook": self.alert_webhook,
            "baseline_refresh_hours": self.baseline_refresh_hours,
            "current_window_minutes": self.current_window_minutes,
            "min_samples": self.min_samples,
            "max_samples": self.max_samples,
            "alpha": self.alpha,
            "false_alarm_interval_days": self.false_alarm_interval_days,
        }

    def to_json(self) -> bytes:
        """The stored form: only the overrides."""
        return orjson.dumps(dict(self.overrides))

    @classmethod
    def from_json(
        cls, data: bytes | str, *, default_threshold: float, url_check: UrlCheck | None = None
    ) -> ModelConfig:
        try:
            parsed = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise ValidationError("body", f"is not valid JSON: {exc}", 400) from exc
        return cls.resolve(parsed, default_threshold=default_threshold, url_check=url_check)


def _validate_field(name: str, value: object, url_check: UrlCheck | None) -> Any:
    if name == "drift_threshold":
        return _number(name, value, 0.0, 100.0)
    if name == "statistical_test":
        return parse_tests(value)
    if name == "alert_webhook":
        if not isinstance(value, str) or not value.strip():
            raise ValidationError(name, "must be a URL string (or null to remove it)")
        if len(value) > 2048:
            raise ValidationError(name, "must be at most 2048 characters")
        return (url_check or basic_url_check)(value.strip())
    if name == "baseline_refresh_hours":
        return _at_least(
            name, _number(name, value, 0.0, 24.0 * 366), MIN_BASELINE_REFRESH_HOURS, "one minute"
        )
    if name == "current_window_minutes":
        return _at_least(
            name, _number(name, value, 0.0, MAX_WINDOW_MINUTES), MIN_WINDOW_MINUTES, "10 seconds"
        )
    if name == "min_samples":
        return _integer(name, value, 2, MAX_SAMPLES_LIMIT)
    if name == "max_samples":
        return _integer(name, value, 2, MAX_SAMPLES_LIMIT)
    if name == "alpha":
        return _number(name, value, 0.0, 0.5)
    if name == "false_alarm_interval_days":
        return _number(
            name,
            value,
            MIN_FALSE_ALARM_INTERVAL_DAYS,
            MAX_FALSE_ALARM_INTERVAL_DAYS,
            lo_open=False,
        )
    raise ValidationError(name, "is not a configuration field")  # pragma: no cover
