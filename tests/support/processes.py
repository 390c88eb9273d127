"""Stopping the child processes tests start (servers, browsers)."""

from __future__ import annotations

import subprocess
from typing import Any


def stop_process(process: subprocess.Popen[Any] | None, *, grace: float = 10.0) -> None:
    """Terminate ``process`` if it still runs; kill it if it has not exited after ``grace``
    seconds. Only ever called on processes the test itself started."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
