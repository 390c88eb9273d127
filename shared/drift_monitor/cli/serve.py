"""``drift-monitor serve``: the whole monitor in one local process, nothing else needed.

Embedded wiring (:func:`drift_monitor.bootstrap.build` with ``embedded=True``): SQLite in the
data directory unless ``DATABASE_URL`` is set, in-process statistics unless ``REDIS_URL`` is
set, and an in-process bus in place of Pub/Sub. Migrations run before the port opens, so
``GET /healthz`` answers 200 as soon as anything answers at all.
"""

from __future__ import annotations

import argparse
import errno
import signal
import sys
import threading
from dataclasses import replace
from pathlib import Path
from types import FrameType

from werkzeug.serving import WSGIRequestHandler, make_server

from drift_monitor import bootstrap, logs
from drift_monitor.config import ConfigError, Settings

NAME = "serve"
HELP = "Run ingest, statistics, detection and the API locally (SQLite, in-process bus)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=8080, help="port to bind; 0 picks a free one (default 8080)"
    )
    parser.add_argument(
        "--detect-every",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="run drift detection for every model this often; 0 disables (default 60)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where the SQLite database lives (default: DRIFT_MONITOR_DATA_DIR or .drift-monitor)",
    )


class JsonRequestHandler(WSGIRequestHandler):
    """werkzeug's handler, its messages as JSON lines like everything else.

    The request lines themselves come from the app (``entrypoints/app.py``), inside the
    request's trace context and with Cloud Logging's ``httpRequest`` fields.
    """

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None

    def log(self, type: str, message: str, *args: object) -> None:
        logs.log("ERROR" if type == "error" else "INFO", message % args)


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def run(args: argparse.Namespace) -> int:
    logs.configure()
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"drift-monitor serve: error: {exc}", file=sys.stderr)
        return 2
    if args.data_dir is not None:
        settings = replace(settings, data_dir=args.data_dir)
    settings = replace(settings, data_dir=Path(settings.data_dir).resolve())
    container = bootstrap.build(settings, embedded=True)
    bootstrap.set_container(container)
    container.migrate()

    from drift_monitor.entrypoints import auth
    from drift_monitor.entrypoints.app import create_app

    try:
        server = make_server(
            args.host,
            args.port,
            create_app(container),
            threaded=True,
            request_handler=JsonRequestHandler,
        )
    except (OSError, SystemExit) as exc:
        # werkzeug reports a port in use on stderr and exits; anything else propagates.
        if container.engine is not None:
            container.engine.dispose()
        bootstrap.set_container(None)
        if isinstance(exc, OSError) and exc.errno != errno.EADDRINUSE:
            raise
        other = args.port + 1 if 0 < args.port < 65535 else 8081
        print(
            f"drift-monitor serve: error: port {args.port} on {args.host} is in use (another "
            f"drift-monitor?); pick another: PORT={other} ./scripts/serve, or "
            f"drift-monitor serve --port {other}",
            file=sys.stderr,
        )
        return 2
    host = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{host}:{server.port}"
    logs.log(
        "INFO",
        f"drift-monitor serving on {url} (data in {settings.data_dir})",
        url=url,
        data_dir=str(settings.data_dir),
        database=_redacted(bootstrap.database_url(settings)),
        statistics="redis" if settings.redis_url else "memory",
    )
    warning = auth.startup_warning(settings)
    if warning:
        logs.log("WARNING", warning)

    from drift_monitor.entrypoints.detect_http import Schedule

    schedule = Schedule(container, args.detect_every).start() if args.detect_every > 0 else None
    container.schedule = schedule

    def stop(signum: int, _frame: FrameType | None) -> None:
        logs.log("INFO", f"received {signal.Signals(signum).name}, shutting down")
        # shutdown() waits for serve_forever() to return, which runs in this (main) thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.serve_forever()
    finally:
        if schedule is not None:
            schedule.stop()
        server.server_close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if container.engine is not None:
            container.engine.dispose()
        bootstrap.set_container(None)
        logs.log("INFO", "drift-monitor stopped")
    return 0
