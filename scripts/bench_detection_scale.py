#!/usr/bin/env python3
"""Detection time as stored volume grows: a model with 10^6 stored vectors against 10^4.

    nice -n 10 .venv/bin/python scripts/bench_detection_scale.py [--small 10000]
        [--large 1000000] [--dim 384] [--part-rows 5000] [--repeat 3] [--database-url URL]

Two models get the same layout at two volumes: half of the vectors in the rolling baseline
window (spread over the previous days), half in the current window (the last hour), in parts
of ``--part-rows`` rows (5000 x 384 float32 is about one Pub/Sub message). Then
``service.detection.run_detection`` runs for each model, with the default configuration
(at most ``max_samples`` = 2000 rows per window, so both models are sampled), and the best
of ``--repeat`` interleaved runs is reported for each, with their ratio; so is the time of
the two sampled reads alone (storage only, without the statistics). Flat means the ratio stays near
1: the sampled reads cost the same whatever the volume stored.

SQLite in a temporary folder by default; ``--database-url`` for PostgreSQL (for example
``scripts/services.py run --only pg -- sh -c '.venv/bin/python scripts/bench_detection_scale.py
--database-url "$TEST_DATABASE_URL"'``). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import bench_store  # first: pins BLAS to one thread before numpy loads
import numpy as np
from drift_monitor.adapters.sql import SqlRepository
from drift_monitor.domain.batch import BatchPart
from drift_monitor.service.detection import run_detection


def store(
    repo: SqlRepository, model_id: str, total: int, dim: int, part_rows: int, now: datetime
) -> None:
    """``total`` vectors of one distribution: half in the 6 days before the last hour, half
    in the last hour."""
    rng = np.random.default_rng(total)
    parts = max(2, -(-total // part_rows))
    for i in range(parts):
        rows = min(part_rows, total - i * part_rows) if i < parts - 1 else part_rows
        rows = max(1, min(rows, part_rows))
        if i < parts // 2:
            ts = now - timedelta(hours=2) - timedelta(days=6) * (i / max(1, parts // 2))
        else:
            ts = now - timedelta(minutes=55) + timedelta(minutes=50) * (i / parts)
        # One distribution throughout: both models take the same (no drift) path.
        vectors = rng.standard_normal((rows, dim), dtype=np.float32)
        repo.save_part(
            BatchPart(
                model_id=model_id,
                batch_id=f"b{i:06d}",
                part=0,
                parts=1,
                row_offset=0,
                timestamp=ts,
                vectors=vectors,
                metadata={},
            )
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--part-rows", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args(argv)
    logging.disable(logging.INFO)

    with bench_store.temporary_store(args.database_url, "bench-detect-") as db:
        settings, engine, repo, monitor = db.settings, db.engine, db.repo, db.monitor
        now = datetime.now(UTC).replace(microsecond=0)
        tag = uuid.uuid4().hex[:8]
        models: dict[int, str] = {}
        for total in (args.small, args.large):
            model_id = f"scale-{total}-{tag}"
            started = time.perf_counter()
            store(repo, model_id, total, args.dim, args.part_rows, now)
            stored = repo.count_vectors(model_id)
            models[stored] = model_id
            print(f"stored {stored:,} vectors in {time.perf_counter() - started:.1f} s", flush=True)
        detect = {stored: float("inf") for stored in models}
        sample = dict(detect)
        # Interleaved rounds, best of each: a busy machine slows both sizes alike.
        for _ in range(args.repeat):
            for stored, model_id in models.items():
                started = time.perf_counter()
                outcome = run_detection(
                    model_id,
                    repository=repo,
                    monitor=monitor,
                    alerting=None,
                    metrics=None,
                    settings=settings,
                    now=now,
                )
                detect[stored] = min(detect[stored], time.perf_counter() - started)
                if outcome.status not in ("ok", "drift"):
                    raise SystemExit(f"detection ended {outcome.status}: {outcome.error}")
                started = time.perf_counter()
                for seed in (1, 2):  # both windows, as detection reads them
                    repo.sample_vectors(model_id, None, now, 2000, seed)
                sample[stored] = min(sample[stored], time.perf_counter() - started)
        small, large = sorted(models)
        name = engine.dialect.name
        for label, times in (("detection", detect), ("sampling 2 x 2000 rows", sample)):
            print(
                f"{name}: {label}: {times[small]:.3f} s at {small:,}, {times[large]:.3f} s at "
                f"{large:,} stored vectors; ratio {times[large] / times[small]:.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
