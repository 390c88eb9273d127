"""The README's tour, run word for word against a real ``drift-monitor serve``.

README.md is this test's input: every ```bash block of the "A tour" section is extracted and
run in order by bash from the repository root, with only the port changed, so the tour and
the product cannot drift apart. The last block must print a real verdict.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
TOUR_URL = "http://127.0.0.1:8080"


def section(text: str, title: str) -> str:
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def bash_blocks(markdown: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", markdown, re.S)


def test_quick_start_is_two_commands() -> None:
    (block,) = bash_blocks(section(README.read_text(), "Quick start"))
    commands = [line for line in block.splitlines() if line.strip()]
    assert [c.split()[0] for c in commands] == ["./scripts/serve", "./scripts/test"]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DRIFT_MONITOR_", "DATABASE"))}
    for name in ("REDIS_URL", "PROMETHEUS_GATEWAY", "PAGERDUTY_ROUTING_KEY"):
        env.pop(name, None)
    process = subprocess.Popen(
        [sys.executable, "-m", "drift_monitor.cli", "serve", "--port", "0",
         "--data-dir", str(tmp_path / "data")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    base = None
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        match = re.search(r"serving on (http://[\d.]+:\d+)", line)
        if match:
            base = match.group(1)
            break
    if base is None:
        process.kill()
        raise AssertionError("drift-monitor serve did not start")
    drain = threading.Thread(target=lambda: [None for _ in process.stdout or ()], daemon=True)
    drain.start()
    try:
        yield base
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.mark.timeout(300)
def test_the_readme_tour_runs_word_for_word_and_ends_with_a_verdict(served: str) -> None:
    if shutil.which("curl") is None:
        pytest.skip("the tour uses curl, which is not installed")
    blocks = bash_blocks(section(README.read_text(), "A tour"))
    assert len(blocks) >= 3, "the tour lost its commands"
    outputs = []
    for block in blocks:
        assert TOUR_URL in block, f"a tour block does not talk to {TOUR_URL}:\n{block}"
        script = block.replace(TOUR_URL, served)
        if not (REPO / ".venv/bin/python").exists():  # tests run from another environment
            script = script.replace(".venv/bin/python", sys.executable)
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=REPO, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert result.returncode == 0, (
            f"{block}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        )
        assert '"error"' not in result.stdout, result.stdout
        outputs.append(result.stdout)
    assert '"accepted":2' in outputs[0]
    verdict = outputs[-1].strip().splitlines()[-1]
    assert re.match(r"drift drift_detected=True kl_divergence=\d+\.\d{4} \[", verdict), verdict
