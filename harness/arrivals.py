"""The per-process dispatcher: hands each arrival the pacer schedules to an idle user, or drops it.

One dispatcher runs per process (local runner or worker). It waits as the pacer says
(`pacer.wait(schedule, elapsed, hits, share, process)`: evenly spaced or Poisson arrivals), and at
each arrival hands it to a user that is waiting for work (runtime/handoff.py: a plain call that never
blocks). If no user is idle the arrival is dropped on the spot: an attempts row with outcome
`dropped`. The dispatcher never waits for a user, so a slow target cannot slow the offered rate
down (no coordinated omission); it only shows up as dropped arrivals, and a run with too many of those is invalid.

The process's share of the global rate can change while it runs (a worker joins or leaves):
`rebase(fraction, phase)` keeps what was already due and counts later arrivals with the new share.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from chatload.contracts import DROPPED, START_CHAT
from chatload.harness.customer import Arrival
from chatload.harness.pacer import ArrivalLedger, Poisson, Schedule, Share, Uniform, wait
from chatload.harness.recorder import Recorder, new_row

MAX_NAP_S = 0.5  # the dispatcher re-reads its share at least this often
DUE_S = 1e-6  # an arrival this close is due now (float time never quite gets there by sleeping)


class Dispatcher:
    """Paces one process's arrivals. `offer(arrival) -> bool` hands one to an idle user (False:
    none was idle); `nap(s)` sleeps; `clock()` is epoch seconds; t0 the schedule's epoch start."""

    def __init__(
        self,
        schedule: Schedule,
        recorder: Recorder,
        offer: Callable[[Arrival], bool],
        *,
        t0: float,
        clock: Callable[[], float],
        nap: Callable[[float], Any],
        share: Share | None = None,
        budget: Any = None,
        process: Uniform | Poisson | None = None,
    ) -> None:
        self.schedule = schedule
        self.recorder = recorder
        self.offer = offer
        self.t0 = t0
        self.clock = clock
        self.nap = nap
        self.share = share or Share()
        self.process = process or Uniform()
        self.budget = budget
        self.ledger = ArrivalLedger()
        self.hits = 0
        self.stopped = False
        self.budget_spent = False
        self._stage_names = [stage.name for stage in schedule.stages]

    def rebase(self, fraction: float, phase: float | None = None) -> None:
        """From now on take `fraction` of the global rate (see pacer.Share.rebased)."""
        elapsed = max(0.0, self.clock() - self.t0)
        self.share = self.share.rebased(self.schedule, elapsed, fraction, phase)

    def stop(self) -> None:
        self.stopped = True

    def run(self) -> None:
        """Dispatch until the schedule has no more arrivals for this process (or stop())."""
        schedule = self.schedule
        while not self.stopped:
            elapsed = self.clock() - self.t0
            delay = wait(schedule, elapsed, self.hits, self.share, self.process)
            if delay > DUE_S:
                if math.isinf(delay) and elapsed >= schedule.duration_s:
                    return
                self.nap(min(delay, MAX_NAP_S))
                continue
            self.dispatch(self.t0 + elapsed + delay)

    def dispatch(self, t_intended: float) -> bool:
        """One arrival due at t_intended: offer it, or record it as dropped. True if a user took it."""
        self.hits += 1
        stage = self._stage_names[self.schedule.stage_at(t_intended - self.t0)]
        if self.budget is not None and not self.budget.take():
            self.budget_spent = True
            self.stopped = True
            return False
        arrival = Arrival(t_intended, stage)
        taken = self.offer(arrival)
        self.ledger.record(t_intended, stage, taken)
        if not taken:
            now = self.clock()
            self.recorder.record(
                new_row(START_CHAT, DROPPED, t_start=now, attempts=0, t_intended=t_intended, stage=stage)
            )
        return taken
