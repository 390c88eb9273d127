"""The deployed functions log inside the caller's trace (functions/main.py)."""

from __future__ import annotations

from typing import Any

from drift_monitor import logs
from support.logcapture import json_lines

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_ingest_function_lines_carry_the_trace(ingest_client: Any) -> None:
    with json_lines() as entries:
        response = ingest_client.post(
            "/",
            data=b"{",
            content_type="application/json",
            headers={"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"},
        )
    assert response.status_code == 400
    rejected = [e for e in entries if str(e["message"]).startswith("ingest rejected")]
    assert rejected and rejected[0][logs.TRACE].endswith(f"/traces/{TRACE}")
    assert rejected[0][logs.SPAN] == "00f067aa0ba902b7"
