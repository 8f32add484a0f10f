"""Each Locust process's roles, chosen by its runner as Locust chooses its runner classes:

| runner        | coordinator (coordinator.py) | load process (load_process.py) | how they talk       |
|---------------|------------------------------|--------------------------------|---------------------|
| LocalRunner   | yes                          | yes                            | direct calls        |
| MasterRunner  | yes                          | no                             | Locust's messages   |
| WorkerRunner  | no                           | yes                            | Locust's messages   |

`attach(environment)` (on Locust's init event) creates them, wires Locust's events and the messages
of chatload.harness.runtime.workers to them, and keeps them on the environment; `roles_of`,
`coordinator_of` and `load_process_of` are the typed way back to them (the locustfile and the shape
use nothing else).
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gevent
from locust.runners import MasterRunner, WorkerRunner

from chatload.contracts import EXIT_INVALID
from chatload.harness.live.install import install, report_now
from chatload.harness.live.stats import LiveStats
from chatload.harness.pacer import Share
from chatload.harness.runtime import options as run_options
from chatload.harness.runtime import shipping
from chatload.harness.runtime.coordinator import Coordinator, Run
from chatload.harness.runtime.load_process import CLEAN_UP_DEADLINE_S, LoadProcess
from chatload.harness.runtime.orphans import end_orphans, merge_summaries
from chatload.harness.runtime.workers import (
    MSG_DONE,
    MSG_KILL,
    MSG_RUN,
    MSG_SHARE,
    send_shares,
    share_of,
    wait_for_workers,
    watch_workers,
)
from chatload.harness.scenario.schema import ScenarioError

log = logging.getLogger("chatload")

STOP_TIMEOUT_S = 30.0  # users get this long to end their chats when the test stops
SHARE_LEAD_S = 0.3  # a worker's schedule starts this long after the master sends the share
MASTER_SILENCE_S = 5.0  # a worker that hears nothing from its master this long stops (docs/distributed.md)
ORPHANS_AFTER_S = 5.0  # then, past that, the master ends the chats a lost worker left open
WORKER_DONE_WAIT_S = CLEAN_UP_DEADLINE_S + 30.0
_ATTRIBUTE = "_chatload_roles"


@dataclass(frozen=True)
class Roles:
    """What chatload runs in this Locust process."""

    coordinator: Coordinator | None
    load: LoadProcess | None
    live: LiveStats


def roles_of(environment: Any) -> Roles:
    roles = getattr(environment, _ATTRIBUTE, None)
    if not isinstance(roles, Roles):
        raise RuntimeError("chatload is not attached to this Locust environment (see locustfile.py)")
    return roles


def coordinator_of(environment: Any) -> Coordinator:
    coordinator = roles_of(environment).coordinator
    if coordinator is None:
        raise RuntimeError("this Locust process is a worker: it has no coordinator")
    return coordinator


def load_process_of(environment: Any) -> LoadProcess | None:
    """This process's load process (None on a master)."""
    return roles_of(environment).load


# ---------------------------------------------------------------- how the two roles talk


@dataclass
class LocalLoad:
    """A local runner: the coordinator's run is loaded by the load process in the same process."""

    load: LoadProcess
    lead_s: float = 0.0

    def begin(self, run: Run) -> None:
        self.load.begin(run.settings, run.run_id, run.folder, "local", quotas=run.meta.get("quotas"))

    def start(self, run: Run) -> None:
        assert run.t0 is not None
        self.load.start_dispatcher(Share(), run.t0)

    def collect(self, run: Run) -> None:
        summary = self.load.finish()
        if summary is not None:
            run.done[summary["worker"]] = summary


@dataclass
class Workers:
    """A master: the run is loaded by the workers, told by Locust's custom messages."""

    runner: Any
    lead_s: float = SHARE_LEAD_S
    watcher: Any = None

    def begin(self, run: Run) -> None:
        if run.token is None:
            run.token, run.inbox = shipping.write_token(run.folder), shipping.Inbox(run.folder)
        info = {"run_id": run.run_id, "folder": str(run.folder), "token": run.token}
        seed, quotas = run.settings.scenario.arrivals.seed, run.meta.get("quotas")
        self.runner.send_message(MSG_RUN, {**info, "seed": seed, "quotas": quotas})

    def start(self, run: Run) -> None:
        send_shares(self.runner, run)

        def on_lost(worker: str) -> None:
            # a worker only cut off stops by itself within MASTER_SILENCE_S: give it that, then end
            # whatever a dead one left open
            gevent.spawn_later(MASTER_SILENCE_S + ORPHANS_AFTER_S, self.end_orphans, run, [worker])

        self.watcher = gevent.spawn(watch_workers, self.runner, run, gevent.sleep, on_lost)

    def collect(self, run: Run) -> None:
        if self.watcher is not None:
            self.watcher.kill(block=False)
        wait_for_workers(self.runner, run, WORKER_DONE_WAIT_S, gevent.sleep)
        shipping.close_run(run)
        self.end_orphans(run, (run.lost() | set(run.workers)) - set(run.done))

    def end_orphans(self, run: Run, workers: Iterable[str]) -> None:
        """The chats that lost workers left open, ended by StopContact (chatload.harness.runtime.orphans)."""
        try:
            for worker, summary in end_orphans(run.settings, run.folder, workers, run.meta.get("quotas")).items():
                run.orphans[worker] = merge_summaries(run.orphans.get(worker), summary)
        except Exception:  # the end of the run (meta.json, report) must not depend on this
            log.exception("chatload: could not end the chats of lost workers")


@dataclass
class Master:
    """A worker's coordinator is the master: what the load process says goes there as messages."""

    runner: Any

    def kill(self, reason: str) -> None:
        self.runner.send_message(MSG_KILL, {"reason": reason})

    def budget_spent(self) -> None:
        """Each worker spends its own share of max_chats; the master ends the run with the schedule."""


# ---------------------------------------------------------------- wiring per runner


def attach(environment: Any) -> Roles:
    """Create this process's roles on Locust's init event and wire them to Locust."""
    environment.stop_timeout = max(environment.stop_timeout or 0.0, STOP_TIMEOUT_S)
    live = LiveStats()
    install(environment, live, total_duration_s=None)
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        roles = Roles(coordinator=None, load=LoadProcess(environment, live, Master(runner)), live=live)
        _wire_worker(environment, roles.load)
    elif isinstance(runner, MasterRunner):
        roles = Roles(coordinator=Coordinator(environment, live, Workers(runner)), load=None, live=live)
        _wire_master(environment, roles.coordinator)
    else:
        load = LoadProcess(environment, live)
        coordinator = Coordinator(environment, live, LocalLoad(load))
        load.upstream = coordinator
        roles = Roles(coordinator=coordinator, load=load, live=live)
        _wire_local(environment, coordinator, load)
    setattr(environment, _ATTRIBUTE, roles)
    if roles.coordinator is not None and roles.coordinator.headless:
        roles.coordinator.check_before_start()
    return roles


def _wire_local(environment: Any, coordinator: Coordinator, load: LoadProcess) -> None:
    events = environment.events
    events.test_start.add_listener(lambda **_: coordinator.on_test_start())
    events.spawning_complete.add_listener(lambda **_: coordinator.on_spawning_complete())
    events.test_stopping.add_listener(lambda **_: load.stopping())

    def on_test_stop(**_: Any) -> None:
        coordinator.on_test_stop()  # collects the load process's clean-up
        load.finish()  # a load without a prepared run ends too (nothing to do when collected)

    events.test_stop.add_listener(on_test_stop)

    def on_quitting(environment: Any, **_: Any) -> None:
        if load.running or coordinator.running:
            coordinator.runner.stop()
            if load.running:  # stop() found nothing running
                on_test_stop()
        environment.process_exit_code = coordinator.quit()

    events.quitting.add_listener(on_quitting)

    def on_sigterm() -> None:
        load.flush()
        coordinator.interrupted()

    gevent.signal_handler(signal.SIGTERM, on_sigterm)


def _wire_master(environment: Any, coordinator: Coordinator) -> None:
    events, runner = environment.events, environment.runner
    events.test_start.add_listener(lambda **_: coordinator.on_test_start())
    events.spawning_complete.add_listener(lambda **_: coordinator.on_spawning_complete())
    events.test_stop.add_listener(lambda **_: coordinator.on_test_stop())
    runner.register_message(MSG_DONE, lambda msg, **_: coordinator.done(msg.data))
    runner.register_message(MSG_KILL, lambda msg, **_: coordinator.kill(str(msg.data.get("reason") or "kill switch")))
    runner.register_message(
        shipping.MSG_ROWS, lambda msg, **_: shipping.deliver((coordinator.run, coordinator.last_run), msg.data)
    )

    def on_quitting(environment: Any, **_: Any) -> None:
        if coordinator.running:
            coordinator.runner.stop()
        environment.process_exit_code = coordinator.quit()

    events.quitting.add_listener(on_quitting)
    gevent.signal_handler(signal.SIGTERM, coordinator.interrupted)


def _wire_worker(environment: Any, load: LoadProcess) -> None:
    events, runner = environment.events, environment.runner
    run_info: dict[str, Any] = {}

    def on_run_message(msg: Any, **_: Any) -> None:
        run_info.clear()
        run_info.update(msg.data)

    def on_test_start(environment: Any, **_: Any) -> None:
        try:
            settings = run_options.with_seed(run_options.resolve(environment.parsed_options), run_info.get("seed"))
        except (run_options.UsageError, ScenarioError) as exc:
            log.error("chatload: worker cannot run: %s", exc)
            return
        folder = Path(run_info.get("folder") or settings.out / (run_info.get("run_id") or "unknown-run"))
        run_id, worker = run_info.get("run_id") or folder.name, f"w{runner.worker_index}"
        ship = None
        if shipping.must_ship(folder, run_info.get("token")):
            ship = shipping.shipper(runner.send_message, run_id, worker)
            log.info("chatload: worker %s ships its attempts rows to the master", worker)
        load.begin(settings, run_id, folder, worker, ship, quotas=run_info.get("quotas"))

    def on_test_stop(environment: Any, **_: Any) -> None:
        summary = load.finish()
        report_now(environment)  # the live counts, clean-up included, reach the master before MSG_DONE
        if summary is not None:
            runner.send_message(MSG_DONE, summary)
        # Locust's worker sleeps stop_timeout after a stop before it reads the next message; our
        # users are gone already, so let it hear the master's quit at once (the next spawn message
        # sets stop_timeout again).
        environment.stop_timeout = 0

    def on_quitting(environment: Any, **_: Any) -> None:
        if load.running:
            runner.stop()
            if load.running:  # stop() found nothing running
                on_test_stop(environment)
        environment.process_exit_code = 0

    def watch_master() -> None:
        """Locust's master answers each worker heartbeat every second; a master silent for
        MASTER_SILENCE_S is lost (killed, or cut off): this worker stops loading the target at once,
        ends its chats and quits, instead of running on unwatched (Locust's own limit is 60 s)."""
        while True:
            gevent.sleep(0.5)
            last = runner.last_heartbeat_timestamp
            if load.running and last is not None and time.time() - last > MASTER_SILENCE_S:
                load.master_lost(last)
                environment.process_exit_code = EXIT_INVALID
                runner.quit()
                return

    gevent.spawn(watch_master)
    runner.register_message(MSG_RUN, on_run_message)
    runner.register_message(MSG_SHARE, lambda msg, **_: load.take_share(share_of(msg.data), float(msg.data["t0"])))
    events.test_start.add_listener(on_test_start)
    events.test_stopping.add_listener(lambda **_: load.stopping())
    events.test_stop.add_listener(on_test_stop)
    events.quitting.add_listener(on_quitting)
    gevent.signal_handler(signal.SIGTERM, load.flush)
