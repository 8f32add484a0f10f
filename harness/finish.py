"""The end of a run: a process's clean-up of its live chats and its summary (local runner or
worker), and the final meta.json the master or local runner writes from every summary."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from harness import runfolder
from harness.chats import CLEAN_UP_RATES, LiveChat, clean_up
from harness.customer import Customer
from harness.run import Load, Run

log = logging.getLogger("chatload")

CLEAN_UP_DEADLINE_S = 60.0


def end_load(load: Load, ender: Customer, sleep: Callable[[float], Any]) -> dict[str, Any]:
    """Stop dispatching, end every live chat, close the attempts file; the process's summary
    ({worker, clean_up, arrivals}) for meta.json."""
    load.finished = True
    if load.dispatcher is not None:
        load.dispatcher.stop()
    if load.dispatcher_greenlet is not None:
        load.dispatcher_greenlet.kill(block=True)
    summary = clean_up(
        load.chats, lambda chat, op: end_for_clean_up(ender, chat, op), sleep, time.time,
        deadline_s=CLEAN_UP_DEADLINE_S, rates=CLEAN_UP_RATES,
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


def end_for_clean_up(ender: Customer, chat: LiveChat, operation: str) -> tuple[str, int, str]:
    if operation == "DisconnectParticipant":
        call = ender.call(operation, chat.stage, chat.chat, chat.contact_id, ConnectionToken=chat.connection_token)
    else:
        call = ender.call(
            operation, chat.stage, chat.chat, chat.contact_id,
            InstanceId=ender.instance_id, ContactId=chat.contact_id,
        )  # fmt: skip
    return call.operation, call.http_status, call.error_code


def write_final_meta(run: Run) -> None:
    meta = dict(run.meta)
    summaries = list(run.done.values())
    took_part = set(run.done) | set(run.workers) | run.lost()
    not_ended = sorted(c for s in summaries for c in s["clean_up"]["not_ended"])
    arrivals = [s["arrivals"] for s in summaries if s.get("arrivals")]
    meta.update(
        ended_at=time.time(),
        workers=sorted(took_part),
        lost_workers=run.lost_workers,
        clean_up={
            "ended": sum(s["clean_up"]["ended"] for s in summaries),
            "still_active": len(not_ended),
            "not_ended": not_ended,
        },
        arrivals={k: sum(a[k] for a in arrivals) for k in ("scheduled", "started", "dropped")},
        ended_early=run.ended_early,
        interrupted=bool(run.meta.get("interrupted")),
        schedule_started_at=run.t0,
    )
    if run.inbox is not None and run.inbox.recorders:
        meta["shipped_rows"] = {w: r.rows_written for w, r in sorted(run.inbox.recorders.items())}
    missing = sorted(took_part - set(run.done))
    if missing:
        meta["clean_up"]["unreported_workers"] = missing
    run.meta = meta
    runfolder.write_json(run.folder / "meta.json", meta)
    if not_ended:
        log.warning("chatload: %d chats could not be ended: %s", len(not_ended), ", ".join(not_ended))
