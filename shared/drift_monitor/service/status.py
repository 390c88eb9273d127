"""The status of a model that has no decision yet: which windows, how full, how much is needed.

``GET /drift/status/{model_id}`` answers 200 for every known model. Before its first
detection run completes, or while a window holds fewer than ``min_samples`` vectors, the
status is ``insufficient_data`` and this module says why: how many vectors each window holds,
how many it needs, and when the next check runs. ``kl_divergence`` is still filled in whenever
both windows hold at least two vectors, as a preview computed from what they hold (marked by
``kl_divergence_basis``): it is not a decision, and the decision's rules are unchanged.

Nothing here writes: the rolling baseline is computed as the next run would, without storing
it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from drift_monitor.config import Settings
from drift_monitor.domain.model_config import ModelConfig
from drift_monitor.service.detection import DetectionRepository, MonitorRepository, Window, iso

# Vectors read per window for the KL preview: enough for a stable estimate, cheap for a GET.
PREVIEW_MAX_SAMPLES = 500
PREVIEW_MIN_SAMPLES = 2
PREVIEW_SEED = 0


def _attr(row: Any, name: str) -> Any:
    return row.get(name) if isinstance(row, Mapping) else getattr(row, name, None)


def _parse(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return None


def windows_now(
    monitor: MonitorRepository,
    model_id: str,
    config: ModelConfig,
    settings: Settings,
    now: datetime,
) -> tuple[Window, Window, bool]:
    """(current, baseline, pinned) as a run at ``now`` would use them, without storing any."""
    current = Window(now - timedelta(minutes=config.current_window_minutes), now)
    stored = monitor.get_baseline(model_id)
    if stored is not None and bool(_attr(stored, "pinned")):
        return current, Window(_attr(stored, "start"), _attr(stored, "end")), True
    start = current.start - timedelta(days=settings.historical_window_days)
    return current, Window(start, current.start), False


def kl_preview(
    repository: DetectionRepository, model_id: str, baseline: Window, current: Window
) -> tuple[float, list[float] | None] | None:
    """KL(current || baseline) and its interval from up to 500 vectors a window, or None."""
    from drift_monitor.drift import compare

    reference = repository.sample_vectors(
        model_id, baseline.start, baseline.end, PREVIEW_MAX_SAMPLES, PREVIEW_SEED
    )
    sample = repository.sample_vectors(
        model_id, current.start, current.end, PREVIEW_MAX_SAMPLES, PREVIEW_SEED + 1
    )
    if min(len(reference), len(sample)) < PREVIEW_MIN_SAMPLES:
        return None
    report = compare(reference, sample, tests=["kl"], seed=PREVIEW_SEED).to_dict()
    interval = report.get("confidence_interval")
    return float(report["kl_divergence"]), None if interval is None else list(interval)


def next_check(last_run: datetime | None, every_seconds: float | None) -> str | None:
    """When the embedded schedule runs next (None where Cloud Scheduler decides)."""
    if last_run is None or not every_seconds:
        return None
    return iso(last_run + timedelta(seconds=every_seconds))


def pending_status(
    model_id: str,
    *,
    repository: DetectionRepository,
    monitor: MonitorRepository,
    config: ModelConfig,
    settings: Settings,
    now: datetime,
) -> dict[str, Any]:
    """The status document of a known model without a detection result (no write)."""
    current, baseline, pinned = windows_now(monitor, model_id, config, settings, now)
    n_current = int(repository.count_vectors(model_id, current.start, current.end))
    n_baseline = int(repository.count_vectors(model_id, baseline.start, baseline.end))
    return {
        "model_id": model_id,
        "status": "insufficient_data",
        "drift_detected": False,
        "checked_at": None,
        "kl_divergence": None,
        "confidence_interval": None,
        "tests": {},
        "top_dimensions": [],
        "quality": {},
        "windows": {
            "baseline": {**baseline.to_dict(), "pinned": pinned},
            "current": current.to_dict(),
        },
        "samples": {
            "baseline": n_baseline,
            "current": n_current,
            "baseline_used": 0,
            "current_used": 0,
        },
        "config": config.to_dict(),
        "error": None,
        "result_id": None,
        "reason": "no detection run has completed for this model yet",
    }


def explain_insufficient(
    doc: dict[str, Any],
    *,
    repository: DetectionRepository,
    model_id: str,
    min_samples: int,
    warmup_vectors: int,
    next_check_at: str | None,
) -> dict[str, Any]:
    """Add ``needed``, ``next_check`` and a KL preview to an ``insufficient_data`` document.

    The baseline needs ``warmup_vectors`` (the warm-up rule of detection), the current window
    ``min_samples``.
    """
    samples = doc.get("samples") or {}
    doc["needed"] = {
        "baseline": max(0, warmup_vectors - int(samples.get("baseline") or 0)),
        "current": max(0, min_samples - int(samples.get("current") or 0)),
        "min_samples": min_samples,
        "warmup_vectors": warmup_vectors,
    }
    doc.setdefault(
        "reason",
        "the baseline holds fewer than warmup_vectors, the current window fewer than "
        "min_samples, or nothing new arrived since the last check",
    )
    doc["next_check"] = next_check_at
    windows = doc.get("windows") or {}
    if doc.get("kl_divergence") is None and windows.get("baseline") and windows.get("current"):
        bounds = [
            (_parse(w.get("start")), _parse(w.get("end")))
            for w in (windows["baseline"], windows["current"])
        ]
        if all(s is not None and e is not None for s, e in bounds):
            (bs, be), (cs, ce) = bounds
            assert bs and be and cs and ce
            preview = kl_preview(repository, model_id, Window(bs, be), Window(cs, ce))
            if preview is not None:
                doc["kl_divergence"], doc["confidence_interval"] = preview
                doc["kl_divergence_basis"] = "preview of the vectors the windows hold so far"
    return doc
