"""Traffic as it arrived: the arrival process in the report, the schedule's expected arrivals per second,
the dispersion index of the offered arrivals, and a replayed day (answers worked out by hand below).

Times are seconds after schedule_started_at = 1000.0 (conftest's meta).
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from chatload.analysis.arrivals import (
    dispersion_index,
    expected_per_second,
    recorded_clock,
    replay_summary,
)
from chatload.analysis.pipeline import analyze
from chatload.analysis.plots import replay as replay_plot
from chatload.analysis.report import main
from chatload.analysis.stages import configured_stages, with_windows

SCC, DISC = "StartChatContact", "DisconnectParticipant"
EIGHT_AM = 1764316800.0  # 2025-11-28T08:00:00Z


def spread(second: float, count: int, lo: float = 0.0, hi: float = 1.0) -> list[float]:
    """`count` arrival times evenly inside [second + lo, second + hi)."""
    return [second + lo + (k + 0.5) * (hi - lo) / count for k in range(count)]


def start_rows(attempt_row, times: list[float], stage: str, outcome: str = "ok", prefix: str = "") -> list[dict]:
    return [
        attempt_row(t, SCC, outcome, 10, t_intended=t, stage=stage, chat=f"{prefix}{stage}-{i}")
        for i, t in enumerate(times)
    ]


def findings_text(summary: dict, name: str) -> str:
    return next(item["text"] for item in summary["findings"]["items"] if item["name"] == name)


# ---------------------------------------------------------------- evenly spaced arrivals


def test_uniform_run_has_dispersion_zero_and_expected_rate(make_run, attempt_row, capsys):
    # one step stage, 20 s at 2/s, an arrival every 0.5 s: every second holds exactly 2 -> variance 0
    times = [0.25 + 0.5 * k for k in range(40)]
    run_dir = make_run(
        {"w1": start_rows(attempt_row, times, "flat")},
        ended_at=1020.0,
        scenario={
            "name": "even",
            "stages": [{"name": "flat", "duration_s": 20, "target_rate": 2}],
            "thresholds": {"max_dropped_share": 0.01},
            "arrivals": {"process": "uniform", "seed": None, "replay": None},
        },
    )
    result = analyze(run_dir)
    assert result.per_second["offered"].tolist() == [2] * 20
    assert result.per_second["expected"].tolist() == [2.0] * 20
    assert result.traffic["dispersion"]["dispersion_index"] == 0.0
    assert main([str(run_dir)]) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["arrivals"] == {
        "scheduled": 40,
        "started": 40,
        "dropped": 0,
        "process": "uniform",
        "seed": None,
        "dispersion_index": 0.0,
    }
    assert summary["replay"] is None
    item = next(i for i in summary["findings"]["items"] if i["name"] == "arrival_dispersion")
    assert item["highlight"] is False and item["numbers"]["seconds"] == 20
    assert "evenly spaced arrivals" in item["text"] and "0.00 over 20 s" in item["text"]
    # no throttling: the onset sentence still says how the arrivals came
    assert findings_text(summary, "tps_throttle_onset").endswith(
        "(highest offered rate 2.00/s; evenly spaced arrivals)."
    )
    assert "arrivals: uniform (evenly spaced); dispersion index 0.00" in capsys.readouterr().out
    assert (run_dir / "plots" / "arrivals.png").stat().st_size > 0
    assert not (run_dir / "plots" / "replay.png").exists()


# ---------------------------------------------------------------- a hand-built Poisson run

# Stages (windows on the schedule's clock):
#   warm  linear 0 -> 2/s over 3.5 s   [0, 3.5)     a ramp: left out of the dispersion
#   a     step 3/s, 6 s                [3.5, 9.5)   full seconds 4..8 (3 and 9 are shared)
#   b     step 1/s, 7 s                [9.5, 16.5)  full seconds 10..15 (16 is shared with idle)
#   idle  step 0/s, 2 s                [16.5, 18.5) rate 0: left out
# Offered arrivals per second (dropped ones count):
#   0..2: 0 1 9 (ramp)   3: 9 (ramp/a)   4..8: 1 5 3 2 4   9: 7 (a/b)   10..15: 0 2 1 0 3 0   16: 6   17, 18: 0
# Stage a: n 5, mean 15/5 = 3, squares (-2)^2 + 2^2 + 0 + (-1)^2 + 1^2 = 10, (n - 1) mean = 12 (own index 10/12)
# Stage b: n 6, mean 6/6 = 1, squares 1 + 1 + 0 + 1 + 4 + 1 = 8, (n - 1) mean = 5 (own index 8/5)
# Pooled: D = (10 + 8) / (12 + 5) = 18/17 over 11 seconds.
WARM = {1: 1, 2: 9}
A = {4: 1, 5: 5, 6: 3, 7: 2, 8: 4}
B = {10: 0, 11: 2, 12: 1, 13: 0, 14: 3, 15: 0}
POISSON_SCENARIO = {
    "name": "bursty",
    "stages": [
        {"name": "warm", "duration_s": 3.5, "target_rate": 2, "ramp": "linear"},
        {"name": "a", "duration_s": 6, "target_rate": 3},
        {"name": "b", "duration_s": 7, "target_rate": 1},
        {"name": "idle", "duration_s": 2, "target_rate": 0},
    ],
    "thresholds": {"max_dropped_share": 0.5},
    "arrivals": {"process": "poisson", "seed": 7, "replay": None},
}


@pytest.fixture
def poisson_run(make_run, attempt_row):
    r = attempt_row
    rows = []
    for second, count in WARM.items():
        rows += start_rows(r, spread(second, count), "warm")
    rows += start_rows(r, spread(3, 9, 0.0, 0.5), "warm", prefix="3")  # second 3, before a starts
    for second, count in A.items():
        times = spread(second, count)
        if second == 5:  # 2 of the 5 dropped and 1 throttled: offered all the same
            rows += start_rows(r, times[:2], "a", "dropped", prefix="5d")
            rows += start_rows(r, times[2:3], "a", "throttled_tps", prefix="5t")
            rows += start_rows(r, times[3:], "a", prefix="5")
        else:
            rows += start_rows(r, times, "a", prefix=str(second))
    rows += start_rows(r, spread(9, 7, 0.0, 0.5), "a", prefix="9")  # second 9, before b starts
    for second, count in B.items():
        rows += start_rows(r, spread(second, count), "b", prefix=str(second)) if count else []
    rows += start_rows(r, spread(16, 6, 0.0, 0.5), "b", prefix="16")  # second 16, before idle
    return make_run({"w1": rows}, ended_at=1018.5, scenario=POISSON_SCENARIO)


def test_dispersion_index_by_hand(poisson_run):
    result = analyze(poisson_run)
    offered = result.per_second["offered"].tolist()
    assert offered == [0, 1, 9, 9, 1, 5, 3, 2, 4, 7, 0, 2, 1, 0, 3, 0, 6, 0, 0]
    found = result.traffic["dispersion"]
    assert found["dispersion_index"] == pytest.approx(18 / 17)
    assert found["seconds"] == 11
    assert found["mean_per_second"] == pytest.approx(21 / 11)
    a, b = found["stages"]
    assert (a["stage"], a["seconds"], a["mean"], a["variance"]) == ("a", 5, 3.0, pytest.approx(10 / 4))
    assert a["dispersion_index"] == pytest.approx(10 / 12)
    assert (b["stage"], b["seconds"], b["mean"], b["variance"]) == ("b", 6, 1.0, pytest.approx(8 / 5))
    assert b["dispersion_index"] == pytest.approx(8 / 5)
    # fewer than 10 seconds -> null: with arrivals ending at 14.2 s, b keeps seconds 10..13 (5 + 4 = 9)
    stages = with_windows(configured_stages(result.run.meta), result.run.schedule_t0)
    short = dispersion_index(result.per_second, stages, arrivals_end=1014.2)
    assert short["seconds"] == 9 and short["dispersion_index"] is None


def test_expected_arrivals_per_second_follow_the_ramp_and_the_steps(poisson_run):
    expected = analyze(poisson_run).per_second["expected"].tolist()
    # ramp r(t) = 2 t / 3.5: A(t) = t^2 / 3.5, so second 0 expects 1/3.5, second 1 expects 3/3.5, 2: 5/3.5;
    # second 3: the ramp's last half second (3.5^2 - 9) / 3.5 = 3.25/3.5, plus half a second of a at 3/s;
    # second 9: half a second at 3/s and half at 1/s; second 16: half a second at 1/s, then idle
    assert expected == pytest.approx(
        [1 / 3.5, 3 / 3.5, 5 / 3.5, 3.25 / 3.5 + 1.5, 3, 3, 3, 3, 3, 2, 1, 1, 1, 1, 1, 1, 0.5, 0, 0]
    )


def test_poisson_run_names_its_process_everywhere(poisson_run, capsys):
    assert main([str(poisson_run)]) == 0
    summary = json.loads((poisson_run / "summary.json").read_text())
    assert summary["arrivals"]["process"] == "poisson" and summary["arrivals"]["seed"] == 7
    assert summary["arrivals"]["dispersion_index"] == pytest.approx(18 / 17)
    # stage a: 22 arrivals (second 3 is warm's) over 6 s, 20 calls, 1 throttled_tps (5 % > 1 %)
    onset = findings_text(summary, "tps_throttle_onset")
    assert onset.startswith("TPS throttling starts at an offered rate of 3.67/s (Poisson arrivals, seed 7; stage a:")
    item = next(i for i in summary["findings"]["items"] if i["name"] == "arrival_dispersion")
    assert item["highlight"] is True and "1.06 over 11 s" in item["text"]
    out = capsys.readouterr().out
    assert "arrivals: poisson, seed 7; dispersion index 1.06" in out
    markdown = (poisson_run / "report.md").read_text()
    assert "| arrival process | Poisson, seed 7; dispersion index 1.06 |" in markdown
    assert "- **Arrival process: Poisson arrivals, seed 7. Dispersion index" in markdown
    assert "![arrivals](plots/arrivals.png)" in markdown
    html = (poisson_run / "report.html").read_text()
    assert '<li class="highlight"><strong>Arrival process: Poisson arrivals, seed 7.' in html
    assert "Poisson, seed 7; dispersion index 1.06" in html


# ---------------------------------------------------------------- runs from before arrival processes


def test_old_run_without_arrivals_reads_as_uniform(make_run, attempt_row, capsys):
    # conftest's meta has no scenario "arrivals"; stage "only" 10 s at 1/s, 10 arrivals, 2 TPS throttled
    times = [0.5 + k for k in range(10)]
    rows = start_rows(attempt_row, times[:8], "only") + start_rows(
        attempt_row, times[8:], "only", "throttled_tps", prefix="t"
    )
    run_dir = make_run({"w1": rows})
    assert main([str(run_dir)]) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["arrivals"]["process"], summary["arrivals"]["seed"]) == ("uniform", None)
    assert summary["arrivals"]["dispersion_index"] == 0.0  # one arrival in each of the 10 seconds
    assert summary["replay"] is None
    onset = findings_text(summary, "tps_throttle_onset")
    assert onset.startswith("TPS throttling starts at an offered rate of 1.00/s (evenly spaced arrivals; stage only:")
    assert "arrivals: uniform (evenly spaced); dispersion index 0.00" in capsys.readouterr().out
    markdown = (run_dir / "report.md").read_text()
    assert "| arrival process | uniform (evenly spaced); dispersion index 0.00 (meta.json names no arrival" in markdown


# ---------------------------------------------------------------- a replayed day

# Three recorded 15-minute intervals from 08:00Z with 30, 60 and 15 chats, scale 1.5, speed 60:
# each becomes a 15 s stage at 30 x 1.5 / 15 = 3/s, 6/s and 1.5/s (157.5 chats after scaling).
# Arrivals evenly spaced at those rates: 45 + 90 + 22 = 157 offered. Every chat lives 2.05 s (its
# DisconnectParticipant is sent 2.05 s after its start): at 6/s a new start finds the 12 chats started
# in the 2 s before it still active, so the peak is 13; the recorded day's equivalent is 13 / 60.
INTERVALS = [[EIGHT_AM, 900.0, 30.0], [EIGHT_AM + 900, 900.0, 60.0], [EIGHT_AM + 1800, 900.0, 15.0]]
REPLAY = {
    "file": "traffic/day.csv",
    "shape": "intervals",
    "scale": 1.5,
    "speed": 60.0,
    "window": None,
    "interval_s": None,
    "wall_clock": True,
    "intervals": INTERVALS,
}


@pytest.fixture
def replay_run(make_run, attempt_row):
    r = attempt_row
    stages = [
        ("2025-11-28T08:00Z", 0.0, 3.0, 45),
        ("2025-11-28T08:15Z", 15.0, 6.0, 90),
        ("2025-11-28T08:30Z", 30.0, 1.5, 22),
    ]
    rows = []
    for name, start, rate, count in stages:
        for k in range(count):
            t = start + (k + 0.5) / rate
            chat = f"{name}-{k}"
            rows.append(r(t, SCC, "ok", 0, t_intended=t, stage=name, chat=chat))
            rows.append(r(t + 2.05, DISC, "ok", 0, stage=name, chat=chat))
    return make_run(
        {"w1": rows},
        ended_at=1047.5,
        scenario={
            "name": "day",
            "stages": [{"name": n, "duration_s": 15.0, "target_rate": rate} for n, _, rate, _ in stages],
            "thresholds": {"max_dropped_share": 0.01},
            "arrivals": {"process": "uniform", "seed": None, "replay": REPLAY},
        },
    )


def test_replay_summary_plot_and_concurrency(replay_run, capsys):
    assert main([str(replay_run)]) == 0
    summary = json.loads((replay_run / "summary.json").read_text())
    replay = summary["replay"]
    assert replay["file"] == "traffic/day.csv"
    assert (replay["scale"], replay["speed"], replay["concurrency_factor"]) == (1.5, 60.0, 60.0)
    assert replay["recorded_start"] == "2025-11-28T08:00:00Z"
    assert replay["recorded_end"] == "2025-11-28T08:45:00Z"
    assert replay["recorded_chats"] == pytest.approx(157.5)
    assert replay["offered_chats"] == 157
    assert replay["peak_active_chats"] == 13 == summary["findings"]["peak_active_chats"]
    assert replay["recorded_peak_active_chats"] == pytest.approx(13 / 60)
    assert "60x the concurrency of the recorded day" in replay["note"]
    assert "peak 13 active chats in the run, about 0.2 on the recorded day; 0.1 as recorded" in replay["note"]
    # dispersion: 3 and 6 in every second of the first two stages (squares 0, (n - 1) mean 14 x 3 + 14 x 6);
    # at 1.5/s the third alternates 1, 2, ..., 1 (8 ones, 7 twos: squares 36 - 22^2/15 = 56/15, mean 22/15)
    # -> D = (56/15) / (14 x 22/15 + 126) = 56 / 2198
    assert summary["arrivals"]["dispersion_index"] == pytest.approx(56 / 2198)
    assert (replay_run / "plots" / "replay.png").stat().st_size > 0
    item = next(i for i in summary["findings"]["items"] if i["name"] == "replay")
    assert item["highlight"] is True and item["text"].startswith(
        "Replayed traffic/day.csv from 2025-11-28T08:00:00Z to 2025-11-28T08:45:00Z (3 intervals, scale 1.5, "
        "speed 60x): 158 chats recorded after scaling, 157 offered."
    )
    out = capsys.readouterr().out
    assert "replay: traffic/day.csv 2025-11-28T08:00:00Z to 2025-11-28T08:45:00Z, scale 1.5, speed 60x; " in out
    assert "concurrency 60x the recorded day's (peak 13 active chats, about 0.2 on the recorded day)" in out
    assert "![replay](plots/replay.png)" in (replay_run / "report.md").read_text()
    assert (
        "| replay | traffic/day.csv (intervals), recorded 2025-11-28T08:00:00Z to"
        in (replay_run / "report.md").read_text()
    )


def test_recorded_clock_and_the_plain_seconds_replay():
    plain = {**REPLAY, "wall_clock": False, "speed": 1.0, "intervals": [[3600.0, 600.0, 10.0], [4200.0, 600.0, 20.0]]}
    facts = replay_summary(plain, offered_chats=44, peak_active=9)
    assert (facts["recorded_start"], facts["recorded_end"]) == (3600.0, 4800.0)
    assert facts["recorded_chats"] == pytest.approx(45.0)  # (10 + 20) x 1.5
    assert facts["concurrency_factor"] == 1.0 and facts["recorded_peak_active_chats"] == 9.0
    assert facts["note"].startswith("Replayed at the recorded speed: the run's concurrency is the recorded day's")
    # 90 s after the schedule's start at speed 60 is 90 recorded minutes after the recording's start
    assert recorded_clock([1090.0], REPLAY, 1000.0).tolist() == [EIGHT_AM + 5400.0]
    assert replay_summary(None, 0, 0) is None


def test_replay_plot_without_data_and_on_plain_seconds():
    plain = {**REPLAY, "wall_clock": False, "intervals": [[3600.0, 600.0, 10.0]]}
    seconds = pd.DataFrame({"second": [0, 1], "t": [1000.0, 1001.0], "offered": [1, 2], "accepted": [1, 1]})
    figure = replay_plot(seconds, plain, 1000.0)
    assert figure.axes[0].get_xlabel() == "recorded time (s)"
    empty = replay_plot(seconds.iloc[0:0], {**REPLAY, "intervals": []}, 1000.0)
    assert "no data" in [t.get_text() for t in empty.axes[0].texts]


def test_expected_per_second_without_windows_is_zero():
    stages = configured_stages({"scenario": {"stages": [{"name": "x", "target_rate": 2}]}})
    # no duration: no window, nothing expected; given a window [0, 10) it expects 2 in second 5
    assert expected_per_second([0.0, 1.0], with_windows(stages, 0.0)).tolist() == [0.0, 0.0]
    assert expected_per_second([5.0], stages.assign(window_start=0.0, window_end=10.0)).tolist() == [2.0]
