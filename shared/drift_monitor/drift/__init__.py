"""Drift statistics engine: calibrated two-sample tests for embedding vectors (no I/O).

``compare(reference, current, ...) -> DriftReport`` runs a battery of tests and one drift
decision with a bounded false-alarm rate; ``compare_sketches`` does the same from running
statistics. See ``docs/statistics.md`` for what each test means and when to prefer it.
"""

from drift_monitor.drift.api import compare, validate_samples
from drift_monitor.drift.decision import DEFAULT_TESTS, TEST_NAMES
from drift_monitor.drift.options import BatteryOptions
from drift_monitor.drift.report import DriftReport, TestResult
from drift_monitor.drift.streaming import compare_sketches

__all__ = [
    "DEFAULT_TESTS",
    "TEST_NAMES",
    "BatteryOptions",
    "DriftReport",
    "TestResult",
    "compare",
    "compare_sketches",
    "validate_samples",
]
