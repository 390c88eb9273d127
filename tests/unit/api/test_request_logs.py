"""Request lines of ``drift-monitor serve``: httpRequest fields and the caller's trace."""

from __future__ import annotations

from api_support import API, Api
from drift_monitor import logs
from support.logcapture import json_lines

TRACE = "0af7651916cd43dd8448eb211c80319c"


def test_request_line_has_http_request_and_trace(api: Api) -> None:
    headers = {**API, "X-Cloud-Trace-Context": f"{TRACE}/42;o=1", "User-Agent": "probe/1"}
    with json_lines() as entries:
        response = api.client.post(
            "/models/org/encoder/config", json={"min_samples": 5}, headers=headers
        )
    assert response.status_code == 403  # the API key may not change configuration
    request_lines = [e for e in entries if "httpRequest" in e]
    assert len(request_lines) == 1
    (line,) = request_lines
    assert line["message"] == "POST /models/org/encoder/config 403"
    http = line["httpRequest"]
    assert http["requestMethod"] == "POST" and http["status"] == 403
    assert http["requestUrl"] == "/models/org/encoder/config"
    assert http["userAgent"] == "probe/1" and http["latency"].endswith("s")
    project = api.container.settings.google_cloud_project
    assert line[logs.TRACE] == f"projects/{project}/traces/{TRACE}"
    assert line[logs.SPAN] == format(42, "016x")
    # every line of the request carries it, and none after it
    assert all(e.get(logs.TRACE) == line[logs.TRACE] for e in entries)
    with json_lines() as after:
        api.client.get("/healthz")
    assert logs.TRACE not in after[-1] and after[-1]["httpRequest"]["status"] == 200
