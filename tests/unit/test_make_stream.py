"""scripts/make_stream.py: the stationary stream shapes the false-page measurements rely on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from drift_monitor.drift.quality import duplicate_rate
from support.modules import load_file

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "make_stream.py"


@pytest.fixture(scope="module")
def make_stream() -> Any:
    return load_file("make_stream", SCRIPT)


def _hours(stamps: np.ndarray) -> np.ndarray:
    return (stamps - stamps.min()) // 3600 if stamps.size else stamps


def test_daily_volume_follows_the_cycle_and_is_silent_at_night(make_stream: Any) -> None:
    base = make_stream.base_corpus("synthetic:8")
    rows, stamps = make_stream.build(base, None, days=4, rate=120, mix=0, shift_at=None,
                                     back_at=None, seed=1, volume="daily")  # fmt: skip
    hod = ((stamps - make_stream.START.astype(np.int64)) // 3600) % 24
    counts = np.bincount(hod, minlength=24) / 4
    assert counts[2:6].sum() == 0
    assert counts[15] > 180 and counts[23] < 100  # peak mid-afternoon, low late at night
    assert np.all(np.diff(stamps) >= 0) and rows.shape == (stamps.size, 8)


def test_bursty_volume_has_rare_heavy_hours(make_stream: Any) -> None:
    base = make_stream.base_corpus("synthetic:8")
    _, stamps = make_stream.build(base, None, days=20, rate=100, mix=0, shift_at=None,
                                  back_at=None, seed=2, volume="bursty")  # fmt: skip
    counts = np.bincount(_hours(stamps))
    heavy = counts > 600
    assert 0.02 < heavy.mean() < 0.09
    assert np.median(counts) == pytest.approx(50, abs=10)


def _recent_repeat_share(rows: np.ndarray, lag: int = 50) -> float:
    """Share of rows equal to one of the ``lag`` rows before them."""
    hits = [any(np.array_equal(rows[i], rows[j]) for j in range(max(0, i - lag), i))
            for i in range(1, rows.shape[0])]  # fmt: skip
    return float(np.mean(hits))


def test_repeats_copy_recent_rows_at_the_share_asked(make_stream: Any) -> None:
    base = make_stream.base_corpus("gaussian:6")
    plain, _ = make_stream.build(base, None, days=0.5, rate=120, mix=0, shift_at=None,
                                 back_at=None, seed=3)  # fmt: skip
    repeated, _ = make_stream.build(base, None, days=0.5, rate=120, mix=0, shift_at=None,
                                    back_at=None, seed=3, repeats=0.3)  # fmt: skip
    assert _recent_repeat_share(plain) < 0.03  # 50 earlier draws out of 5000 rows
    assert _recent_repeat_share(repeated) == pytest.approx(0.3, abs=0.06)
    assert duplicate_rate(repeated) > duplicate_rate(plain) + 0.2


def test_popular_rows_take_their_share_with_zipf_weights(make_stream: Any) -> None:
    base = make_stream.base_corpus("gaussian:6")
    rows, _ = make_stream.build(base, None, days=2, rate=120, mix=0, shift_at=None,
                                back_at=None, seed=4, popular=0.3)  # fmt: skip
    _, counts = np.unique(rows, axis=0, return_counts=True)
    top = np.sort(counts)[::-1][: make_stream.POPULAR_ROWS]
    # about 0.3 of the rows are the popular ones (plus the few chance repeats of 5000 rows)
    assert top.sum() / rows.shape[0] == pytest.approx(0.3, abs=0.04)
    assert top[0] / top[9] == pytest.approx(10, rel=0.5)  # Zipf: the first 10 times the tenth


def test_a_topic_cycle_moves_the_hourly_mix_but_not_the_daily_one(make_stream: Any) -> None:
    base = make_stream.base_corpus("gaussian:6")
    rows, stamps = make_stream.build(base, None, days=4, rate=240, mix=0, shift_at=None,
                                     back_at=None, seed=5, cycle=0.3)  # fmt: skip
    first, _ = make_stream.topic_halves(base)
    in_first = (rows[:, None, :] == base[first][None, :, :]).all(axis=2).any(axis=1)
    hour = ((stamps - stamps.min()) // 3600) % 24
    morning, evening = in_first[(hour >= 4) & (hour < 8)], in_first[(hour >= 16) & (hour < 20)]
    assert morning.mean() == pytest.approx(0.5 + 0.3 * 0.9, abs=0.07)  # sin near its peak
    assert evening.mean() == pytest.approx(0.5 - 0.3 * 0.9, abs=0.07)
    assert in_first.mean() == pytest.approx(0.5, abs=0.04)


def test_a_weekly_pattern_moves_the_weekend_mix_but_not_the_weekly_one(make_stream: Any) -> None:
    base = make_stream.base_corpus("gaussian:6")
    rows, stamps = make_stream.build(base, None, days=14, rate=200, mix=0, shift_at=None,
                                     back_at=None, seed=8, weekly=0.2)  # fmt: skip
    first_half = set(make_stream.topic_halves(base)[0].tolist())
    index = {r.tobytes(): i for i, r in enumerate(base)}
    in_first = np.array([index[r.tobytes()] in first_half for r in rows])
    day = (stamps - make_stream.START.astype(np.int64)) // 86400
    weekend = day % 7 >= 5
    assert in_first[weekend].mean() == pytest.approx(0.7, abs=0.02)
    assert in_first[~weekend].mean() == pytest.approx(0.42, abs=0.02)
    assert in_first.mean() == pytest.approx(0.5, abs=0.02)


def test_clumped_hours_take_one_topic_each_but_every_topic_keeps_its_share(
    make_stream: Any,
) -> None:
    base = make_stream.base_corpus("gaussian:6")
    rows, stamps = make_stream.build(base, None, days=6, rate=300, mix=0, shift_at=None,
                                     back_at=None, seed=5, clump=0.5)  # fmt: skip
    groups = make_stream.topics(base, np.random.default_rng([5, 1]))  # build's, for seed 5
    assert len(groups) == make_stream.CLUMP_TOPICS
    assert sum(g.size for g in groups) == base.shape[0]
    topic_of = np.empty(base.shape[0], dtype=int)
    for t, g in enumerate(groups):
        topic_of[g] = t
    index = {r.tobytes(): i for i, r in enumerate(base)}
    topic = topic_of[[index[r.tobytes()] for r in rows]]
    hour = _hours(stamps)
    # the busiest topic of an hour holds about half of it plus its own share
    top = [np.bincount(topic[hour == h]).max() / (hour == h).sum() for h in np.unique(hour)]
    assert np.median(top) > 0.5
    # over six days every topic is near its share of the corpus
    shares = np.bincount(topic, minlength=len(groups)) / topic.size
    expected = np.array([g.size for g in groups]) / base.shape[0]
    assert np.abs(shares - expected).max() < 0.06


def test_a_ramp_grows_the_share_linearly_then_holds_it(make_stream: Any) -> None:
    base = make_stream.base_corpus("synthetic:8")
    other = np.full((4, 8), 9.0, dtype=np.float32)  # rows no base row can be
    rows, stamps = make_stream.build(base, other, days=5, rate=400, mix=0.4, shift_at=24,
                                     back_at=None, seed=6, ramp=48)  # fmt: skip
    hour = (stamps - make_stream.START.astype(np.int64)) // 3600
    mixed = rows[:, 0] == 9.0
    assert not mixed[hour < 24].any()
    # hours 24-48 average a share of 0.1, hours 48-72 of 0.3, then 0.4
    for (a, b), share in (((24, 48), 0.1), ((48, 72), 0.3), ((72, 120), 0.4)):
        assert mixed[(hour >= a) & (hour < b)].mean() == pytest.approx(share, abs=0.03)


def test_a_recurring_shift_comes_back_for_as_long_each_time(make_stream: Any) -> None:
    base = make_stream.base_corpus("synthetic:8")
    other = np.full((4, 8), 9.0, dtype=np.float32)
    rows, stamps = make_stream.build(base, other, days=3, rate=200, mix=1.0, shift_at=10,
                                     back_at=14, seed=7, recur=24)  # fmt: skip
    hour = (stamps - make_stream.START.astype(np.int64)) // 3600
    mixed = rows[:, 0] == 9.0
    live = (hour % 24 >= 10) & (hour % 24 < 14)
    assert np.array_equal(mixed, live)


def test_recur_needs_a_shift_window(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--base", "synthetic", "--recur", "24",
         "--out", str(tmp_path / "s.npz")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2 and "--recur needs --shift-at and --back-at" in result.stderr
    assert not (tmp_path / "s.npz").exists()


@pytest.mark.parametrize("flag", ["--repeats", "--popular", "--cycle", "--clump", "--weekly"])
def test_a_share_outside_0_1_is_a_one_line_error(tmp_path: Path, flag: str) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--base", "synthetic", flag, "1.5",
         "--out", str(tmp_path / "s.npz")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2 and f"{flag} must be in [0, " in result.stderr
    assert not (tmp_path / "s.npz").exists()
