#!/usr/bin/env python3
"""Benchmark the ingest data path, each function separately, against the raw parse rate.

    nice -n 10 .venv/bin/python scripts/bench_ingest.py [--rows 10000] [--dim 384]
        [--json-rows 1000] [--batches 12] [--repeat 3] [--database-url URL] [--no-serve]
        [--port 18300] [--emulator HOST:PORT]

Every figure is vectors per second, and each is also printed as a percentage of the raw parse
rate of the same bodies measured in the same run (``np.load`` for ``.npy`` bodies,
``orjson.loads`` for JSON bodies), so the ratios stay comparable on a busy machine while the
absolute figures do not. Stages, each timed on its own on the same ``--batches`` bodies of
``--rows`` x ``--dim`` float32 (the best of ``--repeat`` rounds):

* ``ingest``: the HTTP ingest function (``ingest_http.handle_with``: read, validate, claim
  the dimension, split, encode, publish) with the in-process bus and no subscribers, so the
  figure is the function's own cost and not a broker's; ``.npy`` and JSON (``--json-rows``);
* ``ingest (emulator)``: the same function publishing to the Pub/Sub emulator at
  ``--emulator`` (for information: mostly the emulator's speed), when given;
* ``persist``: the persist subscriber (decode the message, store the part) on SQLite in a
  temporary folder, or on ``--database-url`` (each round uses fresh batch ids);
* ``stats fold``: the statistics subscriber (decode, fold into the in-process store);
* ``serve``: ``drift-monitor serve`` end to end (HTTP, validation, in-process bus, SQLite,
  statistics) with sequential POSTs from one client, unless ``--no-serve``.

BLAS and numpy run on one thread, so the figures are per core. Not part of the test suite.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import http.client  # noqa: E402
import io  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import replace  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import orjson  # noqa: E402
from drift_monitor.adapters.memory_bus import DeadLetterList, MemoryBus  # noqa: E402
from drift_monitor.adapters.memory_stats import MemoryDimensionRegistry, MemoryStatsStore  # noqa: E402
from drift_monitor.bootstrap import Container  # noqa: E402
from drift_monitor.config import Settings  # noqa: E402
from drift_monitor.domain.envelope import Message, decode, encode, split_batch  # noqa: E402
from drift_monitor.entrypoints import ingest_http, subscribers  # noqa: E402
from drift_monitor.entrypoints.cloudevent import Received  # noqa: E402
from flask import Request  # noqa: E402
from werkzeug.test import EnvironBuilder  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def best_rate(vectors: int, run: Callable[[], object], repeat: int) -> float:
    """Vectors per second of the fastest of ``repeat`` calls of ``run``."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return vectors / best


def npy_body(vectors: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, vectors)
    return buffer.getvalue()


def json_body(vectors: np.ndarray, model_id: str) -> bytes:
    return orjson.dumps(
        {
            "model_id": model_id,
            "embeddings": vectors.tolist(),
            "timestamp": datetime.now(UTC).isoformat(),
        }
    )


def request(body: bytes, content_type: str, params: dict[str, str]) -> Request:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    env = EnvironBuilder(
        path="/embeddings/batch",
        method="POST",
        data=body,
        content_type=content_type,
        query_string=query,
    ).get_environ()
    return Request(env)


class Sink:
    """The in-process bus with no subscribers: publishing costs what the bus costs."""

    def __init__(self) -> None:
        self.bus = MemoryBus()

    def publish(self, messages: Sequence[Message]) -> list[str]:
        return self.bus.publish(messages)


def ingest_container(settings: Settings, publisher: Any) -> Container:
    stats = MemoryStatsStore(bucket_seconds=3600, retention_seconds=7 * 86400)
    return Container(
        settings=settings,
        publisher=publisher,
        repository=None,  # type: ignore[arg-type]  # the ingest function never reads it
        stats=stats,
        registry=MemoryDimensionRegistry(),
        dead_letter=DeadLetterList(),
    )


def ingest_rate(
    container: Container, bodies: list[bytes], kind: str, rows: int, repeat: int
) -> float:
    """The ingest function's rate; building the WSGI requests is not timed."""
    content_type = "application/x-npy" if kind == "npy" else "application/json"
    params = {"model_id": "bench"} if kind == "npy" else {}
    best = float("inf")
    for _ in range(repeat):
        requests = [request(body, content_type, params) for body in bodies]
        start = time.perf_counter()
        for req in requests:
            response = ingest_http.handle_with(req, container)
            if response.status_code != 202:
                raise SystemExit(f"ingest answered {response.status_code}: {response.data!r}")
        best = min(best, time.perf_counter() - start)
    return rows * len(bodies) / best


def messages_for(vectors: list[np.ndarray], model_id: str) -> list[Message]:
    now = datetime.now(UTC)
    out: list[Message] = []
    for v in vectors:
        out.extend(encode(p) for p in split_batch(model_id, uuid.uuid4().hex, now, v))
    return out


def subscriber_rate(
    handler: subscribers.Handler,
    fresh_messages: Callable[[], list[Message]],
    rows: int,
    repeat: int,
    consumer: str,
) -> float:
    best = float("inf")
    for _ in range(repeat):
        messages = fresh_messages()  # new batch ids each round: nothing is a redelivery
        dead = DeadLetterList()
        start = time.perf_counter()
        for i, message in enumerate(messages):
            received = Received(message, f"m{i}", f"bench/{consumer}")
            if not subscribers.process(received, handler, dead_letter=dead, consumer=consumer):
                raise SystemExit(f"{consumer} did not apply message {i}")
        best = min(best, time.perf_counter() - start)
    return rows / best


def serve_rate(
    bodies: list[bytes], rows: int, port: int, data_dir: Path, database_url: str | None
) -> float:
    env = {**os.environ, "DRIFT_MONITOR_DATA_DIR": str(data_dir)}
    env.pop("DATABASE_URL", None)
    if database_url:
        env["DATABASE_URL"] = database_url
    cmd = [sys.executable, "-m", "drift_monitor.cli", "serve", "--port", str(port)]
    cmd += ["--detect-every", "0"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("drift-monitor serve did not become healthy")
            time.sleep(0.2)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        headers = {"Content-Type": "application/x-npy", "X-Model-Id": "bench-serve"}
        # one warm-up batch (the model's first batch also fixes its histogram edges)
        conn.request("POST", "/embeddings/batch", body=bodies[0], headers=headers)
        conn.getresponse().read()
        start = time.perf_counter()
        for body in bodies:
            conn.request("POST", "/embeddings/batch", body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            if response.status != 202:
                raise SystemExit(f"serve answered {response.status}")
        return rows * len(bodies) / (time.perf_counter() - start)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--json-rows", type=int, default=1000)
    parser.add_argument("--batches", type=int, default=12)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database-url", default=None, help="persist to this instead of SQLite")
    parser.add_argument("--no-serve", action="store_true")
    parser.add_argument("--port", type=int, default=18300, help="port for drift-monitor serve")
    parser.add_argument("--emulator", default=None, help="Pub/Sub emulator HOST:PORT")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    vectors = [
        rng.standard_normal((args.rows, args.dim)).astype(np.float32) for _ in range(args.batches)
    ]
    small = [v[: args.json_rows] for v in vectors]
    npy = [npy_body(v) for v in vectors]
    js = [json_body(v, "bench-json") for v in small]
    n_npy = args.rows * args.batches
    n_json = args.json_rows * args.batches

    raw_npy = best_rate(n_npy, lambda: [np.load(io.BytesIO(b)) for b in npy], args.repeat)
    raw_json = best_rate(n_json, lambda: [orjson.loads(b) for b in js], args.repeat)
    rows: list[tuple[str, float, float]] = [
        ("raw np.load (.npy)", raw_npy, raw_npy),
        ("raw orjson.loads (JSON)", raw_json, raw_json),
    ]

    settings = Settings.from_env({"DRIFT_MONITOR_ENV": "test"})
    settings = replace(settings, max_request_bytes=max(settings.max_request_bytes, 2**30))
    sink = ingest_container(settings, Sink())
    rate = ingest_rate(sink, npy, "npy", args.rows, args.repeat)
    rows.append(("ingest function .npy", rate, raw_npy))
    rate = ingest_rate(sink, js, "json", args.json_rows, args.repeat)
    rows.append(("ingest function JSON", rate, raw_json))
    if args.emulator:
        os.environ["PUBSUB_EMULATOR_HOST"] = args.emulator
        rate = emulator_rate(settings, npy, args)
        rows.append(("ingest function .npy (emulator)", rate, raw_npy))

    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        from drift_monitor.adapters.sql import SqlRepository, make_engine, upgrade

        db_settings = replace(settings, data_dir=Path(tmp), database_url=args.database_url)
        engine = make_engine(db_settings)
        upgrade(engine)
        repo = SqlRepository(engine)
        container = replace(sink, repository=repo, registry=repo, engine=engine)
        model = f"bench-persist-{uuid.uuid4().hex[:8]}"
        persist = subscribers.persist_handler(container)
        rate = subscriber_rate(
            persist, lambda: messages_for(vectors, model), n_npy, args.repeat, "persist"
        )
        rows.append((f"persist ({engine.dialect.name})", rate, raw_npy))
        engine.dispose()

        fold = subscribers.stats_handler(sink)
        stats_model = f"bench-stats-{uuid.uuid4().hex[:8]}"
        # The model's first part fixes its histogram edges (once per model): not timed.
        fold(decode(messages_for(vectors[:1], stats_model)[0].data))
        rate = subscriber_rate(
            fold, lambda: messages_for(vectors, stats_model), n_npy, args.repeat, "stats"
        )
        rows.append(("stats fold", rate, raw_npy))

        if not args.no_serve:
            rate = serve_rate(npy, n_npy, args.port, Path(tmp) / "serve", args.database_url)
            rows.append(("serve end to end .npy", rate, raw_npy))

    print(
        f"{args.batches} batches of {args.rows} x {args.dim} float32 (.npy), "
        f"JSON {args.json_rows} rows"
    )
    print(f"{'stage':34s} {'vectors/s':>14s} {'% of raw parse':>15s}")
    for name, rate, base in rows:
        print(f"{name:34s} {rate:14,.0f} {100 * rate / base:14.2f}%")
    return 0


def emulator_rate(settings: Settings, bodies: list[bytes], args: argparse.Namespace) -> float:
    from drift_monitor.adapters.pubsub import PubSubPublisher
    from google.cloud import pubsub_v1

    topic = f"bench-ingest-{uuid.uuid4().hex[:8]}"
    admin = pubsub_v1.PublisherClient()
    admin.create_topic(name=admin.topic_path(settings.google_cloud_project, topic))
    container = ingest_container(settings, PubSubPublisher(settings.google_cloud_project, topic))
    return ingest_rate(container, bodies, "npy", args.rows, args.repeat)


if __name__ == "__main__":
    sys.exit(main())
