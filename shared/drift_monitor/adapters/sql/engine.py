"""Engine construction for the three places the monitor runs, and database-error translation.

* Cloud Functions on Cloud SQL: ``INSTANCE_CONNECTION_NAME`` set -> the Cloud SQL Python
  Connector with pg8000 (IAM or password login), no IP allow-listing or proxy needed.
* Anything else with ``DATABASE_URL`` (tests, a self-managed PostgreSQL, a SQLite file).
* Embedded mode without ``DATABASE_URL``: ``sqlite:///<DRIFT_MONITOR_DATA_DIR>/drift-monitor.db``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import URL, make_url

from drift_monitor.adapters.sql.instrumentation import instrument
from drift_monitor.config import ConfigError, Settings
from drift_monitor.domain.errors import TransientError

SQLITE_FILE_NAME = "drift-monitor.db"
# A function instance serves few requests at once and may have hundreds of siblings sharing
# one Cloud SQL instance's connection limit: keep each pool small, check connections before
# use (instances sit idle and NATs drop idle sockets), recycle before server-side timeouts.
POOL_SIZE = 2
MAX_OVERFLOW = 2
POOL_TIMEOUT_SECONDS = 10
POOL_RECYCLE_SECONDS = 1800
# How long a SQLite writer waits for another thread's transaction before giving up.
SQLITE_BUSY_TIMEOUT_MS = 10_000


def default_sqlite_url(data_dir: Path) -> str:
    """The embedded-mode database: a file in the data directory."""
    return f"sqlite:///{(Path(data_dir) / SQLITE_FILE_NAME).resolve()}"


def database_url(settings: Settings) -> str:
    """The SQLAlchemy URL :func:`make_engine` uses when no Cloud SQL instance is configured."""
    return settings.database_url or default_sqlite_url(settings.data_dir)


def make_engine(settings: Settings, *, ip_type: str | None = None, echo: bool = False) -> Engine:
    """Build the engine for ``settings``; nothing connects until the first query.

    Parameters
    ----------
    settings:
        ``instance_connection_name`` selects the Cloud SQL connector (with ``db_user``,
        ``db_password`` or ``db_iam_auth``, ``db_name``); otherwise ``database_url``, or
        the SQLite file in ``data_dir`` (the folder is created).
    ip_type:
        Cloud SQL address to use: ``"public"``, ``"private"`` or ``"psc"``; default
        ``settings.db_ip_type`` (``DB_IP_TYPE``, private unless set).
    echo:
        Log every statement (debugging only).

    Returns
    -------
    sqlalchemy.Engine
        Instrumented (statement time, pool use: ``instrumentation.py``). PostgreSQL engines
        get a small pre-pinged pool; SQLite engines use WAL journaling, a
        busy timeout and foreign keys, so the embedded server's threads can share the file.
    """
    if settings.instance_connection_name:
        engine = _cloud_sql_engine(settings, ip_type=ip_type or settings.db_ip_type, echo=echo)
        return instrument(engine)
    url = make_url(database_url(settings))
    if url.get_backend_name() == "sqlite":
        return instrument(sqlite_engine(url, echo=echo))
    engine = create_engine(
        url,
        echo=echo,
        pool_size=POOL_SIZE,
        max_overflow=MAX_OVERFLOW,
        pool_timeout=POOL_TIMEOUT_SECONDS,
        pool_recycle=POOL_RECYCLE_SECONDS,
        pool_pre_ping=True,
    )
    return instrument(engine)


def sqlite_engine(url: str | URL, *, echo: bool = False) -> Engine:
    """A SQLite engine configured for several threads in one process.

    The database file's folder is created. Every connection runs in WAL mode (readers do not
    block the writer), waits up to :data:`SQLITE_BUSY_TIMEOUT_MS` for a lock instead of failing
    at once, and enforces foreign keys. pysqlite's own implicit transaction handling is turned
    off and SQLAlchemy emits ``BEGIN`` itself, so a transaction really spans every statement in
    it (pysqlite otherwise starts one only at the first write).
    """
    url = make_url(url)
    database = url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, echo=echo, pool_pre_ping=True)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            # A pointer map (auto_vacuum), so that reading a few rows out of a large blob
            # seeks to their pages instead of reading every page before them (sampling).
            # It takes effect only while the file is empty (a new database) and must come
            # before WAL mode; an older database keeps working, with slower sampling.
            cursor.execute("PRAGMA auto_vacuum = INCREMENTAL")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN")

    return engine


def _cloud_sql_engine(settings: Settings, *, ip_type: str, echo: bool) -> Engine:
    instance = settings.instance_connection_name
    assert instance is not None
    if not settings.db_user:
        raise ConfigError("INSTANCE_CONNECTION_NAME is set but DB_USER is not")
    if not settings.db_iam_auth and not settings.db_password:
        raise ConfigError("INSTANCE_CONNECTION_NAME is set: set DB_PASSWORD or DB_IAM_AUTH=true")
    creator = _connector_creator(
        instance,
        user=settings.db_user,
        password=None if settings.db_iam_auth else settings.db_password,
        db=settings.db_name,
        iam=settings.db_iam_auth,
        ip_type=ip_type,
    )
    return create_engine(
        "postgresql+pg8000://",
        creator=creator,
        echo=echo,
        pool_size=POOL_SIZE,
        max_overflow=MAX_OVERFLOW,
        pool_timeout=POOL_TIMEOUT_SECONDS,
        pool_recycle=POOL_RECYCLE_SECONDS,
        pool_pre_ping=True,
    )


def _connector_creator(
    instance: str,
    *,
    user: str,
    password: str | None,
    db: str,
    iam: bool,
    ip_type: str,
) -> Callable[[], Any]:
    """A DBAPI ``creator`` that opens pg8000 connections through the Cloud SQL connector.

    The connector (and its import, its refresh machinery and its credential lookup) is created
    on the first connection, not at engine construction, so importing and wiring the package
    stays cheap on a cold start and works without Google credentials until a query runs.
    The ``lazy`` refresh strategy fits Cloud Functions, whose CPU is throttled between
    requests so background certificate refreshes cannot be relied on.
    """
    lock = threading.Lock()
    holder: dict[str, Any] = {}

    def creator() -> Any:
        with lock:
            connector = holder.get("connector")
            if connector is None:
                from google.cloud.sql.connector import Connector

                connector = Connector(ip_type=ip_type, enable_iam_auth=iam, refresh_strategy="lazy")
                holder["connector"] = connector
        kwargs: dict[str, Any] = {"user": user, "db": db}
        if password is not None:
            kwargs["password"] = password
        try:
            return connector.connect(instance, "pg8000", **kwargs)
        except (OSError, TimeoutError) as error:
            raise TransientError(f"cannot reach Cloud SQL instance {instance}: {error}") from error

    return creator


# SQLAlchemy wraps driver errors. These mean "the database is (momentarily) not usable", not
# "this statement is wrong": the caller should retry (Pub/Sub redelivers the message).
_TRANSIENT = (
    exc.OperationalError,
    exc.InterfaceError,
    exc.DisconnectionError,
    exc.TimeoutError,  # pool exhausted
    ConnectionError,
    TimeoutError,
)


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` is a database fault worth retrying."""
    if isinstance(error, _TRANSIENT):
        return True
    return isinstance(error, exc.DBAPIError) and bool(error.connection_invalidated)


@contextmanager
def translate_errors(action: str) -> Iterator[None]:
    """Re-raise transient database faults as :class:`TransientError` naming ``action``."""
    try:
        yield
    except TransientError:
        raise
    except Exception as error:
        if is_transient(error):
            raise TransientError(f"database unavailable while {action}: {_brief(error)}") from error
        raise


def _brief(error: BaseException) -> str:
    # SQLAlchemy messages carry the statement and parameters (vectors!); keep the first line.
    original = getattr(error, "orig", None)
    text = str(original if original is not None else error)
    return text.splitlines()[0][:300] if text else type(error).__name__
