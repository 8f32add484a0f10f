"""`chatload plan` (analysis/plan.py, analysis/plan_sim.py): the simulation core on hand-traced cases,
the vectorised arrivals against the pacer, the quota searches on cases with a known answer, and the
command line. Pure and fast: no sleeping, no network; seeds are fixed, so every figure is deterministic.
"""

from __future__ import annotations

import heapq
import json
import math
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from chatload.analysis import plan as planner
from chatload.analysis import plan_sim as sim
from chatload.harness.pacer import Schedule
from chatload.harness.scenario.files import adhoc_scenario, find_scenario, load_scenario
from chatload.harness.scenario.model import Arrivals, Stage, scenario_to_dict

OK, TPS, CONC = sim.OK, sim.TPS, sim.CONCURRENCY


def outcomes(arrivals, rate, burst, quota=None, lives=None, **kw) -> list[int]:
    """Final outcome per call of one simulation, in call order."""
    arrivals = np.asarray(arrivals, dtype=float)
    events = sim.build_events([arrivals], None if lives is None else [np.asarray(lives, dtype=float)], **kw)
    result = sim.run_calls(events, rate, burst, quota, record=True)
    final = result.final[:, 0] & (events.call[:, 0] >= 0)
    by_call = dict(zip(events.call[final, 0].tolist(), result.code[final, 0].tolist(), strict=True))
    return [by_call[k] for k in range(len(arrivals))]


# ---------------------------------------------------------------- the token bucket


def test_bucket_hand_traced():
    # rate 1/s, burst 2, full at t = 0; every attempt takes a token when one is left:
    #   t=0.0  2.0 tokens -> ok, 1.0 left
    #   t=0.1  1.0 + 0.1 = 1.1 -> ok, 0.1 left
    #   t=0.2  0.1 + 0.1 = 0.2 -> refused (nothing taken)
    #   t=1.0  0.2 + 0.8 = 1.0 -> ok, 0.0 left
    #   t=1.5  0.0 + 0.5 = 0.5 -> refused
    #   t=2.9  0.5 + 1.4 = 1.9 -> ok, 0.9 left
    times = [0.0, 0.1, 0.2, 1.0, 1.5, 2.9]
    assert sim.bucket(np.array(times), 1.0, 2.0).tolist() == [True, True, False, True, False, True]
    assert outcomes(times, 1.0, 2.0) == [OK, OK, TPS, OK, TPS, OK]


def test_bucket_refills_only_to_its_burst():
    # 10 s of silence refill a burst-3 bucket to 3, not 10: four attempts at t = 10 -> ok ok ok refused
    assert sim.bucket(np.array([0.0, 10.0, 10.0, 10.0, 10.0]), 1.0, 3.0).tolist() == [True] * 4 + [False]


def test_simulations_in_lockstep_match_the_reference_loop():
    rng = np.random.default_rng(11)
    arrivals, lives = [], []
    for _ in range(6):
        arrivals.append(np.sort(rng.uniform(0, 60, int(rng.integers(100, 900)))))
        lives.append(rng.exponential(4.0, len(arrivals[-1])))
    events = sim.build_events(arrivals, lives, markers=np.array([20.0, 40.0]))
    result = sim.run_calls(events, 6.0, 5.0, 25, record=True)
    for n in range(len(arrivals)):
        calls = events.call[:, n] >= 0
        assert result.code[calls, n].tolist() == sim.reference_calls(arrivals[n], lives[n], 6.0, 5.0, 25)
    # counting mode and candidate columns give the same totals
    counted = sim.run_calls(events, 6.0, 5.0, 25)
    wide = sim.run_calls(events, np.array([[6.0, 7.0]]), 5.0, np.array([[25, 40]]))
    assert (counted.ok == result.ok).all() and (counted.tps == result.tps).all()
    assert (wide.ok[:, :1] == result.ok).all() and (wide.concurrency[:, :1] == result.concurrency).all()


def test_deficits_closed_form_is_the_recursion():
    rng = np.random.default_rng(3)
    t = np.sort(rng.uniform(0, 30, 400))
    y, by_loop = sim.deficits(t, 10.0), []
    deficit = 0.0
    for k in range(len(t)):
        deficit = 0.0 if k == 0 else max(0.0, deficit + 1 - 10.0 * (t[k] - t[k - 1]))
        by_loop.append(deficit)
    assert np.allclose(y, by_loop)
    # the burst that refuses nothing is the peak deficit + 1
    burst = math.ceil(sim.deficit_peak(t, 10.0) + 1 - sim.TOKEN_EPS)
    assert sim.bucket(t, 10.0, burst).all() and not sim.bucket(t, 10.0, burst - 1).all()


# ---------------------------------------------------------------- arrivals


@pytest.mark.parametrize(
    "stages",
    [
        [Stage("flat", 10, 2)],
        [Stage("up", 10, 4, "linear", 0.5), Stage("flat", 5, 4), Stage("down", 8, 1, "linear")],
        [Stage("a", 3, 0), Stage("b", 7, 3), Stage("gap", 4, 0), Stage("c", 6, 2.5, "linear", 6)],
    ],
)
def test_vectorised_arrival_times_equal_schedule_arrival_time(stages):
    arrays, schedule = sim.ScheduleArrays.of(stages), Schedule(stages)
    whole = np.arange(1, math.floor(schedule.total_arrivals) + 3, dtype=float)  # two beyond the end
    fractional = np.linspace(-1, schedule.total_arrivals + 1, 333)
    for counts in (whole, fractional, fractional[::-1]):  # sorted (sliced per stage) and unsorted
        assert arrays.arrival_times(counts).tolist() == [schedule.arrival_time(k) for k in counts]
    assert arrays.uniform().tolist() == [schedule.arrival_time(k) for k in whole if k <= schedule.total_arrivals]
    times = arrays.uniform()
    assert arrays.stage_of(times).tolist() == [schedule.stage_at(t) for t in times]


def test_poisson_arrival_counts_have_the_schedule_mean():
    stages = [Stage("up", 50, 4, "linear", 0), Stage("flat", 100, 3)]  # 100 + 300 expected
    arrays = sim.ScheduleArrays.of(stages)
    per_stage = np.array(
        [np.bincount(arrays.stage_of(arrays.poisson(np.random.default_rng([5, n]))), minlength=2) for n in range(400)]
    )
    # 400 simulations: the mean of a Poisson(mu) count is within 4 standard errors (sqrt(mu / 400))
    for mean, expected in zip(per_stage.mean(axis=0), (100, 300), strict=True):
        assert abs(mean - expected) < 4 * math.sqrt(expected / 400)
    assert per_stage[:, 1].var() == pytest.approx(300, rel=0.25)  # Poisson: variance = mean


# ---------------------------------------------------------------- the concurrency quota


def test_concurrency_quota_hand_traced():
    # a roomy bucket, quota 2, every chat holds its slot 2.5 s:
    #   t=0.0  0 held -> ok (frees at 2.5)      t=1.0  1 held -> ok (frees at 3.5)
    #   t=2.0  2 held -> refused                t=3.0  2.5 freed, 1 held -> ok (frees at 5.5)
    #   t=4.5  3.5 freed, 1 held -> ok (7.0)    t=5.0  2 held (5.5, 7.0) -> refused
    times, lives = [0.0, 1.0, 2.0, 3.0, 4.5, 5.0], [2.5] * 6
    assert outcomes(times, 100.0, 100.0, 2, lives) == [OK, OK, CONC, OK, OK, CONC]
    # the exact count the quota search uses agrees, and so do its bounds
    t, e = np.array(times), np.array(times) + 2.5
    active = sim.unconstrained_active(t, e)
    assert active.tolist() == [0, 1, 2, 2, 1, 2]  # with no quota: at 4.5 the chat of t=2 has just ended
    assert sim.loss_refusals(t, e, active, 2) == 2 and sim.loss_refusals(t, e, active, 3) == 0
    lo, hi = sim.quota_bounds(active, 0)
    assert lo < 3 <= hi


def test_a_slot_freed_at_the_instant_of_an_arrival_is_free_for_it():
    # quota 1, 1 s lives: the chat at t=1 finds the slot of the chat at t=0 freed (release first)
    assert outcomes([0.0, 1.0, 1.5], 100.0, 100.0, 1, [1.0, 1.0, 1.0]) == [OK, OK, CONC]


def test_a_call_refused_by_the_quota_has_spent_its_token():
    # rate 0.1/s, burst 3, quota 1, 10 s lives (the emulator charges the bucket before the quota):
    #   t=0 ok (2 tokens left)  t=1 quota-refused (1.1 left)  t=2 quota-refused (0.2 left)
    #   t=3 0.3 tokens -> refused by the bucket
    assert outcomes([0.0, 1.0, 2.0, 3.0], 0.1, 3.0, 1, [10.0] * 4) == [OK, CONC, CONC, TPS]


# ---------------------------------------------------------------- retries


def test_retries_hand_traced_with_injected_backoff():
    # rate 0.5/s, burst 1, 3 attempts. Backoff before attempt n+1: rand x min(20, 2^(n-1)) s:
    #   call 0 at 0.0: attempts at 0.0, 0.0 + 0.5 x 1 = 0.5, 0.5 + 0.5 x 2 = 1.5
    #   call 1 at 0.5: attempts at 0.5, 0.5 + 0.4 x 1 = 0.9, 0.9 + 0.2 x 2 = 1.3
    # Time order (call 0's retry at 0.5 first): the bucket sees
    #   t=0.0 call 0 #1: 1 token -> ok (call 0 done, its retries are never made)
    #   t=0.5 call 1 #1: 0.25 -> refused, retried   t=0.9 call 1 #2: 0.45 -> refused, retried
    #   t=1.3 call 1 #3: 0.65 -> refused, no attempt left: throttled_tps after 3 attempts
    draws = [np.array([[0.5, 0.5], [0.4, 0.2]])]
    events = sim.build_events([np.array([0.0, 0.5])], attempts=3, backoff_draws=draws)
    assert events.t[:, 0].tolist() == [0.0, 0.5, 0.5, 0.9, 1.3, 1.5]
    assert events.call[:, 0].tolist() == [0, 0, 1, 1, 1, 0]
    result = sim.run_calls(events, 0.5, 1.0, record=True)
    assert result.code[:, 0].tolist() == [OK, sim.RETRYING, sim.RETRYING, sim.RETRYING, TPS, sim.RETRYING]
    assert (result.ok[0, 0], result.tps[0, 0]) == (1, 1)
    # with a faster bucket the third attempt of call 1 gets through: 1/s refills 0.65 -> 1.0 by t = 1.3
    assert sim.run_calls(events, 1.0, 1.0).ok[0, 0] == 2


def reference_with_retries(arrivals, lives, draws, attempts, rate, burst, quota, retry_quota):
    """The retry model as a plain loop over the potential attempts in time order (sim.attempt_times)."""
    times = sim.attempt_times(arrivals, draws, attempts).ravel()
    tokens, updated, units = float(burst), 0.0, sim.RETRY_QUOTA
    ends: list[float] = []
    next_attempt, outcome = [0] * len(arrivals), [None] * len(arrivals)
    for index in np.argsort(times, kind="stable").tolist():
        call, attempt = divmod(index, attempts)
        t = times[index]
        while ends and ends[0] <= t:
            heapq.heappop(ends)
        if next_attempt[call] != attempt:
            continue  # its call is over: an attempt never made
        tokens, updated = min(burst, tokens + (t - updated) * rate), t
        if tokens >= sim.THRESHOLD:
            tokens -= 1
            if len(ends) < quota:
                outcome[call], next_attempt[call] = OK, -1
                heapq.heappush(ends, t + lives[call])
                units = min(sim.RETRY_QUOTA, units + (sim.RETRY_COST if attempt else sim.NO_RETRY_REFUND))
                continue
            refused = CONC
        else:
            refused = TPS
        if attempt < attempts - 1 and (not retry_quota or units >= sim.RETRY_COST):
            next_attempt[call] = attempt + 1
            units -= sim.RETRY_COST if retry_quota else 0
        else:
            outcome[call], next_attempt[call] = refused, -1
    return outcome


@pytest.mark.parametrize("retry_quota", [False, True])
def test_retries_in_lockstep_match_a_plain_loop(retry_quota):
    rng = np.random.default_rng(21)
    for attempts in (2, 3, 5):
        arrivals = [np.sort(rng.uniform(0, 40, int(rng.integers(50, 500)))) for _ in range(4)]
        lives = [rng.exponential(3.0, len(a)) for a in arrivals]
        draws = [rng.random((len(a), attempts - 1)) for a in arrivals]
        events = sim.build_events(arrivals, lives, attempts=attempts, backoff_draws=draws, markers=np.array([13.0]))
        result = sim.run_calls(events, 4.0, 3.0, 8, retry_quota=retry_quota, record=True)
        for n, (a, life, d) in enumerate(zip(arrivals, lives, draws, strict=True)):
            final = result.final[:, n] & (events.call[:, n] >= 0)
            by_call = dict(zip(events.call[final, n].tolist(), result.code[final, n].tolist(), strict=True))
            expected = reference_with_retries(a, life, d, attempts, 4.0, 3.0, 8, retry_quota)
            assert [by_call[k] for k in range(len(a))] == expected


def test_retries_amplify_the_load_on_the_bucket():
    # retry-storm's point: at 12/s against 5/s the SDK's retries spend tokens, accepting no more
    stages = [Stage("12/s", 60, 12)]
    arrivals = sim.ScheduleArrays.of(stages).uniform()
    rng = np.random.default_rng(1)
    off = sim.run_calls(sim.build_events([arrivals]), 5.0, 8.0)
    events = sim.build_events([arrivals], attempts=3, backoff_draws=[rng.random((len(arrivals), 2))])
    on = sim.run_calls(events, 5.0, 8.0)
    assert abs(int(on.ok[0, 0]) - int(off.ok[0, 0])) <= 8  # the bucket still lets ~5/s through
    assert on.tps[0, 0] == len(arrivals) - on.ok[0, 0]


# ---------------------------------------------------------------- the quotas needed


def test_uniform_arrivals_need_their_own_rate_at_any_burst():
    scenario = adhoc_scenario(4, 600)  # evenly spaced, 4/s for 10 minutes: a 3.9/s bucket falls behind
    for burst in (1, 8):
        doc = planner.plan(scenario, planner.Quotas(rate=5, burst=burst), runs=3)
        assert doc["quotas_needed"]["rate"] == 4.0
        assert doc["quotas_needed"]["burst"] == 1  # at 5/s every arrival finds a token
        assert doc["total"]["tps_throttle_pct"] == {"mean": 0.0, "p5": 0.0, "p95": 0.0}


def test_fixed_holds_need_rate_times_hold_slots():
    # 3/s evenly spaced, 9.9 s holds: the 29 chats of the last 9.9 s are on at every arrival, so 30
    # slots carry it and 29 refuse every 30th chat
    scenario = adhoc_scenario(3, 600, hold_s=9.9, chat={"connect": False, "end_by": "stop_contact"})
    doc = planner.plan(scenario, runs=3)
    assert doc["quotas_needed"]["concurrent_chats"] == 30
    assert doc["total"]["peak_active_chats"] == {"p50": 30.0, "p95": 30.0}
    short = planner.plan(scenario, planner.Quotas(concurrent_chats=29), runs=3, search=False)
    assert 3.0 < short["total"]["concurrency_throttle_pct"]["mean"] < 3.5  # ~1 in 30


def test_search_brackets_hold():
    # quota_bounds: lo fails and hi passes, checked against the reference loop on random arrivals
    rng = np.random.default_rng(8)
    t = np.sort(rng.uniform(0, 100, 600))
    for allowed in (0, 3, 20):
        lo, hi = sim.quota_bounds(sim.deficits(t, 5.5), allowed)
        refused = [sim.reference_calls(t, None, 5.5, b, None).count(TPS) for b in (lo, hi)]
        assert refused[0] > allowed >= refused[1]


def test_poisson_below_the_quota_is_still_throttled():
    # connect-facts.md: Poisson 4.5/s against 5/s burst 8 sees about 2.6% of calls throttled (a plain
    # loop over the reference bucket gives 2.7-2.8% for an hour), where evenly spaced arrivals see none
    scenario = replace(adhoc_scenario(4.5, 3600), arrivals=Arrivals("poisson", 7))
    doc = planner.plan(scenario, runs=100, search=False)
    assert 2.3 < doc["total"]["tps_throttle_pct"]["mean"] < 3.1
    assert doc["total"]["tps_throttle_pct"]["p5"] < doc["total"]["tps_throttle_pct"]["p95"]
    assert planner.plan(scenario, runs=100, search=False) == doc  # the seed makes it reproducible


def test_batches_of_simulations_give_the_same_plan(monkeypatch):
    # simulation n draws from its own generators, so splitting the runs into batches (the memory
    # budget) changes nothing; neither do the chat's own calls run in batches
    scenario = load_scenario(find_scenario("soak"))  # DisconnectParticipant throttles: its loop runs
    whole = planner.plan(scenario, runs=6)
    monkeypatch.setattr(planner, "EVENT_BUDGET", 8_000)
    assert planner.plan(scenario, runs=6) == whole
    assert whole["participant_throttle_pct"]["DisconnectParticipant"]["mean"] > 0
    assert any("DisconnectParticipant throttled" in note for note in whole["notes"])


# ---------------------------------------------------------------- quotas and finished runs


def test_quotas_come_from_flags_then_the_scenario_then_aws():
    scenario = load_scenario(find_scenario("quota-increase-what-if"))
    quotas = planner.scenario_quotas(scenario)
    assert (quotas.rate, quotas.burst, quotas.concurrent_chats) == (20, 30, 2000)
    assert quotas.operations["SendMessage"] == (50, 75) and quotas.operations["StopContact"] == (25, 40)
    flagged = planner.scenario_quotas(scenario, rate=7, concurrent_chats=100)
    assert (flagged.rate, flagged.burst, flagged.concurrent_chats) == (7, 30, 100)
    assert flagged.sources == {"rate": "flag", "burst": "scenario", "concurrent_chats": "flag"}
    plain = planner.scenario_quotas(load_scenario(find_scenario("tps-ceiling")))
    assert (plain.rate, plain.burst, plain.concurrent_chats) == (5, 8, 500)


def test_plan_for_meta_plans_the_run_as_it_was():
    scenario = load_scenario(find_scenario("spike"))
    meta = {
        "scenario": json.loads(json.dumps(scenario_to_dict(scenario))),
        "quotas": {"source": "emulator", "StartChatContact": {"rate": 5, "burst": 8}, "concurrent_chats": 500},
    }
    planned = planner.plan_for_meta(meta, runs=20, search=False)
    assert planned is not None
    assert planned == planner.plan(scenario, runs=20, search=False) | {"quotas_used": planned["quotas_used"]}
    assert planned["quotas_used"]["sources"]["rate"] == "emulator"
    assert planner.scenario_from_dict(meta["scenario"]).chat == scenario.chat  # the socket too
    older = {**meta["scenario"], "chat": {k: v for k, v in meta["scenario"]["chat"].items() if k != "websocket"}}
    assert planner.scenario_from_dict(older).chat.websocket is False  # off by default when it went unrecorded
    assert planner.plan_for_meta({}) is None
    assert planner.plan_for_meta({"scenario": {"stages": [{"name": "x", "duration_s": -1}]}}) is None


# ---------------------------------------------------------------- the command line


def chatload(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "chatload", *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_cli_json_has_the_stable_keys():
    done = chatload("plan", "ci-smoke", "--runs", "20", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert set(doc["quotas_used"]) >= {"rate", "burst", "concurrent_chats"}
    assert set(doc["quotas_needed"]) == {"rate", "burst", "concurrent_chats"}
    assert [s["name"] for s in doc["stages"]] == ["warm-up", "steady", "drain"]
    for stage in doc["stages"]:
        assert {"name", "offered_rate", "accepted_rate"} <= set(stage)
        assert set(stage["tps_throttle_pct"]) == set(stage["concurrency_throttle_pct"]) == {"mean", "p5", "p95"}
        assert set(stage["peak_active_chats"]) == {"p50", "p95"}
    assert doc["stages"][1]["offered_rate"] == pytest.approx(2.0, abs=0.05)
    assert doc["quotas_needed"]["concurrent_chats"] == 11  # 2/s x 5.5 s of chat life
    assert done.stderr == ""  # no progress on a small plan


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--runs", "0"], "--runs"),
        (["--runs", "many"], "--runs"),
        (["--max-throttle", "1.5"], "--max-throttle"),
        (["--burst", "0"], "--burst"),
        (["--concurrent-chats", "2.5"], "--concurrent-chats"),
        (["--seed", "-3"], "--seed"),
    ],
)
def test_cli_bad_flags_exit_2_with_one_line(args, flag):
    done = chatload("plan", "ci-smoke", *args)
    assert done.returncode == 2
    assert done.stdout == "" and len(done.stderr.strip().splitlines()) == 1
    assert flag in done.stderr and "Traceback" not in done.stderr


def test_cli_unknown_scenario_exits_2():
    done = chatload("plan", "no-such-scenario")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "no-such-scenario" in done.stderr
