"""The load-process role (Locust's local runner, or a worker): the part of a run that makes calls.

Per run it holds a `Load`: the attempts recorder (writing attempts/<worker>.csv, or shipping its rows
to the master), the boto3 clients, the live-chat registry, the dispatcher that turns the schedule into
arrivals, and the flusher. Users ask it for a customer (`new_customer`) and for arrivals
(`next_arrival`); at test stop it ends every live chat through the paced clean-up and closes the
attempts file (`finish`), whose summary goes to the coordinator.

It talks to the coordinator through an `Upstream`: in a local runner the coordinator itself, on a
worker the messages to the master (chatload.harness.runtime.workers). `ending` (set at the end of the
schedule or when the test stops) cuts waits short so customers end their chats promptly.
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import gevent
import gevent.event

from chatload.contracts import DISCONNECT, OK
from chatload.harness.arrivals import Dispatcher
from chatload.harness.chats import LiveChat, LiveChats, clean_up, clean_up_rates
from chatload.harness.client import Api, Call, ClientSettings, make_clients
from chatload.harness.customer import Arrival, Customer
from chatload.harness.live.stats import LiveStats
from chatload.harness.outcome import CallFailed
from chatload.harness.pacer import Schedule, Share, spacing
from chatload.harness.recorder import Recorder, flush_forever
from chatload.harness.runtime import options as run_options
from chatload.harness.runtime.handoff import IdleUsers
from chatload.harness.runtime.runfolder import MASTER_LOST_PREFIX, write_json
from chatload.harness.safety import ChatBudget, KillSwitch, effective_caps
from chatload.harness.scenario.model import pool_size, scenario_to_dict
from chatload.harness.websocket import open_chat_socket

log = logging.getLogger("chatload")

ARRIVAL_WAIT_S = 0.5  # once the run's arrivals have ended, an idle user naps this long between asks
CLEAN_UP_DEADLINE_S = 60.0


class Upstream(Protocol):
    """What a load process tells its coordinator."""

    def kill(self, reason: str) -> None:
        """The kill switch tripped in this process: the whole run must end."""

    def budget_spent(self) -> None:
        """This process's share of max_chats is spent: it starts no more chats."""


@dataclass
class Load:
    """One run as a load process runs it: recorder, registry, clients, dispatcher."""

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
    quotas: dict[str, Any] | None = None  # meta.json "quotas": the clean-up keeps to their rates


class LoadProcess:
    def __init__(self, environment: Any, live: LiveStats, upstream: Upstream | None = None) -> None:
        self.environment = environment
        self.live = live
        self.upstream = upstream
        self.ending = gevent.event.Event()
        self.idle: IdleUsers[Arrival] = IdleUsers()
        self.load: Load | None = None
        self._clients: tuple[ClientSettings, Api] | None = None

    @property
    def running(self) -> bool:
        """A run has begun here and has not finished."""
        return self.load is not None and not self.load.finished

    # ------------------------------------------------------------------ a run begins

    def begin(
        self,
        settings: run_options.RunSettings,
        run_id: str,
        folder: Path,
        worker: str,
        ship: Any = None,
        quotas: dict[str, Any] | None = None,
    ) -> None:
        """The recorder (writing attempts/<worker>.csv, or shipping its rows with `ship`), the
        clients, the live-chat registry and the flusher for this run; `quotas` (meta.json's) pace
        the clean-up."""
        self.ending.clear()
        self.idle.reopen()
        scenario = settings.scenario
        recorder = Recorder(folder / "attempts", worker, sink=self.live.record, ship=ship)
        client_settings = ClientSettings(
            target=scenario.target.kind,
            endpoint_url=settings.endpoint_url,
            participant_endpoint_url=settings.participant_endpoint_url,
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
            gevent.spawn(flush_forever, recorder, gevent.sleep), quotas=quotas,
        )  # fmt: skip
        caps = effective_caps(scenario, settings.max_chats, settings.max_rate)
        self.load.kill_switch = KillSwitch(caps.max_error_share) if caps.max_error_share is not None else None

    def start_dispatcher(self, share: Share, t0: float) -> None:
        """Arrivals from t0 (epoch seconds) at this process's share of the schedule's rate."""
        load = self.load
        if load is None or load.dispatcher is not None:
            return
        scenario = load.settings.scenario
        caps = effective_caps(scenario, load.settings.max_chats, load.settings.max_rate)
        budget = None
        if caps.max_chats is not None:
            budget = ChatBudget(max(1, math.ceil(caps.max_chats * share.fraction)))
        arrivals = scenario.arrivals
        load.dispatcher = Dispatcher(
            Schedule(scenario.stages), load.recorder, self.offer,
            t0=t0, clock=time.time, nap=gevent.sleep, share=share, budget=budget,
            process=spacing(arrivals.process, arrivals.seed, load.worker),
        )  # fmt: skip
        load.dispatcher_greenlet = gevent.spawn(self._dispatch, load)

    def take_share(self, share: Share, t0: float) -> None:
        """A share from the master: the first starts the dispatcher, later ones re-base it."""
        load = self.load
        if load is None:
            return
        if load.dispatcher is None:
            self.start_dispatcher(share, t0)
        else:
            load.dispatcher.rebase(share.fraction, share.phase)

    def _dispatch(self, load: Load) -> None:
        dispatcher = load.dispatcher
        assert dispatcher is not None
        wait_s = dispatcher.t0 - time.time()
        if wait_s > 0:
            gevent.sleep(wait_s)
        dispatcher.run()
        if dispatcher.budget_spent:
            log.warning("chatload: the chat budget (max_chats) is spent: no more arrivals")
            if self.upstream is not None:
                self.upstream.budget_spent()
        self.end_arrivals()  # the schedule is over: customers end their chats now

    def offer(self, arrival: Arrival) -> bool:
        return self.idle.offer(arrival)

    def end_arrivals(self) -> None:
        """No more arrivals in this run: customers end their chats now and idle users wake."""
        self.ending.set()
        self.idle.release()

    # ------------------------------------------------------------------ users

    def customer_for(self, load: Load, name: str, index: int) -> Customer:
        scenario = load.settings.scenario

        def report(call: Call, fire: Any = self.environment.events.request.fire) -> None:
            if (
                load.kill_switch is not None
                and not load.killed
                and load.kill_switch.feed(time.time(), call.outcome, call.operation)
            ):
                self.kill(load, load.kill_switch.tripped or "too many unexpected errors")
            fire(
                request_type=call.operation,
                name=call.operation,
                response_time=call.latency_ms,
                response_length=0,
                exception=None if call.outcome == OK else CallFailed(call.outcome, call.error_code),
                context={},
            )

        return Customer(
            api=load.api, recorder=load.recorder, chats=load.chats, life=scenario.chat,
            instance_id=scenario.target.instance_id, contact_flow_id=scenario.target.contact_flow_id,
            rng=random.Random(f"{load.run_id}/{load.worker}/{index}"), ending=self.ending, sleep=gevent.sleep,
            name=f"{load.worker}-{name}", report=report,
            open_socket=partial(
                open_chat_socket, wait_s=scenario.chat.websocket_wait_s, clock=time.time, spawn=gevent.spawn,
            ) if scenario.chat.websocket else None,
        )  # fmt: skip

    def new_customer(self) -> Customer | None:
        """A customer for a user that starts now (None when this process has no run)."""
        load = self.load
        if load is None or load.finished:
            return None
        load.users += 1
        return self.customer_for(load, f"u{load.users}", load.users)

    def next_arrival(self) -> Arrival | None:
        """An arrival for an idle user: it waits, with no timer, until the dispatcher hands it one;
        None once the run's arrivals have ended (after a nap, so an idle loop does not spin)."""
        if self.ending.is_set():
            gevent.sleep(ARRIVAL_WAIT_S)
            return None
        return self.idle.wait()

    def kill(self, load: Load, reason: str) -> None:
        """The kill switch tripped here: no more arrivals in this process, and the whole run ends
        (the coordinator's shape ends it at its next tick, by the normal path)."""
        load.killed = True
        reason = reason if reason.startswith("kill switch") else f"kill switch: {reason}"
        log.error("chatload: %s; stopping the run", reason)
        if load.dispatcher is not None:
            load.dispatcher.stop()
        if self.upstream is not None:
            self.upstream.kill(reason)

    # ------------------------------------------------------------------ the end

    def stopping(self) -> None:
        """The test is stopping: no more arrivals, customers end their chats now."""
        self.end_arrivals()
        if self.load is not None and self.load.dispatcher is not None:
            self.load.dispatcher.stop()

    def finish(self) -> dict[str, Any] | None:
        """Stop dispatching, end every live chat (paced clean-up), close the attempts file; the
        process's summary ({worker, clean_up, arrivals}) for meta.json. None when nothing runs."""
        self.end_arrivals()
        load = self.load
        if load is None or load.finished:
            return None
        load.finished = True
        if load.dispatcher is not None:
            load.dispatcher.stop()
        if load.dispatcher_greenlet is not None:
            load.dispatcher_greenlet.kill(block=True)
        ender = self.customer_for(load, "clean-up", 0)
        summary = clean_up(
            load.chats, lambda chat, op: end_for_clean_up(ender, chat, op), gevent.sleep, time.time,
            deadline_s=CLEAN_UP_DEADLINE_S, rates=clean_up_rates(load.quotas),
        )  # fmt: skip
        load.flusher.kill(block=True)
        load.recorder.close(compact=True)
        counts = load.dispatcher.ledger.total() if load.dispatcher is not None else None
        return {
            "worker": load.worker,
            "clean_up": summary,
            "arrivals": None if counts is None else {
                "scheduled": counts.scheduled, "started": counts.started, "dropped": counts.dropped,
            },
        }  # fmt: skip

    def master_lost(self, last_heard: float) -> dict[str, Any] | None:
        """A worker that stopped hearing its master (killed, or cut off by the network): no more
        arrivals at once, then every live chat ended by the paced clean-up, and every row kept on
        this machine's disk (a shipping worker's own copy takes the place of what the master may
        have received), with a note `master-lost-<worker>.json` that `chatload report` reads."""
        load = self.load
        if load is None or load.finished:
            return None
        log.error(
            "chatload: worker %s: no word from the master for %.0f s: stopping its load and ending its chats",
            load.worker, time.time() - last_heard,
        )  # fmt: skip
        self.stopping()
        stopped_at = time.time()
        summary = self.finish()
        recorder = load.recorder
        kept = recorder.promote_copy() or (
            recorder.parquet_path if recorder.parquet_path.exists() else recorder.csv_path
        )
        note = {
            "worker": load.worker,
            "run_id": load.run_id,
            "last_heard_from_master": last_heard,
            "load_stopped_at": stopped_at,
            "clean_up": None if summary is None else summary["clean_up"],
            "arrivals": None if summary is None else summary["arrivals"],
            "attempts": str(kept),
        }
        load.folder.mkdir(parents=True, exist_ok=True)
        write_json(load.folder / f"{MASTER_LOST_PREFIX}{load.worker}.json", note)
        meta = load.folder / "meta.json"
        if not meta.exists():  # a worker on a machine of its own: enough for `chatload report` there
            t0 = load.dispatcher.t0 if load.dispatcher is not None else None
            write_json(meta, {
                "run_id": load.run_id, "started_at": t0 or stopped_at, "ended_at": stopped_at,
                "scenario": scenario_to_dict(load.settings.scenario), "target": load.settings.target,
                "endpoint": load.settings.endpoint_url, "workers": [load.worker], "lost_workers": [],
                "quotas": {}, "clean_up": note["clean_up"], "arrivals": note["arrivals"], "interrupted": False,
                "schedule_started_at": t0, "ended_early": "master lost",
            })  # fmt: skip
        return note

    def flush(self) -> None:
        """SIGTERM: the attempts so far reach the disk before anything else happens."""
        if self.running:
            assert self.load is not None
            self.load.recorder.flush()


def end_for_clean_up(ender: Customer, chat: LiveChat, operation: str) -> tuple[str, int, str]:
    if operation == DISCONNECT:
        call = ender.call(operation, chat.stage, chat.chat, chat.contact_id, ConnectionToken=chat.connection_token)
    else:
        call = ender.call(
            operation, chat.stage, chat.chat, chat.contact_id,
            InstanceId=ender.instance_id, ContactId=chat.contact_id,
        )  # fmt: skip
    return call.operation, call.http_status, call.error_code
