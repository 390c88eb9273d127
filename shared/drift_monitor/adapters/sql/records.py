"""Plain rows the SQL repositories return. Timestamps are timezone-aware UTC."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class ModelRow:
    """A model the monitor has received data for."""

    model_id: str
    dimension: int
    created_at: datetime
    last_batch_at: datetime | None  # newest batch timestamp, None if no batch is stored


@dataclass(frozen=True)
class Baseline:
    """A model's reference window ``[start, end)``; pinned by an operator or rolling."""

    model_id: str
    start: datetime
    end: datetime
    pinned: bool
    updated_at: datetime


@dataclass(frozen=True)
class DriftResult:
    """One stored detection run (``drift_results`` row)."""

    id: int
    model_id: str
    checked_at: datetime
    status: str  # 'ok' | 'drift' | 'insufficient_data' | 'error'
    drift_detected: bool
    report: dict[str, Any]
    baseline_start: datetime | None
    baseline_end: datetime | None
    current_start: datetime | None
    current_end: datetime | None
    n_baseline: int
    n_current: int


@dataclass(frozen=True)
class AlertState:
    """Where one model's alert stands on one channel (``pagerduty``, ``webhook`` ...)."""

    model_id: str
    channel: str
    dedup_key: str
    state: str  # 'triggered' | 'resolved'
    last_sent_at: datetime | None
    updated_at: datetime


@dataclass(frozen=True)
class StoredDetectionState:
    """One model's sequential-detection state as stored (``detection_state`` row)."""

    model_id: str
    version: int
    state: dict[str, Any]
    reference: bytes
    calibration: bytes
    updated_at: datetime
