"""The Terraform module is well-formed without running Terraform.

``terraform validate`` needs the provider plugins, which cannot be downloaded here; these tests
cover what they can offline: every file parses (python-hcl2), ``terraform fmt`` is clean when
the binary exists, every reference names something declared, provider versions are pinned, the
backend and the example variables are documented, and checkov finds no failed check (each
skipped check carries its reason inline).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from deploy_support import TERRAFORM, TerraformModule, one
from hcl2.api import load as load_hcl

TF_FILES = sorted(TERRAFORM.glob("*.tf"))
CONCERNS = (
    "versions.tf",
    "variables.tf",
    "outputs.tf",
    "pubsub.tf",
    "functions.tf",
    "sql.tf",
    "redis.tf",
    "network.tf",
    "scheduler.tf",
    "storage.tf",
    "secrets.tf",
    "iam.tf",
    "monitoring.tf",
    "workflows.tf",
)


def _code(text: str) -> str:
    """HCL without comments (references in comments are prose, not code)."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return "\n".join(re.sub(r"^\s*(#|//).*$", "", line) for line in text.splitlines())


def test_module_is_split_by_concern() -> None:
    names = {p.name for p in TF_FILES}
    assert set(CONCERNS) <= names, f"missing: {sorted(set(CONCERNS) - names)}"


@pytest.mark.parametrize(
    "path", [*TF_FILES, TERRAFORM / "backend.tf.example"], ids=lambda p: p.name
)
def test_every_file_parses(path: Path) -> None:
    with path.open() as f:
        parsed = load_hcl(f)
    assert parsed, f"{path.name} is empty"


def test_terraform_fmt_is_clean() -> None:
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("terraform is not installed; the HCL parse test still ran")
    env = {**os.environ, "TF_CLI_CONFIG_FILE": os.devnull}
    done = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", "-diff", str(TERRAFORM)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, f"terraform fmt would change:\n{done.stdout}{done.stderr}"


def test_every_reference_is_declared(tf: TerraformModule) -> None:
    """A stand-in for `terraform validate`'s reference check."""
    text = "\n".join(_code(p.read_text()) for p in TF_FILES)
    undeclared: set[str] = set()
    for name in set(re.findall(r"(?<![\w.])var\.(\w+)", text)):
        if name not in tf.variables:
            undeclared.add(f"var.{name}")
    for name in set(re.findall(r"(?<![\w.])local\.(\w+)", text)):
        if name not in tf.locals:
            undeclared.add(f"local.{name}")
    for rtype, name in set(
        re.findall(
            r"(?<![\w.\"])((?:google|random)_[a-z0-9_]+|terraform_data)\.([a-z_][\w]*)", text
        )
    ):
        if name not in tf.resources.get(rtype, {}):
            undeclared.add(f"{rtype}.{name}")
    for dtype, name in set(re.findall(r"(?<![\w.])data\.([a-z0-9_]+)\.(\w+)", text)):
        if name not in tf.data.get(dtype, {}):
            undeclared.add(f"data.{dtype}.{name}")
    assert not undeclared, f"referenced but not declared: {sorted(undeclared)}"


def test_every_variable_is_used_and_described(tf: TerraformModule) -> None:
    text = "\n".join(_code(p.read_text()) for p in TF_FILES if p.name != "variables.tf")
    for name, body in tf.variables.items():
        assert one(body.get("description", [""])), f"variable {name} has no description"
        assert f"var.{name}" in text, f"variable {name} is declared but never used"


def test_providers_are_pinned() -> None:
    with (TERRAFORM / "versions.tf").open() as f:
        terraform = one(load_hcl(f)["terraform"])
    assert one(terraform["required_version"]).startswith(">= 1.")
    providers = one(terraform["required_providers"])
    for name in ("google", "google-beta"):
        spec = one(providers[name])
        assert spec["source"] == f"hashicorp/{name}"
        # "~> X.Y.Z" allows patch releases only; a bare ">=" would float across majors.
        assert re.fullmatch(r"(~>|=)\s*\d+\.\d+\.\d+", spec["version"]), spec["version"]


def test_remote_state_backend_is_documented() -> None:
    with (TERRAFORM / "backend.tf.example").open() as f:
        backend = one(one(load_hcl(f)["terraform"])["backend"])
    assert "gcs" in backend and one(backend["gcs"]["prefix"])
    readme = (TERRAFORM / "README.md").read_text()
    assert "backend.tf.example" in readme and "-migrate-state" in readme


def test_tfvars_example_names_declared_variables(tf: TerraformModule) -> None:
    with (TERRAFORM / "terraform.tfvars.example").open() as f:
        example = load_hcl(f)
    unknown = set(example) - set(tf.variables)
    assert not unknown, f"terraform.tfvars.example sets undeclared variables {sorted(unknown)}"
    required = {n for n, body in tf.variables.items() if "default" not in body}
    assert required <= set(example), f"required variables missing: {required - set(example)}"


def test_checkov_skips_carry_a_reason() -> None:
    for path in TF_FILES:
        for line in path.read_text().splitlines():
            if "checkov:skip" in line:
                m = re.search(r"#checkov:skip=(CKV2?_[A-Z]+_\d+):(.+)$", line)
                assert m and len(m.group(2).strip()) >= 30, f"{path.name}: unexplained {line}"


def test_checkov_finds_no_failed_check() -> None:
    checkov = Path(sys.executable).with_name("checkov")
    if not checkov.exists():
        pytest.skip("checkov is not installed in this environment")
    done = subprocess.run(
        [str(checkov), "-d", str(TERRAFORM), "--quiet", "--compact", "--skip-download",
         "--framework", "terraform"],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    summary = re.search(
        r"Passed checks: (\d+), Failed checks: (\d+), Skipped checks: (\d+)", done.stdout
    )
    assert summary, f"no checkov summary:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    passed, failed, _skipped = map(int, summary.groups())
    assert failed == 0, done.stdout
    assert passed > 50, "checkov ran far fewer checks than expected; did it parse the module?"
    assert done.returncode == 0
