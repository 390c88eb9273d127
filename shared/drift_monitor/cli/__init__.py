"""The ``drift-monitor`` command. Each subcommand lives in its own module of this package.

A subcommand module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int`` (the exit status); list it in :data:`SUBCOMMANDS`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

SUBCOMMANDS = ("serve", "compare", "backtest", "rebuild_stats", "report", "migrate", "prune")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="drift-monitor", description="Embedding drift monitor: ingest, statistics, alerts."
    )
    parser.add_argument("--version", action="version", version=f"drift-monitor {_version()}")
    parser.add_argument(
        "--traceback", action="store_true", help="show the traceback of an unexpected error"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"drift_monitor.cli.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"drift_monitor.cli.{module_name}":
                continue  # subcommand not shipped in this build
            raise
        command = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("embedding-drift-monitor")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; an unexpected error is one line on stderr and exit status 1.

    ``drift-monitor --traceback COMMAND ...`` lets the exception (and its traceback) through.
    """
    args = build_parser().parse_args(argv)
    try:
        status: int = args._run(args)
    except KeyboardInterrupt:
        print(f"drift-monitor {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.traceback:
            raise
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(
            f"drift-monitor {args.command}: error: {message} "
            "(drift-monitor --traceback shows where)",
            file=sys.stderr,
        )
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
