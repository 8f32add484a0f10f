"""The run's LoadTestShape: a fixed pool of users for the schedule, then a short drain, then stop.

Users do not set the load here (the pacer does): the pool only has to be large enough that an
arrival always finds an idle user. Locust spreads the pool over the workers. The shape asks the
process's coordinator (chatload.harness.runtime.coordinator) for the run: the first tick of a run prepares it (scenario,
run folder, meta.json), so a bad scenario stops the run before any user starts.
"""

from __future__ import annotations

import time

from locust import LoadTestShape

from chatload.harness.runtime.coordinator import Coordinator
from chatload.harness.runtime.roles import coordinator_of

DRAIN_S = 2.0  # after the schedule: customers end their chats (the run is "ending")
START_ALLOWANCE_S = 60.0  # spawning the pool may take this long before the schedule starts


class ChatloadShape(LoadTestShape):
    abstract = True

    def tick(self) -> tuple[int, float] | None:
        coordinator = coordinator_of(self.runner.environment)
        run = coordinator.shape_run()
        if run is None:
            return None
        now = time.time()
        ends_at = run.schedule_ends_at()
        if ends_at is None:  # the schedule has not started: users are spawning
            if now - run.prepared_at > START_ALLOWANCE_S + run.duration_s:
                return self._end(coordinator, "the user pool did not finish spawning in time")
            return run.users, float(run.users)
        if run.ended_early or now >= ends_at + DRAIN_S:
            return self._end(coordinator, None)
        return run.users, float(run.users)

    def _end(self, coordinator: Coordinator, reason: str | None) -> None:
        coordinator.finish_from_shape(reason)
        return None
