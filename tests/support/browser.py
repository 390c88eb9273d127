"""Headless Debian ``chromium`` driven over the DevTools protocol (no extra browser package).

    with Chromium() as browser:
        page = browser.open("http://127.0.0.1:5000/x", headers={"Authorization": "Bearer k"})
        page.errors            # console errors, exceptions, CSP and network failures
        page.evaluate("document.title")
        page.screenshot()      # PNG bytes of the whole page

Each browser gets a fresh ``--user-data-dir`` and never talks to anything but loopback.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from websockets.sync.client import ClientConnection, connect

from support.processes import stop_process

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-extensions",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)


def chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Page:
    """One tab: DevTools commands and the error events seen since it opened."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.errors: list[str] = []
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, timeout: float = 30.0, **params: Any) -> dict[str, Any]:
        ident = next(self.ids)
        self.ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = json.loads(self.ws.recv(timeout=max(deadline - time.monotonic(), 0.01)))
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            self._event(message)
        raise TimeoutError(method)

    def wait_for(self, event: str, timeout: float = 30.0) -> dict[str, Any]:
        for seen in self.events:
            if seen.get("method") == event:
                return seen
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = json.loads(self.ws.recv(timeout=max(deadline - time.monotonic(), 0.01)))
            self._event(message)
            if message.get("method") == event:
                return message
        raise TimeoutError(event)

    def _event(self, message: dict[str, Any]) -> None:
        self.events.append(message)
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            self.errors.append(f"console: {params.get('args')}")
        elif method == "Runtime.exceptionThrown":
            self.errors.append(f"exception: {params.get('exceptionDetails')}")
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            self.errors.append(f"log: {params['entry'].get('text')}")
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            self.errors.append(f"network: {params.get('errorText')}")

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"])
        return result["result"].get("value")

    def screenshot(self) -> bytes:
        size = self.send("Page.getLayoutMetrics")["cssContentSize"]
        shot = self.send(
            "Page.captureScreenshot",
            format="png",
            captureBeyondViewport=True,
            clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
        )
        return base64.b64decode(shot["data"])


class Chromium:
    def __init__(self, width: int = 1100, height: int = 900) -> None:
        binary = chromium_binary()
        if binary is None:
            raise FileNotFoundError("chromium not found; apt-get install chromium")
        self.binary = binary
        self.width, self.height = width, height
        self._dir = Path(tempfile.mkdtemp(prefix="drift-chromium-"))
        self._process: subprocess.Popen[str] | None = None
        self._stack = contextlib.ExitStack()  # the tabs' connections
        self.port = 0

    def __enter__(self) -> Chromium:
        self._process = subprocess.Popen(
            [self.binary, *FLAGS, f"--user-data-dir={self._dir}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self._process.stderr is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self._process.stderr.readline()
            if not line and self._process.poll() is not None:
                break
            match = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
            if match:
                self.port = int(match.group(1))
                # keep reading, or a chatty browser would block on a full pipe
                stderr = self._process.stderr
                threading.Thread(target=stderr.read, daemon=True).start()
                return self
        self.__exit__(None, None, None)
        raise RuntimeError("chromium did not start its DevTools endpoint")

    def open(self, url: str, headers: dict[str, str] | None = None) -> Page:
        """A new tab that loads ``url`` (with extra request headers) and waits for load."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/json/new?about:blank", method="PUT"
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            target = json.loads(response.read())
        ws = self._stack.enter_context(
            connect(target["webSocketDebuggerUrl"], max_size=64 * 1024 * 1024)
        )
        page = Page(ws)
        for domain in ("Page", "Runtime", "Log", "Network"):
            page.send(f"{domain}.enable")
        if headers:
            page.send("Network.setExtraHTTPHeaders", headers=headers)
        page.send(
            "Emulation.setDeviceMetricsOverride",
            width=self.width,
            height=self.height,
            deviceScaleFactor=1,
            mobile=False,
        )
        page.events.clear()
        page.send("Page.navigate", url=url)
        page.wait_for("Page.loadEventFired")
        return page

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stack.close()
        stop_process(self._process, grace=15)
        shutil.rmtree(self._dir, ignore_errors=True)
