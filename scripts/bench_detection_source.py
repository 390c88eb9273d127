#!/usr/bin/env python3
"""Per-run detection time with 10^3 against 10^5 vectors in the window: running statistics vs SQL.

    nice -n 10 .venv/bin/python scripts/bench_detection_source.py [--small 1000]
        [--large 100000] [--dim 128] [--part-rows 500] [--baseline 20000] [--repeat 5]
        [--database-url URL] [--redis-url URL]

Two models get the same baseline (``--baseline`` vectors over the days before) and a current
window (the hour before ``now``, ``now`` on an hour boundary) holding ``--small`` and
``--large`` vectors, in parts of ``--part-rows`` rows. The window's parts are folded into the
running statistics (in-process store, or Redis with ``--redis-url``). One SQL run per model
fits the reference and puts the watermark at the window's start; its state is kept, and each
timed run starts from it, so every timed run is the steady-state run: the instant check on the
window and the scoring of the hour that arrived since the previous run. Each run of
``service.detection.run_detection`` is timed with ``DETECTION_SOURCE`` = ``sketch``, ``auto``
(the sketch plus the two SQL counts that guard it) and ``sql``, interleaved, best of
``--repeat``; the script prints each time and the ratios large / small (flat = 1) and
sketch / sql, all measured in this one process. Beside the best-of ratio it prints the
median and range of the per-round ratios (the two sizes timed back to back in each round),
which shows how much of a ratio is the machine's noise.

SQLite in a temporary folder by default; ``--database-url`` for PostgreSQL (for example
``scripts/services.py run --only pg,redis -- sh -c '.venv/bin/python
scripts/bench_detection_source.py --database-url "$TEST_DATABASE_URL" --redis-url
"$TEST_REDIS_URL"'``). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import bench_store  # first: pins BLAS to one thread before numpy loads
import numpy as np
from drift_monitor.adapters.memory_stats import MemoryStatsStore
from drift_monitor.adapters.sql import SqlRepository
from drift_monitor.domain.batch import BatchPart
from drift_monitor.service.detection import run_detection

SOURCES = ("sketch", "auto", "sql")


def store(
    repo: SqlRepository,
    stats: Any,
    model_id: str,
    *,
    baseline: int,
    window: int,
    dim: int,
    part_rows: int,
    now: datetime,
) -> None:
    """``baseline`` vectors over [now - 6 days, now - 3 h), ``window`` in [now - 1 h, now)."""
    rng = np.random.default_rng(window)
    for label, total, start, span in (
        ("b", baseline, now - timedelta(days=6), timedelta(days=6) - timedelta(hours=3)),
        ("w", window, now - timedelta(hours=1), timedelta(hours=1)),
    ):
        parts = -(-total // part_rows)
        for i in range(parts):
            rows = min(part_rows, total - i * part_rows)
            part = BatchPart(
                model_id=model_id,
                batch_id=f"{label}{i:06d}",
                part=0,
                parts=1,
                row_offset=0,
                timestamp=start + span * (i / parts),
                vectors=rng.standard_normal((rows, dim), dtype=np.float32),
                metadata={},
            )
            repo.save_part(part)
            if label == "w":
                stats.fold(part)


def spread(numerators: list[float], denominators: list[float]) -> str:
    """Median and range of the ratios of paired timings (the same round, interleaved): how
    much of a best-of ratio is this machine's noise."""
    ratios = sorted(a / b for a, b in zip(numerators, denominators, strict=True))
    median = (
        ratios[len(ratios) // 2]
        if len(ratios) % 2
        else sum(ratios[len(ratios) // 2 - 1 : len(ratios) // 2 + 1]) / 2
    )
    return f"median {median:.2f} ({ratios[0]:.2f} to {ratios[-1]:.2f}, {len(ratios)} rounds)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--part-rows", type=int, default=500)
    parser.add_argument("--baseline", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--redis-url", default=None)
    args = parser.parse_args(argv)
    logging.disable(logging.INFO)

    now = datetime.fromtimestamp(time.time() // 3600 * 3600, UTC)  # an hour boundary
    if args.redis_url:
        import redis
        from drift_monitor.adapters.redis_stats import RedisStatsStore

        client = redis.Redis.from_url(args.redis_url)
        prefix = f"bench-{uuid.uuid4().hex[:8]}"
        stats: Any = RedisStatsStore(
            client, key_prefix=prefix, bucket_seconds=3600, retention_seconds=7 * 86_400
        )
    else:
        stats = MemoryStatsStore(
            bucket_seconds=3600, retention_seconds=7 * 86_400, clock=lambda: now.timestamp()
        )

    with bench_store.temporary_store(args.database_url, "bench-source-") as db:
        settings, engine, repo, monitor = db.settings, db.engine, db.repo, db.monitor
        tag = uuid.uuid4().hex[:8]
        models: dict[int, str] = {}
        snapshots: dict[str, Any] = {}
        for size in (args.small, args.large):
            model_id = f"source-{size}-{tag}"
            started = time.perf_counter()
            store(repo, stats, model_id, baseline=args.baseline, window=size, dim=args.dim,
                  part_rows=args.part_rows, now=now)  # fmt: skip
            models[size] = model_id
            # Fit the reference and put the watermark at the window's start.
            first = run_detection(model_id, repository=repo, monitor=monitor, alerting=None,
                                  metrics=None, settings=replace(settings, detection_source="sql"),
                                  now=now - timedelta(hours=1))  # fmt: skip
            if first.status not in ("ok", "drift", "insufficient_data"):
                raise SystemExit(f"first run ended {first.status}: {first.error}")
            snapshots[model_id] = monitor.get_detection_state(model_id)
            print(f"stored {size:,} + {args.baseline:,} vectors and fitted in "
                  f"{time.perf_counter() - started:.1f} s", flush=True)  # fmt: skip

        best = {(s, n): float("inf") for s in SOURCES for n in models}
        times: dict[tuple[str, int], list[float]] = {(s, n): [] for s in SOURCES for n in models}
        scored: dict[tuple[str, int], int] = {}
        for _ in range(args.repeat):
            for size, model_id in models.items():
                for source in SOURCES:
                    snap = snapshots[model_id]
                    version = monitor.get_detection_state(model_id).version
                    assert monitor.save_detection_state(
                        model_id, version, snap.state, snap.reference, snap.calibration, now
                    )
                    started = time.perf_counter()
                    outcome = run_detection(
                        model_id,
                        repository=repo,
                        monitor=monitor,
                        stats=stats,
                        alerting=None,
                        metrics=None,
                        settings=replace(settings, detection_source=source),
                        now=now,
                    )
                    elapsed = time.perf_counter() - started
                    if outcome.status not in ("ok", "drift"):
                        raise SystemExit(f"{source} run ended {outcome.status}: {outcome.error}")
                    expected = "sql" if source == "sql" else "sketch"
                    if outcome.source != expected:
                        raise SystemExit(f"{source} run read {outcome.source}: "
                                         f"{outcome.source_reason}")  # fmt: skip
                    best[source, size] = min(best[source, size], elapsed)
                    times[source, size].append(elapsed)
                    scored[source, size] = int((outcome.monitor or {}).get("scored", 0))
        small, large = args.small, args.large
        store_name = "redis" if args.redis_url else "in-process statistics"
        print(f"{engine.dialect.name} + {store_name}, d = {args.dim}, best of {args.repeat}:")
        for source in SOURCES:
            print(
                f"  {source:6s}: {best[source, small] * 1000:8.1f} ms at {small:,}, "
                f"{best[source, large] * 1000:8.1f} ms at {large:,} vectors in the window "
                f"(scored {scored[source, small]}, {scored[source, large]}); "
                f"ratio large/small {best[source, large] / best[source, small]:.2f}; "
                f"per round {spread(times[source, large], times[source, small])}"
            )
        for size in (small, large):
            print(
                f"  at {size:,}: sketch/sql {best['sketch', size] / best['sql', size]:.2f}, "
                f"auto/sql {best['auto', size] / best['sql', size]:.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
