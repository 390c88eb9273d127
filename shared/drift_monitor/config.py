"""Configuration: every environment variable the package reads, parsed and validated here once.

Names follow the seed README (DATABASE_URL, REDIS_URL, PROMETHEUS_GATEWAY, DRIFT_THRESHOLD,
EMBEDDING_DIMENSION, BATCH_SIZE, ALERT_COOLDOWN_MINUTES, HISTORICAL_WINDOW_DAYS) plus the ones
the GCP deployment needs. ``docs/configuration.md`` lists them all; a test checks that list
against :data:`ENVIRONMENT_VARIABLES`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

from drift_monitor.domain.errors import DriftMonitorError


class ConfigError(DriftMonitorError):
    """An environment variable is present but unusable."""


def _get(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    return value.strip() if value is not None and value.strip() != "" else None


def _int(env: Mapping[str, str], name: str, default: int | None, lo: int, hi: int) -> int | None:
    raw = _get(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is not an integer") from exc
    if not lo <= value <= hi:
        raise ConfigError(f"{name}={value} is outside [{lo}, {hi}]")
    return value


def _float(env: Mapping[str, str], name: str, default: float, lo: float, hi: float) -> float:
    raw = _get(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is not a number") from exc
    if not lo <= value <= hi:
        raise ConfigError(f"{name}={value} is outside [{lo}, {hi}]")
    return value


def _req_int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    value = _int(env, name, default, lo, hi)
    assert value is not None
    return value


GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """A comma-separated list; blanks between commas are ignored, whitespace inside refused."""
    raw = _get(env, name)
    if raw is None:
        return ()
    items = tuple(item.strip() for item in raw.split(",") if item.strip())
    for item in items:
        if any(c.isspace() for c in item):
            raise ConfigError(f"{name}: {item!r} contains whitespace (separate entries by commas)")
    return items


def _emails(env: Mapping[str, str], name: str) -> frozenset[str]:
    emails = _list(env, name)
    for email in emails:
        local, at, domain = email.partition("@")
        if not (at and local and "." in domain and "@" not in domain):
            raise ConfigError(
                f"{name}: {email!r} is not an email address "
                "(list service-account emails such as caller@project.iam.gserviceaccount.com)"
            )
    # Google puts emails in ID tokens in lower case.
    return frozenset(e.lower() for e in emails)


@dataclass(frozen=True)
class Settings:
    """Validated configuration. Build it with :meth:`from_env`."""

    # storage and transport
    database_url: str | None = None
    instance_connection_name: str | None = None
    db_user: str | None = None
    db_password: str | None = None
    db_name: str = "drift_monitor"
    db_iam_auth: bool = False
    db_ip_type: str = "private"
    redis_url: str | None = None
    google_cloud_project: str = "local-project"
    pubsub_topic: str = "embeddings"
    gcs_bucket: str | None = None
    data_dir: Path = Path(".drift-monitor")
    # ingest limits
    embedding_dimension: int | None = None
    batch_size: int = 10_000
    max_request_bytes: int = 32 * 1024 * 1024
    max_future_seconds: int = 300
    # statistics
    stats_bucket_seconds: int = 3600
    # rows in each bucket's bottom-k sample: what detection tests and scores per bucket
    stats_reservoir_size: int = 128
    drift_threshold: float = 0.15
    historical_window_days: int = 7
    # sequential detection: expected days between false pages per model (stationary traffic)
    false_alarm_interval_days: float = 365.0
    # where detection reads the current window: running statistics or SQL (window_source.py)
    detection_source: str = "auto"
    # retention: stored batches older than this many days are deleted (0 keeps them forever)
    batch_retention_days: int = 30
    # alerting and metrics
    alert_cooldown_minutes: int = 30
    prometheus_gateway: str | None = None
    pagerduty_routing_key: str | None = None
    pagerduty_events_url: str = "https://events.pagerduty.com/v2/enqueue"
    # access
    api_key: str | None = None
    admin_key: str | None = None
    # Google ID tokens (entrypoints/auth.py): accepted audiences and caller emails per role
    google_id_token_audience: tuple[str, ...] = ()
    invokers: frozenset[str] = frozenset()
    admin_invokers: frozenset[str] = frozenset()
    google_id_token_certs_url: str = GOOGLE_CERTS_URL
    environment: str = "local"

    @property
    def production(self) -> bool:
        return self.environment == "production"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read and validate the environment; raise :class:`ConfigError` naming the variable."""
        env = os.environ if env is None else env
        environment = _get(env, "DRIFT_MONITOR_ENV") or "local"
        if environment not in ("local", "production", "test"):
            raise ConfigError(
                f"DRIFT_MONITOR_ENV={environment!r} must be local, production or test"
            )
        iam = (_get(env, "DB_IAM_AUTH") or "false").lower()
        if iam not in ("true", "false", "1", "0"):
            raise ConfigError(f"DB_IAM_AUTH={iam!r} must be true or false")
        ip_type = (_get(env, "DB_IP_TYPE") or "private").lower()
        if ip_type not in ("private", "public", "psc"):
            raise ConfigError(f"DB_IP_TYPE={ip_type!r} must be private, public or psc")
        database_url = _get(env, "DATABASE_URL")
        if database_url and "://" not in database_url:
            raise ConfigError(
                "DATABASE_URL must be a SQLAlchemy URL such as postgresql+pg8000://..."
            )
        redis_url = _get(env, "REDIS_URL")
        if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError("REDIS_URL must start with redis://, rediss:// or unix://")
        audience = _list(env, "GOOGLE_ID_TOKEN_AUDIENCE")
        invokers = _emails(env, "DRIFT_MONITOR_INVOKERS")
        admin_invokers = _emails(env, "DRIFT_MONITOR_ADMIN_INVOKERS")
        if (invokers or admin_invokers) and not audience:
            raise ConfigError(
                "DRIFT_MONITOR_INVOKERS / DRIFT_MONITOR_ADMIN_INVOKERS need "
                "GOOGLE_ID_TOKEN_AUDIENCE (the URL callers mint their ID tokens for)"
            )
        historical_window_days = _req_int(env, "HISTORICAL_WINDOW_DAYS", 7, 1, 365)
        detection_source = (_get(env, "DETECTION_SOURCE") or "auto").lower()
        if detection_source not in ("auto", "sketch", "sql"):
            raise ConfigError(f"DETECTION_SOURCE={detection_source!r} must be auto, sketch or sql")
        batch_retention_days = _req_int(env, "BATCH_RETENTION_DAYS", 30, 0, 36_500)
        # A rolling baseline reads the HISTORICAL_WINDOW_DAYS before the current window, so
        # pruning must keep at least that much plus a day for the current window and refreshes.
        if 0 < batch_retention_days < historical_window_days + 1:
            raise ConfigError(
                f"BATCH_RETENTION_DAYS={batch_retention_days} must be at least "
                f"HISTORICAL_WINDOW_DAYS + 1 = {historical_window_days + 1} "
                "(or 0 to keep batches forever)"
            )
        certs_url = _get(env, "GOOGLE_ID_TOKEN_CERTS_URL") or GOOGLE_CERTS_URL
        if not certs_url.startswith(("https://", "http://")):
            raise ConfigError("GOOGLE_ID_TOKEN_CERTS_URL must be an http(s) URL")
        routing_key = _get(env, "PAGERDUTY_ROUTING_KEY")
        events_url = _get(env, "PAGERDUTY_EVENTS_URL") or "https://events.pagerduty.com/v2/enqueue"
        _check_pagerduty(routing_key, events_url, environment)
        return cls(
            database_url=database_url,
            instance_connection_name=_get(env, "INSTANCE_CONNECTION_NAME"),
            db_user=_get(env, "DB_USER"),
            db_password=_get(env, "DB_PASSWORD"),
            db_name=_get(env, "DB_NAME") or "drift_monitor",
            db_iam_auth=iam in ("true", "1"),
            db_ip_type=ip_type,
            redis_url=redis_url,
            google_cloud_project=_get(env, "GOOGLE_CLOUD_PROJECT") or "local-project",
            pubsub_topic=_get(env, "PUBSUB_TOPIC") or "embeddings",
            gcs_bucket=_get(env, "GCS_BUCKET"),
            data_dir=Path(_get(env, "DRIFT_MONITOR_DATA_DIR") or ".drift-monitor"),
            embedding_dimension=_int(env, "EMBEDDING_DIMENSION", None, 1, 65_536),
            batch_size=_req_int(env, "BATCH_SIZE", 10_000, 1, 1_000_000),
            max_request_bytes=_req_int(env, "MAX_REQUEST_BYTES", 32 * 1024 * 1024, 1024, 2**31),
            max_future_seconds=_req_int(env, "MAX_FUTURE_SECONDS", 300, 0, 86_400),
            stats_bucket_seconds=_req_int(env, "STATS_BUCKET_SECONDS", 3600, 60, 86_400),
            stats_reservoir_size=_req_int(env, "STATS_RESERVOIR_SIZE", 128, 16, 8192),
            drift_threshold=_float(env, "DRIFT_THRESHOLD", 0.15, 0.0, 100.0),
            historical_window_days=historical_window_days,
            false_alarm_interval_days=_float(
                env, "FALSE_ALARM_INTERVAL_DAYS", 365.0, 1.0, 36_500.0
            ),
            detection_source=detection_source,
            batch_retention_days=batch_retention_days,
            alert_cooldown_minutes=_req_int(env, "ALERT_COOLDOWN_MINUTES", 30, 0, 10_080),
            prometheus_gateway=_get(env, "PROMETHEUS_GATEWAY"),
            pagerduty_routing_key=routing_key,
            pagerduty_events_url=events_url,
            api_key=_get(env, "DRIFT_MONITOR_API_KEY"),
            admin_key=_get(env, "DRIFT_MONITOR_ADMIN_KEY"),
            google_id_token_audience=audience,
            invokers=invokers,
            admin_invokers=admin_invokers,
            google_id_token_certs_url=certs_url,
            environment=environment,
        )


def _check_pagerduty(routing_key: str | None, events_url: str, environment: str) -> None:
    """What the PagerDuty channel refuses when it is built, refused here at start-up instead."""
    if routing_key is None:
        return
    if len(routing_key) != 32:
        # Never echo the value: it is a secret even when it is malformed.
        raise ConfigError("PAGERDUTY_ROUTING_KEY must be a 32-character integration key")
    from drift_monitor.adapters.url_safety import UrlPolicy, validate_webhook_url
    from drift_monitor.domain.errors import ValidationError

    try:
        validate_webhook_url(
            events_url, UrlPolicy.for_environment(environment), field="PAGERDUTY_EVENTS_URL"
        )
    except ValidationError as exc:
        raise ConfigError(f"PAGERDUTY_EVENTS_URL={events_url!r} {exc.message}") from exc


# Every variable from_env reads; docs and Terraform are checked against this list.
ENVIRONMENT_VARIABLES = (
    "DATABASE_URL", "INSTANCE_CONNECTION_NAME", "DB_USER", "DB_PASSWORD", "DB_NAME",
    "DB_IAM_AUTH", "DB_IP_TYPE", "REDIS_URL", "GOOGLE_CLOUD_PROJECT", "PUBSUB_TOPIC", "GCS_BUCKET",
    "DRIFT_MONITOR_DATA_DIR", "EMBEDDING_DIMENSION", "BATCH_SIZE", "MAX_REQUEST_BYTES",
    "MAX_FUTURE_SECONDS", "STATS_BUCKET_SECONDS", "STATS_RESERVOIR_SIZE", "DRIFT_THRESHOLD",
    "HISTORICAL_WINDOW_DAYS", "FALSE_ALARM_INTERVAL_DAYS", "DETECTION_SOURCE",
    "BATCH_RETENTION_DAYS", "ALERT_COOLDOWN_MINUTES", "PROMETHEUS_GATEWAY", "PAGERDUTY_ROUTING_KEY",
    "PAGERDUTY_EVENTS_URL", "DRIFT_MONITOR_API_KEY", "DRIFT_MONITOR_ADMIN_KEY",
    "GOOGLE_ID_TOKEN_AUDIENCE", "DRIFT_MONITOR_INVOKERS", "DRIFT_MONITOR_ADMIN_INVOKERS",
    "GOOGLE_ID_TOKEN_CERTS_URL", "DRIFT_MONITOR_ENV",
)  # fmt: skip

assert len(ENVIRONMENT_VARIABLES) == len(fields(Settings))
