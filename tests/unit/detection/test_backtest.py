"""``drift-monitor backtest``: exit codes, the JSON document, bad input, pages on a replay."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from drift_monitor.cli import main

START = np.datetime64("2026-03-01T00:00:00", "s").astype(np.int64)


def rows(n: int, *, other: bool = False, seed: int = 0) -> np.ndarray[Any, Any]:
    """Anisotropic unit vectors; ``other`` puts the mass on other axes (a new kind of traffic)."""
    rng = np.random.default_rng(seed)
    scales = np.linspace(1.0, 0.1, 16)
    x = rng.normal(size=(n, 16)) * (scales[::-1] if other else scales)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def stream(path: Path, hours: int = 12, rate: int = 300, seed: int = 0,
           shifts: tuple[tuple[int, int], ...] = (), ramp: float = 0.0,
           share: float = 1.0) -> Path:  # fmt: skip
    """A replayable stream; from each ``(start, end)`` hour of ``shifts`` a share
    of the rows (growing linearly to ``share`` over ``ramp`` hours) is another kind of traffic."""
    rng = np.random.default_rng(seed)
    n = hours * rate
    seconds = START + np.sort(rng.integers(0, hours * 3600, size=n))
    embeddings = rows(n, seed=seed + 1)
    hour = (seconds - START) / 3600
    for i, (start, end) in enumerate(shifts):
        grown = np.clip((hour - start) / ramp, 0.0, 1.0) if ramp > 0 else 1.0
        live = (hour >= start) & (hour < end) & (rng.random(n) < share * grown)
        embeddings[live] = rows(int(live.sum()), other=True, seed=seed + 2 + i)
    order = rng.permutation(n)  # rows may come in any order
    np.savez(path, embeddings=embeddings[order], timestamps=seconds[order])
    return path


def backtest(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["backtest", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_document_has_the_specified_shape(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = stream(tmp_path / "s.npz")
    code, out, _ = backtest(capsys, str(path), "--model-id", "team/encoder", "--json")
    assert code == 0
    doc = json.loads(out)
    assert set(doc) == {"model_id", "runs", "pages", "summary"}
    assert doc["model_id"] == "team/encoder"
    assert len(doc["runs"]) == 12  # one per hour from the first row's time plus an hour
    for run in doc["runs"]:
        assert set(run) == {"at", "status", "evidence", "threshold"}
        assert run["status"] in ("ok", "drift", "insufficient_data", "error")
        assert run["at"].endswith("Z")
        assert (run["evidence"] is None) == (run["threshold"] is None)
    assert doc["runs"][0]["status"] == "insufficient_data"  # warm-up: no baseline yet
    assert any(r["status"] == "ok" for r in doc["runs"])
    assert doc["summary"] == {
        "runs": 12,
        "drift_runs": sum(r["status"] == "drift" for r in doc["runs"]),
        "triggers": sum(p["action"] == "trigger" for p in doc["pages"]),
        "first_trigger_at": next((p["at"] for p in doc["pages"] if p["action"] == "trigger"), None),
    }
    # nothing written outside the temporary store
    assert os.listdir(tmp_path) == ["s.npz"]


def test_a_complete_change_pages_at_once_and_resolves(tmp_path, capsys):
    path = stream(tmp_path / "s.npz", hours=14, shifts=((8, 11),))
    code, out, _ = backtest(capsys, str(path), "--json", "--every", "60")
    assert code == 0
    doc = json.loads(out)
    actions = [p["action"] for p in doc["pages"]]
    assert actions.count("trigger") == 1 and actions.count("resolve") == 1
    trigger = next(p["at"] for p in doc["pages"] if p["action"] == "trigger")
    assert trigger == "2026-03-01T09:00:00Z" or trigger.startswith("2026-03-01T09:")
    statuses = {r["at"][11:13]: r["status"] for r in doc["runs"]}
    assert statuses["09"] == "drift"
    assert doc["summary"]["first_trigger_at"] == trigger


def _pages(doc: dict[str, Any]) -> list[tuple[str, str]]:
    return [(p["action"], p["at"][8:13]) for p in doc["pages"] if p["action"] != "remind"]


def test_a_shift_that_recurs_after_its_resolve_pages_again(tmp_path, capsys):
    path = stream(tmp_path / "s.npz", hours=26, shifts=((8, 11), (18, 21)))
    code, out, _ = backtest(capsys, str(path), "--json")
    assert code == 0
    # once per shift, at its first run, each resolved after the return
    assert _pages(json.loads(out)) == [
        ("trigger", "01T09"), ("resolve", "01T12"), ("trigger", "01T19"), ("resolve", "01T22"),
    ]  # fmt: skip


def test_a_shift_that_grows_slowly_pages_once_and_stays_open(tmp_path, capsys):
    # the other traffic grows from 0 to 60 % of each hour over 12 hours from hour 8
    path = stream(tmp_path / "s.npz", hours=24, rate=200, shifts=((8, 24),), ramp=12,
                  share=0.6)  # fmt: skip
    code, out, _ = backtest(capsys, str(path), "--json")
    assert code == 0
    doc = json.loads(out)
    pages = _pages(doc)
    assert len(pages) == 1 and pages[0][0] == "trigger"
    paged_at = int(pages[0][1][-2:])
    assert 9 <= paged_at <= 16  # not before the ramp, and before it reached its height
    statuses = [r["status"] for r in doc["runs"] if int(r["at"][11:13]) > paged_at]
    assert statuses and set(statuses) == {"drift"}  # no flapping while it persists


def test_human_summary_and_config_and_schedule(tmp_path, capsys):
    path = stream(tmp_path / "s.npz", hours=6)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"false_alarm_interval_days": 30, "min_samples": 50}))
    code, out, _ = backtest(capsys, str(path), "--config", str(config), "--every", "30")
    assert code == 0
    assert "runs every 30 min" in out and "pages: 0 trigger(s)" in out
    assert "threshold" in out


def test_datetime64_timestamps_are_accepted(tmp_path, capsys):
    path = tmp_path / "s.npz"
    n = 900
    np.savez(
        path,
        embeddings=rows(n),
        timestamps=np.datetime64("2026-03-01T00:00:00") + np.arange(n) * np.timedelta64(12, "s"),
    )
    code, out, _ = backtest(capsys, str(path), "--json")
    assert code == 0 and json.loads(out)["summary"]["runs"] == 3


def test_float_seconds_are_floored_to_whole_seconds(tmp_path, capsys):
    whole = stream(tmp_path / "whole.npz", hours=3)
    with np.load(whole) as archive:
        embeddings, seconds = archive["embeddings"], archive["timestamps"]
    np.savez(tmp_path / "float.npz", embeddings=embeddings, timestamps=seconds + 0.75)
    code_whole, out_whole, _ = backtest(capsys, str(whole), "--json")
    code_float, out_float, _ = backtest(capsys, str(tmp_path / "float.npz"), "--json")
    assert code_whole == code_float == 0
    assert json.loads(out_float) == json.loads(out_whole)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"embeddings": rows(10)}, "missing array 'timestamps'"),
        ({"timestamps": np.arange(10)}, "missing array 'embeddings'"),
        ({"embeddings": rows(10), "timestamps": np.arange(9)}, "timestamps must have shape (10,)"),
        (
            {"embeddings": np.full((10, 16), np.nan), "timestamps": np.arange(10)},
            "NaN or infinite",
        ),
        ({"embeddings": np.zeros((0, 16)), "timestamps": np.arange(0)}, "empty"),
        ({"embeddings": np.zeros(10), "timestamps": np.arange(10)}, "must be 2-D"),
        (
            {"embeddings": rows(10), "timestamps": np.array(["2026-03-01"] * 10)},
            "int64 Unix seconds or datetime64",
        ),
        (
            {"embeddings": rows(10), "timestamps": np.full(10, np.nan)},
            "timestamps contain NaN",
        ),
        (
            {"embeddings": rows(10), "timestamps": (START + np.arange(10)) * 1000},
            "milliseconds? divide by 1000",
        ),
    ],
)
def test_bad_streams_exit_2_with_one_line_and_write_nothing(
    arrays, message, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    np.savez(tmp_path / "bad.npz", **arrays)
    code, out, err = backtest(capsys, "bad.npz", "--json")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and message in err, err
    assert os.listdir(tmp_path) == ["bad.npz"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--every", "0"], "--every must be a positive"),
        (["--model-id", "bad\nid"], "--model-id"),
        (["--config", "missing.json"], "no such file"),
    ],
)
def test_bad_options_exit_2(extra, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = stream(tmp_path / "s.npz", hours=1, rate=50)
    code, _, err = backtest(capsys, str(path), *extra)
    assert code == 2 and err.count("\n") == 1 and message in err, err


def test_bad_config_exits_2_naming_the_field(tmp_path, capsys):
    path = stream(tmp_path / "s.npz", hours=1, rate=50)
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"false_alarm_interval_days": 0}))
    code, _, err = backtest(capsys, str(path), "--config", str(config))
    assert code == 2 and "false_alarm_interval_days" in err and err.count("\n") == 1
    config.write_text("[1, 2]")
    code, _, err = backtest(capsys, str(path), "--config", str(config))
    assert code == 2 and "JSON object" in err


def test_missing_and_unreadable_files_exit_2(tmp_path, capsys):
    code, _, err = backtest(capsys, str(tmp_path / "nope.npz"))
    assert code == 2 and "no such file" in err
    (tmp_path / "text.npz").write_text("not a zip")
    code, _, err = backtest(capsys, str(tmp_path / "text.npz"))
    assert code == 2 and "not a readable .npz" in err


def test_rows_are_batched_within_the_request_limits(tmp_path, capsys, monkeypatch):
    """A stream denser than BATCH_SIZE or MAX_REQUEST_BYTES per batch is split, not refused."""
    monkeypatch.setenv("BATCH_SIZE", "50")
    monkeypatch.setenv("MAX_REQUEST_BYTES", "4096")  # 4096 bytes: 47 rows of 16 float32
    path = stream(tmp_path / "s.npz", hours=3, rate=300)
    code, out, err = backtest(capsys, str(path), "--json")
    assert code == 0, err
    assert json.loads(out)["summary"]["runs"] == 3


def test_report_draws_a_backtest(tmp_path, capsys):
    path = stream(tmp_path / "s.npz", hours=14, shifts=((8, 11),))
    code, out, _ = backtest(capsys, str(path), "--json")
    assert code == 0
    (tmp_path / "bt.json").write_text(out)
    assert main(["report", "--backtest", str(tmp_path / "bt.json"), "--out",
                 str(tmp_path / "bt.png")]) == 0  # fmt: skip
    assert (tmp_path / "bt.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (tmp_path / "bad.json").write_text("{}")
    assert main(["report", "--backtest", str(tmp_path / "bad.json")]) == 2
    assert "not a backtest document" in capsys.readouterr().err
