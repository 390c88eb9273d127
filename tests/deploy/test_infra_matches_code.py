"""Cross-checks between the infrastructure (terraform/) and the code it deploys.

Each test names one agreement that, when broken, makes a deployment that applies cleanly but
does not work: a function Terraform does not deploy (or deploys with the wrong trigger), an
environment variable the code reads but Terraform never sets, a topic or subscription name
that differs between the two, a route the scheduler calls that the code does not serve.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

import pytest
from deploy_support import REPO, TERRAFORM, TerraformModule, one
from drift_monitor import config
from drift_monitor.adapters import metrics, pubsub
from drift_monitor.entrypoints import detect_fanout

# --------------------------------------------------------------------------------------------
# Environment variables
# --------------------------------------------------------------------------------------------

# Read by Settings.from_env but deliberately not set in GCP, with the reason.
LOCAL_ONLY = {
    # Production connects with the Cloud SQL connector (INSTANCE_CONNECTION_NAME + DB_USER +
    # DB_PASSWORD); a URL would bypass IAM-authorised TLS.
    "DATABASE_URL": "embedded/local database URL; GCP uses INSTANCE_CONNECTION_NAME",
    # Embedded mode keeps its SQLite file here; functions have no persistent disk.
    "DRIFT_MONITOR_DATA_DIR": "embedded-mode data directory",
    # Tests point it at a loopback server with their own certificate; GCP uses Google's default.
    "GOOGLE_ID_TOKEN_CERTS_URL": "test-only certificate endpoint",
}

# Variables other modules read straight from os.environ, outside Settings: client-library
# switches for emulators in tests (never set in GCP), and what the Cloud Functions / Cloud Run
# runtime sets by itself (never set by us).
NOT_SETTINGS = {
    "PUBSUB_EMULATOR_HOST",
    "STORAGE_EMULATOR_HOST",
    "K_SERVICE",
    "K_REVISION",
    "K_CONFIGURATION",
    "FUNCTION_TARGET",
    "FUNCTION_SIGNATURE_TYPE",
    "PORT",
}

STORAGE = {
    "REDIS_URL",  # bootstrap.build refuses to build a production container without it
    "DRIFT_MONITOR_ENV",
    "GOOGLE_CLOUD_PROJECT",
    "PUBSUB_TOPIC",
    "INSTANCE_CONNECTION_NAME",
    "DB_USER",
    "DB_PASSWORD",
    "DB_NAME",
    "DB_IAM_AUTH",
    "DB_IP_TYPE",
    "STATS_BUCKET_SECONDS",
    "STATS_RESERVOIR_SIZE",
    "EMBEDDING_DIMENSION",
    # every function pushes its metrics (terraform/pushgateway.tf; api only carries it)
    "PROMETHEUS_GATEWAY",
}
DETECTION = {
    "DRIFT_THRESHOLD",
    "HISTORICAL_WINDOW_DAYS",
    "FALSE_ALARM_INTERVAL_DAYS",
    "DETECTION_SOURCE",
    # detect prunes old batches after each scheduled run; Settings checks it against
    # HISTORICAL_WINDOW_DAYS, so every function that reads that one gets it too.
    "BATCH_RETENTION_DAYS",
    "ALERT_COOLDOWN_MINUTES",
    "PAGERDUTY_ROUTING_KEY",
    "PAGERDUTY_EVENTS_URL",
    "DRIFT_MONITOR_API_KEY",
    "DRIFT_MONITOR_ADMIN_KEY",
}
# The HTTP functions verify Google ID tokens themselves (entrypoints/auth.py).
ID_TOKENS = {"GOOGLE_ID_TOKEN_AUDIENCE", "DRIFT_MONITOR_INVOKERS", "DRIFT_MONITOR_ADMIN_INVOKERS"}
# What each function's code path needs. Every function builds the same production container
# (bootstrap.build: SQL repository, Redis statistics and dimension registry, Pub/Sub), so all
# of them get the storage settings; persist archives to GCS; detect and api run detection.
NEEDS: dict[str, set[str]] = {
    "ingest": STORAGE
    | {
        "BATCH_SIZE",
        "MAX_REQUEST_BYTES",
        "MAX_FUTURE_SECONDS",
        "DRIFT_MONITOR_API_KEY",
        "DRIFT_MONITOR_ADMIN_KEY",
    }
    | ID_TOKENS,
    "persist": STORAGE | {"GCS_BUCKET"},
    "stats": STORAGE | {"REDIS_URL"},
    "detect": STORAGE | DETECTION | ID_TOKENS,
    "api": STORAGE | DETECTION | ID_TOKENS,
    # the fan-out worker runs detection for one model; Pub/Sub calls it, no keys or tokens
    "check": STORAGE | DETECTION - {"DRIFT_MONITOR_API_KEY", "DRIFT_MONITOR_ADMIN_KEY"},
}


def _function_environment(tf: TerraformModule) -> dict[str, dict[str, Any]]:
    """{function: {VAR: expression}} for plain and secret-backed variables together."""
    plain = tf.locals["function_env"]
    secrets = tf.locals["function_secrets"]
    env: dict[str, dict[str, Any]] = {}
    for name in tf.locals["function_defaults"]:
        values = tf.map_values(plain[name])
        for var, secret_key in secrets[name].items():
            assert var not in values, f"{name}: {var} is both plain and secret"
            values[var] = ("secret", secret_key)
        env[name] = values
    return env


def test_production_env_vars_are_all_set_in_terraform(tf: TerraformModule) -> None:
    production = set(config.ENVIRONMENT_VARIABLES) - set(LOCAL_ONLY)
    env = _function_environment(tf)
    set_anywhere = set().union(*(set(v) for v in env.values()))
    missing = production - set_anywhere
    assert not missing, f"read by the code, set for no function: {sorted(missing)}"
    unknown = set_anywhere - set(config.ENVIRONMENT_VARIABLES)
    assert not unknown, f"set in Terraform, read by no code (typo?): {sorted(unknown)}"
    assert not set_anywhere & set(LOCAL_ONLY), "a local-only variable is set in GCP"


@pytest.mark.parametrize("function", sorted(NEEDS))
def test_each_function_gets_the_variables_it_needs(tf: TerraformModule, function: str) -> None:
    env = _function_environment(tf)[function]
    missing = NEEDS[function] - set(env)
    assert not missing, f"{function} lacks {sorted(missing)}"


def test_needs_table_covers_every_production_variable() -> None:
    """A variable added to config must be placed in NEEDS (and so in Terraform) deliberately."""
    placed = set().union(*NEEDS.values())
    unplaced = set(config.ENVIRONMENT_VARIABLES) - set(LOCAL_ONLY) - placed
    assert not unplaced, f"decide which functions need {sorted(unplaced)}"


PLACEHOLDERS = {
    "GOOGLE_CLOUD_PROJECT": "my-project",
    "INSTANCE_CONNECTION_NAME": "my-project:europe-west1:drift-postgres",
    "DB_PASSWORD": "generated",
    "REDIS_URL": "rediss://:auth@10.0.0.3:6378/0?ssl_ca_certs=/secrets/redis-ca/ca.pem",
    "PAGERDUTY_ROUTING_KEY": "0123456789abcdef0123456789abcdef",  # 32 characters, as PagerDuty
    "DRIFT_MONITOR_API_KEY": "api-key",
    "DRIFT_MONITOR_ADMIN_KEY": "admin-key",
    "GCS_BUCKET": "my-project-drift-raw-batches",
    "GOOGLE_ID_TOKEN_AUDIENCE": "https://drift-detect-123456789012.europe-west1.run.app,"
    "https://europe-west1-my-project.cloudfunctions.net/drift-detect",
    "DRIFT_MONITOR_INVOKERS": "drift-scheduler@my-project.iam.gserviceaccount.com",
    "DRIFT_MONITOR_ADMIN_INVOKERS": "",
    "PROMETHEUS_GATEWAY": "https://drift-pushgateway-123456789012.europe-west1.run.app",
}


def _deployed_env(tf: TerraformModule, function: str) -> dict[str, str]:
    """The function's environment in GCP, variables at their defaults, secrets as samples."""
    env: dict[str, str] = {}
    for var, expr in _function_environment(tf)[function].items():
        if isinstance(expr, tuple):
            env[var] = PLACEHOLDERS[var]
        elif var == "EMBEDDING_DIMENSION":
            # null default -> "" (any dimension); a set default must be a whole number
            default = tf.default("embedding_dimension")
            env[var] = "" if default is None else str(default)
        else:
            value = tf.resolve(expr)
            env[var] = PLACEHOLDERS[var] if value is None else str(value)
    return env


@pytest.mark.parametrize("function", sorted(NEEDS))
def test_terraform_environment_is_valid_production_configuration(
    tf: TerraformModule, function: str
) -> None:
    """The function's environment, at the variables' defaults, passes Settings.from_env."""
    settings = config.Settings.from_env(_deployed_env(tf, function))
    assert settings.production
    assert settings.pubsub_topic == "embeddings"
    assert settings.db_iam_auth is False and settings.db_user


@pytest.mark.parametrize("function", sorted(NEEDS))
def test_terraform_environment_builds_the_production_container(
    tf: TerraformModule, function: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bootstrap.build(embedded=False) accepts each function's environment.

    Clients connect lazily, so nothing is contacted; the emulator hosts only stop the Google
    clients from looking for credentials.
    """
    from drift_monitor import bootstrap

    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", "127.0.0.1:9")
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:9")
    settings = config.Settings.from_env(_deployed_env(tf, function))
    container = bootstrap.build(settings, embedded=False)
    assert not container.embedded
    if function == "persist":
        assert container.archive is not None, "persist must archive raw batches to GCS"


def test_code_reads_no_environment_variable_outside_config() -> None:
    """Modules that read os.environ directly may only read config's list or emulator hosts."""
    read: dict[str, set[str]] = {}
    for path in [
        *sorted((REPO / "shared" / "drift_monitor").rglob("*.py")),
        REPO / "functions" / "main.py",
    ]:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            name = None
            if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
                func = ast.unparse(node.func)
                if func in ("os.environ.get", "os.getenv", "environ.get", "getenv"):
                    name = node.args[0].value
            elif (
                isinstance(node, ast.Subscript)
                and ast.unparse(node.value) in ("os.environ", "environ")
                and isinstance(node.slice, ast.Constant)
            ):
                name = node.slice.value
            if isinstance(name, str):
                read.setdefault(name, set()).add(str(path.relative_to(REPO)))
    allowed = set(config.ENVIRONMENT_VARIABLES) | NOT_SETTINGS
    unknown = {n: sorted(p) for n, p in read.items() if n not in allowed}
    assert not unknown, f"read from os.environ but not in config.ENVIRONMENT_VARIABLES: {unknown}"


# --------------------------------------------------------------------------------------------
# Functions and triggers
# --------------------------------------------------------------------------------------------


def test_every_code_function_has_a_terraform_function_and_vice_versa(
    tf: TerraformModule, code_functions: dict[str, str]
) -> None:
    assert set(code_functions) == {"ingest", "persist", "stats", "detect", "check", "api"}
    deployed = set(tf.locals["function_defaults"])
    assert deployed == set(code_functions), (
        f"only in code: {sorted(set(code_functions) - deployed)}, "
        f"only in Terraform: {sorted(deployed - set(code_functions))}"
    )
    # the function name is "<prefix>-<entry point>": Cloud Run allows [a-z0-9-] only
    for name in deployed:
        assert re.fullmatch(r"[a-z][a-z0-9]*", name), f"{name!r} is no Cloud Run service name"
    fn = tf.resource("google_cloudfunctions2_function", "fn")
    assert one(fn["for_each"]) == "${local.functions}"
    assert "local.function_defaults" in tf.locals["functions"]
    build = one(fn["build_config"])
    # entry_point = each.key: the Terraform name of a function is its Python entry point.
    assert one(build["entry_point"]) == "${each.key}"
    assert tf.default("python_runtime") in ("python311", "python312")
    assert one(build["runtime"]) == "${var.python_runtime}"


def test_trigger_kind_matches_the_decorator(
    tf: TerraformModule, code_functions: dict[str, str]
) -> None:
    kinds = tf.locals["trigger_kind"]
    for name, decorator in code_functions.items():
        expected = "http" if decorator == "http" else "pubsub"
        assert kinds[name] == expected, f"{name} is @{decorator} but Terraform says {kinds[name]}"


def test_cloud_event_functions_get_a_pubsub_trigger_on_the_batch_topic(
    tf: TerraformModule, code_functions: dict[str, str]
) -> None:
    fn = tf.resource("google_cloudfunctions2_function", "fn")
    (dynamic,) = [d["event_trigger"] for d in fn["dynamic"] if "event_trigger" in d]
    condition = one(dynamic["for_each"])
    assert 'local.trigger_kind[each.key] == "pubsub"' in condition
    assert 'var.subscriber_transport == "eventarc"' in condition
    trigger = one(dynamic["content"])
    assert one(trigger["event_type"]) == "google.cloud.pubsub.topic.v1.messagePublished"
    assert one(trigger["pubsub_topic"]) == "${local.subscriber_topic[each.key]}"
    assert tf.locals["subscriber_topic"] == {
        "persist": "${google_pubsub_topic.embeddings.id}",
        "stats": "${google_pubsub_topic.embeddings.id}",
        "check": "${google_pubsub_topic.detect.id}",
    }
    assert one(tf.resource("google_pubsub_subscription", "subscriber")["topic"]) == (
        "${local.subscriber_topic[each.key]}"
    )
    assert one(trigger["retry_policy"]) == "RETRY_POLICY_RETRY"
    assert one(trigger["service_account_email"]) == "${google_service_account.events.email}"
    # push transport: one subscription per cloud_event function, pushing to that function
    subscribers = set(tf.locals["subscribers"])
    assert subscribers == {n for n, k in code_functions.items() if k == "cloud_event"}
    sub = tf.resource("google_pubsub_subscription", "subscriber")
    push = one(sub["push_config"])
    endpoint = one(push["push_endpoint"])
    assert endpoint == "${google_cloudfunctions2_function.fn[each.key].service_config[0].uri}"
    assert one(one(push["oidc_token"])["service_account_email"]).startswith(
        "${google_service_account.events."
    )


def test_subscriptions_dead_letter_with_bounded_attempts(tf: TerraformModule) -> None:
    sub = tf.resource("google_pubsub_subscription", "subscriber")
    policy = one(sub["dead_letter_policy"])
    assert one(policy["dead_letter_topic"]) == "${google_pubsub_topic.dead_letter.id}"
    assert one(policy["max_delivery_attempts"]) == "${var.max_delivery_attempts}"
    assert 5 <= tf.default("max_delivery_attempts") <= 100
    retry = one(sub["retry_policy"])
    assert one(retry["minimum_backoff"]) and one(retry["maximum_backoff"])
    assert one(sub["message_retention_duration"]) == "${var.message_retention}"
    # eventarc transport: the same policy attached to Eventarc's subscription
    patch = tf.resource("terraform_data", "eventarc_dead_letter")
    command = one(one(patch["provisioner"])["local-exec"]["command"])
    assert "--dead-letter-topic" in command and "--max-delivery-attempts" in command
    assert one(patch["for_each"]).startswith('${var.subscriber_transport == "eventarc"')


def test_topic_and_subscription_names_agree_with_code(tf: TerraformModule) -> None:
    assert tf.default("pubsub_topic") == config.Settings().pubsub_topic == "embeddings"
    assert tf.resolve(one(tf.resource("google_pubsub_topic", "embeddings")["name"])) == "embeddings"
    assert tf.resolve(tf.locals["dead_letter_topic"]) == pubsub.DEAD_LETTER_TOPIC
    subscribers = {k: tf.resolve(v) for k, v in tf.locals["subscribers"].items()}
    assert subscribers == {
        "persist": pubsub.PERSIST_SUBSCRIPTION,
        "stats": pubsub.STATS_SUBSCRIPTION,
        "check": "embeddings-check",
    }
    detect_topic = tf.resolve(tf.locals["detect_topic"])
    assert detect_topic == detect_fanout.detect_topic(config.Settings()) == "embeddings-detect"
    assert tf.resolve(one(tf.resource("google_pubsub_topic", "detect")["name"])) == detect_topic
    # only the tick (detect) publishes requests
    publisher = tf.resource("google_pubsub_topic_iam_member", "detect_publisher")
    assert one(publisher["member"]) == '${google_service_account.fn["detect"].member}'
    env = tf.locals["env_common"]
    assert env["PUBSUB_TOPIC"] == "${google_pubsub_topic.embeddings.name}"


# --------------------------------------------------------------------------------------------
# Access, secrets, data services
# --------------------------------------------------------------------------------------------


def test_no_function_is_publicly_invokable(tf: TerraformModule) -> None:
    for path in TERRAFORM.glob("*.tf"):
        code = [ln for ln in path.read_text().splitlines() if not ln.strip().startswith("#")]
        for line in code:
            if "allUsers" in line or "allAuthenticatedUsers" in line:
                # only the validations that reject them may name them
                assert "contains([" in line and "!contains" in line, f"{path.name}: {line}"
    ingress = tf.locals["ingress"]
    for name in ("persist", "stats", "detect"):
        assert ingress[name] == "ALLOW_INTERNAL_ONLY", name
    bindings = tf.locals["invoker_bindings"]
    assert "var.ingest_invokers" in bindings and "var.api_invokers" in bindings
    invoker = tf.resource("google_cloud_run_service_iam_member", "invoker")
    assert one(invoker["role"]) == "roles/run.invoker"
    assert one(invoker["for_each"]) == "${local.invoker_bindings}"


def test_one_service_account_per_function(tf: TerraformModule) -> None:
    sa = tf.resource("google_service_account", "fn")
    assert one(sa["for_each"]) == "${local.functions}"
    service = one(tf.resource("google_cloudfunctions2_function", "fn")["service_config"])
    assert one(service["service_account_email"]) == "${google_service_account.fn[each.key].email}"
    # no project-wide roles beyond the instance-scoped Cloud SQL client
    for name, body in tf.resources.get("google_project_iam_member", {}).items():
        member = one(body["member"])
        if "google_service_account.fn" in member:
            assert one(body["role"]) == "roles/cloudsql.client", name
            assert "condition" in body, f"{name}: Cloud SQL client must be scoped to the instance"


def test_secret_backed_variables_name_declared_secrets(tf: TerraformModule) -> None:
    secrets = set(tf.locals["secrets"])
    generated = set(tf.locals["generated_secret_values"])
    for function, mapping in tf.locals["function_secrets"].items():
        for var, key in mapping.items():
            assert key in secrets, f"{function}.{var} -> undeclared secret {key}"
            assert key in generated or key == "pagerduty_routing_key", key
    accessor = tf.resource("google_secret_manager_secret_iam_member", "accessor")
    assert one(accessor["for_each"]) == "${local.secret_readers}"
    assert one(accessor["role"]) == "roles/secretmanager.secretAccessor"


def test_redis_url_points_at_the_mounted_server_ca(tf: TerraformModule) -> None:
    import redis.connection

    url_expr = tf.locals["generated_secret_values"]["redis_url"]
    assert url_expr.startswith('${format("rediss://'), "Redis must be reached over TLS"
    service = one(tf.resource("google_cloudfunctions2_function", "fn")["service_config"])
    (volume,) = [d["secret_volumes"] for d in service["dynamic"] if "secret_volumes" in d]
    content = one(volume["content"])
    assert one(content["mount_path"]) == "${local.redis_ca_mount}"
    ca_path = f"{tf.locals['redis_ca_mount']}/{one(one(content['versions'])['path'])}"
    assert '"${local.redis_ca_mount}/ca.pem"' in url_expr and ca_path.endswith("/ca.pem")
    parsed = redis.connection.parse_url(f"rediss://:pw@10.0.0.3:6378/0?ssl_ca_certs={ca_path}")
    assert parsed["ssl_ca_certs"] == ca_path
    assert parsed["connection_class"] is redis.connection.SSLConnection


def test_cloud_sql_is_private_encrypted_and_recoverable(tf: TerraformModule) -> None:
    sql = tf.resource("google_sql_database_instance", "main")
    assert one(sql["database_version"]) == "POSTGRES_15"
    assert one(sql["deletion_protection"]) == "${var.deletion_protection}"
    assert tf.default("deletion_protection") is True
    settings = one(sql["settings"])
    ip = one(settings["ip_configuration"])
    assert one(ip["ipv4_enabled"]) is False
    assert one(ip["ssl_mode"]) in ("ENCRYPTED_ONLY", "TRUSTED_CLIENT_CERTIFICATE_REQUIRED")
    backup = one(settings["backup_configuration"])
    assert one(backup["enabled"]) is True
    assert one(backup["point_in_time_recovery_enabled"]) is True
    user = tf.resource("google_sql_user", "app")
    assert one(user["password"]) == "${random_password.db.result}"


def test_redis_has_auth_and_tls(tf: TerraformModule) -> None:
    r = tf.resource("google_redis_instance", "stats")
    assert one(r["auth_enabled"]) is True
    assert one(r["transit_encryption_mode"]) == "SERVER_AUTHENTICATION"
    assert one(r["tier"]) == "${var.redis_tier}" and tf.default("redis_tier") == "STANDARD_HA"
    assert one(r["connect_mode"]) == "PRIVATE_SERVICE_ACCESS"


def test_raw_batch_bucket_is_private_with_retention(tf: TerraformModule) -> None:
    b = tf.resource("google_storage_bucket", "raw_batches")
    assert one(b["uniform_bucket_level_access"]) is True
    assert one(b["public_access_prevention"]) == "enforced"
    assert one(one(b["versioning"])["enabled"]) is True
    deletes = [
        one(one(rule["condition"]).get("age", [None]))
        for rule in b["lifecycle_rule"]
        if one(one(rule["action"])["type"]) == "Delete"
    ]
    assert "${var.raw_batch_retention_days}" in deletes


# --------------------------------------------------------------------------------------------
# Scheduler, monitoring
# --------------------------------------------------------------------------------------------


def _routes() -> set[tuple[str, str]]:
    """(method, rule) of every route the detect and api functions serve."""
    from drift_monitor.entrypoints import api_http, detect_http

    found = set()
    for urls in (api_http.URLS, detect_http.URLS):
        for rule in urls.iter_rules():
            for method in rule.methods or ():
                found.add((method, re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)))
    return found


def test_scheduler_calls_the_detect_route_with_an_oidc_token(tf: TerraformModule) -> None:
    job = tf.resource("google_cloud_scheduler_job", "detect")
    target = one(job["http_target"])
    assert one(target["http_method"]) == "POST"
    uri = one(target["uri"])
    assert '"${local.detect_url}/drift/check${var.detection_fanout ? "?fanout=true" : ""}"' in uri
    assert tf.default("detection_fanout") is True
    assert "jsonencode({'fanout': '${var.detection_fanout}'})" in one(target["body"])
    assert ("POST", "/drift/check") in _routes()
    dynamic = {k: v for d in target["dynamic"] for k, v in d.items()}
    oidc = one(dynamic["oidc_token"]["content"])
    assert one(oidc["service_account_email"]) == "${google_service_account.scheduler.email}"
    assert one(oidc["audience"]) == "${local.detect_url}"
    # the workflow route: OAuth to the Workflows API, only for the scheduled_detection workflow
    oauth = one(dynamic["oauth_token"]["content"])
    assert one(oauth["service_account_email"]) == "${google_service_account.scheduler.email}"
    assert 'google_workflows_workflow.job["scheduled_detection"]' in uri


def test_id_token_audiences_are_each_functions_own_urls(tf: TerraformModule) -> None:
    """Deterministic URL forms of the function itself (its own uri attribute would be a cycle)."""
    audiences = tf.locals["function_audiences"]
    assert "for name in keys(local.function_defaults)" in audiences
    assert (
        "https://${var.name_prefix}-${name}-${data.google_project.this.number}.${var.region}.run.app"
        in audiences
    )
    assert (
        "https://${var.region}-${var.project_id}.cloudfunctions.net/${var.name_prefix}-${name}"
        in (audiences)
    )
    fn = tf.resource("google_cloudfunctions2_function", "fn")
    assert one(fn["name"]) == "${var.name_prefix}-${each.key}", "audiences assume this name"
    env = tf.locals
    for name in ("ingest", "detect", "api"):
        block = env[f"env_tokens_{name}"]
        assert block["GOOGLE_ID_TOKEN_AUDIENCE"] == f'${{local.function_audiences["{name}"]}}'
        assert "google_cloudfunctions2_function" not in json.dumps(block), "dependency cycle"
    # the scheduler account may trigger detection (API role), nobody gets admin on detect (the
    # workflows' roles are checked in test_workflow_access.py)
    detect = env["env_tokens_detect"]
    assert "google_service_account.scheduler.email" in detect["DRIFT_MONITOR_INVOKERS"]
    assert detect["DRIFT_MONITOR_ADMIN_INVOKERS"] == ""
    assert "var.api_admin_token_invokers" in env["env_tokens_api"]["DRIFT_MONITOR_ADMIN_INVOKERS"]
    assert "var.api_admin_token_invokers" in tf.locals["invoker_bindings"]


def test_stale_detection_alert_watches_detect_requests(tf: TerraformModule) -> None:
    metric = tf.resource("google_logging_metric", "detection_runs")
    flt = one(metric["filter"])
    assert "/drift/check" in flt and "local.detect_service" in flt and "status>=200" in flt
    policy = tf.resource("google_monitoring_alert_policy", "detection_stale")
    absent = one(one(policy["conditions"])["condition_absent"])
    assert "google_logging_metric.detection_runs.name" in one(absent["filter"])
    assert one(absent["duration"]) == "${var.detection_stale_after_seconds}s"


def test_dashboard_and_prometheus_alert_use_the_exported_metric_names(tf: TerraformModule) -> None:
    names = tf.locals["metric_names"]
    assert names["drift_score"] == metrics.DRIFT_SCORE
    assert names["last_success"] == metrics.LAST_SUCCESS
    template = (TERRAFORM / "dashboards" / "drift.json.tftpl").read_text()
    rendered = re.sub(r"\$\{(\w+)\}", lambda m: f"VAR_{m.group(1)}", template)
    dashboard = json.loads(rendered)
    tiles = dashboard["mosaicLayout"]["tiles"]
    queries = json.dumps(tiles)
    assert "VAR_drift_score" in queries and "VAR_last_success" in queries
    assert "by (model_id, test)" in queries


def test_batch_retention_default_and_cross_check_match_settings(tf: TerraformModule) -> None:
    """Terraform refuses what Settings.from_env refuses: retention shorter than the window + 1."""
    assert tf.default("batch_retention_days") == config.Settings().batch_retention_days
    assert tf.default("historical_window_days") == config.Settings().historical_window_days
    fn = tf.resource("google_cloudfunctions2_function", "fn")
    conditions = [one(p["condition"]) for p in one(fn["lifecycle"])["precondition"]]
    assert any(
        "var.batch_retention_days == 0" in c and "var.historical_window_days + 1" in c
        for c in conditions
    ), conditions
