"""Every resource, attribute and nested block name in terraform/ exists in the Google provider's
schema (read from @cdktf/provider-google pinned to the provider constraint; provider_schema.py).

``terraform validate`` cannot run here; this catches a misspelt or removed name in today's
resources and in every one added later. Resources on the google-beta provider are checked
against the same schema (google-beta is a superset; a beta-only name is listed by the test).
"""

from __future__ import annotations

import os
import re
import shutil
from typing import Any

import provider_schema as ps
import pytest
from deploy_support import TERRAFORM, TerraformModule, one


def _required() -> bool:
    return os.environ.get("DRIFT_MONITOR_REQUIRE_SERVICES", "").strip().lower() in ("1", "true")


@pytest.fixture(scope="module")
def schemas() -> tuple[dict[str, Any], dict[str, Any]]:
    if not (ps.package_dir() / "package.json").exists():
        if shutil.which("npm") is None:
            message = "npm not found: cannot fetch @cdktf/provider-google for the schema check"
            if _required():
                pytest.fail(message, pytrace=False)
            pytest.skip(message)
        ps.fetch()
    return ps.load_schemas()


def test_package_matches_the_provider_constraint(
    schemas: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    versions = (TERRAFORM / "versions.tf").read_text()
    google = re.search(r'google = \{[^}]*version\s*=\s*"~>\s*([\d.]+)"', versions)
    assert google is not None
    assert ps.provider_version() == google.group(1)


# Types only the google-beta provider has (checked to be declared with provider = google-beta).
BETA_ONLY_TYPES = {"google_project_service_identity"}


def test_every_terraform_name_is_in_the_provider_schema(
    schemas: tuple[dict[str, Any], dict[str, Any]], tf: TerraformModule
) -> None:
    resources, data = schemas
    meta = {name: None for name in ps.META_ARGUMENTS}
    problems: list[str] = []
    checked = 0
    for kind, declared, known in (("resource", tf.resources, resources), ("data", tf.data, data)):
        for rtype, named in declared.items():
            if not rtype.startswith("google_"):
                continue  # terraform_data, random_*: not the Google provider's
            if rtype in BETA_ONLY_TYPES:
                for name, body in named.items():
                    if one(body.get("provider")) != "${google-beta}":
                        problems.append(f"{kind} {rtype}.{name}: needs provider = google-beta")
                continue
            if rtype not in known:
                problems.append(f"{kind} {rtype}: no such type in the provider")
                continue
            for name, body in named.items():
                checked += 1
                schema = {**known[rtype], **meta}
                problems += ps.unknown_names(body, schema, f"{rtype}.{name}")
    assert checked >= 40
    assert not problems, "\n".join(problems)


def test_the_checker_catches_a_misspelt_name(
    schemas: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    resources, _ = schemas
    body = {
        "name": ["x"],
        "ingres": ["INGRESS_TRAFFIC_ALL"],
        "template": [{"containers": [{"image": ["i"], "volume_mount": [{}]}]}],
        "dynamic": [{"traffics": {"content": [{}]}}],
    }
    found = ps.unknown_names(body, resources["google_cloud_run_v2_service"], "svc")
    assert found == [
        "svc: unknown name 'ingres'",
        "svc.template.containers: unknown name 'volume_mount'",
        "svc: unknown dynamic block 'traffics'",
    ]
