"""``drift-monitor migrate``: bring the configured database's schema up to date."""

from __future__ import annotations

import argparse
import sys

from drift_monitor.config import ConfigError, Settings
from drift_monitor.domain.errors import TransientError

NAME = "migrate"
HELP = (
    "Apply the schema migrations to the configured database (DATABASE_URL, the Cloud SQL "
    "instance, or the embedded SQLite file) and print the revision."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--revision",
        default="head",
        help="target revision (default: head, the newest the package ships)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="change nothing: print the current revision, exit 1 if it is not the newest",
    )


def run(args: argparse.Namespace) -> int:
    from drift_monitor.adapters.sql import (
        current_revision,
        database_url,
        head_revision,
        make_engine,
        upgrade,
    )

    try:
        settings = Settings.from_env()
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    where = (
        f"Cloud SQL instance {settings.instance_connection_name}"
        if settings.instance_connection_name
        else _safe_url(database_url(settings))
    )
    engine = make_engine(settings)
    try:
        if args.check:
            current = current_revision(engine)
            head = head_revision()
            print(f"{where}: revision {current or 'none'} (newest: {head})")
            return 0 if current == head else 1
        reached = upgrade(engine, args.revision)
        print(f"{where}: revision {reached or 'none'}")
        return 0
    except TransientError as error:
        print(f"error: {error}", file=sys.stderr)
        return 3
    finally:
        engine.dispose()


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    # Never print a password from DATABASE_URL.
    return make_url(url).render_as_string(hide_password=True)
