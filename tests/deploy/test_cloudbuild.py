"""cloudbuild.yaml validates against Cloud Build's schema and runs the stages it promises."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_support import REPO

CLOUDBUILD = REPO / "cloudbuild.yaml"


@pytest.fixture(scope="module")
def build() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(CLOUDBUILD.read_text())
    return loaded


def _steps(build: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {step["id"]: step for step in build["steps"]}


def test_validates_against_the_cloudbuild_schema() -> None:
    tool = Path(sys.executable).with_name("check-jsonschema")
    if not tool.exists():
        found = shutil.which("check-jsonschema")
        if found is None:
            pytest.skip("check-jsonschema is not installed")
        tool = Path(found)
    done = subprocess.run(
        [str(tool), "--builtin-schema", "vendor.cloudbuild", str(CLOUDBUILD)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_pipeline_has_every_stage_in_order(build: dict[str, Any]) -> None:
    ids = [step["id"] for step in build["steps"]]
    expected = [
        "install",
        "lint",
        "type-check",
        "unit-tests",
        "package",
        "model-validation",
        "pin-traffic",
        "terraform-apply",
        "staged-rollout",
    ]
    positions = [ids.index(name) for name in expected]
    assert positions == sorted(positions), ids
    steps = _steps(build)
    # nothing deploys before every check passed
    gate = set(steps["pin-traffic"]["waitFor"])
    assert {"lint", "type-check", "unit-tests", "package", "model-validation"} <= gate


def test_steps_run_the_project_tools(build: dict[str, Any]) -> None:
    steps = _steps(build)
    assert (
        "ruff check" in steps["lint"]["script"] and "ruff format --check" in steps["lint"]["script"]
    )
    assert "mypy" in steps["type-check"]["script"]
    assert (
        "pytest" in steps["unit-tests"]["script"] and "tests/unit" in steps["unit-tests"]["script"]
    )
    assert "scripts/package_functions.py" in steps["package"]["script"]
    assert "-m statistical" in steps["model-validation"]["script"]
    assert "terraform" in steps["terraform-apply"]["script"]
    assert "staged_rollout=true" in steps["terraform-apply"]["script"]
    assert (REPO / "scripts" / "package_functions.py").exists()


def test_rollout_splits_traffic_smoke_tests_and_can_roll_back(build: dict[str, Any]) -> None:
    script = _steps(build)["staged-rollout"]["script"]
    assert "update-traffic" in script and "_CANARY_PERCENT" in script
    assert "--update-tags" in script and "smoke " in script
    assert "rollback" in script and "--to-latest" in script
    pin = _steps(build)["pin-traffic"]["script"]
    assert "--to-revisions" in pin


def test_scripts_are_valid_bash(build: dict[str, Any], tmp_path: Path) -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    for step in build["steps"]:
        if "script" not in step:
            continue
        path = tmp_path / f"{step['id']}.sh"
        path.write_text(step["script"])
        done = subprocess.run([bash, "-n", str(path)], capture_output=True, text=True)
        assert done.returncode == 0, f"{step['id']}: {done.stderr}"


def test_substitutions_used_are_declared(build: dict[str, Any]) -> None:
    text = CLOUDBUILD.read_text()
    used = set(re.findall(r"\$\{?(_[A-Z0-9_]+)", text))
    assert used <= set(build["substitutions"]), used - set(build["substitutions"])
    assert build["options"]["automapSubstitutions"] is True
