"""One process's part of chatload runs: Locust's events wired to the harness.

A `Session` lives on `environment.chatload` (one per process) and goes through one `Run` per test
(a web UI may start many). Who does what:

- master or local runner: prepares the run at the shape's first tick (scenario, caps, run folder,
  emulator quota overrides, meta.json), writes Locust's outputs, merges the workers' clean-up into
  meta.json at test_stop, and builds the report in a child process whose exit code is the run's;
- local runner or worker: the boto3 clients, the attempts recorder, the live-chat registry, the
  dispatcher (started when the pool has spawned; a worker waits for the master's "chatload_share"
  message with its share of the rate and the schedule's start time), the customers, and the
  clean-up of chats still live at test_stop;
- every process: `ending` (set at the end of the schedule or when the test stops) cuts waits short
  so customers end their chats promptly; SIGTERM flushes the attempts before Locust quits.

The messages between master and workers and the shares are in harness.workers; the clean-up and
the final meta.json in harness.finish; the per-run state (`Run`, `Load`) in harness.run.
"""

from __future__ import annotations

import logging
import math
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

import gevent
import gevent.event
import gevent.queue
from locust.runners import MasterRunner, WorkerRunner

from harness import options as run_options
from harness import runfolder, shipping
from harness.arrivals import Dispatcher
from harness.chats import LiveChats
from harness.client import Api, Call, ClientSettings, make_clients
from harness.customer import Arrival, Customer
from harness.finish import CLEAN_UP_DEADLINE_S, end_load, write_final_meta
from harness.live import LiveStats, install
from harness.outcome import CallFailed
from harness.pacer import Schedule, Share
from harness.prepare import initial_meta, refusal
from harness.recorder import Recorder, flush_forever
from harness.run import Load, Run
from harness.runid import new_run_id
from harness.safety import ChatBudget, KillSwitch, effective_caps
from harness.scenario import ScenarioError, pool_size
from harness.workers import (
    MSG_DONE,
    MSG_KILL,
    MSG_RUN,
    MSG_SHARE,
    send_shares,
    share_of,
    wait_for_workers,
    watch_workers,
)

log = logging.getLogger("chatload")

STOP_TIMEOUT_S = 30.0  # users get this long to end their chats when the test stops
SHARE_LEAD_S = 0.3  # a worker's schedule starts this long after the master sends the share
ARRIVAL_WAIT_S = 0.5  # an idle user waits this long for an arrival, then lets Locust stop it
WORKER_DONE_WAIT_S = CLEAN_UP_DEADLINE_S + 30.0


class Session:
    def __init__(self, environment: Any) -> None:
        self.environment = environment
        self.runner = environment.runner
        self.is_master = isinstance(self.runner, MasterRunner)
        self.is_worker = isinstance(self.runner, WorkerRunner)
        self.headless = bool(getattr(environment.parsed_options, "headless", False))
        self.live = LiveStats()
        self.ending = gevent.event.Event()
        self.channel: gevent.queue.Channel = gevent.queue.Channel()
        self.run: Run | None = None  # master / local
        self.last_run: Run | None = None
        self.load: Load | None = None  # local / worker
        self.run_info: dict[str, Any] | None = None  # worker: from the master
        self.exit_code: int | None = None
        self.refused: str | None = None
        self._clients: tuple[ClientSettings, Any] | None = None
        self._report: Any = None
        self._watcher: Any = None

    # ------------------------------------------------------------------ wiring

    def attach(self) -> None:
        env, events = self.environment, self.environment.events
        env.chatload = self
        env.stop_timeout = max(env.stop_timeout or 0.0, STOP_TIMEOUT_S)
        install(env, self.live, total_duration_s=None)
        events.test_start.add_listener(self.on_test_start)
        events.spawning_complete.add_listener(self.on_spawning_complete)
        events.test_stopping.add_listener(self.on_test_stopping)
        events.test_stop.add_listener(self.on_test_stop)
        events.quitting.add_listener(self.on_quitting)
        if self.is_worker:
            self.runner.register_message(MSG_RUN, self.on_run_message)
            self.runner.register_message(MSG_SHARE, self.on_share_message)
        if self.is_master:
            self.runner.register_message(MSG_DONE, self.on_done_message)
            self.runner.register_message(MSG_KILL, self.on_kill_message)
            self.runner.register_message(shipping.MSG_ROWS, self.on_rows_message)
        gevent.signal_handler(signal.SIGTERM, self.on_sigterm)

    def check_before_start(self) -> None:
        """Headless master or local: a bad scenario or option, or no emulator, is one line and
        exit code 2 before anything starts."""
        try:
            settings = run_options.resolve(self.environment.parsed_options)
            line = refusal(settings)
        except (run_options.UsageError, ScenarioError) as exc:
            line = str(exc)
        if line:
            sys.stderr.write(f"chatload: {line}\n")
            sys.stderr.flush()
            sys.exit(runfolder.EXIT_INVALID)

    # ------------------------------------------------------------------ master / local: the run

    def shape_run(self) -> Run | None:
        """The current run for the shape; prepares one at a run's first tick. None: stop."""
        if self.run is None or self.run.stopped:
            try:
                self.run = self.prepare()
            except (run_options.UsageError, ScenarioError, OSError) as exc:
                self.refused = str(exc)
                log.error("chatload: %s", exc)
                self.exit_code = runfolder.EXIT_INVALID
                return None
        return self.run

    def prepare(self) -> Run:
        settings = run_options.resolve(self.environment.parsed_options)
        problem = refusal(settings)
        if problem:
            raise run_options.UsageError(problem)
        scenario = settings.scenario
        run_id = settings.run_id or new_run_id(scenario.name)
        if self.last_run is not None and self.last_run.run_id == run_id:
            run_id = new_run_id(scenario.name)  # the web UI's next run
        folder = runfolder.create(settings.out, run_id)
        run = Run(settings, folder.name, folder, pool_size(scenario), time.time(), Schedule(scenario.stages))
        run.meta = initial_meta(run)
        runfolder.write_json(folder / "meta.json", run.meta)
        if self.is_master:
            run.token, run.inbox = shipping.write_token(folder), shipping.Inbox(folder)
        self.ending.clear()
        self.live.set_duration(scenario.duration_s)
        quotas = run.meta["quotas"]
        self.live.set_quota(quotas.get("concurrent_chats"), (quotas.get("StartChatContact") or {}).get("rate"))
        log.info("chatload: run %s: %s, %d users, folder %s", run.run_id, scenario.name, run.users, folder)
        return run

    def finish_from_shape(self, reason: str | None) -> None:
        """The shape is done: stop the test (workers included) so the clean-up runs before quit."""
        if reason and self.run is not None:
            self.run.ended_early = self.run.ended_early or reason
        self.runner.stop()

    # ------------------------------------------------------------------ events

    def on_test_start(self, environment: Any, **_: Any) -> None:
        if not self.is_worker:
            run = self.shape_run() if self.run is None or self.run.stopped else self.run
            if run is None:
                gevent.spawn(self.runner.stop)
                return
            if run.outputs is None:
                run.outputs = runfolder.LocustOutputs(environment, run.folder)
                run.outputs.start()
            if self.is_master:
                info = {"run_id": run.run_id, "folder": str(run.folder), "token": run.token}
                self.runner.send_message(MSG_RUN, info)
                return
            self.start_load(run.settings, run.run_id, run.folder, "local")
        else:
            info = self.run_info or {}
            try:
                settings = run_options.resolve(environment.parsed_options)
            except (run_options.UsageError, ScenarioError) as exc:
                log.error("chatload: worker cannot run: %s", exc)
                return
            folder = Path(info.get("folder") or settings.out / (info.get("run_id") or "unknown-run"))
            run_id, worker = info.get("run_id") or folder.name, f"w{self.runner.worker_index}"
            ship = None
            if shipping.must_ship(folder, info.get("token")):
                ship = shipping.shipper(self.runner.send_message, run_id, worker)
                log.info("chatload: worker %s ships its attempts rows to the master", worker)
            self.start_load(settings, run_id, folder, worker, ship)

    def start_load(
        self, settings: run_options.RunSettings, run_id: str, folder: Path, worker: str, ship: Any = None
    ) -> None:
        """Local / worker: the recorder (writing attempts/<worker>.csv, or shipping its rows with
        `ship`), the clients, the live-chat registry and the flusher for this run."""
        self.ending.clear()
        scenario = settings.scenario
        recorder = Recorder(folder / "attempts", worker, sink=self.live.record, ship=ship)
        client_settings = ClientSettings(
            target=scenario.target.kind,
            endpoint_url=settings.endpoint_url,
            region=scenario.target.region,
            retry_mode=scenario.retry.mode,
            max_attempts=scenario.retry.max_attempts,
            pool_size=max(10, pool_size(scenario) + 10),
        )
        if self._clients is None or self._clients[0] != client_settings:
            connect, participant = make_clients(client_settings)
            self._clients = (client_settings, Api(connect, participant, client_settings.attempts_pinned))
        self.load = Load(
            settings, run_id, folder, worker, recorder, LiveChats(self.live), self._clients[1],
            gevent.spawn(flush_forever, recorder, gevent.sleep),
        )  # fmt: skip
        caps = effective_caps(scenario, settings.max_chats, settings.max_rate)
        self.load.kill_switch = KillSwitch(caps.max_error_share) if caps.max_error_share is not None else None

    def on_spawning_complete(self, user_count: int, **_: Any) -> None:
        if self.is_worker:
            return
        run = self.run
        if run is None or run.t0 is not None:
            return
        run.t0 = time.time() + (SHARE_LEAD_S if self.is_master else 0.0)
        if self.is_master:
            send_shares(self.runner, run)
            self._watcher = gevent.spawn(watch_workers, self.runner, run, gevent.sleep)
        else:
            self.start_dispatcher(Share(), run.t0)

    def start_dispatcher(self, share: Share, t0: float) -> None:
        load = self.load
        if load is None or load.dispatcher is not None:
            return
        scenario = load.settings.scenario
        caps = effective_caps(scenario, load.settings.max_chats, load.settings.max_rate)
        budget = None
        if caps.max_chats is not None:
            budget = ChatBudget(max(1, math.ceil(caps.max_chats * share.fraction)))
        load.dispatcher = Dispatcher(
            Schedule(scenario.stages), load.recorder, self.offer,
            t0=t0, clock=time.time, nap=gevent.sleep, share=share, budget=budget,
        )  # fmt: skip
        load.dispatcher_greenlet = gevent.spawn(self.dispatch, load)

    def dispatch(self, load: Load) -> None:
        dispatcher = load.dispatcher
        assert dispatcher is not None
        wait_s = dispatcher.t0 - time.time()
        if wait_s > 0:
            gevent.sleep(wait_s)
        dispatcher.run()
        if dispatcher.budget_spent:
            log.warning("chatload: the chat budget (max_chats) is spent: no more arrivals")
            if self.run is not None:
                self.run.ended_early = "max_chats reached"
        self.ending.set()  # the schedule is over: customers end their chats now

    def offer(self, arrival: Arrival) -> bool:
        try:
            self.channel.put(arrival, block=False)
            return True
        except gevent.queue.Full:
            return False

    def on_test_stopping(self, **_: Any) -> None:
        self.ending.set()
        if self.load is not None and self.load.dispatcher is not None:
            self.load.dispatcher.stop()

    def on_test_stop(self, environment: Any, **_: Any) -> None:
        self.ending.set()
        summary = self.finish_load()
        if self.is_worker:
            if summary is not None:
                self.runner.send_message(MSG_DONE, summary)
            # Locust's worker sleeps stop_timeout after a stop before it reads the next message; our
            # users are gone already, so let it hear the master's quit at once (the next spawn
            # message sets stop_timeout again).
            environment.stop_timeout = 0
            return
        run = self.run
        if run is None or run.stopped:
            return
        run.stopped = True
        self.last_run = run
        if self._watcher is not None:
            self._watcher.kill(block=False)
        if summary is not None:
            run.done[summary["worker"]] = summary
        if self.is_master:
            wait_for_workers(self.runner, run, WORKER_DONE_WAIT_S, gevent.sleep)
            shipping.close_run(run)
        write_final_meta(run)
        if run.outputs is not None:
            try:
                run.outputs.finish()
            except Exception:  # Locust's outputs must never cost us the report
                log.exception("chatload: could not write Locust's outputs")
        if not self.headless:
            self._report = gevent.spawn(self.build_report, run)

    def finish_load(self) -> dict[str, Any] | None:
        """Local / worker: stop dispatching, end every live chat, close the attempts file."""
        load = self.load
        if load is None or load.finished:
            return None
        return end_load(load, self.customer_for(load, "clean-up", 0), gevent.sleep)

    # ------------------------------------------------------------------ master and workers

    def on_run_message(self, environment: Any, msg: Any, **_: Any) -> None:
        self.run_info = dict(msg.data)

    def on_share_message(self, environment: Any, msg: Any, **_: Any) -> None:
        load = self.load
        if load is None:
            return
        share = share_of(msg.data)
        if load.dispatcher is None:
            self.start_dispatcher(share, float(msg.data["t0"]))
        else:
            load.dispatcher.rebase(share.fraction, share.phase)

    def kill(self, load: Load, reason: str) -> None:
        """The kill switch tripped in this process: no more arrivals here, and the whole run ends
        (through the master). The shape ends it at its next tick by the normal path, as for SIGTERM:
        a runner.stop() of our own beside the shape's would stop the users twice."""
        load.killed = True
        reason = reason if reason.startswith("kill switch") else f"kill switch: {reason}"
        log.error("chatload: %s; stopping the run", reason)
        if load.dispatcher is not None:
            load.dispatcher.stop()
        if self.is_worker:
            self.runner.send_message(MSG_KILL, {"reason": reason})
        elif self.run is not None and not self.run.stopped:
            self.run.ended_early = self.run.ended_early or reason

    def on_kill_message(self, environment: Any, msg: Any, **_: Any) -> None:
        run = self.run
        if run is not None and not run.stopped:
            run.ended_early = run.ended_early or str(msg.data.get("reason") or "kill switch")  # prefixed by kill()

    def on_rows_message(self, environment: Any, msg: Any, **_: Any) -> None:
        shipping.deliver((self.run, self.last_run), msg.data)

    def on_done_message(self, environment: Any, msg: Any, **_: Any) -> None:
        if self.run is not None:
            self.run.done[msg.data["worker"]] = msg.data

    # ------------------------------------------------------------------ users

    def customer_for(self, load: Load, name: str, index: int) -> Customer:
        scenario = load.settings.scenario

        def report(call: Call, fire: Any = self.environment.events.request.fire) -> None:
            if load.kill_switch is not None and not load.killed and load.kill_switch.feed(time.time(), call.outcome):
                self.kill(load, load.kill_switch.tripped or "too many unexpected errors")
            fire(
                request_type=call.operation,
                name=call.operation,
                response_time=call.latency_ms,
                response_length=0,
                exception=None if call.outcome == "ok" else CallFailed(call.outcome, call.error_code),
                context={},
            )

        return Customer(
            api=load.api, recorder=load.recorder, chats=load.chats, life=scenario.chat,
            instance_id=scenario.target.instance_id, contact_flow_id=scenario.target.contact_flow_id,
            rng=random.Random(f"{load.run_id}/{load.worker}/{index}"), ending=self.ending, sleep=gevent.sleep,
            name=f"{load.worker}-{name}", report=report,
        )  # fmt: skip

    def new_customer(self) -> Customer | None:
        """A customer for a user that starts now (None when this process has no run)."""
        load = self.load
        if load is None or load.finished:
            return None
        load.users += 1
        return self.customer_for(load, f"u{load.users}", load.users)

    def next_arrival(self, timeout_s: float = ARRIVAL_WAIT_S) -> Arrival | None:
        """An arrival for an idle user, or None after timeout_s (so Locust can stop the user)."""
        if self.ending.is_set():
            gevent.sleep(timeout_s)
            return None
        try:
            return self.channel.get(timeout=timeout_s)
        except gevent.queue.Empty:
            return None

    # ------------------------------------------------------------------ the end

    def on_sigterm(self) -> None:
        """Flush the attempts and mark meta.json interrupted; then make sure the run ends.

        Locust installs its own SIGTERM handler (which fires quitting) only after a headless shape
        run has ended; during one, the shape ends the run at its next tick (within a second), by the
        same path as a normal end: stop (chats ended, clean-up), quit, report, exit code."""
        if self.load is not None and not self.load.finished:
            self.load.recorder.flush()
        run = self.run
        if run is not None and not run.stopped:
            run.meta["interrupted"] = True
            runfolder.write_json(run.folder / "meta.json", run.meta)
            if self.headless and not self.is_worker:
                log.warning("chatload: SIGTERM: ending the run and its chats")
                run.ended_early = run.ended_early or "interrupted by SIGTERM"

    def on_quitting(self, environment: Any, **_: Any) -> None:
        if (self.load is not None and not self.load.finished) or (self.run is not None and not self.run.stopped):
            self.runner.stop()
            if self.load is not None and not self.load.finished:  # stop() found nothing running
                self.on_test_stop(environment)
        if self.is_worker:
            environment.process_exit_code = 0
            return
        if self._report is not None:
            self._report.join()
        run = self.last_run
        if run is None:
            environment.process_exit_code = self.exit_code if self.exit_code is not None else runfolder.EXIT_INVALID
            return
        if self.headless:
            self.exit_code, line = runfolder.run_report(run.folder)
            sys.stderr.write(line + "\n")
        environment.process_exit_code = self.exit_code

    def build_report(self, run: Run) -> None:
        self.exit_code, line = runfolder.run_report(run.folder)
        log.info(line)


def attach(environment: Any) -> Session:
    """Create this process's session on Locust's init event."""
    session = Session(environment)
    session.attach()
    if session.headless and not session.is_worker:
        session.check_before_start()
    return session
