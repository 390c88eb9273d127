"""A new user's first run: the serve port hint, the demo leaving the checkout clean."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from support.modules import load_file

REPO = Path(__file__).resolve().parents[2]


def test_serve_on_a_port_in_use_says_how_to_pick_another(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "drift_monitor.cli", "serve", "--port", str(port),
             "--data-dir", str(tmp_path / "data"), "--detect-every", "0"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    (line,) = [x for x in result.stderr.splitlines() if "error" in x]
    assert f"port {port}" in line and "in use" in line
    assert f"PORT={port + 1} ./scripts/serve" in line and "Traceback" not in result.stderr


def test_demo_draws_outside_the_checkout_unless_asked() -> None:
    demo = load_file("demo", REPO / "scripts" / "demo.py")
    default = demo.build_parser().parse_args([]).out.resolve()
    assert REPO not in default.parents, default
    asked = demo.build_parser().parse_args(["--out", "docs/images/demo-report.png"]).out
    assert asked == Path("docs/images/demo-report.png")


def test_serve_stops_at_start_up_on_a_configuration_error(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "DRIFT_MONITOR_ENV": "production",
        "DRIFT_MONITOR_API_KEY": "k" * 20,
        "PAGERDUTY_ROUTING_KEY": "0123456789abcdef0123456789abcdef",
        "PAGERDUTY_EVENTS_URL": "https://127.0.0.1:9/v2/enqueue",
    }
    result = subprocess.run(
        [sys.executable, "-m", "drift_monitor.cli", "serve", "--port", "0",
         "--data-dir", str(tmp_path / "data")],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "drift-monitor serve: error: PAGERDUTY_EVENTS_URL='https://127.0.0.1:9/v2/enqueue' "
        "resolves to the loopback address 127.0.0.1, refused in production"
    ]
    assert not (tmp_path / "data").exists()
