"""The master and its workers: the messages between them, each worker's share of the rate, and
the workers the master loses during a run.

Messages (Locust's custom messages):
- "chatload_run"   master → workers at test start: {run_id, folder}
- "chatload_share" master → each worker when the pool has spawned, and again when a worker joins
  or is lost: {index, count, t0}; worker `index` of `count` takes the fraction 1/count of the global
  rate with phase (index + 1) / count, counting time from t0 (epoch seconds)
- "chatload_done"  worker → master after its clean-up: {worker, clean_up, arrivals}
- "chatload_kill"  worker → master when its kill switch trips: {reason}
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from locust.runners import STATE_MISSING

from harness.pacer import Share
from harness.run import Run

log = logging.getLogger("chatload")

MSG_RUN, MSG_SHARE, MSG_DONE = "chatload_run", "chatload_share", "chatload_done"
MSG_KILL = "chatload_kill"
WATCH_INTERVAL_S = 1.0


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


def watch_workers(runner: Any, run: Run, sleep: Callable[[float], Any]) -> None:
    """Master: re-base the shares when a worker joins or leaves during the run."""
    known = {n.id for n in active_workers(runner)}
    while not run.stopped:
        sleep(WATCH_INTERVAL_S)
        now = {n.id for n in active_workers(runner)}
        if now == known:
            continue
        for lost in known - now:
            name = worker_name(runner, lost)
            run.lost_workers.append({"worker": name, "at": time.time()})
            log.warning("chatload: worker %s lost: the others take over its share", name)
        known = now
        if now:
            send_shares(runner, run)


def wait_for_workers(run: Run, wait_s: float, sleep: Callable[[float], Any]) -> None:
    """Master at test stop: wait (up to wait_s) for every worker's "chatload_done"."""
    deadline = time.time() + wait_s
    while set(run.workers) - set(run.done) and time.time() < deadline:
        sleep(0.2)
