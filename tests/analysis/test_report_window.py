"""The schedule's window (meta.json schedule_started_at) and runs that did not run their schedule.

Run used throughout: started_at 990 (prepared), the pool spawned for 10 s, the pacer's clock started at
schedule_started_at 1000. Stage "a": 5 s at 2/s, arrivals at 0.25 + 0.5 k (k = 0..9, 10 arrivals);
stage "b": 5 s at 4/s, arrivals at 5.125 + 0.25 k (k = 0..19, 20 arrivals); every call ok (10 ms).
ended_at = 1011.
"""

from __future__ import annotations

import json
import math

import pytest

from chatload.analysis.pipeline import analyze
from chatload.analysis.report import main

SCC = "StartChatContact"
STAGES = [{"name": "a", "duration_s": 5, "target_rate": 2}, {"name": "b", "duration_s": 5, "target_rate": 4}]


def arrivals(r, until: float = math.inf) -> list[dict]:
    times = [("a", 0.25 + 0.5 * k) for k in range(10)] + [("b", 5.125 + 0.25 * k) for k in range(20)]
    return [r(t, SCC, "ok", 10, t_intended=t, stage=s, chat=f"c{i}") for i, (s, t) in enumerate(times) if t <= until]


def build(make_run, r, until: float = math.inf, **overrides):
    base = {
        "started_at": 990.0,
        "schedule_started_at": 1000.0,
        "ended_at": 1011.0,
        "scenario": {"name": "window", "stages": STAGES, "thresholds": {}},
    }
    return make_run({"w1": arrivals(r, until)}, **{**base, **overrides})


def test_rates_use_the_schedule_window_not_started_at(make_run, attempt_row, capsys):
    run_dir = build(make_run, attempt_row)
    result = analyze(run_dir)
    stages = result.per_stage.set_index("stage")
    # a: [1000, 1005] -> 10 / 5 s = 2/s; b: [1005, 1010] -> 20 / 5 s = 4/s
    assert stages.loc["a", "start_s"] == 1000 and stages.loc["b", "start_s"] == 1005
    assert stages["offered_rate"].tolist() == [2.0, 4.0]
    assert stages["accepted_rate"].tolist() == [2.0, 4.0]
    # buckets from 1000: 2 arrivals in each of seconds 0-4, 4 in 5-9; the run ends at 1011 -> 11 s
    assert result.per_second["offered"].tolist() == [2] * 5 + [4] * 5 + [0]
    schedule = result.summary["schedule"]
    # 30 arrivals over the 10 s schedule
    assert schedule == {
        "started_at": 1000.0,
        "source": "schedule_started_at",
        "duration_s": 10.0,
        "offered_rate": 3.0,
        "accepted_rate": 3.0,
    }
    assert result.summary["started_at"] == 990.0 and result.summary["duration_s"] == 11.0
    assert main([str(run_dir)]) == 0
    assert "offered 3.00/s, accepted 3.00/s over the 10.0 s schedule" in capsys.readouterr().out


def test_schedule_start_falls_back_to_the_first_arrival_then_started_at(make_run, attempt_row):
    result = analyze(build(make_run, attempt_row, schedule_started_at=None))
    # first arrival's t_intended 1000.25: a spans [1000.25, 1005.25], b [1005.25, 1010.25]
    assert result.run.schedule_source == "first arrival's t_intended"
    assert result.per_stage["start_s"].tolist() == [1000.25, 1005.25]
    assert result.per_stage["offered_rate"].tolist() == [2.0, 4.0]  # counted by stage label
    run_dir = make_run(None, schedule_started_at=None, started_at=990.0)
    (run_dir / "attempts").mkdir()
    (run_dir / "attempts" / "solo.csv").write_text("t_start,operation,outcome\n1000.5,StartChatContact,ok\n")
    unpaced = analyze(run_dir)  # no t_intended at all: started_at 990
    assert (unpaced.run.schedule_source, unpaced.run.t0) == ("started_at", 990.0)
    assert unpaced.per_second["offered"].tolist()[10] == 1  # 1000.5 is second 10 after 990


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"interrupted": True, "ended_early": "interrupted by SIGTERM"}, "interrupted by SIGTERM"),
        ({"interrupted": True, "ended_early": None}, "interrupted by SIGTERM"),
        ({"ended_early": "kill switch: error share 0.62 > 0.5"}, "kill switch: error share 0.62 > 0.5"),
    ],
)
def test_interrupted_or_killed_run_is_invalid(make_run, attempt_row, capsys, overrides, reason):
    run_dir = build(make_run, attempt_row, until=7.0, **overrides)
    assert main([str(run_dir)]) == 2
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["valid"] is False and summary["passed"] is False
    assert summary["invalid_reasons"] == [f"the run ended before its schedule did: {reason}"]
    assert reason in capsys.readouterr().out


def test_max_chats_reached_is_a_note_and_windows_stop_at_the_last_arrival(make_run, attempt_row):
    # arrivals stop after 2.25 (5 chats): a spans [1000, 1002.25] -> 5 / 2.25 s; b got nothing
    run_dir = build(make_run, attempt_row, until=2.25, ended_early="max_chats reached")
    result = analyze(run_dir)
    assert result.summary["valid"] is True
    assert any("max_chats reached" in n for n in result.summary["notes"])
    a, b = result.per_stage.set_index("stage").loc["a"], result.per_stage.set_index("stage").loc["b"]
    assert (a["arrivals"], a["duration_s"], a["offered_rate"]) == (5, 2.25, pytest.approx(5 / 2.25))
    assert (b["arrivals"], b["duration_s"]) == (0, 0) and math.isnan(b["offered_rate"])
    assert result.summary["schedule"]["duration_s"] == 2.25


def test_pacer_counts_are_cross_checked_against_the_rows(make_run, attempt_row):
    same = analyze(build(make_run, attempt_row, arrivals={"scheduled": 30, "started": 30, "dropped": 0}))
    assert not any("pacer" in n for n in same.summary["notes"])
    assert same.summary["pacer_arrivals"] == {"scheduled": 30, "started": 30, "dropped": 0}
    off = analyze(build(make_run, attempt_row, arrivals={"scheduled": 32, "started": 30, "dropped": 2}))
    note = next(n for n in off.summary["notes"] if "pacer" in n)
    assert "scheduled 32 vs 30" in note and "dropped 2 vs 0" in note and "started" not in note.split(":")[1]
