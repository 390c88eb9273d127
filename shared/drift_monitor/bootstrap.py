"""The composition root: the one place that turns configuration into wired collaborators.

* Production (Cloud Functions): Pub/Sub publisher, Cloud SQL / PostgreSQL repository, Redis
  statistics and dimension registry, Cloud Storage archive when ``GCS_BUCKET`` is set.
* Embedded (``drift-monitor serve``): an in-process bus that hands every message, encoded with
  the same envelope as Pub/Sub, to the persist and statistics handlers; SQLite in the data
  directory (or ``DATABASE_URL``); in-process statistics (or Redis when ``REDIS_URL`` is set).
* Tests build their own :class:`Container` from twins and install it with
  :func:`set_container`.

Entry points never construct adapters themselves; they call :func:`container`.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from drift_monitor import logs
from drift_monitor.adapters.memory_bus import DeadLetterList, MemoryBus
from drift_monitor.config import Settings
from drift_monitor.domain.envelope import Message
from drift_monitor.service.ports import (
    Archive,
    BatchRepository,
    DimensionRegistry,
    Publisher,
    StatsStore,
)

if TYPE_CHECKING:  # imported at run time only where Redis is used
    from drift_monitor.adapters.redis_stats import RedisDimensionRegistry

# Statistics buckets are kept at least a week, and as long as detection looks back.
MIN_STATS_RETENTION_SECONDS = 7 * 86_400


@dataclass
class Container:
    """Everything a handler may need, built once per process."""

    settings: Settings
    publisher: Publisher  # Pub/Sub (production) | MemoryBus (embedded)
    repository: BatchRepository  # SqlRepository on PostgreSQL or SQLite
    stats: StatsStore  # RedisStatsStore | MemoryStatsStore
    registry: DimensionRegistry  # model dimensions, checked on ingest
    archive: Archive | None = None
    dead_letter: Publisher = field(default_factory=DeadLetterList)
    engine: Any = None  # the sqlalchemy Engine behind ``repository`` (None in unit tests)
    embedded: bool = False
    ready: bool = False  # True once the schema is migrated (GET /healthz)
    # Detection, alerting and metrics collaborators are added below this line.
    monitor: Any | None = None  # SqlMonitorRepository: configs, baselines, results, alert state
    alerting: Any | None = None  # detection.AlertDispatcher (PagerDuty + per-model webhooks)
    metrics: Any | None = None  # PushgatewayExporter | LocalMetrics (embedded /metrics)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    schedule: Any | None = None  # embedded detection schedule (``next_run``), None in GCP

    def migrate(self) -> None:
        """Bring the database schema up to date, then report ready."""
        if self.engine is not None:
            from drift_monitor.adapters.sql import upgrade

            upgrade(self.engine)
        self.ready = True


def database_url(settings: Settings) -> str:
    """``DATABASE_URL``, or the SQLite file in the data directory (embedded default)."""
    from drift_monitor.adapters import sql

    return sql.database_url(settings)


def _sql(settings: Settings) -> tuple[Any, Any]:
    from drift_monitor.adapters.sql import SqlRepository, make_engine

    # DATABASE_URL, the Cloud SQL connector (INSTANCE_CONNECTION_NAME), or SQLite in data_dir.
    engine = make_engine(settings)
    return engine, SqlRepository(engine)


def stats_retention_seconds(settings: Settings) -> int:
    return max(MIN_STATS_RETENTION_SECONDS, settings.historical_window_days * 86_400)


def _redis_stats(settings: Settings) -> tuple[StatsStore, RedisDimensionRegistry]:
    import redis

    from drift_monitor.adapters.redis_stats import RedisDimensionRegistry, RedisStatsStore

    assert settings.redis_url is not None
    client = redis.Redis.from_url(settings.redis_url)
    return (
        RedisStatsStore(
            client,
            bucket_seconds=settings.stats_bucket_seconds,
            retention_seconds=stats_retention_seconds(settings),
            reservoir_size=settings.stats_reservoir_size,
        ),
        RedisDimensionRegistry(client),
    )


def _archive(settings: Settings) -> Archive | None:
    if not settings.gcs_bucket:
        return None
    from google.cloud import storage

    from drift_monitor.adapters.gcs_archive import GcsArchive

    return GcsArchive(storage.Client(project=settings.google_cloud_project), settings.gcs_bucket)


def build(
    settings: Settings, *, embedded: bool, clock: Callable[[], datetime] | None = None
) -> Container:
    """Wire adapters for production (``embedded=False``) or ``drift-monitor serve``.

    ``clock`` (embedded only) replaces the wall clock everywhere a component reads the time:
    ``drift-monitor backtest`` replays a recorded stream on a virtual clock.
    """
    engine, repository = _sql(settings)
    if embedded:
        return add_detection(_embedded(settings, engine, repository, clock))
    from drift_monitor.adapters.pubsub import DEAD_LETTER_TOPIC, PubSubPublisher

    if not settings.redis_url:
        raise RuntimeError("REDIS_URL is required outside the embedded mode")
    stats, cache = _redis_stats(settings)
    from drift_monitor.service.dimensions import DurableDimensions

    # PostgreSQL records each model's dimension; Redis caches it and refills from it.
    registry = DurableDimensions(cache, repository)
    publisher = PubSubPublisher(settings.google_cloud_project, settings.pubsub_topic)
    return add_detection(
        Container(
            settings=settings,
            publisher=publisher,
            repository=repository,
            stats=stats,
            registry=registry,
            archive=_archive(settings),
            # Its client is created on first use only, so healthy functions never open it.
            dead_letter=PubSubPublisher(settings.google_cloud_project, DEAD_LETTER_TOPIC),
            engine=engine,
        )
    )


def add_detection(c: Container) -> Container:
    """Add the monitor tables, metrics exporter and alert channels (detection, API)."""
    from drift_monitor.adapters.http_delivery import HttpDelivery
    from drift_monitor.adapters.metrics import LocalMetrics, PushgatewayExporter
    from drift_monitor.adapters.pagerduty import PagerDutyNotifier
    from drift_monitor.adapters.sql import SqlMonitorRepository
    from drift_monitor.adapters.url_safety import UrlPolicy
    from drift_monitor.adapters.webhook import WebhookNotifier
    from drift_monitor.service.detection import AlertDispatcher

    s = c.settings
    c.monitor = SqlMonitorRepository(c.engine, clock=c.clock)
    c.metrics = (
        PushgatewayExporter(s.prometheus_gateway, token=_gateway_token(s.prometheus_gateway))
        if s.prometheus_gateway
        else LocalMetrics()
    )
    # One delivery object: its circuit breakers are per endpoint and must outlive a run.
    delivery = HttpDelivery(policy=UrlPolicy.for_environment(s.environment))
    pagerduty = (
        PagerDutyNotifier(s.pagerduty_routing_key, s.pagerduty_events_url, delivery)
        if s.pagerduty_routing_key
        else None
    )
    c.alerting = AlertDispatcher(
        store=c.monitor,
        cooldown=timedelta(minutes=s.alert_cooldown_minutes),
        pagerduty=pagerduty,
        webhook=lambda url: WebhookNotifier(url, delivery),
        counter=c.metrics,
    )
    return c


def _gateway_token(url: str) -> Any:
    """The Cloud Run Pushgateway (https) needs a Google ID token; a plain http one does not."""
    from drift_monitor.adapters.metrics import google_id_token

    return google_id_token(url.rstrip("/")) if url.startswith("https://") else None


def _embedded(
    settings: Settings, engine: Any, repository: Any, clock: Callable[[], datetime] | None = None
) -> Container:
    from drift_monitor.entrypoints import subscribers

    stats: StatsStore
    if settings.redis_url:
        stats, _ = _redis_stats(settings)
    else:
        import time

        from drift_monitor.adapters.memory_stats import MemoryStatsStore

        stats = MemoryStatsStore(
            bucket_seconds=settings.stats_bucket_seconds,
            retention_seconds=stats_retention_seconds(settings),
            reservoir_size=settings.stats_reservoir_size,
            clock=time.time if clock is None else (lambda: clock().timestamp()),
        )
    bus = MemoryBus()
    c = Container(
        settings=settings,
        publisher=bus,
        repository=repository,
        stats=stats,
        # SQL is the durable record of each model's dimension in the embedded mode.
        registry=repository,
        archive=_archive(settings),
        engine=engine,
        embedded=True,
    )
    if clock is not None:
        c.clock = clock
    for name, handler in (
        ("persist", subscribers.persist_handler(c)),
        ("stats", subscribers.stats_handler(c)),
    ):
        bus.subscribe(functools.partial(_deliver, c, name, handler))
    return c


def _deliver(c: Container, name: str, handler: Any, message: Message, message_id: str) -> None:
    from drift_monitor.entrypoints import subscribers
    from drift_monitor.entrypoints.cloudevent import Received

    received = Received(message, message_id, f"local/{name}")
    subscribers.process(received, handler, dead_letter=c.dead_letter, consumer=name)


_lock = threading.Lock()
_container: Container | None = None


def container() -> Container:
    """The process-wide container, built on first use from the environment (production)."""
    global _container
    with _lock:
        if _container is None:
            logs.configure()
            _container = build(Settings.from_env(), embedded=False)
        return _container


def sql_container() -> Container:
    """:func:`container` with the schema migrated, for the functions that use the database.

    The first call in a process runs the migrations (a no-op at the newest revision; concurrent
    cold starts are serialised by an advisory lock), so a deploy whose code needs a new table
    brings its own schema. A failure propagates (Pub/Sub redelivers, HTTP answers 5xx) and the
    next call tries again.
    """
    c = container()
    if not c.ready:
        with _migrate_lock:
            if not c.ready:
                c.migrate()
    return c


_migrate_lock = threading.Lock()


def set_container(c: Container | None) -> None:
    """Install ``c`` as the process-wide container (``None``: build again on next use)."""
    global _container
    with _lock:
        _container = c
