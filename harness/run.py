"""What a process holds for one test run: the master's or local runner's `Run`, and the local
runner's or worker's `Load` (the parts that make calls and record them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import options as run_options
from harness.arrivals import Dispatcher
from harness.chats import LiveChats
from harness.client import Api
from harness.pacer import Schedule
from harness.recorder import Recorder
from harness.safety import KillSwitch


@dataclass
class Run:
    """One test run as the master or local runner sees it."""

    settings: run_options.RunSettings
    run_id: str
    folder: Path
    users: int
    prepared_at: float
    schedule: Schedule
    t0: float | None = None  # epoch seconds the schedule started
    ended_early: str | None = None
    stopped: bool = False
    outputs: Any = None
    meta: dict[str, Any] = field(default_factory=dict)
    done: dict[str, dict] = field(default_factory=dict)  # worker -> its end-of-run summary
    workers: list[str] = field(default_factory=list)  # the master's workers with a share now
    lost_workers: list[dict] = field(default_factory=list)  # [{"worker": "w1", "at": epoch seconds}]
    token: str | None = None  # master: the run folder's token (harness.shipping)
    inbox: Any = None  # master: a harness.shipping.Inbox for the rows workers ship

    def lost(self) -> set[str]:
        return {entry["worker"] for entry in self.lost_workers}

    def lose(self, worker: str, at: float) -> bool:
        """Note a worker lost at `at` (once); True if it was not known lost yet."""
        if worker in self.lost():
            return False
        self.lost_workers.append({"worker": worker, "at": at})
        return True

    @property
    def duration_s(self) -> float:
        return self.schedule.duration_s

    def schedule_ends_at(self) -> float | None:
        return None if self.t0 is None else self.t0 + self.schedule.duration_s


@dataclass
class Load:
    """What a local runner or worker runs: recorder, registry, clients, dispatcher."""

    settings: run_options.RunSettings
    run_id: str
    folder: Path
    worker: str
    recorder: Recorder
    chats: LiveChats
    api: Api
    flusher: Any
    dispatcher: Dispatcher | None = None
    dispatcher_greenlet: Any = None
    users: int = 0
    finished: bool = False
    kill_switch: KillSwitch | None = None
    killed: bool = False
