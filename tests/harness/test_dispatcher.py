"""The per-process dispatcher on a fake clock: offered arrivals, drops, stages, shares, budget."""

import pandas as pd
from support import FakeClock

from chatload.harness.arrivals import Dispatcher
from chatload.harness.pacer import Schedule, Share
from chatload.harness.recorder import Recorder
from chatload.harness.safety import ChatBudget
from chatload.harness.scenario.model import Stage

T0 = 1000.0  # the fake clock's start


def run(tmp_path, stages, offer, share=None, budget=None):
    clock = FakeClock(T0)
    rec = Recorder(tmp_path, "local", clock=clock)
    d = Dispatcher(Schedule(stages), rec, offer, t0=clock.t, clock=clock, nap=clock.advance, share=share, budget=budget)
    d.run()
    rec.close(compact=False)
    return d, clock, rec


def test_every_arrival_on_time_when_users_are_idle(tmp_path):
    taken = []
    d, clock, _rec = run(tmp_path, [Stage("a", 2.0, 5.0), Stage("b", 2.0, 10.0)], lambda a: taken.append(a) or True)
    assert len(taken) == 30 and d.ledger.total().dropped == 0
    assert [a.stage for a in taken].count("a") == 10
    assert abs(taken[0].t_intended - 1000.2) < 1e-9 and abs(taken[-1].t_intended - 1004.0) < 1e-9
    assert clock.t >= 1004.0


def test_busy_users_mean_dropped_rows(tmp_path):
    n = [0]

    def offer(arrival):
        n[0] += 1
        return n[0] % 2 == 0  # every other arrival finds no idle user

    d, _, rec = run(tmp_path, [Stage("only", 2.0, 10.0)], offer)
    assert d.ledger.total().dropped == 10 and d.ledger.total().started == 10
    rows = pd.read_csv(rec.csv_path)
    assert len(rows) == 10 and set(rows["outcome"]) == {"dropped"}
    assert set(rows["operation"]) == {"StartChatContact"} and set(rows["attempts"]) == {0}
    assert rows["latency_ms"].isna().all() and set(rows["stage"]) == {"only"}


def test_a_half_share_takes_every_other_arrival(tmp_path):
    taken = []
    run(tmp_path, [Stage("s", 2.0, 10.0)], lambda a: taken.append(a) or True, share=Share(0.5, phase=0.5))
    assert len(taken) == 10
    assert abs(taken[0].t_intended - 1000.1) < 1e-9  # global arrival 1 of 20


def test_rebase_keeps_the_global_rate(tmp_path):
    clock = FakeClock(T0)
    rec = Recorder(tmp_path, "local", clock=clock)
    taken = []
    d = Dispatcher(
        Schedule([Stage("s", 4.0, 10.0)]),
        rec,
        lambda a: taken.append(a) or True,
        t0=clock.t,
        clock=clock,
        nap=clock.advance,
        share=Share(0.5, phase=1.0),
    )

    def nap(seconds):
        clock.advance(seconds)
        if clock.t - T0 >= 2.0 and d.share.fraction == 0.5:
            d.rebase(1.0, 1.0)  # the other worker left: take the whole rate

    d.nap = nap
    d.run()
    assert 29 <= len(taken) <= 31  # 10 in the first 2 s at half the rate, then 20


def test_the_chat_budget_stops_arrivals(tmp_path):
    taken = []
    d, _, _ = run(tmp_path, [Stage("s", 10.0, 10.0)], lambda a: taken.append(a) or True, budget=ChatBudget(7))
    assert len(taken) == 7 and d.budget_spent
