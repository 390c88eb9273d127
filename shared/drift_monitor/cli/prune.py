"""``drift-monitor prune [--before ISO] [--dry-run] [--batch-size N]``.

Deletes stored batches older than ``BATCH_RETENTION_DAYS`` (or ``--before``) from the
configured database, as the scheduled detection run does after each run, but without its time
budget: useful to work off a backlog, or to see with ``--dry-run`` what retention would
delete. Parts inside a model's stored baseline window (pinned or rolling) are always kept.
Prints one JSON object with the counts; the same counts go to the JSON log.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

NAME = "prune"
HELP = (
    "Delete stored batches older than BATCH_RETENTION_DAYS (or --before), keeping every "
    "baseline window; --dry-run only counts."
)


def _timestamp(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO-8601 timestamp") from exc
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{value!r} needs a time zone (e.g. Z or +00:00)")
    return parsed


def _chunk(value: str) -> int:
    from drift_monitor.adapters.sql.retention import MAX_CHUNK_PARTS

    try:
        size = int(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from exc
    if not 1 <= size <= MAX_CHUNK_PARTS:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_CHUNK_PARTS}")
    return size


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--before",
        type=_timestamp,
        default=None,
        help="delete batches stamped before this time (ISO-8601 with zone); "
        "default: now - BATCH_RETENTION_DAYS",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="count what would be deleted; delete nothing"
    )
    parser.add_argument(
        "--batch-size",
        type=_chunk,
        default=None,
        help="batch parts deleted per transaction (default 100)",
    )


def run(args: argparse.Namespace) -> int:
    from drift_monitor import logs
    from drift_monitor.adapters.sql import SqlRepository, make_engine, upgrade
    from drift_monitor.config import ConfigError, Settings
    from drift_monitor.domain.errors import TransientError
    from drift_monitor.service.retention import prune_expired

    try:
        settings = Settings.from_env()
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    now = datetime.now(UTC)
    if args.before is not None and args.before > now:
        print("error: --before lies in the future", file=sys.stderr)
        return 2
    if args.before is None and settings.batch_retention_days == 0:
        print(
            json.dumps({"retention_days": 0, "message": "BATCH_RETENTION_DAYS=0: nothing pruned"})
        )
        return 0
    logs.configure()
    engine = make_engine(settings)
    try:
        upgrade(engine)  # a no-op at the newest revision; the baselines table must exist
        result = prune_expired(
            SqlRepository(engine),
            settings,
            now,
            before=args.before,
            batch_size=args.batch_size,
            time_budget_seconds=None,
            dry_run=args.dry_run,
        )
    except TransientError as error:
        print(f"error: {error}", file=sys.stderr)
        return 3
    finally:
        engine.dispose()
    print(json.dumps(dict(result.to_dict(), retention_days=settings.batch_retention_days)))
    return 0
