"""``drift-monitor rebuild-stats MODEL_ID [--start ISO] [--end ISO]``.

Recomputes a model's running statistics from the database, e.g. after Redis lost them. Uses
the same configuration (environment variables) as the deployed functions.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime

NAME = "rebuild-stats"
HELP = "Rebuild a model's running statistics from the stored batches (after Redis lost them)."


def _timestamp(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO-8601 timestamp") from exc
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{value!r} needs a time zone (e.g. Z or +00:00)")
    return parsed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_id", metavar="MODEL_ID", help="model whose statistics to rebuild")
    parser.add_argument(
        "--start", type=_timestamp, default=None, help="first timestamp (ISO-8601, inclusive)"
    )
    parser.add_argument(
        "--end", type=_timestamp, default=None, help="last timestamp (ISO-8601, exclusive)"
    )


def run(args: argparse.Namespace) -> int:
    from drift_monitor import bootstrap
    from drift_monitor.domain.batch import check_model_id
    from drift_monitor.domain.errors import DriftMonitorError
    from drift_monitor.service.rebuild import rebuild_stats

    if args.start is not None and args.end is not None and args.start >= args.end:
        print("error: --start must be before --end")
        return 2
    try:
        model_id = check_model_id(args.model_id)
        c = bootstrap.sql_container()
        vectors = rebuild_stats(
            model_id, c.repository, c.stats, args.start, args.end, registry=c.registry
        )
    except DriftMonitorError as exc:
        print(f"error: {exc}")
        return 1
    print(json.dumps({"model_id": model_id, "vectors": vectors}))
    return 0
