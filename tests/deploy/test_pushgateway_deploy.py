"""The Pushgateway in terraform/pushgateway.tf, cross-checked with the code that pushes to it."""

from __future__ import annotations

import re
from typing import Any

import yaml
from deploy_support import REPO, TerraformModule, one

SERVICE = ("google_cloud_run_v2_service", "pushgateway")


def template(tf: TerraformModule) -> dict[str, Any]:
    return dict(one(tf.resource(*SERVICE)["template"]))


def containers(tf: TerraformModule) -> dict[str, dict[str, Any]]:
    return {one(c["name"]): c for c in template(tf)["containers"]}


def pushing_functions() -> set[str]:
    """Functions whose entry points push process metrics (observed()/push_due() calls)."""
    found: set[str] = set()
    for path in (REPO / "shared" / "drift_monitor" / "entrypoints").glob("*.py"):
        text = path.read_text()
        found |= set(re.findall(r'(?:observed|push_due)\("(\w+)"', text))
    return found


def test_functions_push_to_the_deployed_gateway(tf: TerraformModule) -> None:
    assert tf.default("deploy_pushgateway") is True
    url = tf.locals["pushgateway_url"]
    assert url.startswith(
        "${var.deploy_pushgateway ? google_cloud_run_v2_service.pushgateway[0].uri"
    )
    # every function gets it (env_common), so the four that push do
    assert tf.locals["env_common"]["PROMETHEUS_GATEWAY"] == "${local.pushgateway_url}"
    for function in ("ingest", "persist", "stats", "detect", "api"):
        values = tf.map_values(tf.locals["function_env"][function])
        assert values["PROMETHEUS_GATEWAY"] == "${local.pushgateway_url}", function
    fn = tf.resource("google_cloudfunctions2_function", "fn")
    egress = one(one(fn["service_config"])["vpc_connector_egress_settings"])
    assert egress == '${var.deploy_pushgateway ? "ALL_TRAFFIC" : "PRIVATE_RANGES_ONLY"}'
    assert "google_compute_router_nat" in tf.resources  # the rest of egress still gets out


def test_image_is_the_official_release_pinned_and_validated(tf: TerraformModule) -> None:
    gateway = containers(tf)["pushgateway"]
    assert one(gateway["image"]) == "${var.pushgateway_image}"
    image = tf.default("pushgateway_image")
    assert re.fullmatch(r"(docker\.io/)?prom/pushgateway:v\d+\.\d+\.\d+", image), image
    condition = one(one(tf.variables["pushgateway_image"]["validation"])["condition"])
    pattern = re.search(r'regex\("(.*?)",\s*var\.pushgateway_image\)', condition)
    assert pattern is not None
    regex = pattern.group(1).replace("\\\\", "\\")
    assert re.fullmatch(regex, image)
    for bad in ("prom/pushgateway", "prom/pushgateway:latest", "evil/pushgateway:v1.0.0"):
        assert not re.fullmatch(regex, bad), bad
    sidecar = containers(tf)["collector"]
    assert one(sidecar["image"]) == "${var.rungmp_sidecar_image}"
    assert re.search(r"cloud-run-gmp-sidecar:\d+\.\d+\.\d+$", tf.default("rungmp_sidecar_image"))


def test_ingress_is_internal_and_only_the_pushing_functions_may_invoke(
    tf: TerraformModule,
) -> None:
    assert one(tf.resource(*SERVICE)["ingress"]) == "INGRESS_TRAFFIC_INTERNAL_ONLY"
    assert tf.locals["pushgateway_pushers"] == sorted(
        pushing_functions(), key=tf.locals["pushgateway_pushers"].index
    )
    assert set(tf.locals["pushgateway_pushers"]) == pushing_functions() == {
        "ingest", "persist", "stats", "detect"
    }  # fmt: skip
    invoker = tf.resource("google_cloud_run_v2_service_iam_member", "pushgateway_invoker")
    assert one(invoker["role"]) == "roles/run.invoker"
    assert one(invoker["member"]) == "${google_service_account.fn[each.key].member}"
    assert "local.pushgateway_pushers" in one(invoker["for_each"])
    # no other binding on the service
    bindings = [
        (rtype, name)
        for rtype, named in tf.resources.items()
        if rtype.startswith("google_cloud_run_v2_service_iam")
        for name, body in named.items()
        if "pushgateway" in str(body.get("name"))
    ]
    assert bindings == [("google_cloud_run_v2_service_iam_member", "pushgateway_invoker")]


def test_one_instance_with_state_persisted_to_cloud_storage(tf: TerraformModule) -> None:
    t = template(tf)
    scaling = one(t["scaling"])
    assert one(scaling["min_instance_count"]) == one(scaling["max_instance_count"]) == 1
    gateway = containers(tf)["pushgateway"]
    args = one(gateway["args"])
    persistence = next(a for a in args if a.startswith("--persistence.file="))
    path = persistence.split("=", 1)[1]
    mounts = {one(m["name"]): one(m["mount_path"]) for m in gateway["volume_mounts"]}
    assert path.startswith(mounts["state"] + "/")
    volumes = {one(v["name"]): v for v in t["volumes"]}
    bucket = one(one(volumes["state"]["gcs"])["bucket"])
    assert bucket == "${google_storage_bucket.pushgateway[0].name}"
    assert one(one(volumes["state"]["gcs"])["read_only"]) is False
    grant = tf.resource("google_storage_bucket_iam_member", "pushgateway_state")
    assert one(grant["member"]) == "${google_service_account.pushgateway.member}"
    assert one(t["service_account"]) == "${google_service_account.pushgateway.email}"


def test_managed_prometheus_sidecar_scrapes_the_gateway_port(tf: TerraformModule) -> None:
    port = tf.locals["pushgateway_port"]
    gateway = containers(tf)["pushgateway"]
    assert one(one(gateway["ports"])["container_port"]) == "${local.pushgateway_port}"
    assert "--web.listen-address=:${local.pushgateway_port}" in one(gateway["args"])
    config = tf.locals["rungmp_config"]
    assert config.startswith("${yamlencode(")
    body = yaml.safe_load(config.removeprefix("${yamlencode(").removesuffix(")}"))
    assert body["kind"] == "RunMonitoring"
    (endpoint,) = body["spec"]["endpoints"]
    assert endpoint["port"] == "${tostring(local.pushgateway_port)}" and port == 9091
    assert endpoint["path"] == "/metrics"
    sidecar = containers(tf)["collector"]
    assert one(sidecar["depends_on"]) == ["pushgateway"]
    mount = one(sidecar["volume_mounts"])
    assert one(mount["mount_path"]) == "/etc/rungmp"  # where the sidecar reads config.yaml
    volumes = {one(v["name"]): v for v in template(tf)["volumes"]}
    item = one(one(volumes[one(mount["name"])]["secret"])["items"])
    assert one(item["path"]) == "config.yaml"
    writer = tf.resource("google_project_iam_member", "pushgateway_metric_writer")
    assert one(writer["role"]) == "roles/monitoring.metricWriter"
