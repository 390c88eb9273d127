#!/usr/bin/env python3
"""Start the real services the integration tests need, on free loopback ports, and stop them.

Standard library only: the test runner calls this before the virtualenv holds anything.

Services (names for ``--only``):

``pg``
    A throwaway PostgreSQL 15 cluster (``initdb`` + ``postgres``) with trust authentication on
    127.0.0.1 and a database ``drift_test``. ``initdb`` refuses to run as root, so when we are
    root the cluster runs as the ``postgres`` user.
``redis``
    ``redis-server`` without persistence.
``pubsub``
    The official Cloud Pub/Sub emulator (needs Java). Where it is absent, or with
    ``DRIFT_SERVICES_PUBSUB=standin``, the in-memory gRPC stand-in
    ``tests/support/pubsub_standin.py`` (run by the virtualenv's Python) serves the same API;
    ``DRIFT_SERVICES_PUBSUB=emulator`` insists on the emulator.
``pushgateway``
    ``prometheus-pushgateway`` (Debian package).
``gcs``
    ``gcp-storage-emulator`` in memory (PyPI package, installed in the virtualenv).

Every process is started in its own process group and only those groups are signalled on
shutdown, so services that were already running on the machine are never touched.

Usage::

    services.py up [--env-file FILE] [--only pg,redis]   # start, write env, wait for Ctrl-C
    services.py run [--only ...] -- CMD ARGS...           # start, run CMD with the env, stop

Python API (used by ``scripts/test``'s callers and handy in a REPL)::

    with running(["redis"]) as env:
        print(env["TEST_REDIS_URL"])
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
PUBSUB_EMULATOR = Path(
    "/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator"
)
REPO = Path(__file__).resolve().parent.parent
PUBSUB_STANDIN = REPO / "tests" / "support" / "pubsub_standin.py"
ALL_SERVICES = ("pg", "redis", "pubsub", "pushgateway", "gcs")
# Generous bounds: the machine is shared and the JVM of the Pub/Sub emulator starts slowly.
READY_TIMEOUT = float(os.environ.get("DRIFT_SERVICES_TIMEOUT", "90"))
STOP_TIMEOUT = 15.0


class ServiceError(RuntimeError):
    """A service could not be started; the message says which and why."""


class NotInstalled(ServiceError):
    """A service's program is not on this machine: reported, the others still start."""


def log(message: str) -> None:
    print(f"[services] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    """Ask the kernel for a free loopback port (released at once for the service to bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= int(response.status) < 500
    except urllib.error.HTTPError as exc:
        # Any HTTP answer means the server is up and speaking HTTP.
        return exc.code < 500
    except (OSError, ValueError):
        return False


def redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2.0) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _which(name: str, *extra: Path) -> str | None:
    for candidate in extra:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which(name)


class Service:
    """One child process in its own process group, with a readiness probe."""

    name = "service"
    kind = ""  # said after the name in the log when one name has several implementations

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.log_path = workdir / f"{self.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_file: object | None = None

    # -- subclasses fill these in -------------------------------------------------------
    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        raise NotImplementedError

    def prepare(self) -> None:
        """Work done before the process starts (e.g. initdb)."""

    def after_ready(self) -> None:
        """Work done once the process answers (e.g. create the database)."""

    def popen_kwargs(self) -> dict[str, object]:
        return {}

    # -- lifecycle -----------------------------------------------------------------------
    def spawn(self) -> None:
        self.prepare()
        cmd = self.command()
        log(f"starting {self.name}{self.kind} on 127.0.0.1:{self.port}: {' '.join(cmd)}")
        log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._log_file = log_file
        kwargs: dict[str, object] = {
            "stdin": subprocess.DEVNULL,
            "stdout": log_file,
            "stderr": subprocess.STDOUT,
            # Own process group: stop() signals exactly this group and nothing else.
            "start_new_session": True,
            "cwd": str(self.workdir),
        }
        kwargs.update(self.popen_kwargs())
        self.proc = subprocess.Popen(cmd, **kwargs)  # type: ignore[call-overload]

    def wait_ready(self, deadline: float) -> None:
        assert self.proc is not None
        while True:
            if self.proc.poll() is not None:
                raise ServiceError(
                    f"{self.name} exited with code {self.proc.returncode} before it was ready; "
                    f"log {self.log_path}:\n{tail(self.log_path)}"
                )
            if self.ready():
                break
            if time.monotonic() > deadline:
                raise ServiceError(
                    f"{self.name} did not become ready on 127.0.0.1:{self.port} within "
                    f"{READY_TIMEOUT:.0f}s; log {self.log_path}:\n{tail(self.log_path)}"
                )
            time.sleep(0.2)
        self.after_ready()
        log(f"{self.name}{self.kind} ready on 127.0.0.1:{self.port}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _signal_group(self, sig: int) -> bool:
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            return False
        except PermissionError:
            # Only ours can be signalled; should never happen, but never widen the target.
            return False
        return True

    def graceful_signal(self) -> None:
        self._signal_group(signal.SIGTERM)

    def stop(self) -> None:
        if self.proc is None:
            return
        # Signal before reaping: an unreaped child keeps its pid (and so its group id)
        # reserved, so the group we signal cannot have been recycled to someone else.
        if self.proc.returncode is None:
            self.graceful_signal()
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                log(f"{self.name} did not stop within {STOP_TIMEOUT:.0f}s; killing its group")
                self._signal_group(signal.SIGKILL)
                self.proc.wait(timeout=STOP_TIMEOUT)
        # Stragglers left in the group (e.g. a JVM under a wrapper script).
        self._signal_group(signal.SIGKILL)
        if self._log_file is not None:
            self._log_file.close()  # type: ignore[attr-defined]
            self._log_file = None
        log(f"stopped {self.name} (pid {self.proc.pid})")


class Postgres(Service):
    name = "pg"
    database = "drift_test"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.pgdir = workdir / "pg"
        self.data = self.pgdir / "data"
        self.sockets = self.pgdir / "sockets"
        self.user: str | None = "postgres" if os.geteuid() == 0 else None

    def _bin(self, name: str) -> str:
        path = PG_BIN / name
        if not path.exists():
            raise NotInstalled(
                f"PostgreSQL 15 binary {path} not found; install the postgresql-15 package "
                "(or set PG_BIN)"
            )
        return str(path)

    def popen_kwargs(self) -> dict[str, object]:
        if self.user is None:
            return {}
        entry = pwd.getpwnam(self.user)
        return {
            "user": entry.pw_uid,
            "group": entry.pw_gid,
            "extra_groups": [],
            "cwd": str(self.pgdir),
            "env": {**os.environ, "HOME": str(self.pgdir), "USER": self.user},
        }

    def prepare(self) -> None:
        self.pgdir.mkdir()
        self.sockets.mkdir()
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            # The postgres user must be able to reach its directory inside our temp dir.
            os.chmod(self.workdir, 0o755)
            for path in (self.pgdir, self.sockets):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        cmd = [
            self._bin("initdb"),
            "-D", str(self.data),
            "-U", "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-sync",
        ]  # fmt: skip
        if self.user is not None:
            runuser = shutil.which("runuser")
            if runuser is None:
                raise ServiceError("running as root but runuser is missing (util-linux)")
            cmd = [runuser, "-u", self.user, "--", *cmd]
        log("initdb " + str(self.data))
        result = subprocess.run(
            cmd,
            cwd=str(self.pgdir),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            check=False,
        )
        if result.returncode != 0:
            raise ServiceError(
                f"initdb failed (exit {result.returncode}):\n"
                + result.stdout.decode(errors="replace")[-4000:]
            )

    def command(self) -> list[str]:
        return [
            self._bin("postgres"),
            "-D", str(self.data),
            "-p", str(self.port),
            "-k", str(self.sockets),
            "-c", "listen_addresses=127.0.0.1",
            # A throwaway test cluster: durability buys nothing and costs seconds.
            "-c", "fsync=off",
            "-c", "synchronous_commit=off",
            "-c", "full_page_writes=off",
            "-c", "max_connections=200",
        ]  # fmt: skip

    def _client(self, name: str, *args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [self._bin(name), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            check=False,
            timeout=30,
        )

    def ready(self) -> bool:
        return self._client("pg_isready", "-q", "-d", "postgres").returncode == 0

    def after_ready(self) -> None:
        result = self._client("createdb", self.database)
        if result.returncode != 0:
            raise ServiceError(
                f"createdb {self.database} failed: {result.stdout.decode(errors='replace')}"
            )

    def graceful_signal(self) -> None:
        # SIGINT to the postmaster alone = "fast" shutdown: it disconnects clients and exits.
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGINT)

    def env(self) -> dict[str, str]:
        return {
            "TEST_DATABASE_URL": (
                f"postgresql+pg8000://postgres@127.0.0.1:{self.port}/{self.database}"
            )
        }


class Redis(Service):
    name = "redis"

    def command(self) -> list[str]:
        binary = _which("redis-server")
        if binary is None:
            raise NotInstalled("redis-server not found; apt-get install redis-server")
        return [
            binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--dir", str(self.workdir),
        ]  # fmt: skip

    def ready(self) -> bool:
        return redis_ping(self.port)

    def env(self) -> dict[str, str]:
        return {"TEST_REDIS_URL": f"redis://127.0.0.1:{self.port}/0"}


def pubsub_emulator_missing() -> str | None:
    """Why the official emulator cannot run here, or None when it can."""
    if not PUBSUB_EMULATOR.exists():
        return (
            f"the official Pub/Sub emulator is not installed ({PUBSUB_EMULATOR} missing; "
            "it ships with the Google Cloud SDK component pubsub-emulator)"
        )
    if shutil.which("java") is None:
        return "the Pub/Sub emulator needs java on PATH"
    return None


class PubSubEmulator(Service):
    name = "pubsub"
    kind = " (official emulator)"

    def command(self) -> list[str]:
        missing = pubsub_emulator_missing()
        if missing is not None:
            raise NotInstalled(missing)
        return [str(PUBSUB_EMULATOR), "--host=127.0.0.1", f"--port={self.port}"]

    def popen_kwargs(self) -> dict[str, object]:
        env = dict(os.environ)
        # Keep the JVM small: the machine is shared with other test runs.
        env.setdefault("JAVA_OPTS", "-Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1")
        return {"env": env}

    def ready(self) -> bool:
        # The emulator answers plain HTTP on its port ("Ok") once its gRPC server is up.
        return http_ok(f"http://127.0.0.1:{self.port}/")

    def env(self) -> dict[str, str]:
        return {"PUBSUB_EMULATOR_HOST": f"127.0.0.1:{self.port}"}


class PubSubStandIn(Service):
    """``tests/support/pubsub_standin.py``: the same gRPC API, in memory, without Java."""

    name = "pubsub"
    kind = " (stand-in)"

    def command(self) -> list[str]:
        # It imports grpcio and google-cloud-pubsub, so prefer the project's virtualenv.
        venv_python = REPO / ".venv" / "bin" / "python"
        python = str(venv_python) if venv_python.exists() else sys.executable
        if not PUBSUB_STANDIN.exists():
            raise NotInstalled(f"the Pub/Sub stand-in {PUBSUB_STANDIN} is missing")
        return [python, str(PUBSUB_STANDIN), "--host=127.0.0.1", f"--port={self.port}"]

    def ready(self) -> bool:
        # It prints its ready line after the gRPC server started listening.
        try:
            return "ready on" in self.log_path.read_text(errors="replace")
        except OSError:
            return False

    def env(self) -> dict[str, str]:
        return {"PUBSUB_EMULATOR_HOST": f"127.0.0.1:{self.port}"}


def pubsub_service(workdir: Path) -> Service:
    """The official emulator, or the stand-in when it is absent or DRIFT_SERVICES_PUBSUB says."""
    choice = os.environ.get("DRIFT_SERVICES_PUBSUB", "auto").strip().lower() or "auto"
    if choice not in ("auto", "emulator", "standin"):
        raise ServiceError(f"DRIFT_SERVICES_PUBSUB={choice!r}: choose auto, emulator or standin")
    if choice == "standin":
        return PubSubStandIn(workdir)
    if choice == "auto":
        missing = pubsub_emulator_missing()
        if missing is not None:
            log(f"{missing}; using the stand-in {PUBSUB_STANDIN.relative_to(REPO)}")
            return PubSubStandIn(workdir)
    return PubSubEmulator(workdir)


class Pushgateway(Service):
    name = "pushgateway"

    def command(self) -> list[str]:
        binary = _which("prometheus-pushgateway", Path("/usr/bin/prometheus-pushgateway"))
        if binary is None:
            raise NotInstalled(
                "prometheus-pushgateway not found; apt-get install prometheus-pushgateway"
            )
        # Debian's build persists to /var/lib/prometheus/pushgateway.data by default, which
        # every gateway on the machine would share (and reload): keep it in the workdir.
        return [
            binary,
            f"--web.listen-address=127.0.0.1:{self.port}",
            f"--persistence.file={self.workdir / 'pushgateway.data'}",
        ]

    def ready(self) -> bool:
        return http_ok(f"http://127.0.0.1:{self.port}/-/ready")

    def env(self) -> dict[str, str]:
        return {"TEST_PUSHGATEWAY_URL": f"http://127.0.0.1:{self.port}"}


class GcsEmulator(Service):
    name = "gcs"

    def command(self) -> list[str]:
        # Prefer the copy next to the running interpreter (the project's virtualenv).
        binary = _which(
            "gcp-storage-emulator",
            Path(sys.executable).parent / "gcp-storage-emulator",
            Path(__file__).resolve().parent.parent / ".venv" / "bin" / "gcp-storage-emulator",
        )
        if binary is None:
            raise NotInstalled(
                "gcp-storage-emulator not found; pip install gcp-storage-emulator "
                "(it is in the project's dev extra)"
            )
        return [binary, "start", "--host=127.0.0.1", f"--port={self.port}", "--in-memory"]

    def ready(self) -> bool:
        return http_ok(f"http://127.0.0.1:{self.port}/storage/v1/b?project=test-project")

    def env(self) -> dict[str, str]:
        return {"STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{self.port}"}


SERVICE_CLASSES: dict[str, Callable[[Path], Service]] = {
    "pg": Postgres,
    "redis": Redis,
    "pubsub": pubsub_service,
    "pushgateway": Pushgateway,
    "gcs": GcsEmulator,
}
# Slowest first so their start-up overlaps with the others'.
START_ORDER = ("pubsub", "gcs", "pushgateway", "redis", "pg")


def parse_only(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return list(ALL_SERVICES)
    names = value.split(",") if isinstance(value, str) else list(value)
    names = [n.strip() for n in names if n.strip()]
    unknown = sorted(set(names) - set(ALL_SERVICES))
    if unknown:
        raise ServiceError(
            f"unknown service(s) {', '.join(unknown)}; choose from {', '.join(ALL_SERVICES)}"
        )
    return names


class ServiceSet:
    """Start a set of services; ``stop()`` stops exactly those and removes the temp dir."""

    def __init__(self, only: str | Sequence[str] | None = None, keep: bool = False) -> None:
        self.names = parse_only(only)
        self.keep = keep
        self.workdir = Path(tempfile.mkdtemp(prefix="drift-services-"))
        self.services: list[Service] = []
        self.env: dict[str, str] = {}
        self.missing: dict[str, str] = {}

    def start(self) -> dict[str, str]:
        started = time.monotonic()
        try:
            for name in START_ORDER:
                if name in self.names:
                    service = SERVICE_CLASSES[name](self.workdir)
                    try:
                        service.spawn()
                    except NotInstalled as exc:
                        # Tests that need it fail with this reason (tests/conftest.py);
                        # everything else can still run.
                        log(f"WARNING: {name} not started: {exc}")
                        self.missing[name] = str(exc)
                        continue
                    self.services.append(service)
            (self.workdir / "pids").write_text(
                "".join(f"{s.name} {s.proc.pid}\n" for s in self.services if s.proc)
            )
            deadline = time.monotonic() + READY_TIMEOUT
            for service in self.services:
                service.wait_ready(deadline)
                self.env.update(service.env())
            if self.missing:
                self.env["DRIFT_SERVICES_MISSING"] = json.dumps(self.missing, sort_keys=True)
        except BaseException:
            self.stop()
            raise
        ready = ", ".join(s.name for s in self.services) or "none"
        log(f"ready in {time.monotonic() - started:.1f}s: {ready}")
        return dict(self.env)

    def dead(self) -> list[Service]:
        return [s for s in self.services if s.proc is not None and not s.alive()]

    def stop(self) -> None:
        # Reverse order; one failure must not leave the others running.
        for service in reversed(self.services):
            try:
                service.stop()
            except Exception as exc:
                log(f"error stopping {service.name}: {exc}")
        self.services = []
        if self.keep:
            log(f"kept {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> dict[str, str]:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def running(only: str | Sequence[str] | None = None) -> Iterator[dict[str, str]]:
    """Context manager: start the services, yield their environment, stop them."""
    services = ServiceSet(only)
    env = services.start()
    try:
        yield env
    finally:
        services.stop()


def write_env_file(path: Path, env: dict[str, str]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(f"{k}={v}\n" for k, v in sorted(env.items())))
    tmp.replace(path)


class _Stop(Exception):
    pass


def _install_stop_handlers() -> Callable[[], None]:
    def handler(signum: int, _frame: object) -> None:
        raise _Stop(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore


def cmd_up(args: argparse.Namespace) -> int:
    services = ServiceSet(args.only, keep=args.keep)
    _install_stop_handlers()
    try:
        env = services.start()
        if args.env_file:
            write_env_file(Path(args.env_file), env)
            log(f"wrote {args.env_file}")
        for key, value in sorted(env.items()):
            print(f"{key}={value}", flush=True)
        log("up; press Ctrl-C (or send SIGTERM) to stop")
        while True:
            time.sleep(1.0)
            dead = services.dead()
            if dead:
                for service in dead:
                    log(f"{service.name} exited unexpectedly; log tail:\n" + tail(service.log_path))
                return 1
    except _Stop as stop:
        log(f"received {stop}; stopping")
        return 0
    except ServiceError as exc:
        log(f"error: {exc}")
        return 1
    finally:
        with contextlib.suppress(_Stop):
            services.stop()
        if args.env_file:
            with contextlib.suppress(OSError):
                Path(args.env_file).unlink()


def cmd_run(args: argparse.Namespace) -> int:
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        log("run needs a command after --")
        return 2
    services = ServiceSet(args.only, keep=args.keep)
    _install_stop_handlers()
    proc: subprocess.Popen[bytes] | None = None
    try:
        env = services.start()
        proc = subprocess.Popen(command, env={**os.environ, **env})
        return proc.wait()
    except _Stop as stop:
        log(f"received {stop}; stopping")
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return 130
    except ServiceError as exc:
        log(f"error: {exc}")
        return 1
    finally:
        with contextlib.suppress(_Stop):
            services.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="start services and stay up until SIGINT/SIGTERM")
    up.add_argument("--env-file", help="write KEY=VALUE lines here (removed on stop)")
    run = sub.add_parser("run", help="start services, run a command with their env, stop")
    run.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    for p in (up, run):
        p.add_argument(
            "--only", help=f"comma-separated subset of {','.join(ALL_SERVICES)} (default: all)"
        )
        p.add_argument("--keep", action="store_true", help="keep the temp dir (logs) on stop")
    args = parser.parse_args(argv)
    try:
        parse_only(args.only)
    except ServiceError as exc:
        parser.error(str(exc))
    return int(cmd_up(args) if args.cmd == "up" else cmd_run(args))


if __name__ == "__main__":
    sys.exit(main())
