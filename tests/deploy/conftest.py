"""Fixtures for the deployment tests (helpers live in deploy_support.py)."""

from __future__ import annotations

import pytest
from deploy_support import TERRAFORM, TerraformModule, entry_points


@pytest.fixture(scope="session")
def tf() -> TerraformModule:
    return TerraformModule.load(TERRAFORM)


@pytest.fixture(scope="session")
def code_functions() -> dict[str, str]:
    return entry_points()
