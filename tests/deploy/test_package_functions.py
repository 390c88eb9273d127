"""scripts/package_functions.py builds archives that deploy: reproducible, complete, installable.

The install test makes a fresh virtual environment, lets pip resolve the archive's
requirements.txt offline (the pinned third-party packages are found through a .pth file that
points at this project's environment, so nothing is downloaded; the project's own editable
install is not visible that way) and imports ``main`` from the unpacked archive, the way the
Cloud Functions build and runtime do.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path
from types import ModuleType

import pytest
from deploy_support import REPO, entry_points
from support.modules import load_file

SCRIPT = REPO / "scripts" / "package_functions.py"
FUNCTIONS = ("ingest", "persist", "stats", "detect", "check", "api")


def _load_script() -> ModuleType:
    return load_file("package_functions", SCRIPT)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("functions")
    subprocess.run([sys.executable, str(SCRIPT), "--out", str(out)], check=True, timeout=120)
    return out


def test_one_archive_per_entry_point(built: Path) -> None:
    assert sorted(p.stem for p in built.glob("*.zip")) == sorted(entry_points())
    assert set(entry_points()) == set(FUNCTIONS)


def test_two_builds_are_byte_identical(built: Path, tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path), "detect"], check=True, timeout=120
    )
    first = hashlib.sha256((built / "detect.zip").read_bytes()).hexdigest()
    second = hashlib.sha256((tmp_path / "detect.zip").read_bytes()).hexdigest()
    assert first == second


def test_archive_layout_and_fixed_metadata(built: Path) -> None:
    with zipfile.ZipFile(built / "ingest.zip") as archive:
        infos = archive.infolist()
        names = [i.filename for i in infos]
        assert names == sorted(names)
        assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
        assert archive.read("main.py") == (REPO / "functions" / "main.py").read_bytes()
        requirements = archive.read("requirements.txt").decode().splitlines()
        wheels = [n for n in names if n.startswith("wheels/") and n.endswith(".whl")]
        assert len(wheels) == 1 and f"./{wheels[0]}" in requirements
        pins = [r for r in requirements if r and not r.startswith(("#", "./"))]
        assert all("==" in r for r in pins), pins
        for needed in ("functions-framework", "numpy", "scipy", "sqlalchemy", "redis"):
            assert any(r.startswith(f"{needed}==") for r in pins), needed
        for dev_only in ("pytest", "ruff", "mypy", "checkov"):
            assert not any(r.startswith(f"{dev_only}==") for r in pins), dev_only
        wheel = zipfile.ZipFile(io.BytesIO(archive.read(wheels[0])))
    wheel_names = set(wheel.namelist())
    for module in ("drift_monitor/__init__.py", "drift_monitor/config.py"):
        assert module in wheel_names
    shipped = {
        str(p.relative_to(REPO / "shared"))
        for p in (REPO / "shared" / "drift_monitor").rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert shipped <= wheel_names, f"missing from the wheel: {sorted(shipped - wheel_names)[:5]}"
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in wheel_names)


def test_wheel_record_matches_its_contents(built: Path) -> None:
    script = _load_script()
    with zipfile.ZipFile(built / "api.zip") as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".whl")]
        wheel = zipfile.ZipFile(io.BytesIO(archive.read(name)))
    (record_name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/RECORD")]
    for line in wheel.read(record_name).decode().splitlines():
        path, digest, size = line.split(",")
        if path == record_name:
            continue
        data = wheel.read(path)
        assert digest == script._record_hash(data) and int(size) == len(data), path


def test_archive_installs_into_a_fresh_venv_and_imports_every_entry_point(
    built: Path, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    with zipfile.ZipFile(built / "stats.zip") as archive:
        archive.extractall(source)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # Third-party packages come from this environment; pip sees them as installed.
    Path(site, "zz_project_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-index",
         "--find-links", "wheels", "--disable-pip-version-check", "-r", "requirements.txt"],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert install.returncode == 0, install.stdout + install.stderr
    probe = (
        "import json, drift_monitor, main\n"
        "from functions_framework import _function_registry as r\n"
        "names = ('ingest', 'persist', 'stats', 'detect', 'check', 'api')\n"
        "print(json.dumps({'package': drift_monitor.__file__,\n"
        "  'kinds': {n: r.get_func_signature_type(n, None) for n in names}}))\n"
    )
    done = subprocess.run(
        [str(python), "-c", probe], cwd=source, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    # drift_monitor came from the archive's wheel, not from the repository checkout
    assert report["package"].startswith(site), report["package"]
    expected = {
        n: "cloudevent" if k == "cloud_event" else "http" for n, k in entry_points().items()
    }
    assert report["kinds"] == expected
