"""The master and its workers: the messages between them, each worker's share of the rate, and
the workers the master loses during a run.

Messages (Locust's custom messages):
- "chatload_run"   master → workers at test start: {run_id, folder, token} (token: harness.shipping)
- "chatload_share" master → each worker when the pool has spawned, and again when a worker joins
  or is lost: {index, count, t0}; worker `index` of `count` takes the fraction 1/count of the global
  rate with phase (index + 1) / count, counting time from t0 (epoch seconds)
- "chatload_rows"  worker → master, a worker that ships its rows (harness.shipping)
- "chatload_done"  worker → master after its clean-up (and its last rows): {worker, clean_up, arrivals}
- "chatload_kill"  worker → master when its kill switch trips: {reason}
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from chatload.harness.pacer import Share
from chatload.harness.runtime.coordinator import Run

log = logging.getLogger("chatload")

MSG_RUN, MSG_SHARE, MSG_DONE = "chatload_run", "chatload_share", "chatload_done"
MSG_KILL = "chatload_kill"
WATCH_INTERVAL_S = 1.0
# A lost worker's share goes to the others this long after the loss: a worker cut off from the master
# stops by itself within MASTER_SILENCE_S (5 s, harness/runtime/roles.py) of its last word from it.
LOSS_REBALANCE_DELAY_S = 6.0
STATE_MISSING = "missing"  # locust.runners.STATE_MISSING (not imported: this module stays free of gevent)


def worker_name(runner: Any, client_id: str) -> str:
    return f"w{runner.get_worker_index(client_id)}"


def active_workers(runner: Any) -> list[Any]:
    """The master's workers that are not missing, in worker-index order."""
    nodes = [n for n in runner.clients.values() if n.state != STATE_MISSING]
    return sorted(nodes, key=lambda n: runner.get_worker_index(n.id))


def send_shares(runner: Any, run: Run) -> None:
    nodes = active_workers(runner)
    run.workers = [worker_name(runner, n.id) for n in nodes]
    for i, node in enumerate(nodes):
        runner.send_message(MSG_SHARE, {"index": i, "count": len(nodes), "t0": run.t0}, client_id=node.id)


def share_of(data: dict[str, Any]) -> Share:
    """The share a "chatload_share" message gives: fraction 1/count, phase (index + 1)/count."""
    count, index = int(data["count"]), int(data["index"])
    return Share(fraction=1.0 / count, phase=(index + 1) / count)


def note_lost(
    runner: Any,
    run: Run,
    known: set[str],
    clock: Callable[[], float] = time.time,
    on_lost: Callable[[str], Any] | None = None,
) -> set[str]:
    """Record every worker of `known` (client ids) that is missing or gone now (and tell `on_lost`
    its name); returns the ids active now. Locust marks a worker missing when its heartbeats stop
    (HEARTBEAT_LIVENESS beats of HEARTBEAT_INTERVAL seconds, about 4 s)."""
    now = {n.id for n in active_workers(runner)}
    for lost in known - now:
        name = worker_name(runner, lost)
        if run.lose(name, clock()):
            log.warning("chatload: worker %s lost: the others take over its share", name)
            if on_lost is not None:
                on_lost(name)
    return now


def watch_workers(
    runner: Any,
    run: Run,
    sleep: Callable[[float], Any],
    on_lost: Callable[[str], Any] | None = None,
    clock: Callable[[], float] = time.time,
    loss_delay_s: float = LOSS_REBALANCE_DELAY_S,
) -> None:
    """Master: re-base the shares when a worker joins or leaves during the run.

    A worker that joins gets its share at once. A lost worker's share is handed to the others only
    `loss_delay_s` after the loss is noted: a worker that is cut off (not dead) keeps offering its
    share until it notices the master's silence and stops (MASTER_SILENCE_S), and giving its share
    away before that would load the target beyond the plan. The offered rate dips meanwhile instead.
    """
    known = {n.id for n in active_workers(runner)}
    rebalance_at: float | None = None
    while not run.stopped:
        sleep(WATCH_INTERVAL_S)
        before = set(run.lost())
        now = note_lost(runner, run, known, clock, on_lost=on_lost)
        if set(run.lost()) - before:
            rebalance_at = clock() + loss_delay_s
        if now != known:
            known = now
            if rebalance_at is None and now:
                send_shares(runner, run)
        if rebalance_at is not None and clock() >= rebalance_at:
            rebalance_at = None
            if known:
                send_shares(runner, run)


def awaited(runner: Any, run: Run) -> set[str]:
    """The workers whose "chatload_done" the master still waits for: they had a share, have not
    reported, and are neither lost nor missing now (a missing one is noted as lost)."""
    present = {worker_name(runner, n.id): n.id for n in active_workers(runner)}
    waiting = set(run.workers) - set(run.done) - run.lost()
    for name in waiting - set(present):
        if run.lose(name, time.time()):
            log.warning("chatload: worker %s lost before it reported its clean-up", name)
    return waiting & set(present)


def wait_for_workers(runner: Any, run: Run, wait_s: float, sleep: Callable[[float], Any]) -> None:
    """Master at test stop: wait (up to wait_s) for the "chatload_done" of every worker still
    there; a worker lost meanwhile is not waited for."""
    deadline = time.time() + wait_s
    while awaited(runner, run) and time.time() < deadline:
        sleep(0.2)
    late = awaited(runner, run)
    if late:
        log.warning("chatload: no clean-up report from %s within %.0f s", ", ".join(sorted(late)), wait_s)
