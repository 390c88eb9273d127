"""Trace correlation and httpRequest fields on log lines; one-line CLI errors."""

from __future__ import annotations

import json
import logging

import pytest
from drift_monitor import logs
from drift_monitor.cli import main
from support.logcapture import json_lines

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_traceparent_gives_trace_span_and_sampling() -> None:
    got = logs.trace_fields({"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"}, "proj")
    assert got == {
        logs.TRACE: f"projects/proj/traces/{TRACE}",
        logs.SPAN: "00f067aa0ba902b7",
        logs.SAMPLED: True,
    }
    unsampled = logs.trace_fields({"traceparent": f"00-{TRACE}-00f067aa0ba902b7-00"}, "proj")
    assert unsampled[logs.SAMPLED] is False


def test_cloud_trace_context_span_is_decimal_and_becomes_hex() -> None:
    got = logs.trace_fields({"X-Cloud-Trace-Context": f"{TRACE.upper()}/1;o=1"}, "proj")
    assert got == {
        logs.TRACE: f"projects/proj/traces/{TRACE}",
        logs.SPAN: "0000000000000001",
        logs.SAMPLED: True,
    }
    assert logs.trace_fields({"X-Cloud-Trace-Context": TRACE}, "p") == {
        logs.TRACE: f"projects/p/traces/{TRACE}"
    }


def test_traceparent_wins_and_malformed_headers_are_ignored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    both = {
        "traceparent": f"00-{TRACE}-00f067aa0ba902b7-01",
        "X-Cloud-Trace-Context": "0af7651916cd43dd8448eb211c80319c/7",
    }
    assert logs.trace_fields(both, "p")[logs.SPAN] == "00f067aa0ba902b7"
    for bad in (
        {"traceparent": "00-short-00f067aa0ba902b7-01"},
        {"traceparent": f"00-{'0' * 32}-00f067aa0ba902b7-01"},
        {"X-Cloud-Trace-Context": "not-a-trace"},
        {"X-Cloud-Trace-Context": f"{TRACE}/x;o=1"},
        {},
    ):
        assert logs.trace_fields(bad, "p") == {}, bad
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    no_project = logs.trace_fields({"X-Cloud-Trace-Context": f"{TRACE}/5"})
    assert logs.TRACE not in no_project and no_project[logs.SPAN] == "0000000000000005"


def test_every_line_inside_a_request_context_carries_the_trace() -> None:
    import logging

    with json_lines() as entries:
        with logs.request_context({"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"}, "proj"):
            logs.log("INFO", "inside")
            logging.getLogger("drift_monitor.anything").warning("stdlib inside")
        logs.log("INFO", "outside")
    inside, stdlib, outside = entries
    assert inside[logs.TRACE] == stdlib[logs.TRACE] == f"projects/proj/traces/{TRACE}"
    assert logs.TRACE not in outside


def test_http_request_fields() -> None:
    got = logs.http_request(
        method="POST", url="/embeddings/batch?x=1", status=202, latency_seconds=0.0123,
        response_size=57, user_agent="curl/8", remote_ip="127.0.0.1", protocol="HTTP/1.1",
    )  # fmt: skip
    assert got == {
        "requestMethod": "POST",
        "requestUrl": "/embeddings/batch?x=1",
        "status": 202,
        "latency": "0.012300s",
        "responseSize": "57",
        "userAgent": "curl/8",
        "remoteIp": "127.0.0.1",
        "protocol": "HTTP/1.1",
    }


def test_cli_errors_are_one_line_without_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert main(["rebuild-stats", "some/model"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("drift-monitor rebuild-stats: error: REDIS_URL is required")
    with pytest.raises(RuntimeError, match="REDIS_URL"):
        main(["--traceback", "rebuild-stats", "some/model"])


def test_logs_follow_the_current_stderr_after_it_was_swapped(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A handler configured while one stderr was active must not write to it once it is gone
    (a closed stream made logging print its own error instead of the JSON line)."""
    import io
    import sys

    from drift_monitor import logs

    old = sys.stderr
    first = io.StringIO()
    sys.stderr = first
    try:
        logs.configure()
        first.close()
        second = io.StringIO()
        sys.stderr = second
        logs.configure()
        logs.log("INFO", "after the swap", n=1)
        lines = [line for line in second.getvalue().splitlines() if "after the swap" in line]
    finally:
        sys.stderr = old
    assert len(lines) == 1
    assert json.loads(lines[0])["message"] == "after the swap"
    logs.configure()
    json_handlers = [h for h in logging.getLogger("drift_monitor").handlers
                     if isinstance(h.formatter, logs.JsonFormatter)]  # fmt: skip
    assert len(json_handlers) == 1  # idempotent
