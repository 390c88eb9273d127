"""A real Prometheus server (Debian's ``prometheus``) on a free loopback port, for tests.

    with PrometheusServer(targets={"gateway": "127.0.0.1:9091"}, rule_files=[...]) as prom:
        prom.wait_for_scrapes()
        prom.query("sum(drift_monitor_ingest_latency_seconds_count)")

Targets are scraped every second with ``honor_labels: true`` (what a Pushgateway needs).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from support.processes import stop_process

SCRAPE_INTERVAL_SECONDS = 1


def prometheus_binary() -> str | None:
    return shutil.which("prometheus") or (
        "/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PrometheusServer:
    """Start Prometheus scraping ``targets`` (job name -> ``host:port[/path]``).

    A target ``"127.0.0.1:5000/metrics"`` scrapes that path; a bearer token may be given per
    job in ``tokens``.
    """

    def __init__(
        self,
        targets: Mapping[str, str],
        rule_files: Sequence[Path] = (),
        tokens: Mapping[str, str] | None = None,
    ) -> None:
        binary = prometheus_binary()
        if binary is None:
            raise FileNotFoundError("prometheus not found; apt-get install prometheus")
        self.binary = binary
        self.targets = dict(targets)
        self.rule_files = [Path(p).resolve() for p in rule_files]
        self.tokens = dict(tokens or {})
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._dir = Path(tempfile.mkdtemp(prefix="drift-prometheus-"))
        self._process: subprocess.Popen[bytes] | None = None

    def config(self) -> dict[str, Any]:
        jobs = []
        for job, target in self.targets.items():
            host, _, path = target.partition("/")
            entry: dict[str, Any] = {
                "job_name": job,
                "honor_labels": True,
                "metrics_path": f"/{path}" if path else "/metrics",
                "static_configs": [{"targets": [host]}],
            }
            if job in self.tokens:
                entry["authorization"] = {"type": "Bearer", "credentials": self.tokens[job]}
            jobs.append(entry)
        return {
            "global": {
                "scrape_interval": f"{SCRAPE_INTERVAL_SECONDS}s",
                "evaluation_interval": f"{SCRAPE_INTERVAL_SECONDS}s",
            },
            "rule_files": [str(p) for p in self.rule_files],
            "scrape_configs": jobs,
        }

    def __enter__(self) -> PrometheusServer:
        config = self._dir / "prometheus.yml"
        config.write_text(yaml.safe_dump(self.config()))
        self._process = subprocess.Popen(
            [
                self.binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={self._dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(self._dir / "prometheus.log").open("wb"),
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"prometheus exited: {self.log()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        self.__exit__(None, None, None)
        raise RuntimeError(f"prometheus did not become ready: {self.log()[-2000:]}")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stop_process(self._process)
        shutil.rmtree(self._dir, ignore_errors=True)

    def log(self) -> str:
        path = self._dir / "prometheus.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as response:
            body = json.loads(response.read())
        if body.get("status") != "success":
            raise RuntimeError(f"{path} {params}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; the result's samples (vector) or a one-element list (scalar)."""
        data = self.api("query", query=expr)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def wait_for_scrapes(self, count: int = 3, timeout: float = 60.0) -> None:
        """Wait until every target has been scraped successfully ``count`` times."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ups = self.query("sum_over_time(up[5m])")
            if len(ups) == len(self.targets) and all(float(s["value"][1]) >= count for s in ups):
                return
            time.sleep(0.5)
        raise TimeoutError(f"targets not scraped {count} times: {self.api('targets')}")

    def wait_for_value(self, expr: str, expected: float, timeout: float = 30.0) -> float:
        """Poll an instant query until its single value equals ``expected``; return it."""
        deadline = time.monotonic() + timeout
        got: float | None = None
        while time.monotonic() < deadline:
            result = self.query(expr)
            if len(result) == 1:
                got = float(result[0]["value"][1])
                if got == expected:
                    return got
            time.sleep(0.5)
        raise AssertionError(f"{expr}: expected {expected}, last value {got}")


class PushgatewayServer:
    """A private ``prometheus-pushgateway`` on a free loopback port (nothing pushed before)."""

    def __init__(self) -> None:
        binary = shutil.which("prometheus-pushgateway") or "/usr/bin/prometheus-pushgateway"
        if not Path(binary).exists():
            raise FileNotFoundError("prometheus-pushgateway not found")
        self.binary = binary
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PushgatewayServer:
        # Debian's default persistence file is shared by every gateway on the machine.
        self._dir = Path(tempfile.mkdtemp(prefix="drift-pushgateway-"))
        self._process = subprocess.Popen(
            [
                self.binary,
                f"--web.listen-address=127.0.0.1:{self.port}",
                f"--persistence.file={self._dir / 'pushgateway.data'}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1):
                    return self
            except OSError:
                time.sleep(0.1)
        self.__exit__(None, None, None)
        raise RuntimeError("prometheus-pushgateway did not become ready")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stop_process(self._process)
        shutil.rmtree(self._dir, ignore_errors=True)
