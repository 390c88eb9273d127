"""The HTML drift report renders in a real browser: Debian's headless ``chromium`` loads
``GET /drift/report/{model_id}`` and ``GET /`` from ``drift-monitor serve`` after a drift
scenario, with the API key in the request header like any client.

Asserts: no console error, exception, blocked resource or failed request (the page's CSP
forbids any external asset, so one would show up here); the verdict, the status band with its
alert marker and dated axis, the tests table and the histograms are present and laid out.
``DRIFT_MONITOR_SCREENSHOT=path.png`` also saves the screenshot (docs/images/drift-report.png
was made that way).
"""

from __future__ import annotations

import io
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from support.browser import Chromium, chromium_binary
from support.fixtures import pagerduty_receiver  # noqa: F401
from support.receiver import Receiver
from test_drift_alerting import ADMIN_KEY, API, Served, drifted, traffic

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def drift_scenario(served: Served, model: str) -> None:
    """Baseline, one run without drift, then two in drift (one alert)."""
    nouns, verbs = traffic()
    now = datetime.now(UTC)
    served.send(model, nouns[:600], now - timedelta(hours=2))
    served.call("POST", f"/models/{model}/config", {
        "current_window_minutes": 0.2, "min_samples": 100,
    }, key=ADMIN_KEY)  # fmt: skip
    served.call("POST", f"/models/{model}/baseline", {
        "start": (now - timedelta(hours=3)).isoformat(),
        "end": (now - timedelta(hours=1)).isoformat(),
    }, key=ADMIN_KEY)  # fmt: skip
    served.send(model, nouns[600:900], datetime.now(UTC))
    assert served.check(model)["status"] == "ok"
    time.sleep(13)  # a fresh 12-second current window
    served.send(model, drifted(verbs[:300]), datetime.now(UTC))
    assert served.check(model)["status"] == "drift"
    assert served.check(model)["status"] == "drift"  # still drifting: no second alert


@pytest.mark.timeout(300)
def test_report_renders_in_headless_chromium(
    tmp_path: Path,
    pagerduty_receiver: Receiver,  # noqa: F811
) -> None:
    if chromium_binary() is None:
        pytest.skip("chromium not found; apt-get install chromium (scripts/test installs it)")
    model = "demo/encoder"
    served = Served(tmp_path / "data", pagerduty_receiver)
    try:
        drift_scenario(served, model)
        with Chromium(width=1100, height=900) as browser:
            page = browser.open(f"{served.base}/drift/report/{quote(model)}", headers=API)
            assert page.errors == []
            assert page.evaluate("document.title") == f"Drift report: {model}"
            verdict = page.evaluate("document.querySelector('#verdict').innerText")
            assert verdict.startswith("DRIFT") and "found a change" in verdict
            band = page.evaluate(
                "(() => { const s = document.querySelector('#status-band');"
                " const r = s.getBoundingClientRect();"
                " return {rects: s.querySelectorAll('rect').length,"
                " markers: s.querySelectorAll('.alert-marker').length,"
                " width: r.width, texts: [...s.querySelectorAll('text')]"
                ".map(t => t.textContent)} })()"
            )
            assert band["rects"] == 3 and band["markers"] == 1 and band["width"] > 600
            today = datetime.now(UTC).strftime("%Y-%m-%d")
            assert today in band["texts"]
            rows = page.evaluate("document.querySelectorAll('#tests tr').length")
            tests = served.call("GET", f"/drift/status/{model}")["tests"]
            assert rows == 1 + len(tests) >= 2  # header + one row per test of the latest run
            assert page.evaluate("document.querySelectorAll('svg.histogram').length") >= 1
            assert page.evaluate("document.querySelector('#quality') !== null")
            shot = page.screenshot()

            home = browser.open(f"{served.base}/", headers=API)
            assert home.errors == []
            links = home.evaluate("[...document.querySelectorAll('a')].map(a => a.pathname)")
            assert f"/drift/report/{model}" in links and "/openapi.yaml" in links
    finally:
        served.stop()
    assert shot.startswith(b"\x89PNG")
    import matplotlib.image

    pixels = matplotlib.image.imread(io.BytesIO(shot), format="png")
    height, width = pixels.shape[:2]
    assert width >= 1000 and height > 900  # the whole page (less a scrollbar), past one screen
    # rendered, not blank: the band's green and the verdict's red are on the picture
    rgb = (pixels[..., :3] * 255).round()
    assert ((abs(rgb - [46, 125, 50]).sum(axis=-1)) < 10).sum() > 1000
    assert ((abs(rgb - [198, 40, 40]).sum(axis=-1)) < 10).sum() > 50
    target = os.environ.get("DRIFT_MONITOR_SCREENSHOT")
    if target:
        Path(target).write_bytes(shot)
