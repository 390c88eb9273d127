"""The README's backtest example, run word for word: the README is this test's input."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[2]
SECTION = "What would have paged? `drift-monitor backtest`"


def test_readme_backtest_commands_page_the_shift_once(tmp_path: Path) -> None:
    text = (REPO / "README.md").read_text()
    start = text.index(f"\n## {SECTION}\n")
    end = text.index("\n## ", start + 1)
    (block,) = re.findall(r"```bash\n(.*?)```", text[start:end], re.S)
    script = block.replace("/tmp/", f"{tmp_path}/")
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "model demo: 96 runs every 60 min" in out
    # the README's claim: one trigger, two hours after the change at 2026-01-04T00:00
    assert re.search(r"pages: 1 trigger\(s\), first at 2026-01-04T0[1-2]:", out), out
    assert "evidence (log10): max" in out
