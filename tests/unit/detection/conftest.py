"""In-process twins of the collaborators detection uses (batches, monitor tables, alerting).

The twins keep the contracts' behaviour that detection relies on: ``count_vectors`` and
``sample_vectors`` honour ``start <= ts < end`` and ``max_rows``; the monitor keeps the latest
result per model and baselines with ``updated_at``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pytest
from drift_monitor.config import Settings


@dataclass
class Batches:
    """Vectors with timestamps per model; records every sample request."""

    rows: dict[str, list[tuple[datetime, np.ndarray[Any, Any]]]] = field(default_factory=dict)
    broken: set[str] = field(default_factory=set)
    sample_calls: list[tuple[str, datetime, datetime, int]] = field(default_factory=list)

    def add(self, model_id: str, ts: datetime, vectors: np.ndarray[Any, Any]) -> None:
        self.rows.setdefault(model_id, []).append((ts, np.asarray(vectors, dtype=np.float32)))

    def _select(self, model_id: str, start: datetime, end: datetime) -> np.ndarray[Any, Any]:
        if model_id in self.broken:
            raise RuntimeError(f"storage for {model_id} is broken")
        chunks = [v for ts, v in self.rows.get(model_id, []) if start <= ts < end]
        if not chunks:
            return np.zeros((0, 4), dtype=np.float32)
        return np.concatenate(chunks)

    def count_vectors(self, model_id: str, start: datetime, end: datetime) -> int:
        return int(self._select(model_id, start, end).shape[0])

    def sample_vectors(
        self, model_id: str, start: datetime, end: datetime, max_rows: int, seed: int
    ) -> np.ndarray[Any, Any]:
        self.sample_calls.append((model_id, start, end, max_rows))
        data = self._select(model_id, start, end)
        if data.shape[0] <= max_rows:
            return data
        pick = np.random.default_rng(seed).choice(data.shape[0], max_rows, replace=False)
        return data[np.sort(pick)]

    def list_models(self) -> Sequence[Mapping[str, Any]]:
        return [{"model_id": m} for m in sorted(self.rows)]


@dataclass
class Baseline:
    model_id: str
    start: datetime
    end: datetime
    pinned: bool
    updated_at: datetime


@dataclass
class State:
    model_id: str
    version: int
    state: dict[str, Any]
    reference: bytes
    calibration: bytes
    updated_at: datetime


@dataclass
class Monitor:
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    baselines: dict[str, Baseline] = field(default_factory=dict)
    results: list[dict[str, Any]] = field(default_factory=list)
    states: dict[str, State] = field(default_factory=dict)
    fail_writes: bool = False

    def get_detection_state(self, model_id: str) -> State | None:
        return self.states.get(model_id)

    def save_detection_state(
        self,
        model_id: str,
        expected_version: int | None,
        state: Mapping[str, Any],
        reference: bytes | None,
        calibration: bytes,
        now: datetime,
    ) -> bool:
        stored = self.states.get(model_id)
        if (None if stored is None else stored.version) != expected_version:
            return False
        blob = reference if reference is not None else (b"" if stored is None else stored.reference)
        version = 1 if expected_version is None else expected_version + 1
        self.states[model_id] = State(model_id, version, dict(state), blob, calibration, now)
        return True

    def get_config(self, model_id: str) -> dict[str, Any] | None:
        return self.configs.get(model_id)

    def save_config(self, model_id: str, config: Mapping[str, Any]) -> None:
        self.configs[model_id] = dict(config)

    def get_baseline(self, model_id: str) -> Baseline | None:
        return self.baselines.get(model_id)

    def set_baseline(
        self, model_id: str, start: datetime, end: datetime, pinned: bool, now: datetime
    ) -> None:
        self.baselines[model_id] = Baseline(model_id, start, end, pinned, now)

    def add_result(self, result: Mapping[str, Any]) -> int:
        if self.fail_writes:
            raise RuntimeError("database is read-only")
        self.results.append(dict(result))
        return len(self.results)

    def latest_result(self, model_id: str) -> dict[str, Any] | None:
        mine = [r for r in self.results if r["model_id"] == model_id]
        return max(mine, key=lambda r: r["checked_at"]) if mine else None


@dataclass
class Recorder:
    """Alerting and metrics twin: remembers what it was handed."""

    seen: list[Any] = field(default_factory=list)
    fail: bool = False

    def handle(self, outcome: Any, config: Any, now: datetime) -> dict[str, str]:
        if self.fail:
            raise ConnectionError("PagerDuty is down")
        self.seen.append(outcome)
        return {"pagerduty": "none"}

    def export_run(self, run: Any) -> bool:
        self.seen.append(run)
        return True


class FakeReport:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def to_dict(self) -> dict[str, Any]:
        return self.data


@dataclass
class MeanShiftEngine:
    """Stands in for the statistics engine: drift when the mean moves more than ``threshold``.

    Detection logic (windows, baselines, bounding, storage) is what these tests check; the
    engine's own calibration is tested in tests/unit/drift.
    """

    calls: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, reference: Any, current: Any, **kwargs: Any) -> FakeReport:
        self.calls.append({"n_ref": len(reference), "n_cur": len(current), **kwargs})
        shift = float(np.linalg.norm(reference.mean(axis=0) - current.mean(axis=0)))
        return FakeReport(
            {
                "drift_detected": shift > kwargs["threshold"],
                "tests": {"mean_shift": {"statistic": shift, "p_value": None, "drift": False}},
                "kl_divergence": shift,
                "confidence_interval": [shift * 0.9, shift * 1.1],
                "n_reference": len(reference),
                "n_current": len(current),
                "quality": {},
                "top_dimensions": [],
            }
        )


@pytest.fixture
def settings() -> Settings:
    return Settings(drift_threshold=0.5, historical_window_days=7)


@pytest.fixture
def batches() -> Batches:
    return Batches()


@pytest.fixture
def monitor() -> Monitor:
    return Monitor()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def engine() -> MeanShiftEngine:
    return MeanShiftEngine()
