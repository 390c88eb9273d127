"""``drift-monitor report``: PNG and HTML from the stored history."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from api_support import API, NOW, Api
from drift_monitor.cli import main
from drift_monitor.service.detection import DetectionOutcome, Window, result_row

pytest.importorskip("matplotlib")


def fill_history(api: Api) -> None:
    monitor = api.container.monitor
    assert monitor is not None
    for i, (status, kl, p) in enumerate(
        [("ok", 0.02, 0.4), ("drift", 0.4, 1e-9), ("drift", 0.5, 1e-12), ("ok", 0.03, 0.3),
         ("insufficient_data", None, None)]
    ):  # fmt: skip
        at = NOW - timedelta(hours=5 - i)
        report = None
        if kl is not None:
            report = {
                "drift_detected": status == "drift",
                "tests": {"ks": {"statistic": kl / 2, "p_value": p, "drift": status == "drift"},
                          "psi": {"statistic": kl * 1.5, "p_value": None, "drift": False}},
                "kl_divergence": kl,
                "top_dimensions": [{"dimension": d, "statistic": 0.5 - d / 100} for d in range(12)],
            }  # fmt: skip
        outcome = DetectionOutcome(
            model_id="org/encoder", status=status, checked_at=at,
            current=Window(at - timedelta(hours=1), at), report=report,
        )  # fmt: skip
        monitor.add_result(result_row(outcome))


def test_png_and_html(seeded: Api, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fill_history(seeded)
    data_dir = str(seeded.container.settings.data_dir)
    png = tmp_path / "r.png"
    assert main(["report", "org/encoder", "--out", str(png), "--data-dir", data_dir]) == 0
    assert png.read_bytes().startswith(b"\x89PNG")
    assert 10_000 < png.stat().st_size < 300_000
    page = tmp_path / "r.html"
    assert main(["report", "org/encoder", "--out", str(page), "--data-dir", data_dir]) == 0
    text = page.read_text()
    assert "id='status-band'" in text and text.count("<rect") >= 5
    assert "wrote" in capsys.readouterr().out


def test_html_flag_writes_the_served_page(
    seeded: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill_history(seeded)
    monkeypatch.chdir(tmp_path)
    data_dir = str(seeded.container.settings.data_dir)
    assert main(["report", "org/encoder", "--html", "--data-dir", data_dir]) == 0
    written = (tmp_path / "org_encoder.html").read_text()
    served = seeded.client.get("/drift/report/org/encoder", headers=API).get_data(as_text=True)
    # the same page, apart from the generation time line
    strip = re.compile(r"Generated [^<]* UTC from")
    assert strip.sub("", written) == strip.sub("", served)
    assert main(["report", "org/encoder", "--html", "--out", "x.png",
                 "--data-dir", data_dir]) == 2  # fmt: skip
    assert main(["report", "org/encoder", "--data-dir", data_dir]) == 2  # neither --out nor --html


def test_errors(seeded: Api, tmp_path: Path) -> None:
    data_dir = str(seeded.container.settings.data_dir)
    assert main(["report", "org/encoder", "--out", str(tmp_path / "x.gif"),
                 "--data-dir", data_dir]) == 2  # fmt: skip
    assert main(["report", "org/encoder", "--out", str(tmp_path / "x.png"),
                 "--data-dir", data_dir]) == 1  # fmt: skip
    assert main(["report", "m", "--out", str(tmp_path / "x.png"),
                 "--data-dir", str(tmp_path / "none")]) == 2  # fmt: skip
    assert not (tmp_path / "none").exists()
