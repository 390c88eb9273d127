"""Detection: windows, insufficient data, pinned vs rolling baselines, refresh, isolation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from drift_monitor.drift.sequential import CALIBRATION_VECTORS
from drift_monitor.service.detection import DetectionOutcome, run_all, run_detection

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def vectors(n: int, shift: float = 0.0, seed: int = 0) -> np.ndarray[Any, Any]:
    return np.random.default_rng(seed).normal(shift, 1.0, size=(n, 4)).astype(np.float32)


def detect(model_id: str, batches: Any, monitor: Any, recorder: Any, engine: Any, settings: Any,
           now: Any = NOW) -> DetectionOutcome:  # fmt: skip
    return run_detection(
        model_id,
        repository=batches,
        monitor=monitor,
        alerting=recorder,
        metrics=recorder,
        settings=settings,
        now=now,
        compare=engine,
    )


def seed_traffic(batches: Any, model_id: str = "m", *, current_shift: float = 0.0) -> None:
    batches.add(model_id, NOW - timedelta(days=2), vectors(600, seed=1))
    batches.add(model_id, NOW - timedelta(minutes=10), vectors(300, current_shift, seed=2))


def test_same_distribution_is_ok_and_stored(batches, monitor, recorder, engine, settings):
    seed_traffic(batches)
    outcome = detect("m", batches, monitor, recorder, engine, settings)
    assert outcome.status == "ok" and not outcome.drift_detected
    assert (outcome.n_baseline, outcome.n_current) == (600, 300)
    assert monitor.results[-1]["status"] == "ok"
    assert monitor.results[-1]["report"]["samples"]["current"] == 300
    # the outcome reached alerting and metrics, after it was stored
    alerted, exported = recorder.seen
    assert alerted is outcome
    assert (exported.model_id, exported.status, exported.n_current) == ("m", "ok", 300)
    assert exported.kl_divergence == outcome.report["kl_divergence"]
    assert outcome.result_id == 1


def test_shifted_current_window_is_drift(batches, monitor, recorder, engine, settings):
    seed_traffic(batches, current_shift=1.0)
    outcome = detect("m", batches, monitor, recorder, engine, settings)
    assert outcome.status == "drift" and outcome.drift_detected
    doc = outcome.to_dict()
    assert doc["drift_detected"] is True
    assert doc["kl_divergence"] > 0.5
    assert doc["tests"]["mean_shift"]["statistic"] == doc["kl_divergence"]
    assert doc["windows"]["current"]["end"] == "2024-06-01T12:00:00Z"


def test_current_window_is_last_n_minutes(batches, monitor, recorder, engine, settings):
    monitor.configs["m"] = {"current_window_minutes": 30, "min_samples": 10}
    batches.add("m", NOW - timedelta(days=1), vectors(50))
    batches.add("m", NOW - timedelta(minutes=45), vectors(70))  # before the window
    batches.add("m", NOW - timedelta(minutes=29), vectors(20))  # inside
    batches.add("m", NOW, vectors(5))  # window end is exclusive
    outcome = detect("m", batches, monitor, recorder, engine, settings)
    assert outcome.current is not None
    assert outcome.current.start == NOW - timedelta(minutes=30)
    assert outcome.n_current == 20
    # the rolling baseline ends where the current window starts: the 70 rows are in it
    assert outcome.n_baseline == 120


def test_insufficient_data_is_not_no_drift(batches, monitor, recorder, engine, settings):
    monitor.configs["m"] = {"min_samples": 100}
    batches.add("m", NOW - timedelta(days=1), vectors(500))
    batches.add("m", NOW - timedelta(minutes=5), vectors(99))
    first = detect("m", batches, monitor, recorder, engine, settings)
    assert engine.calls == []  # too few for the window's tests; the 99 vectors were scored
    assert first.monitor is not None and first.monitor["scored"] == 99
    # nothing new since the last run and a window below min_samples: no decision
    outcome = detect("m", batches, monitor, recorder, engine, settings, NOW + timedelta(minutes=1))
    assert outcome.status == "insufficient_data"
    assert not outcome.drift_detected
    assert engine.calls == []
    assert monitor.results[-1]["status"] == "insufficient_data"
    assert monitor.results[-1]["n_current"] == 99


def test_low_traffic_still_pages_on_accumulated_evidence(batches, monitor, recorder, engine,
                                                         settings):  # fmt: skip
    """Fewer vectors than min_samples skip the window's tests, not the monitor's evidence."""
    monitor.configs["m"] = {"min_samples": 100}
    batches.add("m", NOW - timedelta(days=1), vectors(500))
    batches.add("m", NOW - timedelta(minutes=5), vectors(99, shift=5.0))
    outcome = detect("m", batches, monitor, recorder, engine, settings)
    assert engine.calls == []
    assert outcome.status == "drift"
    assert outcome.monitor is not None and outcome.monitor["cause"] == "evidence"


def test_insufficient_baseline(batches, monitor, recorder, engine, settings):
    batches.add("m", NOW - timedelta(minutes=5), vectors(500))
    outcome = detect("m", batches, monitor, recorder, engine, settings)
    assert outcome.status == "insufficient_data"
    assert outcome.n_baseline == 0


def test_work_is_bounded_by_max_samples(batches, monitor, recorder, engine, settings):
    monitor.configs["m"] = {"max_samples": 150, "min_samples": 10}
    seed_traffic(batches)
    detect("m", batches, monitor, recorder, engine, settings)
    # the baseline is sampled once (fitting part + calibration part), then the window
    assert [call[3] for call in batches.sample_calls] == [150 + CALIBRATION_VECTORS, 150]
    assert engine.calls[0]["n_ref"] == 150 and engine.calls[0]["n_cur"] == 150
    # counts still report the full windows
    assert monitor.results[-1]["n_baseline"] == 600
    # later runs reuse the stored reference: only the window and what arrived since the
    # previous run are read, each bounded
    detect("m", batches, monitor, recorder, engine, settings, NOW + timedelta(minutes=1))
    calls = batches.sample_calls[2:]
    assert [call[3] for call in calls] == [150, 150]
    assert (calls[1][1], calls[1][2]) == (NOW, NOW + timedelta(minutes=1))


def test_configured_tests_alpha_threshold_reach_engine(batches, monitor, recorder, engine,
                                                        settings):  # fmt: skip
    monitor.configs["m"] = {"statistical_test": "ks_test", "alpha": 0.01, "drift_threshold": 0.3}
    seed_traffic(batches)
    detect("m", batches, monitor, recorder, engine, settings)
    call = engine.calls[0]
    assert call["tests"] == ["ks"]
    assert call["threshold"] == 0.3
    # paging decides on the false-page budget: the window is tested at the instant level,
    # half of one false page per 365 days of hourly runs (the first run assumes the window)
    assert call["alpha"] == pytest.approx(0.5 / (365 * 24))


def test_default_threshold_comes_from_settings(batches, monitor, recorder, engine, settings):
    seed_traffic(batches)
    detect("m", batches, monitor, recorder, engine, settings)
    assert engine.calls[0]["threshold"] == settings.drift_threshold
    assert engine.calls[0]["tests"] == ["ad", "novelty"]  # the instant battery (INSTANT_TESTS)


def test_rolling_baseline_is_historical_window_before_current(batches, monitor, recorder,
                                                              engine, settings):  # fmt: skip
    seed_traffic(batches)
    outcome = detect("m", batches, monitor, recorder, engine, settings)
    assert outcome.baseline is not None and outcome.current is not None
    assert outcome.baseline.end == outcome.current.start
    assert outcome.baseline.start == outcome.current.start - timedelta(days=7)
    assert not outcome.baseline_pinned
    stored = monitor.baselines["m"]
    assert (stored.start, stored.end, stored.pinned) == (
        outcome.baseline.start,
        outcome.baseline.end,
        False,
    )


def test_rolling_baseline_refreshes_only_when_due(batches, monitor, recorder, engine, settings):
    # max_samples 200: a 600-vector baseline is past warm-up, so refreshes follow the cadence
    monitor.configs["m"] = {"baseline_refresh_hours": 6, "max_samples": 200}
    seed_traffic(batches)
    first = detect("m", batches, monitor, recorder, engine, settings)
    later = detect("m", batches, monitor, recorder, engine, settings, NOW + timedelta(hours=5))
    assert later.baseline == first.baseline  # not due yet: frozen
    due = detect("m", batches, monitor, recorder, engine, settings, NOW + timedelta(hours=6))
    assert due.baseline is not None and first.baseline is not None
    assert due.baseline.start == first.baseline.start + timedelta(hours=6)
    assert monitor.baselines["m"].updated_at == NOW + timedelta(hours=6)


def test_rolling_baseline_does_not_move_during_drift(batches, monitor, recorder, engine,
                                                     settings):  # fmt: skip
    monitor.configs["m"] = {"baseline_refresh_hours": 1, "max_samples": 200}
    seed_traffic(batches)
    batches.add("m", NOW + timedelta(hours=1, minutes=50), vectors(300, shift=2.0))
    batches.add("m", NOW + timedelta(hours=3, minutes=50), vectors(300, shift=2.0))
    detect("m", batches, monitor, recorder, engine, settings)
    # due and not in drift: the baseline moves forward, then the drifted window is flagged
    drifted = detect("m", batches, monitor, recorder, engine, settings, NOW + timedelta(hours=2))
    assert drifted.status == "drift"
    assert monitor.baselines["m"].updated_at == NOW + timedelta(hours=2)
    # due again, but the model is in drift: the open incident keeps its baseline
    still = detect("m", batches, monitor, recorder, engine, settings, NOW + timedelta(hours=4))
    assert still.status == "drift"
    assert still.baseline == drifted.baseline
    assert monitor.baselines["m"].updated_at == NOW + timedelta(hours=2)


def test_pinned_baseline_is_used_and_never_moved(batches, monitor, recorder, engine, settings):
    pinned_start, pinned_end = NOW - timedelta(days=3), NOW - timedelta(days=1)
    monitor.set_baseline("m", pinned_start, pinned_end, True, NOW - timedelta(days=30))
    batches.add("m", NOW - timedelta(days=2), vectors(600, seed=1))
    batches.add("m", NOW - timedelta(hours=5), vectors(400, shift=3.0, seed=3))  # not pinned
    batches.add("m", NOW - timedelta(minutes=5), vectors(200, seed=2))
    outcome = detect("m", batches, monitor, recorder, engine, settings)
    assert outcome.baseline_pinned
    assert outcome.baseline is not None
    assert (outcome.baseline.start, outcome.baseline.end) == (pinned_start, pinned_end)
    assert outcome.n_baseline == 600
    assert outcome.status == "ok"
    assert monitor.baselines["m"].updated_at == NOW - timedelta(days=30)


def test_one_model_failing_does_not_stop_the_others(batches, monitor, recorder, engine,
                                                    settings):  # fmt: skip
    for model_id in ("a", "broken", "c"):
        seed_traffic(batches, model_id)
    batches.broken.add("broken")
    outcomes = run_all(
        repository=batches,
        monitor=monitor,
        alerting=recorder,
        metrics=recorder,
        settings=settings,
        now=NOW,
        compare=engine,
    )
    by_id = {o.model_id: o for o in outcomes}
    assert set(by_id) == {"a", "broken", "c"}
    assert by_id["broken"].status == "error"
    assert "storage for broken is broken" in (by_id["broken"].error or "")
    assert by_id["a"].status == by_id["c"].status == "ok"
    assert sorted(r["status"] for r in monitor.results) == ["error", "ok", "ok"]


def test_bad_stored_config_is_an_error_for_that_model_only(batches, monitor, recorder, engine,
                                                           settings):  # fmt: skip
    seed_traffic(batches, "a")
    seed_traffic(batches, "b")
    monitor.configs["a"] = {"min_samples": "many"}
    outcomes = run_all(repository=batches, monitor=monitor, alerting=recorder, metrics=recorder,
                       settings=settings, now=NOW, compare=engine)  # fmt: skip
    assert [o.status for o in sorted(outcomes, key=lambda o: o.model_id)] == ["error", "ok"]


def test_alerting_failure_keeps_the_result(batches, monitor, recorder, engine, settings):
    seed_traffic(batches, current_shift=2.0)
    recorder.fail = True
    outcome = detect("m", batches, monitor, recorder, engine, settings)
    assert outcome.status == "drift"
    assert monitor.results[-1]["status"] == "drift"


def test_result_store_failure_is_reported_as_error(batches, monitor, recorder, engine, settings):
    seed_traffic(batches)
    monitor.fail_writes = True
    outcome = detect("m", batches, monitor, recorder, engine, settings)
    assert outcome.status == "error"
    assert "storing the result failed" in (outcome.error or "")


def test_time_budget_skips_the_rest_least_recently_checked_first(batches, monitor, recorder,
                                                                  engine, settings):  # fmt: skip
    for model_id in ("a", "b", "c"):
        seed_traffic(batches, model_id)
    # "c" was never checked, "a" long ago, "b" recently: order c, a, b
    monitor.results += [
        {"model_id": "a", "checked_at": NOW - timedelta(hours=3), "status": "ok"},
        {"model_id": "b", "checked_at": NOW - timedelta(hours=1), "status": "ok"},
    ]
    ticks = iter([0.0, 0.0, 1.0, 11.0, 12.0])
    outcomes = run_all(repository=batches, monitor=monitor, alerting=None, metrics=None,
                       settings=settings, now=NOW, compare=engine, time_budget_seconds=10,
                       clock=lambda: next(ticks))  # fmt: skip
    assert [(o.model_id, o.status) for o in outcomes] == [("c", "ok"), ("a", "ok"),
                                                          ("b", "skipped")]  # fmt: skip


@pytest.mark.parametrize("bad", [{"current_window_minutes": 0}, {"alpha": 1.5}])
def test_invalid_stored_config_never_runs_tests(bad, batches, monitor, recorder, engine,
                                                settings):  # fmt: skip
    seed_traffic(batches)
    monitor.configs["m"] = bad
    outcome = detect("m", batches, monitor, recorder, engine, settings)
    assert outcome.status == "error" and engine.calls == []


def test_rolling_baseline_never_takes_in_a_resolved_incident(monitor, settings):
    """After a page resolves, a refresh starts no earlier than the incident's end, and keeps
    the pre-incident window until the traffic since then fills a whole baseline."""
    from drift_monitor.domain.model_config import ModelConfig
    from drift_monitor.service.detection import Window, choose_baseline

    config = ModelConfig(drift_threshold=0.15, baseline_refresh_hours=1)
    old = (NOW - timedelta(days=8), NOW - timedelta(days=1))
    monitor.set_baseline("m", *old, False, NOW - timedelta(days=1))
    current = Window(NOW - timedelta(hours=1), NOW)
    incident_end = NOW - timedelta(hours=5)
    asked: list[Window] = []

    def enough(answer: bool) -> Any:
        def holds(window: Window) -> bool:
            asked.append(window)
            return answer

        return holds

    kept, _ = choose_baseline(monitor, "m", current, config, settings, NOW,
                              after=incident_end, holds_enough=enough(False))  # fmt: skip
    assert (kept.start, kept.end) == old and asked == [Window(incident_end, current.start)]
    moved, _ = choose_baseline(monitor, "m", current, config, settings, NOW,
                               after=incident_end, holds_enough=enough(True))  # fmt: skip
    assert (moved.start, moved.end) == (incident_end, current.start)
    # an incident older than the historical window no longer constrains the refresh
    later = NOW + timedelta(days=9)
    aged, _ = choose_baseline(monitor, "m", Window(later - timedelta(hours=1), later), config,
                              settings, later, after=incident_end,
                              holds_enough=enough(False))  # fmt: skip
    assert aged.end - aged.start == timedelta(days=7)


def test_instant_check_tests_distinct_rows_and_reports_the_repeats(
    batches, monitor, recorder, engine, settings
):
    """Repeated queries do not make the window look larger to the instant check (up to half of
    it may be repeats); the quality report still describes the window as it came."""
    batches.add("m", NOW - timedelta(days=2), vectors(600, seed=1))
    fresh = vectors(100, seed=2)  # min_samples distinct rows
    batches.add("m", NOW - timedelta(minutes=10), np.concatenate([fresh, fresh[:60], fresh[:40]]))
    outcome = detect("m", batches, monitor, recorder, engine, settings)
    assert engine.calls[0]["n_cur"] == 100
    assert outcome.monitor["window_repeats"] == 100
    assert outcome.report["quality"]["duplicate_rate"] == pytest.approx(1 / 2)


def test_a_window_of_one_constant_vector_is_tested_as_it_came(
    batches, monitor, recorder, engine, settings
):
    """A window that is mostly repeats is itself the incident (a client sending one constant
    vector): the window goes to the check whole and pages at once."""
    monitor.configs["m"] = {"min_samples": 50}
    batches.add("m", NOW - timedelta(days=2), vectors(600, seed=1))
    batches.add("m", NOW - timedelta(minutes=10), np.full((300, 4), 3.0, np.float32))
    outcome = detect("m", batches, monitor, recorder, engine, settings)
    assert engine.calls[0]["n_cur"] == 300
    assert outcome.monitor["window_repeats"] == 0
    assert outcome.status == "drift"


def test_the_vectors_a_run_held_more_than_once_are_remembered_for_the_next(
    batches, monitor, recorder, engine, settings
):
    """The monitor keeps a digest of each repeated vector, so that the next run can tell a
    vector that returns run after run (bet per row) from a burst (one bet per group)."""
    from drift_monitor.drift.sequential import repeats_of
    from drift_monitor.service.detection import _Stored

    batches.add("m", NOW - timedelta(days=2), vectors(600, seed=1))
    fresh = vectors(100, seed=2)
    batches.add("m", NOW - timedelta(minutes=10), np.concatenate([fresh, fresh[:3], fresh[:3]]))
    detect("m", batches, monitor, recorder, engine, settings)
    atoms = _Stored.load(monitor, "m").state.atoms
    assert sorted(atoms) == sorted(repeats_of(fresh[:3]).keys)


def test_a_vector_repeated_run_after_run_keeps_its_repeats_in_the_instant_check():
    """A popular query is in the reference at its share; only a burst's repeats are dropped."""
    from drift_monitor.drift.sequential import repeats_of
    from drift_monitor.service.detection import instant_rows

    fresh = vectors(100, seed=3)
    popular, burst = fresh[:1], fresh[1:2]
    window = np.concatenate([fresh, np.repeat(popular, 9, 0), np.repeat(burst, 9, 0)])
    assert instant_rows(window).shape[0] == 100  # nothing known: each vector once
    kept = instant_rows(window, repeats_of(popular).keys)
    assert kept.shape[0] == 109
    assert int(np.sum(np.all(kept == popular, axis=1))) == 10
    assert int(np.sum(np.all(kept == burst, axis=1))) == 1


def test_a_burst_scored_by_an_overlapping_run_is_still_a_burst_to_the_next_window(
    batches, monitor, recorder, engine, settings
):
    """Runs every 15 minutes over an hour-long window: the previous run scored (and remembered)
    the burst, but its streak began inside this window, so the window still drops its repeats;
    a vector repeated since before the window keeps them."""
    from drift_monitor.drift.sequential import repeats_of

    batches.add("m", NOW - timedelta(days=2), vectors(600, seed=1))
    fresh = vectors(100, seed=2)
    burst = np.repeat(fresh[:1], 10, 0)
    batches.add("m", NOW - timedelta(minutes=50), np.concatenate([fresh, burst]))
    detect("m", batches, monitor, recorder, engine, settings, now=NOW - timedelta(minutes=15))
    detect("m", batches, monitor, recorder, engine, settings, now=NOW)
    assert engine.calls[-1]["n_cur"] == 100  # the burst counted once

    popular = np.repeat(vectors(1, seed=7), 5, 0)
    batches.add("m", NOW + timedelta(minutes=5), np.concatenate([vectors(100, seed=3), popular]))
    detect("m", batches, monitor, recorder, engine, settings, now=NOW + timedelta(minutes=30))
    batches.add("m", NOW + timedelta(minutes=65), np.concatenate([vectors(100, seed=4), popular]))
    detect("m", batches, monitor, recorder, engine, settings, now=NOW + timedelta(minutes=90))
    # the window [30, 90) minutes holds the second part; the popular vector has been repeated
    # in every run since the traffic up to 30 minutes, so from the window's start on
    assert engine.calls[-1]["n_cur"] == 105
    assert repeats_of(popular[:1]).keys[0] in monitor_atoms(monitor)


def monitor_atoms(monitor: Any) -> dict[str, float]:
    from drift_monitor.service.detection import _Stored

    return _Stored.load(monitor, "m").state.atoms


def _hourly(batches: Any, *, hours: int, per_hour: int, clump: float, seed: int) -> None:
    """A week of hourly traffic before NOW; in each hour one of 8 topics takes ``clump`` of it."""
    rng = np.random.default_rng(seed)
    topics = rng.normal(0.0, 3.0, size=(8, 4))
    for h in range(hours, 0, -1):
        rows = rng.normal(0.0, 1.0, size=(per_hour, 4))
        rows[rng.random(per_hour) < clump] += topics[rng.integers(8)]
        batches.add("m", NOW - timedelta(hours=h), rows.astype(np.float32))


@pytest.mark.parametrize("clump", [0.0, 0.5])
def test_a_baseline_clumped_in_time_lowers_the_window_level_and_tempers_runs(
    batches, monitor, recorder, engine, settings, clump
):
    _hourly(batches, hours=160, per_hour=40, clump=clump, seed=4)
    batches.add("m", NOW - timedelta(minutes=20), vectors(200, seed=5))
    outcome = detect("m", batches, monitor, recorder, engine, settings)
    clumping = outcome.monitor["overdispersion"]
    call = engine.calls[0]
    instant = outcome.monitor["instant_alpha"]
    if clump == 0.0:  # exchangeable: measured near 1, nothing discounted
        assert clumping["directions"] < 1.4 and clumping["blocks"] >= 100
        assert clumping["run_factor"] == {"directions": 1.0, "novelty": 1.0}
        assert clumping["scale"] == {"directions": 1, "novelty": 1}
        assert call["alpha"] == pytest.approx(instant)
    else:  # each test's share of the level is deflated by its family's factor
        assert clumping["directions"] > 3.0
        assert clumping["run_factor"]["directions"] > 2.0
        # AD is discounted by the principal directions' clumping; novelty by its own outcomes'
        assert set(call["weights"]) == {"ad", "novelty"}
        assert call["weights"]["ad"] < instant / 2 / 100
        assert call["weights"]["novelty"] <= instant / 2 * (1 + 1e-9)
        assert call["alpha"] == pytest.approx(sum(call["weights"].values()))
    # the measurement is kept with the baseline for the next runs
    stored = monitor.states["m"].state["dispersion"]["directions"]
    assert stored["statistic"] == pytest.approx(clumping["directions"], abs=1e-4)
