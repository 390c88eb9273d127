#!/usr/bin/env python3
"""Cost of one model-check in the detection fan-out, and what it means for a fleet.

    nice -n 10 .venv/bin/python scripts/bench_fanout.py [--models 200] [--rows 120] [--dim 8]
        [--database-url URL] [--tick-seconds 300] [--fleet 1000]

Stores ``--models`` models, each with ``--baseline-rows`` vectors of ``--dim`` dimensions in
its baseline window and ``--rows`` in its current window, runs one scheduled tick
(``publish_tick``: one request per model, to an in-process topic) and then the worker path of
every request (``run_requested``: claim, ``run_detection``, result stored, claim kept), one
after another in this process: what one ``check`` instance with concurrency 1 does.
Prints the tick's time, the mean time per model-check, the model-checks per hour one
instance sustains, and how many instances check ``--fleet`` models within ``--tick-seconds``.
The broker's delivery latency is not included (Pub/Sub push delivers in parallel to as many
instances as ``max_instances`` allows). Not part of the test suite.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import replace  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from drift_monitor import bootstrap  # noqa: E402
from drift_monitor.adapters.sql.claims import SqlDetectionClaims  # noqa: E402
from drift_monitor.config import Settings  # noqa: E402
from drift_monitor.domain.batch import BatchPart  # noqa: E402
from drift_monitor.domain.envelope import Message  # noqa: E402
from drift_monitor.entrypoints.detect_http import collaborators  # noqa: E402
from drift_monitor.service import detect_fanout, detection  # noqa: E402


class Topic:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    def publish(self, messages: Sequence[Message]) -> list[str]:
        self.messages.extend(messages)
        return [str(i) for i in range(len(messages))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--rows", type=int, default=120, help="current-window vectors per model")
    parser.add_argument(
        "--baseline-rows",
        type=int,
        default=600,
        help="baseline vectors (detection warms up on 500)",
    )
    parser.add_argument("--dim", type=int, default=8)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--tick-seconds", type=int, default=300)
    parser.add_argument("--fleet", type=int, default=1000)
    args = parser.parse_args(argv)
    logging.disable(logging.INFO)

    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as tmp:
        settings = replace(
            Settings(environment="test"), data_dir=Path(tmp), database_url=args.database_url
        )
        c = bootstrap.build(settings, embedded=True)
        c.migrate()
        now = datetime.now(UTC).replace(microsecond=0)
        rng = np.random.default_rng(0)
        ids = [f"bench-fanout/{i:05d}" for i in range(args.models)]
        for model_id in ids:
            windows = (
                (now - timedelta(days=2), args.baseline_rows),
                (now - timedelta(minutes=20), args.rows),
            )
            for j, (ts, rows) in enumerate(windows):
                vectors = rng.standard_normal((rows, args.dim), dtype=np.float32)
                c.repository.save_part(BatchPart(model_id, f"b{j}", 0, 1, 0, ts, vectors))
        topic, claims = Topic(), SqlDetectionClaims(c.engine)

        started = time.perf_counter()
        tick = detect_fanout.publish_tick(detection.model_ids(c.repository), topic, claims, now)
        tick_seconds = time.perf_counter() - started

        def run(model_id: str, slot: datetime) -> detection.DetectionOutcome:
            return detection.run_detection(model_id, now=slot, **collaborators(c))

        statuses: dict[str, int] = {}
        started = time.perf_counter()
        for message in topic.messages:
            request = detect_fanout.DetectRequest.decode(message.data)
            outcome = detect_fanout.run_requested(request, claims, run)
            status = outcome.status if outcome is not None else "duplicate"
            statuses[status] = statuses.get(status, 0) + 1
        per_check = (time.perf_counter() - started) / max(1, tick.published)
        c.engine.dispose()

    per_hour = 3600 / per_check
    instances = math.ceil(args.fleet * per_check / args.tick_seconds)
    print(
        f"{args.models} models, baseline {args.baseline_rows} and current {args.rows} vectors "
        f"of {args.dim} dimensions, {c.engine.dialect.name}"
    )
    print(f"tick: {tick.published} requests published in {tick_seconds:.3f} s")
    print(f"model-checks: {statuses}; {per_check * 1000:.0f} ms per model-check")
    print(f"one instance (concurrency 1): {per_hour:,.0f} model-checks per hour")
    print(
        f"{args.fleet} models within a {args.tick_seconds} s tick: {instances} instance(s) "
        f"({args.fleet * per_check:.0f} instance-seconds per tick)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
