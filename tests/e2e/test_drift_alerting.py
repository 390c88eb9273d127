"""Drift detection and alerting end to end: the "Done when" scenario of the detection issue.

1. Real services: HTTP ingest (functions-framework ``ingest``) -> Pub/Sub emulator -> pulled
   and delivered as CloudEvents to ``persist`` (PostgreSQL) and ``stats`` (Redis) -> ``detect``
   (``POST /drift/check/{model}``) -> PagerDuty Events v2 and a webhook on the loopback
   receiver, metrics on the real Pushgateway, results through the ``api`` function. The
   detection clock is set per phase; traffic is timestamped into each phase's window.
2. Embedded: the same scenario through ``drift-monitor serve`` over HTTP (SQLite, in-process
   bus), with 15-second current windows and real waiting between phases.

Scenario: baseline traffic; same-distribution traffic -> no alert; drifted traffic (verbs
mixed into nouns) -> exactly one PagerDuty trigger and one webhook call, status shows drift
with scores; back to normal -> one resolve; repeated detection inside the cooldown sends
nothing new. Real MiniLM embeddings from ``../shared/data`` when present, else synthetic
vectors with a mean shift (the scenario is the same).
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import functions_framework
import numpy as np
import pytest
import redis
import sqlalchemy as sa
from cloudevents.conversion import to_structured
from cloudevents.http import CloudEvent
from drift_monitor import bootstrap
from drift_monitor.adapters import pubsub
from drift_monitor.adapters.redis_stats import RedisDimensionRegistry, RedisStatsStore
from drift_monitor.adapters.sql import SqlRepository
from drift_monitor.config import Settings
from support.fixtures import TEST_ROUTING_KEY, pagerduty_receiver  # noqa: F401
from support.receiver import Receiver

REPO = Path(__file__).resolve().parents[2]
MAIN = str(REPO / "functions" / "main.py")
DATA = REPO.parent / "shared" / "data"
PROJECT = "test-project"
API_KEY = "e2e-api-key-0123456789"
ADMIN_KEY = "e2e-admin-key-0123456789"
API = {"Authorization": f"Bearer {API_KEY}"}
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def traffic() -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """(nouns, verbs): real sentence embeddings when available, else shifted Gaussians.

    These tests check the pipeline's behaviour (no page on a typical same-distribution window,
    one page on drift, one resolve), not calibration: that is measured over hundreds of trials
    in tests/statistical. So the shuffle is fixed to one whose same-distribution splits are
    typical (AD and MMD p-values above 0.5), not one in the null's 5 % tail where any
    calibrated test must fire and the outcome would hang on the permutation seed.
    """
    rng = np.random.default_rng(1)
    nouns_file = DATA / "wordnet_noun_minilm384.npy"
    verbs_file = DATA / "wordnet_verb_minilm384.npy"
    if nouns_file.exists() and verbs_file.exists():
        return rng.permutation(np.load(nouns_file)), rng.permutation(np.load(verbs_file))
    nouns = rng.normal(size=(3000, 32)).astype(np.float32)
    return nouns, (rng.normal(size=(1000, 32)) + 0.6).astype(np.float32)


def drifted(verbs: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """The traffic turns into another kind (verbs for nouns): a change paged at the first run.

    Smaller shifts page after evidence accumulates over many runs; that is measured in
    tests/statistical and by ``drift-monitor backtest``, not in these pipeline tests.
    """
    return np.random.default_rng(5).permutation(verbs)


# --- 1. real services ------------------------------------------------------------------------


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def production(
    database: sa.Engine,
    redis_client: redis.Redis,
    key_prefix: str,
    topics: dict[str, str],
    pushgateway_url: str,
    pagerduty_receiver: Receiver,  # noqa: F811
) -> Iterator[bootstrap.Container]:
    prefix = key_prefix
    settings = Settings(
        environment="test",
        pubsub_topic=topics["topic"],
        api_key=API_KEY,
        admin_key=ADMIN_KEY,
        pagerduty_routing_key=TEST_ROUTING_KEY,
        pagerduty_events_url=pagerduty_receiver.events_url,
        prometheus_gateway=pushgateway_url,
        alert_cooldown_minutes=30,
        # This scenario's windows are exact minutes at wall-clock times; detection on the
        # running statistics (whole buckets) is tested in tests/integration/sql and
        # tests/statistical/test_detection_source.py.
        detection_source="sql",
    )
    c = bootstrap.Container(
        settings=settings,
        publisher=pubsub.PubSubPublisher(PROJECT, topics["topic"]),
        repository=SqlRepository(database),
        stats=RedisStatsStore(redis_client, bucket_seconds=3600, key_prefix=prefix),
        registry=RedisDimensionRegistry(redis_client, key_prefix=prefix),
        dead_letter=pubsub.PubSubPublisher(PROJECT, topics["dead_letter"]),
        engine=database,
        ready=True,
    )
    bootstrap.add_detection(c)
    bootstrap.set_container(c)
    yield c
    bootstrap.set_container(None)


class Pipeline:
    """The deployed functions, driven the way GCP drives them."""

    def __init__(self, container: bootstrap.Container, topics: dict[str, str]) -> None:
        self.container = container
        self.topics = topics
        app = functions_framework.create_app
        self.ingest = app(target="ingest", source=MAIN).test_client()
        self.persist = app(target="persist", source=MAIN).test_client()
        self.stats = app(target="stats", source=MAIN).test_client()
        self.detect = app(target="detect", source=MAIN).test_client()
        self.api = app(target="api", source=MAIN).test_client()
        self.subscriber = pubsub.subscriber_client()

    def send(self, model: str, vectors: np.ndarray[Any, Any], when: datetime) -> None:
        parts = 0
        for start in range(0, len(vectors), 150):
            response = self.ingest.post(
                "/embeddings/batch",
                json={
                    "model_id": model,
                    "embeddings": vectors[start : start + 150].tolist(),
                    "timestamp": when.isoformat(),
                },
                headers=API,
            )
            assert response.status_code == 202, response.json
            parts += response.json["parts"]
        for name, client in (("persist", self.persist), ("stats", self.stats)):
            self._deliver(self.topics[name], client, parts)

    def _deliver(self, subscription: str, client: Any, expected: int) -> None:
        received: list[Any] = []
        deadline = time.monotonic() + 60
        while len(received) < expected and time.monotonic() < deadline:
            response = self.subscriber.pull(
                request={"subscription": subscription, "max_messages": 50}, timeout=10
            )
            received.extend(response.received_messages)
        assert len(received) == expected
        for item in received:
            message = item.message
            event = CloudEvent(
                {
                    "type": "google.cloud.pubsub.topic.v1.messagePublished",
                    "source": f"//pubsub.googleapis.com/projects/{PROJECT}/topics/embeddings",
                },
                {
                    "message": {
                        "data": base64.b64encode(message.data).decode(),
                        "attributes": dict(message.attributes),
                        "messageId": message.message_id,
                    },
                    "subscription": subscription,
                },
            )
            headers, body = to_structured(event)
            assert client.post("/", headers=headers, data=body).status_code == 200
        self.subscriber.acknowledge(
            request={"subscription": subscription, "ack_ids": [r.ack_id for r in received]}
        )

    def check(self, model: str, at: datetime) -> dict[str, Any]:
        self.container.clock = lambda: at
        response = self.detect.post(f"/drift/check/{model}", headers=API)
        assert response.status_code == 200, response.json
        result: dict[str, Any] = response.json["results"][0]
        return result


def gateway_value(url: str, metric: str, model: str) -> float | None:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    for line in text.splitlines():
        if line.startswith(metric + "{") and f'model_id="{model}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return None


def test_drift_alerting_on_real_services(
    production: bootstrap.Container,
    topics: dict[str, str],
    pagerduty_receiver: Receiver,  # noqa: F811
    pushgateway_url: str,
) -> None:
    nouns, verbs = traffic()
    model = "e2e/encoder"  # fixed: detection seeds its permutations from the model id
    pipe = Pipeline(production, topics)
    hook = pagerduty_receiver.webhook_url("drift")
    t0 = datetime.now(UTC).replace(microsecond=0)

    # Baseline: 600 nouns, ten to eight hours ago (the rolling baseline covers them).
    pipe.send(model, nouns[:600], t0 - timedelta(hours=9))
    config = pipe.api.post(
        f"/models/{model}/config", json={"alert_webhook": hook, "min_samples": 100}, headers=ADMIN
    )
    assert config.status_code == 200, config.json

    # Same distribution: no alert.
    pipe.send(model, nouns[600:900], t0 - timedelta(hours=5, minutes=30))
    same = pipe.check(model, t0 - timedelta(hours=5))
    assert same["status"] == "ok", same
    # a young model's baseline is split in half: the reference the window is tested against,
    # and the calibration part of the novelty evidence
    assert same["samples"] == {"baseline": 600, "current": 300, "baseline_used": 300,
                               "current_used": 300}  # fmt: skip
    assert same["evidence"] is not None and same["evidence"] < same["threshold"]
    assert pagerduty_receiver.events == [] and pagerduty_receiver.webhooks() == []

    # Drift: exactly one trigger and one webhook call; status shows drift with scores.
    pipe.send(model, drifted(verbs[:300]), t0 - timedelta(hours=3, minutes=30))
    drift = pipe.check(model, t0 - timedelta(hours=3))
    assert drift["status"] == "drift" and drift["drift_detected"] is True, drift
    pagerduty_receiver.wait_for(2)
    triggers = [e for e in pagerduty_receiver.events if e["event_action"] == "trigger"]
    assert len(triggers) == 1 and len(pagerduty_receiver.webhooks()) == 1
    assert pagerduty_receiver.rejected == []
    trigger = triggers[0]
    assert model in trigger["dedup_key"]
    assert trigger["payload"]["custom_details"]["tests"]
    status = pipe.api.get(f"/drift/status/{model}", headers=API).json
    assert status["drift_detected"] is True and status["status"] == "drift"
    assert status["tests"] and any(t["drift"] for t in status["tests"].values())
    assert all("p_value" in t and "statistic" in t for t in status["tests"].values())
    assert status["samples"]["current"] == 300
    assert gateway_value(pushgateway_url, "drift_monitor_model_drift_detected", model) == 1.0

    # Repeated detection inside the cooldown: nothing new.
    again = pipe.check(model, t0 - timedelta(hours=2, minutes=50))
    assert again["status"] == "drift"
    assert len(pagerduty_receiver.events) == 1 and len(pagerduty_receiver.webhooks()) == 1

    # Back to normal: one resolve with the trigger's dedup key. The monitor resolves once the
    # bet watching the page has 100:1 evidence of the baseline's rate. A page the window test
    # raised is watched by the best bet of that moment, which for verbs among nouns can be one
    # whose rate is only ~0.3 against 0.2: replayed through `backtest` over 40 shuffles, 22
    # resolved after the first window of normal traffic, 14 after the second, 4 after the
    # third. A still-open page checked two hours after its trigger (past the 30-minute
    # cooldown) gets one reminder on each channel, with the same dedup key: no new incident;
    # later checks fall inside the reminder's cooldown.
    pipe.send(model, nouns[1050:1650], t0 - timedelta(hours=1, minutes=30))
    back = pipe.check(model, t0 - timedelta(hours=1))
    reminded = back["status"] == "drift"
    windows = 1
    for start, sent_at, checked_at in ((1650, 55, 45), (2250, 42, 35)):
        if back["status"] != "drift":
            break
        pipe.send(model, nouns[start : start + 600], t0 - timedelta(minutes=sent_at))
        back = pipe.check(model, t0 - timedelta(minutes=checked_at))
        windows += 1
    assert back["status"] == "ok", back
    sent = 2 + int(reminded)  # PagerDuty events: the trigger, maybe a reminder, the resolve
    pagerduty_receiver.wait_for(2 * sent)  # and as many webhook calls
    resolves = [e for e in pagerduty_receiver.events if e["event_action"] == "resolve"]
    assert len(resolves) == 1 and resolves[0]["dedup_key"] == trigger["dedup_key"]
    triggers = [e for e in pagerduty_receiver.events if e["event_action"] == "trigger"]
    assert len(triggers) == 1 + int(reminded)
    assert {e["dedup_key"] for e in triggers} == {trigger["dedup_key"]}
    assert len(pagerduty_receiver.events) == sent
    assert gateway_value(pushgateway_url, "drift_monitor_model_drift_detected", model) == 0.0

    # And once more inside the cooldown: still nothing new.
    pipe.check(model, t0 - timedelta(minutes=30))
    time.sleep(0.5)
    assert len(pagerduty_receiver.events) == sent
    history = pipe.api.get(f"/drift/history/{model}", headers=API).json["results"]
    statuses = [r["status"] for r in reversed(history)]  # oldest first
    # ok (same distribution), drift (the change), drift (inside the cooldown), then one more
    # drift per window of normal traffic the page stayed open for, ok (resolved), ok.
    assert statuses == ["ok", "drift", "drift"] + ["drift"] * (windows - 1) + ["ok", "ok"], statuses


# --- 2. embedded mode through drift-monitor serve ----------------------------------------------

WINDOW_SECONDS = 15.0


class Served:
    def __init__(self, data_dir: Path, receiver: Receiver) -> None:
        env = {
            **os.environ,
            "DRIFT_MONITOR_ENV": "test",
            "DRIFT_MONITOR_API_KEY": API_KEY,
            "DRIFT_MONITOR_ADMIN_KEY": ADMIN_KEY,
            "PAGERDUTY_ROUTING_KEY": TEST_ROUTING_KEY,
            "PAGERDUTY_EVENTS_URL": receiver.events_url,
            "ALERT_COOLDOWN_MINUTES": "30",
        }
        for name in ("DATABASE_URL", "REDIS_URL", "PROMETHEUS_GATEWAY"):
            env.pop(name, None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "drift_monitor.cli", "serve", "--port", "0",
             "--data-dir", str(data_dir), "--detect-every", "0"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self.base = self._wait_for_url()

    def _wait_for_url(self) -> str:
        assert self.process.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            match = re.search(r"serving on (http://[\d.]+:\d+)", line)
            if match:
                threading.Thread(target=self._drain, daemon=True).start()
                return match.group(1)
        self.process.kill()
        raise AssertionError("drift-monitor serve did not start")

    def _drain(self) -> None:
        assert self.process.stdout is not None
        for _ in self.process.stdout:
            pass

    def call(self, method: str, path: str, body: Any = None, key: str = API_KEY) -> Any:
        request = urllib.request.Request(
            self.base + path,
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.loads(response.read())

    def send(self, model: str, vectors: np.ndarray[Any, Any], when: datetime) -> None:
        for start in range(0, len(vectors), 150):
            self.call("POST", "/embeddings/batch", {
                "model_id": model, "embeddings": vectors[start:start + 150].tolist(),
                "timestamp": when.isoformat(),
            })  # fmt: skip

    def check(self, model: str) -> dict[str, Any]:
        result: dict[str, Any] = self.call("POST", f"/drift/check/{model}")["results"][0]
        return result

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.mark.timeout(300)
def test_drift_alerting_through_drift_monitor_serve(
    tmp_path: Path,
    pagerduty_receiver: Receiver,  # noqa: F811
) -> None:
    nouns, verbs = traffic()
    model = "local/encoder"
    served = Served(tmp_path / "data", pagerduty_receiver)
    try:
        now = datetime.now(UTC)
        served.send(model, nouns[:600], now - timedelta(hours=2))
        served.call("POST", f"/models/{model}/config", {
            "current_window_minutes": WINDOW_SECONDS / 60, "min_samples": 100,
            "alert_webhook": pagerduty_receiver.webhook_url("local"),
        }, key=ADMIN_KEY)  # fmt: skip
        served.call("POST", f"/models/{model}/baseline", {
            "start": (now - timedelta(hours=3)).isoformat(),
            "end": (now - timedelta(hours=1)).isoformat(),
        }, key=ADMIN_KEY)  # fmt: skip

        served.send(model, nouns[600:900], datetime.now(UTC))
        same = served.check(model)
        assert same["status"] == "ok", same
        assert pagerduty_receiver.events == [] and pagerduty_receiver.webhooks() == []

        time.sleep(WINDOW_SECONDS + 1)
        served.send(model, drifted(verbs[:300]), datetime.now(UTC))
        drift = served.check(model)
        assert drift["status"] == "drift", drift
        pagerduty_receiver.wait_for(2)
        assert [e["event_action"] for e in pagerduty_receiver.events] == ["trigger"]
        assert len(pagerduty_receiver.webhooks("local")) == 1
        status = served.call("GET", f"/drift/status/{model}")
        assert status["drift_detected"] is True and status["tests"]
        assert served.check(model)["status"] == "drift"  # inside the cooldown
        assert len(pagerduty_receiver.events) == 1

        time.sleep(WINDOW_SECONDS + 1)
        served.send(model, nouns[1050:1650], datetime.now(UTC))
        back = served.check(model)
        if back["status"] == "drift":  # as above: a second window of normal traffic at most
            served.send(model, nouns[1650:2250], datetime.now(UTC))
            back = served.check(model)
        assert back["status"] == "ok", back
        pagerduty_receiver.wait_for(4)
        assert [e["event_action"] for e in pagerduty_receiver.events] == ["trigger", "resolve"]
        served.check(model)
        time.sleep(0.5)
        assert len(pagerduty_receiver.events) == 2
        with urllib.request.urlopen(
            urllib.request.Request(served.base + "/metrics", headers=API), timeout=10
        ) as response:
            metrics = response.read().decode()
        assert re.search(
            r'^drift_monitor_model_drift_detected\{[^}]*model_id="local/encoder"[^}]*\} 0\.0$',
            metrics,
            re.MULTILINE,
        )
    finally:
        served.stop()
