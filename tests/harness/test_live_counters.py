"""LiveStats: per-second windows, totals, gauges and the worker -> master deltas (fake clock)."""

from __future__ import annotations

import json

import msgpack
import pytest
from support import FakeClock

from chatload.harness.live.stats import REPORT_VERSION, STALE_WORKER_S, LiveStats


def row(outcome: str = "ok", operation: str = "StartChatContact") -> dict:
    return {"operation": operation, "outcome": outcome, "latency_ms": 12.0, "stage": "s1", "t_start": 0.0}


def feed(live: LiveStats, clock: FakeClock, seconds: int, per_second: dict[str, int]) -> None:
    """`seconds` whole seconds, each with the given StartChatContact outcome counts."""
    for _ in range(seconds):
        for outcome, n in per_second.items():
            for _ in range(n):
                live.record(row(outcome))
        clock.advance(1.0)


def test_nothing_recorded_gives_empty_snapshot(clock):
    snap = LiveStats(clock).snapshot()
    assert snap.offered == snap.accepted == snap.dropped == 0
    assert snap.offered_rate == 0.0 and snap.accepted_rate == 0.0
    assert not snap.running and snap.elapsed_s == 0.0 and snap.remaining_s is None


def test_totals_and_rates_over_complete_seconds(clock):
    live = LiveStats(clock, rate_window_s=5, total_duration_s=60)
    live.start()
    feed(live, clock, 10, {"ok": 4, "throttled_tps": 2, "dropped": 1})
    live.record(row("ok"))  # the current, incomplete second: in totals, not in rates
    snap = live.snapshot()
    assert snap.offered == 10 * 7 + 1
    assert snap.accepted == 41
    assert snap.dropped == 10
    assert snap.start_chat("throttled_tps") == 20
    assert snap.rate_window_s == 5
    assert snap.offered_rate == pytest.approx(7.0)
    assert snap.accepted_rate == pytest.approx(4.0)
    assert snap.rates["throttled_tps"] == pytest.approx(2.0)
    assert snap.rates["dropped"] == pytest.approx(1.0)
    assert snap.elapsed_s == pytest.approx(10.0)
    assert snap.remaining_s == pytest.approx(50.0)
    assert snap.running


def test_rates_at_start_use_the_span_since_start(clock):
    clock.t = 1_000_000.5  # starts in the middle of a second
    live = LiveStats(clock, rate_window_s=5)
    live.start()
    for _ in range(3):
        live.record(row())
    clock.advance(0.3)
    assert live.snapshot().offered_rate is None  # no complete second yet
    clock.advance(0.7)  # now 1_000_001.5: [1_000_000.5, 1_000_001) complete, 0.5 s long
    assert live.snapshot().offered_rate == pytest.approx(3 / 0.5)


def test_old_seconds_leave_the_ring_but_stay_in_totals(clock):
    live = LiveStats(clock, window_s=10, rate_window_s=5)
    live.start()
    feed(live, clock, 30, {"ok": 1})
    snap = live.snapshot()
    assert snap.offered == 30
    assert len(live._seconds) <= 11
    assert len(snap.series) <= 10
    assert all(p["offered"] == 1 and p["ok"] == 1 for p in snap.series)
    clock.advance(20)  # silence: rates fall to zero
    assert live.snapshot().offered_rate == 0.0


def test_other_operations_and_other_errors(clock):
    live = LiveStats(clock)
    live.start()
    live.record(row("throttled_concurrency"))
    live.record(row("client_error"))
    live.record(row("ok", "CreateParticipantConnection"))
    live.record(row("throttled_tps", "CreateParticipantConnection"))
    live.record(row("timeout", "SendMessage"))
    live.record(row("dropped"))
    snap = live.snapshot()
    assert snap.totals["CreateParticipantConnection"] == {"ok": 1, "throttled_tps": 1}
    # StartChatContact client_error + participant throttle + SendMessage timeout; not the 429 of
    # StartChatContact, not ok, not dropped
    assert snap.other_errors() == 3
    assert snap.offered == 3


def test_active_chats_peak_stage_quota(clock):
    live = LiveStats(clock)
    for _ in range(5):
        live.chat_started()
    for _ in range(7):  # never below zero
        live.chat_ended()
    live.chat_started()
    live.set_stage("ramp", 6)
    live.set_quota(500, None)
    live.set_quota(None, 5.0)
    snap = live.snapshot()
    assert snap.active_chats == 1 and snap.peak_active_chats == 5
    assert (snap.stage, snap.target_rate) == ("ramp", 6.0)
    assert (snap.quota_concurrent_chats, snap.quota_start_chat_rate) == (500, 5.0)


def test_stage_from_the_rows_until_set_stage(clock):
    live = LiveStats(clock)
    live.start()
    live.record({"operation": "StartChatContact", "outcome": "ok", "stage": "warm-up"})
    assert (live.snapshot().stage, live.snapshot().target_rate) == ("warm-up", None)
    clock.advance(1)
    live.record({"operation": "StartChatContact", "outcome": "ok", "stage": "steady"})
    assert live.snapshot().stage == "steady"
    master = LiveStats(clock)
    master.merge("w1", ship(live.take_report()))
    assert master.snapshot().stage == "steady"
    live.set_stage("named", 3)
    clock.advance(1)
    live.record({"operation": "StartChatContact", "outcome": "ok", "stage": "other"})
    assert (live.snapshot().stage, live.snapshot().target_rate) == ("named", 3.0)


def test_start_resets_counts_but_keeps_states(clock):
    live = LiveStats(clock)
    live.set_stage("hold", 3)
    live.chat_started()
    live.start()
    feed(live, clock, 3, {"ok": 2})
    live.stop()
    clock.advance(30)
    assert live.snapshot().elapsed_s == pytest.approx(3.0)  # frozen at stop
    assert not live.snapshot().running
    live.start()
    snap = live.snapshot()
    assert snap.offered == 0 and snap.running and snap.elapsed_s == 0
    assert snap.stage == "hold" and snap.active_chats == 1


def test_snapshot_is_json_able(clock):
    live = LiveStats(clock, total_duration_s=30)
    live.start()
    feed(live, clock, 2, {"ok": 1, "throttled_unknown": 1})
    data = json.loads(json.dumps(live.snapshot().to_dict()))
    assert data["offered"] == 4 and data["totals"]["StartChatContact"]["throttled_unknown"] == 2
    assert data["quota"] == {"concurrent_chats": None, "start_chat_rate": None}


# ---------------------------------------------------------------------- workers -> master


def ship(report: dict) -> dict:
    """What Locust's rpc does to the report on its way (msgpack, as in locust.rpc.protocol)."""
    return msgpack.loads(msgpack.dumps(report), raw=False, strict_map_key=True)


def test_worker_report_is_a_delta(clock):
    worker = LiveStats(clock)
    worker.start()
    feed(worker, clock, 2, {"ok": 3})
    first = ship(worker.take_report())
    assert first["v"] == REPORT_VERSION
    assert sum(c["StartChatContact"]["ok"] for c in first["seconds"].values()) == 6
    assert first["totals"] == {"StartChatContact": {"ok": 6}}
    empty = ship(worker.take_report())
    assert empty["seconds"] == {} and empty["totals"] == {}
    worker.record(row("throttled_tps"))
    clock.advance(0.2)
    worker.record(row("throttled_tps"))  # same second as the previous one, reported in two parts
    part = ship(worker.take_report())
    assert part["totals"] == {"StartChatContact": {"throttled_tps": 2}}
    worker.record(row("throttled_tps"))
    rest = ship(worker.take_report())
    assert rest["totals"] == {"StartChatContact": {"throttled_tps": 1}}
    assert list(rest["seconds"].values()) == [{"StartChatContact": {"throttled_tps": 1}}]


def test_master_merges_workers_into_global_figures(clock):
    master = LiveStats(clock, rate_window_s=4, total_duration_s=100)
    workers = {"w1": LiveStats(clock), "w2": LiveStats(clock)}
    master.start()
    for w in workers.values():
        w.start()
    workers["w1"].set_quota(500, 5.0)
    for second in range(9):
        for _ in range(3):
            workers["w1"].record(row("ok"))
        for _ in range(2):
            workers["w2"].record(row("ok"))
        workers["w2"].record(row("throttled_concurrency"))
        clock.advance(1.0)
        if second % 3 == 2:  # Locust's workers report every 3 s
            for name, w in workers.items():
                master.merge(name, ship(w.take_report()))
    workers["w1"].chat_started()
    workers["w2"].chat_started()
    workers["w2"].chat_started()
    workers["w2"].set_stage("plateau", 6)
    for name, w in workers.items():
        master.merge(name, ship(w.take_report()))
    snap = master.snapshot()
    assert snap.offered == 9 * 6 and snap.accepted == 9 * 5
    assert snap.start_chat("throttled_concurrency") == 9
    assert snap.offered_rate == pytest.approx(6.0)
    assert snap.accepted_rate == pytest.approx(5.0)
    assert snap.active_chats == 3 and snap.peak_active_chats == 3
    assert snap.workers == 2
    assert (snap.stage, snap.target_rate) == ("plateau", 6.0)
    assert snap.quota_concurrent_chats == 500 and snap.quota_start_chat_rate == 5.0


def test_master_rates_wait_for_the_slowest_worker(clock):
    master = LiveStats(clock, rate_window_s=2)
    fast, slow = LiveStats(clock), LiveStats(clock)
    master.start()
    for _ in range(4):
        fast.record(row())
        slow.record(row())
        clock.advance(1.0)
    master.merge("slow", ship(slow.take_report()))
    for _ in range(4):
        fast.record(row())
        clock.advance(1.0)
    master.merge("fast", ship(fast.take_report()))
    # The slow worker has reported up to second 4 only: the rate window ends there, where both
    # workers are complete (2 per second), not at second 8 where only the fast one is known.
    assert master.snapshot().offered_rate == pytest.approx(2.0)
    clock.advance(STALE_WORKER_S + 1)  # the slow worker went silent (lost): it no longer holds back
    master.merge("fast", ship(fast.take_report()))
    snap = master.snapshot()
    assert snap.workers == 1
    assert snap.offered == 12


def test_master_ignores_foreign_reports(clock):
    master = LiveStats(clock)
    master.merge("w", {"something": "else"})
    master.merge("w", "not a dict")  # type: ignore[arg-type]
    assert master.snapshot().offered == 0 and master.snapshot().workers == 0


def test_master_stage_latest_wins_and_duration_from_workers(clock):
    master = LiveStats(clock)
    a, b = LiveStats(clock, total_duration_s=90), LiveStats(clock)
    a.set_stage("warm", 1)
    clock.advance(1)
    b.set_stage("peak", 9)
    master.merge("b", ship(b.take_report()))
    master.merge("a", ship(a.take_report()))  # older stage change arrives later: ignored
    assert master.stage == "peak"
    assert master.total_duration_s == 90
