"""The pacer on plain numbers as a fake clock: schedules, waits, catch-up, shares, dropped counting."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatload.harness.pacer import ArrivalCounts, ArrivalLedger, Schedule, Share, equal_shares, merge_counts, wait
from chatload.harness.scenario.model import Stage


def arrivals_between(schedule: Schedule, t0: float, t1: float) -> int:
    """Arrivals k with t0 < arrival_time(k) <= t1, counted by walking arrival_time."""
    count = 0
    k = 1
    while True:
        t = schedule.arrival_time(k)
        if t > t1:
            return count
        if t > t0:
            count += 1
        k += 1


def drive(schedule: Schedule, share: float | Share = 1.0, step: float = 0.01) -> list[float]:
    """A fake clock ticking every `step` s; fires every arrival wait() says is due. Returns fire times."""
    fired: list[float] = []
    hits = 0
    t = 0.0
    while t <= schedule.duration_s + step:
        while (delay := wait(schedule, t, hits, share)) <= 0:
            fired.append(t + delay)  # the intended time
            hits += 1
        assert delay > 0
        t += step
    assert math.isinf(wait(schedule, t, hits, share))
    return fired


# ------------------------------------------------------------------ constant


def test_constant_rate_times_counts_and_rate():
    s = Schedule([Stage("flat", 10, 2)])
    assert s.duration_s == 10 and s.total_arrivals == 20
    assert [s.arrival_time(k) for k in (1, 2, 3, 20)] == [0.5, 1.0, 1.5, 10.0]
    assert s.arrival_time(21) == math.inf
    assert s.expected_arrivals(3.25) == pytest.approx(6.5)
    assert s.rate_at(0) == 2 and s.rate_at(9.9) == 2 and s.rate_at(10.1) == 0 and s.rate_at(-1) == 0
    assert wait(s, 0.0, 0) == pytest.approx(0.5)
    assert wait(s, 0.7, 1) == pytest.approx(0.3)
    assert wait(s, 10.0, 20) == math.inf


def test_fake_clock_fires_every_arrival_at_its_time():
    s = Schedule([Stage("flat", 5, 4)])
    fired = drive(s)
    assert len(fired) == 20
    assert fired == pytest.approx([0.25 * k for k in range(1, 21)])


# ------------------------------------------------------------------ linear ramp


def test_linear_ramp_from_zero_is_a_square_root():
    # rate 0 -> 10/s over 10 s: A(t) = 10 t² / 20 = t²/2, so arrival k at sqrt(2k).
    s = Schedule([Stage("ramp", 10, 10, "linear")])
    assert s.total_arrivals == pytest.approx(50)
    assert s.rate_at(5) == pytest.approx(5)
    assert s.expected_arrivals(4) == pytest.approx(8)
    for k in (1, 2, 8, 18, 50):
        assert s.arrival_time(k) == pytest.approx(math.sqrt(2 * k))
    assert arrivals_between(s, 0, 5) == 12  # floor(5²/2)
    assert arrivals_between(s, 5, 10) == 38


def test_linear_ramp_down_and_explicit_start_rate():
    # 10 -> 2 /s over 4 s: A(u) = 10u - u²; arrival 9 at u = 5 - sqrt(25 - 9) = 1.
    s = Schedule([Stage("down", 4, 2, "linear", start_rate=10)])
    assert s.total_arrivals == pytest.approx(24)
    assert s.arrival_time(9) == pytest.approx(1.0)
    assert s.arrival_time(24) == pytest.approx(4.0)
    assert s.rate_at(2) == pytest.approx(6)
    for k in range(1, 25):
        assert s.expected_arrivals(s.arrival_time(k)) == pytest.approx(k)


def test_linear_default_start_is_previous_target():
    # 4/s for 5 s (20 arrivals), then 4 -> 8 /s over 5 s (30 arrivals): A(5+u) = 20 + 4u + 0.4u².
    s = Schedule([Stage("flat", 5, 4), Stage("up", 5, 8, "linear")])
    assert s.total_arrivals == pytest.approx(50)
    assert s.arrival_time(20) == pytest.approx(5.0)
    u = (-4 + math.sqrt(16 + 4 * 0.4 * 10)) / (2 * 0.4)  # 10 arrivals into the ramp
    assert s.arrival_time(30) == pytest.approx(5 + u)


def test_ramp_to_zero_ends_with_its_last_arrival():
    s = Schedule([Stage("down", 10, 0, "linear", start_rate=2)])  # A = 2u - u²/10, total 10
    assert s.total_arrivals == pytest.approx(10)
    assert s.arrival_time(10) == pytest.approx(10.0)
    assert s.arrival_time(10.5) == math.inf


# ------------------------------------------------------------------ steps, zero rates, boundaries


def test_step_schedule_counts_per_stage():
    s = Schedule([Stage("1/s", 10, 1), Stage("3/s", 10, 3), Stage("5/s", 10, 5)])
    assert s.total_arrivals == 90
    assert [s.stage_arrivals(i) for i in range(3)] == [10, 30, 50]
    fired = drive(s)
    per_stage = [0, 0, 0]
    for t in fired:
        per_stage[s.stage_at(t)] += 1
    assert per_stage == [10, 30, 50]
    # the arrival exactly at a stage's end belongs to that stage
    assert s.arrival_time(10) == 10.0 and s.stage_at(10.0) == 0
    assert s.arrival_time(11) == pytest.approx(10 + 1 / 3) and s.stage_at(10 + 1 / 3) == 1


def test_zero_rate_stage_is_a_pause():
    s = Schedule([Stage("a", 5, 2), Stage("pause", 10, 0), Stage("b", 5, 2)])
    assert s.total_arrivals == 20
    assert s.arrival_time(10) == pytest.approx(5.0)
    assert s.arrival_time(11) == pytest.approx(15.5)  # nothing during the pause
    assert s.rate_at(10) == 0
    assert s.expected_arrivals(12) == pytest.approx(10)
    assert wait(s, 5.1, 10) == pytest.approx(10.4)
    assert arrivals_between(s, 5, 15) == 0


def test_leading_and_trailing_zero_stages():
    s = Schedule([Stage("idle", 3, 0), Stage("go", 2, 1), Stage("tail", 3, 0)])
    assert s.arrival_time(1) == pytest.approx(4.0)
    assert s.arrival_time(2) == pytest.approx(5.0)
    assert s.arrival_time(3) == math.inf
    assert s.duration_s == 8
    assert s.stage_at(0) == 0 and s.stage_at(4) == 1 and s.stage_at(7) == 2 and s.stage_at(100) == 2


def test_schedule_rejects_bad_stages():
    with pytest.raises(ValueError):
        Schedule([])
    with pytest.raises(ValueError):
        Schedule([Stage("x", 0, 1)])
    with pytest.raises(ValueError):
        Schedule([Stage("x", 1, -1)])


def test_arrival_time_inverts_expected_arrivals_on_a_mixed_schedule():
    s = Schedule(
        [
            Stage("ramp", 7, 13, "linear"),
            Stage("flat", 3, 13),
            Stage("down", 6, 1, "linear"),
            Stage("gap", 2, 0),
            Stage("jump", 4, 9, "linear", start_rate=3),
        ]
    )
    previous = 0.0
    for k in range(1, int(s.total_arrivals) + 1):
        t = s.arrival_time(k)
        assert t >= previous
        assert s.expected_arrivals(t) == pytest.approx(k, abs=1e-6)
        previous = t
    assert s.peak_rate() == 13


def test_scaled_multiplies_every_rate():
    s = Schedule([Stage("ramp", 10, 10, "linear"), Stage("flat", 5, 10)])
    half = s.scaled(0.5)
    assert half.total_arrivals == pytest.approx(s.total_arrivals / 2)
    assert half.rate_at(5) == pytest.approx(2.5)
    assert half.arrival_time(3) == pytest.approx(s.arrival_time(6))
    with pytest.raises(ValueError):
        s.scaled(-1)


# ------------------------------------------------------------------ catch-up after a stall


def test_catch_up_after_a_stall_is_negative_for_every_missed_arrival():
    s = Schedule([Stage("flat", 10, 4)])
    hits = 0
    # the process fires on time until 1.0 s ...
    for t in (0.25, 0.5, 0.75, 1.0):
        assert wait(s, t, hits) == pytest.approx(0)
        hits += 1
    # ... then stalls until 2.6 s: arrivals at 1.25 .. 2.5 (6 of them) are late, by decreasing amounts
    lateness = []
    while (delay := wait(s, 2.6, hits)) <= 0:
        lateness.append(-delay)
        hits += 1
    assert lateness == pytest.approx([1.35, 1.1, 0.85, 0.6, 0.35, 0.1])
    assert hits == 10
    assert wait(s, 2.6, hits) == pytest.approx(0.15)  # then back on schedule


# ------------------------------------------------------------------ shares of several processes


def test_share_fraction_scales_the_rate():
    s = Schedule([Stage("flat", 10, 6)])
    assert len(drive(s, 0.5)) == 30
    assert wait(s, 0, 0, 0.5) == pytest.approx(1 / 3)
    assert wait(s, 0, 0, 0.0) == math.inf


def test_equal_shares_interleave_and_add_up_to_the_global_schedule():
    s = Schedule([Stage("ramp", 4, 6, "linear"), Stage("flat", 6, 6)])
    shares = equal_shares(3)
    assert sum(x.fraction for x in shares) == pytest.approx(1)
    fired = sorted(t for share in shares for t in drive(s, share, step=0.003))
    expected = [s.arrival_time(k) for k in range(1, int(s.total_arrivals) + 1)]
    assert fired == pytest.approx(expected)
    # process p takes global arrivals p+1, p+1+3, ...
    assert shares[1].arrival_time(s, 1) == pytest.approx(s.arrival_time(2))
    assert shares[1].arrival_time(s, 2) == pytest.approx(s.arrival_time(5))


def test_rebase_keeps_what_was_due_and_uses_the_new_fraction_after():
    s = Schedule([Stage("flat", 20, 10)])  # 200 arrivals
    alone = Share()
    # at t = 5 a second process joins: both take half from then on
    first = alone.rebased(s, 5.0, 0.5, phase=0.5)
    second = Share(fraction=0.5, phase=1.0, since_s=5.0, count_before=0.0)
    assert first.expected_arrivals(s, 5.0) == pytest.approx(50)
    assert first.expected_arrivals(s, 15.0) == pytest.approx(50 + 50)
    # arrivals before the rebase keep their times
    assert first.arrival_time(s, 30) == pytest.approx(3.0)
    assert first.arrival_time(s, 50) == pytest.approx(5.0)
    # after it, 5 arrivals/s each, interleaved by the phases: first at 5.1, 5.3, ...; second at 5.2, 5.4, ...
    assert first.arrival_time(s, 51) == pytest.approx(5.1)
    assert first.arrival_time(s, 52) == pytest.approx(5.3)
    assert second.arrival_time(s, 1) == pytest.approx(5.2)
    assert second.arrival_time(s, 2) == pytest.approx(5.4)
    total = len(drive(s, first, step=0.01)) + len(drive(s, second, step=0.01))
    assert total == 200


def test_rebase_keeps_late_arrivals_due():
    s = Schedule([Stage("flat", 10, 2)])
    share = Share()
    # the process handled 4 arrivals by t = 4 (8 were due), then its share halves
    halved = share.rebased(s, 4.0, 0.5)
    assert wait(s, 4.0, 4, halved) == pytest.approx(2.5 - 4.0)  # arrival 5 was due at 2.5
    assert wait(s, 4.0, 8, halved) == pytest.approx(1.0)  # arrival 9: one more at 1/s
    assert halved.expected_arrivals(s, 10.0) == pytest.approx(8 + 6)


def test_share_validation():
    with pytest.raises(ValueError):
        Share(fraction=1.5)
    with pytest.raises(ValueError):
        Share(phase=0)
    with pytest.raises(ValueError):
        equal_shares(0)


# ------------------------------------------------------------------ dropped arrivals


def test_ledger_counts_per_stage_and_second():
    ledger = ArrivalLedger()
    events = [
        (100.2, "warm", True),
        (100.7, "warm", False),
        (101.1, "warm", True),
        (101.5, "peak", True),
        (101.9, "peak", False),
        (102.0, "peak", False),
    ]
    for t, stage, started in events:
        ledger.record(t, stage, started)
    assert ledger.total() == ArrivalCounts(6, 3, 3)
    assert ledger.by_stage() == {"warm": ArrivalCounts(3, 2, 1), "peak": ArrivalCounts(3, 1, 2)}
    assert ledger.by_second() == {
        100: ArrivalCounts(2, 1, 1),
        101: ArrivalCounts(3, 2, 1),
        102: ArrivalCounts(1, 0, 1),
    }
    assert ledger.total().dropped_share == pytest.approx(0.5)
    assert "3 of 6 arrivals dropped" in (ledger.invalid_reason() or "")
    assert ArrivalCounts().dropped_share == 0.0


def test_one_percent_rule():
    ledger = ArrivalLedger()
    for i in range(200):
        ledger.record(float(i), "s", started=i not in (7, 8))  # 2 of 200 dropped: exactly 1%
    assert ledger.invalid_reason() is None
    ledger.record(200.0, "s", started=False)  # 3 of 201
    assert ledger.invalid_reason() is not None
    assert merge_counts([ledger.total(), ArrivalCounts(10, 10, 0)]) == ArrivalCounts(211, 208, 3)


def test_fake_run_with_a_slow_pool_drops_arrivals():
    """Three users, each busy 1 s per chat, fed 5 arrivals/s: about 2 of 5 arrivals must drop."""
    s = Schedule([Stage("flat", 10, 5)])
    busy_until = [0.0, 0.0, 0.0]
    ledger = ArrivalLedger()
    hits = 0
    t = 0.0
    while t <= 11:
        while (delay := wait(s, t, hits)) <= 0:
            intended = t + delay
            free = [i for i, until in enumerate(busy_until) if until <= t]
            if free:
                busy_until[free[0]] = t + 1.0
            ledger.record(intended, s.stages[s.stage_at(intended)].name, bool(free))
            hits += 1
        t += 0.05
    total = ledger.total()
    assert total.scheduled == 50
    assert total.started == pytest.approx(30, abs=3)
    assert total.dropped == total.scheduled - total.started
    assert ledger.invalid_reason() is not None


# ------------------------------------------------------------------ properties

stage_strategy = st.builds(
    Stage,
    name=st.just("s"),
    duration_s=st.floats(0.5, 60),
    target_rate=st.one_of(st.just(0.0), st.floats(0.1, 50)),
    ramp=st.sampled_from(["step", "linear"]),
    start_rate=st.one_of(st.none(), st.floats(0, 50)),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(stage_strategy, min_size=1, max_size=5))
def test_arrivals_are_ordered_inverse_and_per_stage_counts_within_one(stages):
    s = Schedule(stages)
    n = math.floor(s.total_arrivals + 1e-9)
    times = [s.arrival_time(k) for k in range(1, n + 1)]
    assert times == sorted(times)
    assert all(0 < t <= s.duration_s + 1e-9 for t in times)
    for k, t in zip(range(1, n + 1), times, strict=True):
        assert s.expected_arrivals(t) == pytest.approx(k, rel=1e-9, abs=1e-6)
    assert s.arrival_time(n + 1.01) == math.inf
    per_stage = [0] * len(stages)
    for t in times:
        per_stage[s.stage_at(t)] += 1
    for i, count in enumerate(per_stage):
        assert abs(count - s.stage_arrivals(i)) <= 1 + 1e-6
