"""``drift-monitor backtest``: what would have paged? Replays a recorded stream offline.

``drift-monitor backtest STREAM.npz [--model-id ID] [--config CONFIG.json] [--every MINUTES]
[--json]`` runs the stream through the production code on a virtual clock in a temporary
embedded store (``service/backtest.py``) and prints every scheduled run's status and evidence
and every page. Environment variables apply as in ``serve``; nothing outside the temporary
store is written and no notification is sent.

Exit status: 0 after a replay (pages or not), 2 with a one-line error for unusable input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

NAME = "backtest"
HELP = "Replay a recorded stream (.npz) through detection and alerting: what would have paged?"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "stream",
        type=Path,
        metavar="STREAM.npz",
        help="embeddings (n, d) and timestamps (n,): Unix seconds (int64; floats are floored) "
        "or datetime64",
    )
    parser.add_argument("--model-id", default="backtest", help="model id (default: backtest)")
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="CONFIG.json",
        help="the model configuration, as for POST /models/{id}/config",
    )
    parser.add_argument(
        "--every",
        type=float,
        default=60.0,
        metavar="MINUTES",
        help="detection schedule in minutes (default 60)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.epilog = "exit status: 0 after the replay, 2 for unusable input (one-line error)"


def _fail(message: str) -> int:
    print(f"drift-monitor backtest: error: {message}", file=sys.stderr)
    return 2


def _read_config(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ValueError(f"{path}: no such file") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a JSON document ({exc})") from exc
    if not isinstance(document, dict):
        raise ValueError(f"{path}: must hold a JSON object (the model configuration)")
    return document


def run(args: argparse.Namespace) -> int:
    import logging

    from drift_monitor import logs
    from drift_monitor.config import ConfigError, Settings
    from drift_monitor.domain.batch import check_model_id
    from drift_monitor.domain.errors import ValidationError
    from drift_monitor.service import backtest

    logs.configure(level=logging.WARNING)  # per-batch and per-run lines would drown the answer
    try:
        check_model_id(args.model_id)
    except ValidationError as exc:
        return _fail(f"--model-id {args.model_id!r}: {exc.message}")
    if not args.every > 0:
        return _fail("--every must be a positive number of minutes")
    try:
        settings = Settings.from_env()
        config = _read_config(args.config)
        stream = backtest.load_stream(args.stream)
        record = backtest.run_backtest(
            stream,
            model_id=args.model_id,
            config=config,
            every_minutes=args.every,
            settings=settings,
        )
    except (backtest.StreamError, ValueError, ConfigError) as exc:
        return _fail(str(exc))
    except ValidationError as exc:
        return _fail(f"{exc.field}: {exc.message}")
    document = record.to_dict()
    if args.json:
        print(json.dumps(document))
        return 0
    print(_summary(document, args.every))
    return 0


def _summary(doc: dict[str, Any], every: float) -> str:
    summary = doc["summary"]
    runs = doc["runs"]
    evidence = [r["evidence"] for r in runs if r["evidence"] is not None]
    lines = [
        f"model {doc['model_id']}: {summary['runs']} runs every {every:g} min"
        + (f", {runs[0]['at']} to {runs[-1]['at']}" if runs else ""),
        "statuses: "
        + ", ".join(
            f"{status} {sum(r['status'] == status for r in runs)}"
            for status in ("ok", "drift", "insufficient_data", "error")
        ),
        f"pages: {summary['triggers']} trigger(s)"
        + (f", first at {summary['first_trigger_at']}" if summary["first_trigger_at"] else ""),
    ]
    reminders = sum(page["action"] == "remind" for page in doc["pages"])
    for page in doc["pages"]:
        if page["action"] != "remind":
            lines.append(f"  {page['at']}  {page['action']}")
    if reminders:
        lines.append(
            f"  and {reminders} reminder(s) while pages were open (ALERT_COOLDOWN_MINUTES)"
        )
    if evidence:
        threshold = next(r["threshold"] for r in runs if r["threshold"] is not None)
        lines.append(f"evidence (log10): max {max(evidence):.2f} against threshold {threshold:.2f}")
    return "\n".join(lines)
