"""Quota inference (analysis/inference.py): token buckets and the concurrent chats quota a run's calls
are consistent with.

Synthetic runs come from the reference bucket, chatload.tokenbucket.TokenBucket: each call starts at
t, takes latency L, and the bucket sees it at a server time drawn inside [t, t + L]; the calls are
handed to the bucket in server-time order (a later call may overtake an earlier one inside the
windows, as on a real server).
"""

from __future__ import annotations

import json
import re
import time

import numpy as np
import pandas as pd
import pytest

from chatload.analysis.findings import findings, inferred_chats_item, quotas_of
from chatload.analysis.inference import concurrent_chats, inferred_quotas, rate_and_burst
from chatload.analysis.pipeline import analyze
from chatload.analysis.report import main
from chatload.tokenbucket import TokenBucket

SCC, STOP = "StartChatContact", "StopContact"
T0 = 1000.0


def frame(rows: list[tuple]) -> pd.DataFrame:
    """Attempts rows from (t after T0, operation, outcome, latency_ms[, chat_key[, attempts]])."""
    records = []
    for r in rows:
        t, op, outcome, latency = r[:4]
        chat = r[4] if len(r) > 4 else -1
        tries = r[5] if len(r) > 5 else 1
        records.append(
            {
                "t_start": T0 + t,
                "latency_ms": latency,
                "operation": op,
                "outcome": outcome,
                "attempts": tries,
                "first_outcome": outcome,
                "chat_key": chat,
            }
        )
    return pd.DataFrame(records)


def through_bucket(rate: float, burst: float, starts: np.ndarray, latency_ms: float, seed: int) -> pd.DataFrame:
    """StartChatContact calls at `starts` (seconds after T0), each 0.5..1.5 x `latency_ms` long, put
    through a bucket (rate, burst) that is full before the first one."""
    rng = np.random.default_rng(seed)
    latency = latency_ms * rng.uniform(0.5, 1.5, len(starts)) / 1000.0
    server = starts + latency * rng.uniform(0.0, 1.0, len(starts))
    bucket = TokenBucket.full(rate, burst, float(server.min()) - 1e-3)
    outcome = np.empty(len(starts), dtype=object)
    for i in np.argsort(server, kind="stable"):
        outcome[i] = "ok" if bucket.take(float(server[i])) else "throttled_tps"
    return frame([(t, SCC, o, 1000.0 * lat) for t, o, lat in zip(starts, outcome, latency, strict=True)])


def staircase(rates: list[float], seconds: float) -> np.ndarray:
    """Evenly spaced arrivals: `seconds` at each rate in turn (tps-ceiling's shape)."""
    out, t = [], 0.0
    for rate in rates:
        out.append(t + np.arange(0.0, seconds - 1e-9, 1.0 / rate))
        t += seconds
    return np.concatenate(out)


def contains(found: dict, truth: float) -> bool:
    return found["low"] - 1e-6 <= truth and (found["high"] is None or truth <= found["high"] + 1e-6)


# ---------------------------------------------------------------- worked out by hand


def test_a_small_sequence_worked_out_by_hand():
    """Five calls of 10 ms (windows [t, t + 0.01]), the bucket full before the first:
        0.0 ok, 0.1 ok, 0.2 throttled, 1.2 ok, 1.3 throttled      (a bucket 1/s burst 2 does this)
    Lower bounds, B >= (calls surely inside [u, v]) - r (v - u):
        [0, 0.11]: 2 - 0.11 r;   [0, 1.21]: 3 - 1.21 r;   [0.1, 1.21]: 2 - 1.11 r;   and B >= 1
    Upper bounds, B < 1 + (calls possibly in [s_j, s_k)) - r (a_k - b_j) for some earlier spend j:
        throttle at 0.2: B < max(3 - 0.19 r, 2 - 0.09 r)
        throttle at 1.3: B < max(4 - 1.29 r, 3 - 1.19 r, 2 - 0.09 r)
    Near r = 0: 3 - 1.21 r <= B < 3 - 0.19 r, so every small rate fits and B reaches up to 3. For
    r >= 5/3 the upper bound is 2 - 0.09 r, above 2 - 0.11 r, and above the floor 1 until
    r = 1 / 0.09 = 11.11: the throttle 0.09 s after the spend at 1.2 is all a fast bucket with a
    burst of 1 needs. So rate [0, 11.11], burst [1, 3]."""
    calls = frame(
        [
            (0.0, SCC, "ok", 10.0),
            (0.1, SCC, "ok", 10.0),
            (0.2, SCC, "throttled_tps", 10.0),
            (1.2, SCC, "ok", 10.0),
            (1.3, SCC, "throttled_tps", 10.0),
        ]
    )
    found = inferred_quotas(calls, "emulator")
    assert found["rate"]["low"] == 0.0
    assert found["rate"]["high"] == pytest.approx(100 / 9, abs=1e-3)
    assert found["burst"]["low"] == pytest.approx(1.0, abs=1e-3)
    assert found["burst"]["high"] == pytest.approx(3.0, abs=1e-3)
    assert found["evidence"]["bucket"]["accepted_attempts"] == 3
    assert found["evidence"]["bucket"]["throttled_attempts"] == 2


def test_the_hand_sequence_agrees_with_simulating_every_bucket():
    """Every (r, B) on a fine grid whose simulation (server time anywhere in each window, checked at
    both ends of the window) repeats the outcomes lies inside the inferred intervals."""
    times = [0.0, 0.1, 0.2, 1.2, 1.3]
    wanted = [True, True, False, True, False]
    found = inferred_quotas(
        frame([(t, SCC, "ok" if w else "throttled_tps", 10.0) for t, w in zip(times, wanted, strict=True)])
    )
    hits = 0
    for rate in np.arange(0.05, 13.0, 0.05):
        for burst in np.arange(1.0, 4.0, 0.05):
            for shift in (0.0, 0.01):  # all calls seen at their start, or at their end
                bucket = TokenBucket.full(rate, burst, T0 - 1.0)
                if [bucket.take(T0 + t + shift) for t in times] == wanted:
                    hits += 1
                    assert contains(found["rate"], rate) and contains(found["burst"], burst), (rate, burst)
    assert hits > 100


# ---------------------------------------------------------------- synthetic buckets


@pytest.mark.parametrize(
    ("rate", "burst", "rates", "seconds", "latency_ms", "max_rate_width", "max_burst_width"),
    [
        # tps-ceiling itself: 1..15 chats/s, 18 s each, against 5/s burst 8
        (5.0, 8.0, [1, 2, 3, 4, 5, 6, 8, 10, 12, 15], 18.0, 4.0, 0.05, 1.0),
        # 2/s burst 5 under a slower staircase
        (2.0, 5.0, [0.5, 1, 1.5, 2, 2.5, 3, 4, 6], 30.0, 4.0, 0.05, 1.0),
        # 100/s burst 150: 4 ms calls are 0.4 tokens long at this rate, so the intervals are wider
        (100.0, 150.0, [20, 40, 60, 80, 100, 120, 160, 200, 240, 300], 6.0, 4.0, 1.5, 5.0),
    ],
)
def test_inferred_intervals_hold_the_bucket_that_made_the_run(
    rate, burst, rates, seconds, latency_ms, max_rate_width, max_burst_width
):
    calls = through_bucket(rate, burst, staircase(rates, seconds), latency_ms, seed=7)
    assert (calls["outcome"] == "throttled_tps").sum() > 10
    found = inferred_quotas(calls, "emulator")
    assert contains(found["rate"], rate), found
    assert contains(found["burst"], burst), found
    assert found["rate"]["high"] - found["rate"]["low"] <= max_rate_width, found
    assert found["burst"]["high"] - found["burst"]["low"] <= max_burst_width, found


def test_random_buckets_and_arrivals_are_always_inside():
    """Poisson arrivals at 0.5..2.5 x the rate, 0.3..30 ms calls (windows overlapping at high rates):
    the truth is inside every time, for a full start and for an unknown starting level."""
    rng = np.random.default_rng(11)
    for case in range(40):
        rate = float(rng.choice([1.0, 5.0, 20.0, 100.0]) * rng.uniform(0.5, 1.5))
        burst = float(rng.uniform(1.0, 40.0))
        starts = np.cumsum(rng.exponential(1.0 / (rate * rng.uniform(0.5, 2.5)), int(rng.integers(30, 1500))))
        calls = through_bucket(rate, burst, starts, float(10 ** rng.uniform(-0.5, 1.5)), seed=case)
        for target in ("emulator", "aws"):
            found = inferred_quotas(calls, target)
            if found["rate"] is None:
                assert not (calls["outcome"] == "throttled_tps").any()
                continue
            assert contains(found["rate"], rate) and contains(found["burst"], burst), (case, target, found)


def test_no_throttle_means_no_rate_and_no_burst():
    calls = through_bucket(5.0, 8.0, np.arange(0.0, 60.0, 0.25), 4.0, seed=1)  # 4/s against 5/s
    assert (calls["outcome"] == "ok").all()
    found = inferred_quotas(calls, "emulator")
    assert found["rate"] is None and found["burst"] is None and found["concurrent_chats"] is None
    assert any("would need throttled_tps calls" in note for note in found["notes"])
    assert any("No LimitExceededException" in note for note in found["notes"])


def test_a_bucket_not_full_at_the_start_on_aws():
    """A real account's bucket may be drained when the run starts: throttles from the first call on.
    As "aws" the level at the start is unknown and the truth stays inside; as "emulator" no full-start
    bucket fits, so the fit is made again without that assumption and a note says so."""
    starts = staircase([2, 4, 7, 2, 11], 10.0)
    rng = np.random.default_rng(3)
    latency = rng.uniform(2.0, 6.0, len(starts)) / 1000.0
    bucket = TokenBucket(rate=5.0, burst=8.0, tokens=0.5, updated=T0)  # half a token at the start
    outcome = [
        "ok" if bucket.take(T0 + t + lat / 2) else "throttled_tps" for t, lat in zip(starts, latency, strict=True)
    ]
    calls = frame([(t, SCC, o, 1000 * lat) for t, o, lat in zip(starts, outcome, latency, strict=True)])
    assert outcome[0] == "throttled_tps"  # the very first call finds about half a token
    aws = inferred_quotas(calls, "aws")
    assert contains(aws["rate"], 5.0) and contains(aws["burst"], 8.0), aws
    assert aws["rate"]["high"] - aws["rate"]["low"] < 0.5
    assert aws["evidence"]["bucket"]["start"] == "unknown level"
    assert any("share the StartChatContact bucket" in note for note in aws["notes"])
    emulator = inferred_quotas(calls, "emulator")
    assert emulator["evidence"]["bucket"]["start"] == "unknown level"
    assert any("No bucket that was full at the first call" in note for note in emulator["notes"])


def test_a_changed_quota_fits_no_bucket():
    """12/s offered against 10/s burst 5 for 20 s, then the quota drops to 2/s (as a PUT
    /_emulator/config would do): the throttles before the change need a rate near 10, the ones after
    it one near 2."""
    starts = np.arange(0.0, 40.0, 1 / 12)
    bucket = TokenBucket.full(10.0, 5.0, T0 - 1)
    outcome = []
    for t in starts:
        if t >= 20.0 and bucket.rate == 10.0:
            bucket.reconfigure(2.0, 5.0, T0 + t)
        outcome.append("ok" if bucket.take(T0 + t + 0.001) else "throttled_tps")
    assert outcome[:240].count("throttled_tps") > 10
    found = rate_and_burst(frame([(t, SCC, o, 2.0) for t, o in zip(starts, outcome, strict=True)]), "emulator")
    assert found["rate"] is None and found["burst"] is None
    assert "No token bucket fits" in found["notes"][-1]


def test_retried_calls_only_widen_the_intervals():
    """The same run with a tenth of its calls made retried ones (2 attempts, times unknown): their
    attempts count as possible spends only, and the truth stays inside a wider interval."""
    calls = through_bucket(5.0, 8.0, staircase([3, 6, 9], 15.0), 4.0, seed=5)
    plain = inferred_quotas(calls)
    retried = calls.copy()
    picked = retried.index[::10]
    retried.loc[picked, "attempts"] = 2
    retried.loc[picked, "latency_ms"] = 300.0
    found = inferred_quotas(retried)
    assert found["evidence"]["bucket"]["retried_calls"] == len(picked)
    assert contains(found["rate"], 5.0) and contains(found["burst"], 8.0)
    assert found["rate"]["low"] <= plain["rate"]["low"] and found["rate"]["high"] >= plain["rate"]["high"]
    assert any("retried StartChatContact calls count only as possible" in note for note in found["notes"])


def test_dropped_arrivals_and_other_operations_are_not_attempts():
    calls = through_bucket(5.0, 8.0, staircase([4, 8], 10.0), 4.0, seed=2)
    noise = frame([(t, STOP, "throttled_tps", 3.0) for t in np.arange(0.0, 20.0, 0.05)])
    dropped = frame([(t, SCC, "dropped", float("nan")) for t in np.arange(0.0, 20.0, 0.5)])
    assert inferred_quotas(pd.concat([calls, noise, dropped]))["rate"] == inferred_quotas(calls)["rate"]


def test_a_hundred_thousand_attempts_take_seconds_not_minutes():
    """A long run (6 h at 4.5/s) with a burst at 20/s every 5 minutes: the sweeps after the first coarse
    ones cover only the stretches around the throttles."""
    quiet = np.arange(0.0, 300.0, 1 / 4.5)
    burst = 300.0 + np.arange(0.0, 3.0, 1 / 20)
    block = np.concatenate([quiet, burst])
    starts = np.concatenate([block + 303.0 * i for i in range(72)])
    calls = through_bucket(5.0, 8.0, starts, 4.0, seed=9)
    assert len(calls) > 100_000
    began = time.perf_counter()
    found = inferred_quotas(calls, "emulator")
    took = time.perf_counter() - began
    assert contains(found["rate"], 5.0) and contains(found["burst"], 8.0)
    assert took < 20, took
    evidence = found["evidence"]["bucket"]
    assert evidence["windows_swept"] < len(calls) / 5, evidence


# ---------------------------------------------------------------- concurrent chats, by hand


def chat_run(slow_second_start: bool = False) -> pd.DataFrame:
    """A quota of 2 concurrent chats:
        c1 starts [0, 0.01]          c2 starts [0.1, 0.11] (or [0.1, 0.3] when slow)
        c3 refused [0.2, 0.21]       c1 stopped [0.3, 0.31]
        c4 starts [0.4, 0.41]        c5 refused [0.5, 0.51]
    The harness counts a chat from its start's return to its stop's send: c1 [0.01, 0.3),
    c2 [0.11, ...), c4 [0.41, ...). Counting calls in flight too: c1 [0, 0.31), c2 [0.1, ...), c4 [0.4, ...).
      upper: at c3 at most 2 were held, at c5 at most 2 (c2, c4)      -> quota <= 2
      lower: c2 was accepted with 1 surely held (c1), c4 with 1 (c2)  -> quota >= 2"""
    return frame(
        [
            (0.0, SCC, "ok", 10.0, 1),
            (0.1, SCC, "ok", 200.0 if slow_second_start else 10.0, 2),
            (0.2, SCC, "throttled_concurrency", 10.0, 3),
            (0.3, STOP, "ok", 10.0, 1),
            (0.4, SCC, "ok", 10.0, 4),
            (0.5, SCC, "throttled_concurrency", 10.0, 5),
        ]
    )


def test_concurrent_chats_worked_out_by_hand():
    found = concurrent_chats(chat_run())
    assert found["concurrent_chats"] == {"low": 2.0, "high": 2.0}
    item = inferred_chats_item(found, quotas_of({"quotas": {"concurrent_chats": 2}}), "emulator")
    assert item["text"].startswith("The instance allowed 2 concurrent chats (the harness counted 2 active at the ")
    evidence = found["evidence"]
    assert (evidence["harness_active_at_first"], evidence["in_flight_at_first"]) == (2, 0)
    assert (evidence["harness_active_at_last"], evidence["in_flight_at_last"]) == (2, 0)
    assert (evidence["refused_calls"], evidence["accepted_calls"]) == (2, 3)


def test_concurrent_chats_widened_by_a_start_in_flight():
    """c2's start takes 200 ms: at c3's refusal (0.2) the harness counts only c1, but c2 may already
    hold its slot; the interval still holds the quota of 2."""
    found = concurrent_chats(chat_run(slow_second_start=True))
    assert found["concurrent_chats"] == {"low": 2.0, "high": 2.0}
    assert (found["evidence"]["harness_active_at_first"], found["evidence"]["in_flight_at_first"]) == (1, 1)


def test_concurrent_chats_from_a_longer_simulated_run():
    """Quota 15: 10 chats/s, each held 3 s then stopped, for 20 s; every start and stop 2..8 ms."""
    rng = np.random.default_rng(4)
    quota, held, rows = 15, [], []
    for i, t in enumerate(np.arange(0.0, 20.0, 0.1)):
        lat = rng.uniform(0.002, 0.008)
        s = t + lat * rng.uniform()
        held = [e for e in held if e > s]
        if len(held) < quota:
            stop_at = t + lat + 3.0
            stop_lat = rng.uniform(0.002, 0.008)
            held.append(stop_at + stop_lat * rng.uniform())
            rows += [(t, SCC, "ok", 1000 * lat, i), (stop_at, STOP, "ok", 1000 * stop_lat, i)]
        else:
            rows.append((t, SCC, "throttled_concurrency", 1000 * lat, i))
    found = concurrent_chats(frame(rows))
    assert found["concurrent_chats"]["low"] <= quota <= found["concurrent_chats"]["high"]
    assert found["concurrent_chats"]["high"] - found["concurrent_chats"]["low"] <= 1


def test_no_limit_exceeded_means_no_concurrent_chats():
    found = concurrent_chats(chat_run().query("outcome == 'ok'"))
    assert found["concurrent_chats"] is None
    assert "would need more chats active at once than the quota" in found["notes"][0]


def test_crossing_bounds_fit_no_quota():
    """c2 is accepted with c1 surely held (quota >= 2), but c3 is refused with only c1 possibly held
    (quota <= 1): a quota changed, or a chat ended unseen."""
    rows = [
        (0.0, SCC, "ok", 10.0, 1),
        (0.1, SCC, "ok", 10.0, 2),
        (0.2, STOP, "ok", 10.0, 2),
        (0.3, SCC, "throttled_concurrency", 10.0, 3),
    ]
    found = concurrent_chats(frame(rows))
    assert found["concurrent_chats"] is None
    assert "No single concurrent chats quota fits" in found["notes"][0]


# ---------------------------------------------------------------- in the report


def bucket_run(make_run, target: str = "emulator"):
    calls = through_bucket(5.0, 8.0, staircase([3, 6, 9], 10.0), 4.0, seed=8)
    rows = [
        {
            "t_intended": r.t_start,
            "t_start": r.t_start,
            "latency_ms": r.latency_ms,
            "operation": SCC,
            "outcome": r.outcome,
            "http_status": 200 if r.outcome == "ok" else 429,
            "error_code": "" if r.outcome == "ok" else "TooManyRequestsException",
            "attempts": 1,
            "stage": ["3/s", "6/s", "9/s"][min(int((r.t_start - T0) // 10), 2)],
            "worker": "w1",
            "chat": f"c{i}",
            "contact_id": "",
            "first_outcome": r.outcome,
        }
        for i, r in enumerate(calls.itertuples())
    ]
    stages = [{"name": n, "duration_s": 10, "target_rate": k} for n, k in (("3/s", 3), ("6/s", 6), ("9/s", 9))]
    return make_run(
        {"w1": rows},
        target=target,
        ended_at=1030.5,
        scenario={"name": "steps", "stages": stages, "thresholds": {"max_dropped_share": 0.01}},
    )


def test_summary_and_report_lead_with_the_inferred_intervals(make_run, capsys):
    run_dir = bucket_run(make_run)
    assert main([str(run_dir)]) in (0, 1)
    out = capsys.readouterr().out
    summary = json.loads((run_dir / "summary.json").read_text())
    inferred = summary["findings"]["inferred_quotas"]
    assert set(inferred) >= {"rate", "burst", "concurrent_chats", "notes"}
    assert set(inferred["rate"]) == {"low", "high"} and set(inferred["burst"]) == {"low", "high"}
    assert contains(inferred["rate"], 5.0) and contains(inferred["burst"], 8.0)
    assert inferred["concurrent_chats"] is None
    names = [item["name"] for item in summary["findings"]["items"]]
    assert names.index("inferred_rate") < names.index("tps_throttle_onset") < names.index("burst_absorbed")
    assert names.index("inferred_concurrent_chats") < names.index("concurrency")
    text = next(i["text"] for i in summary["findings"]["items"] if i["name"] == "inferred_rate")
    assert text.startswith("The target enforced a StartChatContact rate between 4.9")
    assert " accepted and " in text and "throttled attempts" in text and "Other callers" not in text
    assert summary["findings"]["burst_absorbed"] is not None  # still there, after it
    assert "inferred rate" in summary["findings"]["headline"]
    line = next(x for x in out.splitlines() if x.startswith("quotas inferred: "))
    assert re.fullmatch(
        r"quotas inferred: StartChatContact rate 4\.9\d+-5\.0\d+/s \(known 5\), burst \d\.\d-\d\.\d \(known 8\); "
        r"concurrent chats - \(known 500\)",
        line,
    ), line
    md = (run_dir / "report.md").read_text()
    assert "### Quotas: known before the run" in md and "| StartChatContact rate /s | 5 |" in md
    assert "Quotas: known before the run" in (run_dir / "report.html").read_text()


def test_on_aws_the_rate_is_what_was_left_for_the_run(make_run):
    summary = analyze(bucket_run(make_run, target="aws")).summary
    text = next(i["text"] for i in summary["findings"]["items"] if i["name"] == "inferred_rate")
    assert "Other callers in the account share this bucket, so the inferred rate is what was left" in text
    assert any("share the StartChatContact bucket" in n for n in summary["findings"]["inferred_quotas"]["notes"])


def test_findings_without_a_target_read_as_the_emulator(make_run):
    """findings() called as before (no target) still infers, assuming a full bucket at the start."""
    result = analyze(bucket_run(make_run))
    again = findings(
        result.per_second,
        result.per_stage,
        result.per_operation,
        result.run.attempts,
        result.chats.assign(chat_key=0),
        result.findings["peak_active_chats"],
        quotas_of(result.run.meta),
    )
    assert again["inferred_quotas"]["rate"] == result.findings["inferred_quotas"]["rate"]


def test_a_run_without_throttles_says_what_it_would_need(make_run, attempt_row):
    rows = [attempt_row(0.5 * i, SCC, "ok", 5.0, t_intended=0.5 * i, stage="only", chat=f"c{i}") for i in range(18)]
    summary = analyze(make_run({"w1": rows})).summary
    inferred = summary["findings"]["inferred_quotas"]
    assert inferred["rate"] is None and inferred["burst"] is None and inferred["concurrent_chats"] is None
    texts = {i["name"]: i["text"] for i in summary["findings"]["items"]}
    assert "would need throttled_tps calls" in texts["inferred_rate"]
    assert "would need more chats active at once" in texts["inferred_concurrent_chats"]
