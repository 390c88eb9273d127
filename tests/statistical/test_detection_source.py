"""Detection on the running statistics against detection on SQL samples: same verdicts.

The same streams (fixed seeds) go to both paths of ``run_detection``: SQL (the exact current
window, a uniform sample of up to ``max_samples`` rows, every vector since the previous run
scored) and the running statistics (whole buckets, a 128-row bottom-k sample of the window,
the closed buckets' samples scored). Each trial is a fresh model: a baseline two days back,
then traffic at 120 vectors an hour in parts every five minutes, and hourly runs at five past
the hour for ``RUNS`` hours. The model's false-page budget is one day so that the pages are
frequent enough to count in a short study. The real statistics engine decides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from drift_monitor.adapters.memory_stats import MemoryStatsStore
from drift_monitor.config import Settings
from drift_monitor.domain.batch import BatchPart
from drift_monitor.drift import sequential
from drift_monitor.service.detection import run_detection
from scipy import stats as st

pytestmark = pytest.mark.statistical

D = 16
RUNS = 4
RATE = 120  # vectors an hour
H0 = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)
CONFIG = {"max_samples": 500, "min_samples": 50, "false_alarm_interval_days": 1}
SCALE = np.linspace(1.0, 0.3, D)
NEW_SCALE = 0.7  # distance of the new kind of traffic's centre, per dimension (random sign)


@dataclass
class Batches:
    rows: list[tuple[datetime, np.ndarray]] = field(default_factory=list)

    def _select(self, start: datetime, end: datetime) -> np.ndarray:
        chunks = [v for ts, v in self.rows if start <= ts < end]
        return np.concatenate(chunks) if chunks else np.zeros((0, D), np.float32)

    def count_vectors(self, model_id: str, start: datetime, end: datetime) -> int:
        return int(self._select(start, end).shape[0])

    def sample_vectors(self, model_id: str, start: datetime, end: datetime, max_rows: int,
                       seed: int) -> np.ndarray:  # fmt: skip
        data = self._select(start, end)
        if data.shape[0] <= max_rows:
            return data
        return data[np.sort(np.random.default_rng(seed).choice(len(data), max_rows, False))]

    def list_models(self) -> list[str]:
        return ["m"]


@dataclass
class Monitor:
    baseline: Any = None
    state: Any = None
    results: list[dict[str, Any]] = field(default_factory=list)

    def get_config(self, model_id: str) -> dict[str, Any]:
        return CONFIG

    def get_baseline(self, model_id: str) -> Any:
        return self.baseline

    def set_baseline(self, model_id: str, start: datetime, end: datetime, pinned: bool,
                     now: datetime) -> None:  # fmt: skip
        self.baseline = {"start": start, "end": end, "pinned": pinned, "updated_at": now}

    def add_result(self, result: dict[str, Any]) -> int:
        self.results.append(result)
        return len(self.results)

    def latest_result(self, model_id: str) -> Any:
        return self.results[-1] if self.results else None

    def get_detection_state(self, model_id: str) -> Any:
        return self.state

    def save_detection_state(self, model_id: str, expected_version: int | None, state: Any,
                             reference: bytes | None, calibration: bytes,
                             now: datetime) -> bool:  # fmt: skip
        version = None if self.state is None else self.state["version"]
        if version != expected_version:
            return False
        kept = reference if reference is not None else self.state["reference"]
        self.state = {"version": (version or 0) + 1, "state": dict(state), "reference": kept,
                      "calibration": calibration}  # fmt: skip
        return True


def trial(seed: int, mix: float) -> dict[str, dict[str, int]]:
    """One stream through both paths; per path: paged (0/1), window fires, scored, novel."""
    rng = np.random.default_rng(seed)
    new_kind = rng.normal(0, 1, D) * NEW_SCALE  # "a new kind of traffic": another centre
    batches = Batches()
    batches.rows.append((H0 - timedelta(days=2), (rng.normal(size=(2500, D)) * SCALE)
                         .astype(np.float32)))  # fmt: skip
    parts: list[BatchPart] = []
    for i in range(12 * (RUNS + 1)):
        ts = H0 - timedelta(hours=1) + timedelta(minutes=5 * i, seconds=int(rng.integers(0, 300)))
        n = int(rng.poisson(RATE / 12))
        x = rng.normal(size=(n, D)) * SCALE
        x[rng.random(n) < mix] += new_kind
        parts.append(BatchPart("m", f"p{i}", 0, 1, 0, ts, x.astype(np.float32)))
    out: dict[str, dict[str, int]] = {}
    for source in ("sketch", "sql"):
        clock = {"now": H0}
        store = MemoryStatsStore(bucket_seconds=3600, retention_seconds=7 * 86_400,
                                 clock=lambda c=clock: c["now"].timestamp())  # fmt: skip
        monitor = Monitor()
        path = Batches(rows=list(batches.rows))
        tally = {"paged": 0, "window": 0, "runs": 0, "scored": 0, "novel": 0, "sketch_runs": 0}
        sent = 0
        for k in range(RUNS):
            now = H0 + timedelta(hours=k, minutes=5)
            clock["now"] = now
            while sent < len(parts) and parts[sent].timestamp < now:
                path.rows.append((parts[sent].timestamp, parts[sent].vectors))
                if parts[sent].count:
                    store.fold(parts[sent])
                sent += 1
            outcome = run_detection("m", repository=path, monitor=monitor, stats=store,
                                    alerting=None, metrics=None, now=now,
                                    settings=Settings(detection_source=source))  # fmt: skip
            assert outcome.status in ("ok", "drift", "insufficient_data"), outcome.error
            doc = outcome.monitor or {}
            tally["runs"] += 1
            tally["sketch_runs"] += outcome.source == "sketch"
            tally["window"] += bool(doc.get("window_drift"))
            tally["scored"] += int(doc.get("scored") or 0)
            tally["novel"] += int(doc.get("novel") or 0)
            tally["paged"] |= outcome.status == "drift"
        out[source] = tally
    return out


def study(trials: int, mix: float, first_seed: int) -> dict[str, dict[str, int]]:
    total: dict[str, dict[str, int]] = {}
    for t in range(trials):
        for source, tally in trial(first_seed + t, mix).items():
            acc = total.setdefault(source, dict.fromkeys(tally, 0))
            for key, value in tally.items():
                acc[key] += value
    return total


def test_same_false_alarm_rate_on_stationary_traffic() -> None:
    trials = 40
    total = study(trials, mix=0.0, first_seed=1000)
    print(f"\nstationary, {trials} trials x {RUNS} runs: {total}")
    budget = sequential.Budget(CONFIG["false_alarm_interval_days"], 60.0)
    for source, tally in total.items():
        if source == "sketch":
            assert tally["sketch_runs"] == tally["runs"]  # the buckets served every run
        # the instant check's level per run, and the page budget (1 per day) per trial
        assert tally["window"] <= st.binom.ppf(0.99, tally["runs"], budget.instant_alpha)
        assert tally["paged"] <= st.binom.ppf(0.99, trials, RUNS / 24)
        # scored vectors are baseline-like: the top-1 % novelty bet wins about 1 % of them
        assert tally["novel"] <= st.binom.ppf(0.999, tally["scored"], 0.02)
    # the sketch path scores the closed buckets' samples: all of them at this rate but the
    # first run's (its window's buckets had not closed), so at least 2/3 of what SQL scores
    assert total["sketch"]["scored"] >= 0.6 * total["sql"]["scored"]


def test_comparable_power_on_a_new_kind_of_traffic() -> None:
    """5 % of the traffic from another centre: both paths page in most trials, at rates (and
    per-run instant-check rates) that agree within two-proportion bounds."""
    trials = 24
    total = study(trials, mix=0.05, first_seed=2000)
    print(f"\n5 % new traffic, {trials} trials x {RUNS} runs: {total}")
    for key, n in (("paged", trials), ("window", trials * RUNS)):
        a, b = total["sketch"][key], total["sql"][key]
        pooled = (a + b) / (2 * n)
        assert abs(a - b) / n <= 2.58 * np.sqrt(2 * pooled * (1 - pooled) / n) + 1e-9, key
    assert min(total["sketch"]["paged"], total["sql"]["paged"]) >= trials // 3
