"""A small run whose every table value and finding was worked out by hand (see the comments).

Times below are seconds after started_at = 1000.0; ended_at = 1004.5, so the run lasts 4.5 s and the
per-second table has seconds 0..4 (ceil 4.5 = 5 rows).

Stage "low": 2 s at 2/s, stage "high": 2 s at 4/s.  StartChatContact rows (t_intended = t_start
except B4 and the dropped B7):

  id  t_int  t_start  outcome                lat  chat  (chat starts at t_start + lat/1000)
  A1  0.2    0.2      ok                      10  c1    0.21
  A2  0.7    0.7      ok                      30  c2    0.73
  A3  1.2    1.2      ok                      10  c3    1.21
  A4  1.7    1.7      ok                      30  c4    1.73
  B1  2.1    2.1      ok                      20  c5    2.12
  B2  2.3    2.3      throttled_tps            5  c6
  B3  2.6    2.6      throttled_concurrency    5  c7
  B4  2.8    2.85     ok                      40  c8    2.89
  B5  3.1    3.1      throttled_tps            5  c9
  B6  3.3    3.3      ok (2 attempts, first throttled_tps) 20 c10  3.32
  B7  3.55   3.6      dropped                  -  c11
  B8  3.8    3.8      client_error            15  c12
Other calls: CreateParticipantConnection ok c1 at 0.5 (50 ms); DisconnectParticipant ok c1 at 1.0
(100 ms; a chat ends when its end call is sent -> c1 ends 1.0); StopContact ok c2 at 2.5
(0 ms -> ends 2.5); DisconnectParticipant throttled_tps c3 at 2.0 (5 ms, not an end);
DisconnectParticipant ok c3 at 3.0 (0 ms -> ends 3.0).
c4, c5, c8, c10 are never ended (active until the run end 4.5).
"""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from chatload.analysis.pipeline import analyze
from chatload.analysis.report import main

W1 = {"c1", "c2", "c3", "c4"}
SCC, DISC, STOP, CPC = "StartChatContact", "DisconnectParticipant", "StopContact", "CreateParticipantConnection"


@pytest.fixture
def hand_run(make_run, attempt_row):
    r = attempt_row
    rows = [
        r(0.2, SCC, "ok", 10, t_intended=0.2, stage="low", chat="c1"),
        r(0.7, SCC, "ok", 30, t_intended=0.7, stage="low", chat="c2"),
        r(1.2, SCC, "ok", 10, t_intended=1.2, stage="low", chat="c3"),
        r(1.7, SCC, "ok", 30, t_intended=1.7, stage="low", chat="c4"),
        r(2.1, SCC, "ok", 20, t_intended=2.1, stage="high", chat="c5"),
        r(2.3, SCC, "throttled_tps", 5, t_intended=2.3, stage="high", chat="c6"),
        r(2.6, SCC, "throttled_concurrency", 5, t_intended=2.6, stage="high", chat="c7"),
        r(2.85, SCC, "ok", 40, t_intended=2.8, stage="high", chat="c8"),
        r(3.1, SCC, "throttled_tps", 5, t_intended=3.1, stage="high", chat="c9"),
        r(3.3, SCC, "ok", 20, t_intended=3.3, stage="high", chat="c10", attempts=2, first_outcome="throttled_tps"),
        r(3.6, SCC, "dropped", t_intended=3.55, stage="high", chat="c11"),
        r(3.8, SCC, "client_error", 15, t_intended=3.8, stage="high", chat="c12"),
        r(0.5, CPC, "ok", 50, stage="low", chat="c1"),
        r(1.0, DISC, "ok", 100, stage="low", chat="c1"),
        r(2.5, STOP, "ok", 0, stage="high", chat="c2"),
        r(2.0, DISC, "throttled_tps", 5, stage="high", chat="c3"),
        r(3.0, DISC, "ok", 0, stage="high", chat="c3"),
    ]
    return make_run(
        # a chat lives in one worker: c1..c4 in w1, the rest in w2 (w2 as Parquet would work too)
        {"w1": [x for x in rows if x["chat"] in W1], "w2": [x for x in rows if x["chat"] not in W1]},
        ended_at=1004.5,
        workers=["w1", "w2"],
        scenario={
            "name": "hand",
            "stages": [
                {"name": "low", "duration_s": 2, "target_rate": 2},
                {"name": "high", "duration_s": 2, "target_rate": 4},
            ],
            "thresholds": {
                "max_p95_ms": 100,
                "min_success_share": 0.5,
                "max_dropped_share": 0.2,
                "max_outcome_share": {"throttled_tps": 0.1},
            },
        },
        quotas={"source": "emulator", "StartChatContact": {"rate": 2, "burst": 3}, "concurrent_chats": 3},
    )


def test_per_second_table(hand_run):
    seconds = analyze(hand_run).per_second
    # offered by second of t_intended: s0 A1 A2, s1 A3 A4, s2 B1-B4, s3 B5-B8 (B7 dropped at 3.55)
    assert seconds["offered"].tolist() == [2, 2, 4, 4, 0]
    # started (calls, not dropped) by second of t_start: B4 starts at 2.85 -> s2; B8 -> s3
    assert seconds["started"].tolist() == [2, 2, 4, 3, 0]
    assert seconds["accepted"].tolist() == [2, 2, 2, 1, 0]  # s2: B1, B4; s3: B6
    assert seconds["throttled_tps"].tolist() == [0, 0, 1, 1, 0]  # B2, B5
    assert seconds["throttled_concurrency"].tolist() == [0, 0, 1, 0, 0]  # B3
    assert seconds["client_error"].tolist() == [0, 0, 0, 1, 0]  # B8
    assert seconds["dropped"].tolist() == [0, 0, 0, 1, 0]  # B7
    assert seconds["stage"].tolist() == ["low", "low", "high", "high", "high"]  # s4 keeps "high"
    # ok latencies: s0 and s1 [10, 30] -> p50 20, p95 10 + 0.95*20 = 29, p99 29.8;
    # s2 [20, 40] -> 30, 39, 39.8; s3 [20] -> 20; s4 none
    assert seconds["ok_p50_ms"].tolist()[:4] == pytest.approx([20, 20, 30, 20])
    assert seconds["ok_p95_ms"].tolist()[:4] == pytest.approx([29, 29, 39, 20])
    assert seconds["ok_p99_ms"].tolist()[:4] == pytest.approx([29.8, 29.8, 39.8, 20])
    assert math.isnan(seconds["ok_p95_ms"].iloc[4])
    # throttled latencies: s2 [5, 5], s3 [5]
    assert seconds["throttled_p95_ms"].tolist()[2:4] == [5, 5]
    assert seconds["throttled_p95_ms"].isna().tolist() == [True, True, False, False, True]
    # chat events: +0.21 +0.73 -1.1 +1.21 +1.73 +2.12 -2.5 +2.89 -3.0 +3.32
    # at the end of each second: 2, 3, 4, 4, 4; peak within: 2, 3, 4, 4, 4 (s4: carried over)
    assert seconds["active_chats"].tolist() == [2, 3, 4, 4, 4]
    assert seconds["active_chats_peak"].tolist() == [2, 3, 4, 4, 4]


def test_per_stage_table(hand_run):
    stages = analyze(hand_run).per_stage.set_index("stage")
    low, high = stages.loc["low"], stages.loc["high"]
    # low: configured 2 s (run end - first arrival = 4.3 s is longer), 4 arrivals, all ok
    assert (low["duration_s"], low["arrivals"], low["calls"], low["ok"]) == (2, 4, 4, 4)
    assert (low["offered_rate"], low["accepted_rate"], low["success_share"]) == (2.0, 2.0, 1.0)
    # ok latencies [10, 10, 30, 30]: p50 20, p95 at rank 2.85 -> 30, p99 30
    assert (low["ok_p50_ms"], low["ok_p95_ms"], low["ok_p99_ms"]) == pytest.approx((20, 30, 30))
    # high: 8 arrivals (1 dropped) over 2 s -> offered 4/s; 7 calls: 3 ok -> 1.5/s accepted
    assert (high["arrivals"], high["calls"], high["ok"], high["dropped"]) == (8, 7, 3, 1)
    assert (high["offered_rate"], high["accepted_rate"]) == (4.0, 1.5)
    assert high["success_share"] == pytest.approx(3 / 7)
    assert high["tps_throttle_share"] == pytest.approx(2 / 7)
    assert high["concurrency_throttle_share"] == pytest.approx(1 / 7)
    assert high["other_error_share"] == pytest.approx(1 / 7)  # B8 client_error
    assert high["dropped_share"] == pytest.approx(1 / 8)
    # ok latencies [20, 20, 40]: p50 20, p95 at rank 1.9 -> 38, p99 at rank 1.98 -> 39.6
    assert (high["ok_p50_ms"], high["ok_p95_ms"], high["ok_p99_ms"]) == pytest.approx((20, 38, 39.6))
    assert high["throttled_p95_ms"] == 5


def test_per_operation_table(hand_run):
    ops = analyze(hand_run).per_operation.set_index("operation")
    assert ops.index[0] == "StartChatContact"
    start = ops.loc["StartChatContact"]
    # 12 rows, 1 dropped -> 11 calls: 7 ok, 2 tps, 1 concurrency, 1 client_error; attempts 10*1 + 2 = 12
    assert (start["calls"], start["ok"], start["throttled_tps"], start["throttled_concurrency"]) == (11, 7, 2, 1)
    assert (start["client_error"], start["dropped"], start["http_attempts"]) == (1, 1, 12)
    assert start["retry_amplification"] == pytest.approx(12 / 11)
    assert (start["retried_calls"], start["throttles_hidden_by_retries"]) == (1, 1)  # B6
    # ok latencies [10, 10, 20, 20, 30, 30, 40]: p50 20, p95 rank 5.7 -> 37, p99 rank 5.94 -> 39.4
    assert (start["ok_p50_ms"], start["ok_p95_ms"], start["ok_p99_ms"]) == pytest.approx((20, 37, 39.4))
    disconnect = ops.loc["DisconnectParticipant"]
    assert (disconnect["calls"], disconnect["ok"], disconnect["throttled_tps"]) == (3, 2, 1)
    assert disconnect["ok_p50_ms"] == 50  # [0, 100]
    assert ops.loc["StopContact", "calls"] == 1
    assert ops.loc["CreateParticipantConnection", "ok"] == 1


def test_findings(hand_run):
    found = analyze(hand_run).findings
    # accepted per second [2, 2, 2, 1, 0]; the run has 5 s < 10 s, so the window is 5 s: 7/5 = 1.4
    assert found["max_sustained_accepted_rate"] == pytest.approx(1.4)
    # offered [2, 2, 4, 4, 0] -> 12/5 = 2.4
    assert found["peak_offered_rate"] == pytest.approx(2.4)
    # low has 0% TPS throttles, high 2/7 > 1% -> onset at high's offered rate 4/s
    assert found["tps_throttle_onset_rate"] == 4.0
    onset = next(i for i in found["items"] if i["name"] == "tps_throttle_onset")["numbers"]
    assert onset["highest_clean_offered_rate"] == 2.0
    # first TPS throttle B2 at 2.3; stage high's first call B1 at 2.1; ok in [2.1, 2.3) = 1 (B1);
    # the known rate quota is 2/s: burst = 1 - 2 x 0.2 = 0.6
    assert found["burst_absorbed"] == pytest.approx(0.6)
    burst = next(i for i in found["items"] if i["name"] == "burst_absorbed")["numbers"]
    assert (burst["rate"], burst["rate_source"], burst["quota_burst"]) == (2, "rate quota", 3)
    # peak 4 active chats >= quota 3, and B3 was a concurrency throttle
    assert found["peak_active_chats"] == 4
    assert found["concurrency_quota_hit"] is True
    assert found["retry_amplification"] == pytest.approx(12 / 11)
    little = found["littles_law"]
    # ended chats: c1 1.0-0.21 = 0.79, c2 2.5-0.73 = 1.77, c3 3.0-1.21 = 1.79; mean 4.35/3
    assert little["mean_chat_duration_s"] == pytest.approx(4.35 / 3)
    # 2.4/s x 1.45 s = 3.48 chats needed > quota 3; rate 2.4/s needed > quota 2/s
    assert little["concurrency_needed"] == pytest.approx(3.48)
    assert little["concurrency_quota_sufficient"] is False
    assert (little["rate_needed"], little["rate_quota_sufficient"]) == (pytest.approx(2.4), False)


def test_summary_thresholds_and_exit_code(hand_run, capsys):
    assert main([str(hand_run)]) == 1  # valid, one threshold failed
    out = capsys.readouterr().out
    assert "valid" in out and "report.html" in out and "throttled_tps 2" in out
    lines = out.splitlines()
    assert lines[0].endswith(": valid, thresholds FAILED: max_outcome_share.throttled_tps")
    # 12 arrivals and 7 ok over the 4 s schedule
    assert lines[1].startswith("StartChatContact: offered 3.00/s, accepted 1.75/s over the 4.0 s schedule")
    # stage table: target, offered, accepted, ok %, TPS %, concurrency %, other %, dropped
    assert lines[3].split() == ["low", "2.00", "2.00", "2.00", "100.0", "0.0", "0.0", "0.0", "0"]
    assert lines[4].split() == ["high", "4.00", "4.00", "1.50", "42.9", "28.6", "14.3", "14.3", "1"]
    assert lines[5].startswith("arrivals: uniform (evenly spaced); dispersion index -")
    assert "max_outcome_share.throttled_tps 0.1818 <= 0.1 FAIL" in out and len(lines) <= 11
    summary = json.loads((hand_run / "summary.json").read_text())
    for key in (
        "run_id",
        "scenario",
        "target",
        "valid",
        "invalid_reasons",
        "duration_s",
        "calls",
        "arrivals",
        "stages",
        "findings",
        "thresholds",
        "passed",
    ):
        assert key in summary
    assert summary["valid"] is True and summary["passed"] is False
    assert summary["duration_s"] == pytest.approx(4.5)
    # the contract's three counts, then the arrival process (none recorded: uniform) and no dispersion
    # index: the two step stages hold only 2 + 2 full seconds (at least 10 needed)
    assert summary["arrivals"] == {
        "scheduled": 12,
        "started": 11,
        "dropped": 1,
        "process": "uniform",
        "seed": None,
        "dispersion_index": None,
    }
    assert summary["replay"] is None
    assert summary["calls"]["StartChatContact"]["attempts"] == 12
    results = {t["name"]: (t["observed"], t["passed"]) for t in summary["thresholds"]}
    assert results == {
        "max_p95_ms": (pytest.approx(37), True),
        "min_success_share": (pytest.approx(7 / 11), True),
        "max_dropped_share": (pytest.approx(1 / 12), True),
        "max_outcome_share.throttled_tps": (pytest.approx(2 / 11), False),
    }
    high = summary["stages"][1]
    assert high["name"] == "high" and high["tps_throttle_pct"] == pytest.approx(200 / 7)
    assert high["p95_ms"] == pytest.approx(38)
    # outputs
    for name in (
        "report.html",
        "report.md",
        "junit.xml",
        "tables/per_second.csv",
        "tables/per_stage.parquet",
        "tables/chats.parquet",
        "plots/saturation.png",
        "plots/active_chats.png",
        "plots/arrivals.png",
    ):
        assert (hand_run / name).is_file(), name
    assert not (hand_run / "plots" / "replay.png").exists()  # not a replay
    per_second = pd.read_parquet(hand_run / "tables" / "per_second.parquet")
    assert per_second["offered"].tolist() == [2, 2, 4, 4, 0]
    # the schedule expects 2 arrivals in each second of "low", 4 in each of "high", none after it
    assert per_second["expected"].tolist() == [2, 2, 4, 4, 0]
    junit = (hand_run / "junit.xml").read_text()
    assert junit.count("<testcase") == 5 and junit.count("<failure") == 1
    html = (hand_run / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 6
    assert "http://" not in html.replace("http://127.0.0.1:1", "") and "https://" not in html


def test_target_peak_rate_option(hand_run):
    main([str(hand_run), "--target-peak-rate", "10"])
    little = json.loads((hand_run / "summary.json").read_text())["findings"]["littles_law"]
    # 10/s x 4.35/3 s = 14.5 chats
    assert little["concurrency_needed"] == pytest.approx(10 * 4.35 / 3)
    assert little["target_source"] == "--target-peak-rate"


def test_error_breakdown(hand_run):
    main([str(hand_run)])
    errors = pd.read_csv(hand_run / "tables" / "errors.csv", keep_default_na=False)
    # StartChatContact (11 calls): B2, B5 429 TooManyRequests; B3 429 LimitExceeded; B8 400 InvalidRequest.
    # DisconnectParticipant (3 calls): c3's throttle at 2.0. Within an operation: most calls first, then name.
    assert errors[["operation", "outcome", "http_status", "error_code", "calls"]].values.tolist() == [
        [SCC, "throttled_tps", 429, "TooManyRequestsException", 2],
        [SCC, "client_error", 400, "InvalidRequestException", 1],
        [SCC, "throttled_concurrency", 429, "LimitExceededException", 1],
        [DISC, "throttled_tps", 429, "TooManyRequestsException", 1],
    ]
    assert errors["share_of_operation"].tolist() == pytest.approx([2 / 11, 1 / 11, 1 / 11, 1 / 3])
    assert (
        "| StartChatContact | throttled_concurrency | 429 | LimitExceededException | 1 |"
        in (hand_run / "report.md").read_text()
    )
    assert "InvalidRequestException" in (hand_run / "report.html").read_text()
