"""drift-monitor compare: output, exit statuses and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from drift_monitor.cli import main


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(300, 12)).astype(np.float32)
    same = rng.normal(size=(200, 12)).astype(np.float32)
    shifted = same + np.float32(1.0)
    out = {}
    for name, arr in (("ref", ref), ("same", same), ("shifted", shifted)):
        out[name] = tmp_path / f"{name}.npy"
        np.save(out[name], arr)
    out["wrong_dim"] = tmp_path / "wrong_dim.npy"
    np.save(out["wrong_dim"], ref[:, :5])
    out["rank1"] = tmp_path / "rank1.npy"
    np.save(out["rank1"], ref[0])
    out["nan"] = tmp_path / "nan.npy"
    bad = same.copy()
    bad[5, 2] = np.nan
    np.save(out["nan"], bad)
    out["text"] = tmp_path / "notes.npy"
    out["text"].write_text("not an array\n")
    out["strings"] = tmp_path / "strings.npy"
    np.save(out["strings"], np.array([["a", "b"], ["c", "d"]]))
    return out


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["compare", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_no_drift_exit_zero_and_json(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = _run(capsys, str(files["ref"]), str(files["same"]), "--json", "--seed", "3")
    assert status == 0 and err == ""
    report = json.loads(out)
    assert report["drift_detected"] is False
    assert report["n_reference"] == 300 and report["n_current"] == 200 and report["dimension"] == 12
    assert set(report["tests"]) == {"ad", "mmd", "novelty"}
    for t in report["tests"].values():
        assert {"statistic", "p_value", "drift"} <= set(t)
    assert "quality" in report and report["seed"] == 3


def test_drift_exit_zero_without_flag_and_three_with_it(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = _run(capsys, str(files["ref"]), str(files["shifted"]))
    assert status == 0
    assert out.startswith("DRIFT")
    assert "top dimensions" in out
    status, _, _ = _run(capsys, str(files["ref"]), str(files["shifted"]), "--fail-on-drift")
    assert status == 3
    status, _, _ = _run(capsys, str(files["ref"]), str(files["same"]), "--fail-on-drift")
    assert status == 0


def test_selected_tests_and_alpha(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = _run(
        capsys,
        str(files["ref"]),
        str(files["shifted"]),
        "--tests",
        "ks,psi,kl,cosine",
        "--alpha",
        "0.01",
        "--json",
    )
    report = json.loads(out)
    assert status == 0
    assert list(report["tests"]) == ["ks", "psi", "kl", "cosine"]
    assert report["alpha"] == 0.01
    assert report["tests"]["ks"]["level"] == pytest.approx(0.01 / 2)
    assert report["tests"]["kl"]["p_value"] is None


@pytest.mark.parametrize(
    ("current", "message"),
    [
        ("missing", "does not exist"),
        ("text", "not a .npy file"),
        ("rank1", "expected (rows, dimension)"),
        ("wrong_dim", "does not match the reference dimension"),
        ("nan", "NaN"),
        ("strings", "expected numbers"),
    ],
)
def test_bad_files_give_one_line_and_exit_two(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], current: str, message: str
) -> None:
    path = files.get(current, files["ref"].parent / "missing.npy")
    status, out, err = _run(capsys, str(files["ref"]), str(path))
    assert status == 2
    assert out == ""
    assert err.count("\n") == 1 and message in err


def test_bad_options_exit_two(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = _run(capsys, str(files["ref"]), str(files["same"]), "--tests", "ks,nope")
    assert status == 2 and "unknown test" in err
    status, _, err = _run(capsys, str(files["ref"]), str(files["same"]), "--alpha", "2")
    assert status == 2 and "--alpha" in err


def test_console_command_in_a_subprocess(files: dict[str, Path]) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "drift_monitor.cli",
            "compare",
            str(files["ref"]),
            str(files["shifted"]),
            "--json",
            "--fail-on-drift",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 3, proc.stderr
    assert json.loads(proc.stdout)["drift_detected"] is True


def test_no_drift_verdict_is_said_once_and_explain_adds_a_legend(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = _run(capsys, str(files["ref"]), str(files["same"]), "--explain")
    assert status == 0
    first = out.splitlines()[0]
    assert first.startswith("no drift") and first.count("no drift") == 1
    legend = out[out.index("legend:") :]
    for word in ("kl_divergence", "psi", "floor", "effect", "D ", "[lo, hi]"):
        assert word in legend
    _, plain, _ = _run(capsys, str(files["ref"]), str(files["same"]))
    assert "legend:" not in plain


def test_help_lists_exit_statuses_and_version_is_printed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["compare", "--help"])
    assert raised.value.code == 0
    out = capsys.readouterr().out
    assert "exit status:" in out
    for code in ("0", "2", "3"):
        assert f"\n  {code}  " in out
    with pytest.raises(SystemExit) as raised:
        main(["--version"])
    assert raised.value.code == 0
    assert capsys.readouterr().out.startswith("drift-monitor 0.")
