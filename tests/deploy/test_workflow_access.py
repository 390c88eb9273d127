"""Every workflow may make every call it makes, with no more access than that.

A workflow runs as a service account and calls the api and detect functions with that account's
Google ID token in ``X-Serverless-Authorization`` (Cloud Run's invoker check) and
``Authorization`` (the monitor's check, ``entrypoints/auth.py``). A call only works when

* the account has ``roles/run.invoker`` on the function (iam.tf, ``local.invoker_bindings``),
* the account's email is in the function's ``DRIFT_MONITOR_ADMIN_INVOKERS`` when the route needs
  the admin role, or in ``DRIFT_MONITOR_INVOKERS`` when the API role is enough (functions.tf),
* the token's audience (the URL the workflow calls, ``local.workflow_function_urls``) is one of
  the function's ``GOOGLE_ID_TOKEN_AUDIENCE`` values,
* the account may mint ID tokens for itself, with the IAM Credentials API enabled.

The role a route needs is read from the code by asking the handlers themselves: a request with
the API key either comes back 403 (admin needed) or gets past authentication. None of this can
be seen by ``terraform validate`` or the workflows emulator; a miss shows up in GCP as a 401/403
on the first scheduled run.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from deploy_support import (
    WORKFLOWS,
    TerraformModule,
    assigned_paths,
    function_calls,
    one,
    path_template,
)
from drift_monitor.config import Settings
from drift_monitor.entrypoints import api_http, auth, detect_http
from flask import Request, Response
from werkzeug.test import EnvironBuilder

EXPECTED = ("backfill", "baseline_refresh", "scheduled_detection")
HANDLERS: dict[str, Callable[[Request, Any], Response]] = {
    "api": api_http.handle_with,
    "detect": detect_http.handle_with,
}
SAMPLE_MODEL = "org/model-a"  # model ids may contain "/"


# --------------------------------------------------------------------------------------------
# What the code requires
# --------------------------------------------------------------------------------------------


class _PastAuthentication(Exception):
    """The handler went on to use its collaborators: the credential was accepted."""


class _Probe:
    """A container with two known keys and nothing else: any other attribute means auth passed."""

    settings = dataclasses.replace(Settings(), api_key="probe-api-key", admin_key="probe-admin-key")

    def __getattr__(self, name: str) -> Any:
        raise _PastAuthentication(name)


def _status(function: str, path: str, key: str | None) -> int | None:
    """The answer to POST ``path`` with ``key``; ``None`` when the handler got past auth."""
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    environ = EnvironBuilder(path=path, method="POST", headers=headers, json={}).get_environ()
    try:
        return HANDLERS[function](Request(environ), _Probe()).status_code
    except _PastAuthentication:
        return None


def required_role(function: str, template: str) -> auth.Access:
    """The role POST ``template`` on ``function`` needs, as the handler decides it."""
    path = template.replace("{model_id}", SAMPLE_MODEL)
    assert _status(function, path, None) == 401, f"{function} {path} accepts anonymous calls"
    admin = _status(function, path, _Probe.settings.admin_key)
    assert admin not in (401, 403, 404, 405), f"{function} {path}: admin key refused ({admin})"
    api = _status(function, path, _Probe.settings.api_key)
    assert api != 401, f"{function} {path}: API key unknown"
    return auth.ADMIN if api == 403 else auth.API


def test_the_probe_tells_the_roles_apart() -> None:
    """The probe tells known admin and API routes apart (so its verdicts can fail)."""
    assert required_role("api", "/models/{model_id}/rebuild-stats") is auth.ADMIN
    assert required_role("api", "/models/{model_id}/baseline") is auth.ADMIN
    assert required_role("detect", "/drift/check") is auth.API


# --------------------------------------------------------------------------------------------
# What each workflow does
# --------------------------------------------------------------------------------------------


def _env_of_variables(parsed: dict[str, Any]) -> dict[str, str]:
    """Workflow variables assigned from the environment: {"api_url": "API_URL", ...}."""
    found: dict[str, str] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(value, str):
                    m = re.fullmatch(r'\$\{sys\.get_env\("(\w+)"\)\}', value)
                    if m:
                        found[key] = m.group(1)
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(parsed)
    return found


def _function_of_url_variable(tf: TerraformModule) -> dict[str, str]:
    """{"API_URL": "api", ...} from local.workflow_function_urls."""
    mapping: dict[str, str] = {}
    for env, expr in tf.locals["workflow_function_urls"].items():
        m = re.fullmatch(r'\$\{split\(",",\s*local\.function_audiences\["(\w+)"\]\)\[0\]\}', expr)
        assert m, f"{env} = {expr}: call each function at one of its own token audiences"
        mapping[env] = m.group(1)
    return mapping


def workflow_calls(tf: TerraformModule, name: str) -> set[tuple[str, str]]:
    """(function, route template) of every call the workflow makes."""
    parsed = yaml.safe_load((WORKFLOWS / f"{name}.yaml").read_text())
    variables = _env_of_variables(parsed)
    functions = _function_of_url_variable(tf)
    calls: set[tuple[str, str]] = set()
    for args in function_calls(parsed):
        variable = re.fullmatch(r"\$\{(\w+)\}", args["base_url"])
        assert variable, f"{name}: base_url {args['base_url']!r} is not one variable"
        function = functions[variables[variable.group(1)]]
        if args["path"] == "${path}":
            templates = {path_template(p) for p in assigned_paths(parsed)}
        else:
            templates = {path_template(args["path"])}
        calls |= {(function, t) for t in templates}
    assert calls, f"{name} calls no function"
    return calls


def workflow_account(tf: TerraformModule, name: str) -> str:
    """The google_service_account resource name the workflow runs as."""
    job = tf.resource("google_workflows_workflow", "job")
    assert one(job["for_each"]) == "${local.workflows}"
    assert name in tf.locals["workflows"], f"{name} is not deployed"
    expr = one(job["service_account"])
    if m := re.fullmatch(r"\$\{each\.value\.(\w+)\}", expr):
        expr = tf.locals["workflows"][name][m.group(1)]
    m = re.search(r"google_service_account\.(\w+)\.(?:id|email|name)", expr)
    assert m, f"cannot tell which account {name} runs as: {expr}"
    return m.group(1)


def needed_roles(tf: TerraformModule) -> dict[tuple[str, str], auth.Access]:
    """{(account, function): highest role any workflow running as the account needs there}."""
    needed: dict[tuple[str, str], auth.Access] = {}
    for name in tf.locals["workflows"]:
        account = workflow_account(tf, name)
        for function, template in workflow_calls(tf, name):
            role = required_role(function, template)
            if needed.get((account, function)) is not auth.ADMIN:
                needed[(account, function)] = role
    return needed


# --------------------------------------------------------------------------------------------
# What Terraform grants
# --------------------------------------------------------------------------------------------


def run_invokers(tf: TerraformModule) -> set[tuple[str, str]]:
    """(function, account) pairs with roles/run.invoker from a Terraform service account."""
    invoker = tf.resource("google_cloud_run_service_iam_member", "invoker")
    assert one(invoker["role"]) == "roles/run.invoker"
    assert one(invoker["for_each"]) == "${local.invoker_bindings}"
    bindings = tf.locals["invoker_bindings"]
    pattern = r"'function': '(\w+)', 'member': '\$\{google_service_account\.(\w+)\.member\}'"
    return set(re.findall(pattern, bindings))


def token_roles(tf: TerraformModule, function: str) -> dict[str, str]:
    """The allowlist expressions the function is deployed with: {"api": ..., "admin": ...}."""
    block = f"env_tokens_{function}"
    assert f"local.{block}" in tf.locals["function_env"][function], f"{function} lacks {block}"
    env = tf.locals[block]
    assert env["GOOGLE_ID_TOKEN_AUDIENCE"] == f'${{local.function_audiences["{function}"]}}'
    return {
        "api": env["DRIFT_MONITOR_INVOKERS"],
        "admin": env["DRIFT_MONITOR_ADMIN_INVOKERS"],
    }


@pytest.fixture(scope="module")
def roles(tf: TerraformModule) -> dict[tuple[str, str], auth.Access]:
    return needed_roles(tf)


def test_every_workflow_is_deployed(tf: TerraformModule) -> None:
    assert set(tf.locals["workflows"]) == set(EXPECTED)
    assert {p.stem for p in WORKFLOWS.glob("*.yaml")} == set(EXPECTED)


@pytest.mark.parametrize("name", EXPECTED)
def test_workflow_account_may_make_every_call(tf: TerraformModule, name: str) -> None:
    account = workflow_account(tf, name)
    email = f"google_service_account.{account}.email"
    invokers = run_invokers(tf)
    for function, template in sorted(workflow_calls(tf, name)):
        call = f"{name} -> {function} POST {template}"
        assert (function, account) in invokers, f"{call}: {account} lacks roles/run.invoker"
        allowed = token_roles(tf, function)
        if required_role(function, template) is auth.ADMIN:
            assert email in allowed["admin"], f"{call}: {account} not in ADMIN_INVOKERS"
        else:
            assert email in allowed["api"] or email in allowed["admin"], (
                f"{call}: {account} in neither DRIFT_MONITOR_INVOKERS nor ADMIN_INVOKERS"
            )


def test_workflow_accounts_get_no_more_than_they_need(
    tf: TerraformModule, roles: dict[tuple[str, str], auth.Access]
) -> None:
    """Exactly the highest role needed per function, and no invoker rights where not called."""
    assert roles, "no workflow calls anything"
    accounts = {account for account, _ in roles}
    for account in accounts:
        email = f"google_service_account.{account}.email"
        for function in ("ingest", "detect", "api"):
            need = roles.get((account, function))
            allowed = token_roles(tf, function)
            in_admin, in_api = email in allowed["admin"], email in allowed["api"]
            expected = (need is auth.ADMIN, need is auth.API)
            assert (in_admin, in_api) == expected, (
                f"{account} on {function}: needs {need}, admin={in_admin} api={in_api}"
            )
        called = {f for a, f in roles if a == account}
        granted = {f for f, a in run_invokers(tf) if a == account}
        assert granted == called, f"{account}: run.invoker on {granted}, calls {called}"


def test_workflow_urls_are_token_audiences_the_functions_accept(tf: TerraformModule) -> None:
    job = tf.resource("google_workflows_workflow", "job")
    assert one(job["user_env_vars"]) == "${local.workflow_function_urls}"
    assert set(_function_of_url_variable(tf).values()) == {"api", "detect"}
    audiences = tf.locals["function_audiences"]
    # the first audience (the one the workflows call) is the deterministic run.app URL
    assert audiences.index(".run.app") < audiences.index("cloudfunctions.net"), audiences


@pytest.mark.parametrize("name", EXPECTED)
def test_workflow_sends_one_id_token_for_the_called_url_in_both_headers(name: str) -> None:
    parsed = yaml.safe_load((WORKFLOWS / f"{name}.yaml").read_text())
    steps = {k: v for step in parsed["post_once"]["steps"] for k, v in step.items()}
    mint = steps["mint_id_token"]
    assert mint["call"] == "googleapis.iamcredentials.v1.projects.serviceAccounts.generateIdToken"
    assert mint["args"]["body"] == {"audience": "${base_url}", "includeEmail": True}
    assert "GOOGLE_CLOUD_SERVICE_ACCOUNT_NAME" in mint["args"]["name"]
    assigned = {k: v for a in steps["gcp_headers"]["assign"] for k, v in a.items()}
    assert assigned["authorization"] == assigned["serverless_authorization"]
    assert assigned["authorization"] == '${"Bearer " + id_token.token}'
    post = steps["post"]
    assert post["call"] == "http.post" and "auth" not in post["args"]
    assert post["args"]["url"] == "${base_url + path}"
    assert post["args"]["headers"]["Authorization"] == "${authorization}"
    assert post["args"]["headers"]["X-Serverless-Authorization"] == "${serverless_authorization}"
    # the retry wraps the whole attempt, so every attempt mints a fresh token
    (retried,) = [s["post"] for s in parsed["call_function"]["steps"] if "post" in s]
    assert retried["try"]["call"] == "post_once"


def test_workflows_mint_tokens_and_read_no_secrets(tf: TerraformModule) -> None:
    accounts = {workflow_account(tf, name) for name in tf.locals["workflows"]}
    token_creators = [
        body
        for body in tf.resources["google_service_account_iam_member"].values()
        if one(body["role"]) == "roles/iam.serviceAccountOpenIdTokenCreator"
    ]
    for account in accounts:
        assert any(
            one(b["service_account_id"]) == f"${{google_service_account.{account}.name}}"
            and one(b["member"]) == f"${{google_service_account.{account}.member}}"
            for b in token_creators
        ), f"{account} cannot mint ID tokens for itself"
        for name, body in tf.resources.get("google_secret_manager_secret_iam_member", {}).items():
            assert f"google_service_account.{account}." not in one(body["member"]), (
                f"{name}: the workflows need no secret"
            )
    assert "iamcredentials.googleapis.com" in tf.locals["apis"]
    for path in WORKFLOWS.glob("*.yaml"):
        text = path.read_text()
        assert "secretmanager" not in text and "KEY_SECRET" not in text, path.name
