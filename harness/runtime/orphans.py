"""Chats that a lost worker left open, ended by the coordinator.

A worker killed outright (SIGKILL, a lost pod) cannot end its own chats, and on a real instance each
one holds a concurrency slot for up to 25 hours. Its attempts rows are in the run folder (written
there, or shipped to the master), so the coordinator knows every contact it started and never ended:
a StartChatContact that succeeded, with no successful DisconnectParticipant or StopContact after it.
The coordinator ends them with a paced StopContact, recorded as attempts rows of its own (worker
"coordinator") so the report counts those calls too.

A worker killed during a StartChatContact never recorded its answer, but it wrote the call's
idempotency token first (intents/<worker>.csv). The coordinator replays StartChatContact with that
ClientToken: Connect answers a repeated token with the first call's contact (no new chat), or starts
the chat the first call never delivered; either way the coordinator then knows the contact and ends
it. A worker that shipped its rows over the network ships no intents: a chat it started in its last
moments may stay unknown to the master (docs/distributed.md).
"""

from __future__ import annotations

import csv
import logging
import random
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import gevent
import gevent.event

from chatload.contracts import (
    DEFAULT_CONNECT_RATES,
    ENDING_OPERATIONS,
    OK,
    START_CHAT,
    THROTTLED_CONCURRENCY,
    THROTTLED_TPS,
)
from chatload.harness.chats import LiveChats, clean_up, clean_up_rates
from chatload.harness.client import Api, ClientSettings, make_clients
from chatload.harness.customer import Customer
from chatload.harness.recorder import INTENTS, Recorder
from chatload.harness.runtime.load_process import CLEAN_UP_DEADLINE_S, end_for_clean_up
from chatload.harness.runtime.options import RunSettings
from chatload.tokenbucket import TokenBucket

log = logging.getLogger("chatload")

COORDINATOR = "coordinator"  # the worker name of the coordinator's own rows
REPLAY_TRIES = 3


def orphaned_contacts(rows: Iterable[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(contact id, stage, chat) of every contact started ok and never ended ok, in start order."""
    started: dict[str, tuple[str, str]] = {}
    ended: set[str] = set()
    for row in rows:
        contact = str(row.get("contact_id") or "")
        if not contact or row.get("outcome") != OK:
            continue
        if row.get("operation") == START_CHAT:
            started.setdefault(contact, (str(row.get("stage") or ""), str(row.get("chat") or "")))
        elif row.get("operation") in ENDING_OPERATIONS:
            ended.add(contact)
    return [(contact, stage, chat) for contact, (stage, chat) in started.items() if contact not in ended]


def unresolved_intents(folder: Path, worker: str, rows: Iterable[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(client token, stage, chat) of every StartChatContact the worker began whose answer it never recorded."""
    path = Path(folder) / INTENTS / f"{worker}.csv"
    if not path.exists():
        return []
    answered = {str(r.get("client_token") or "") for r in rows if r.get("operation") == START_CHAT}
    with open(path, newline="", encoding="utf-8") as handle:
        intents = [(r["client_token"], r.get("stage") or "", r.get("chat") or "") for r in csv.DictReader(handle)]
    return [intent for intent in intents if intent[0] and intent[0] not in answered]


def worker_rows(folder: Path, worker: str) -> list[dict[str, Any]]:
    """The attempts rows of `worker` in the run folder (its CSV, or its Parquet once compacted)."""
    attempts = Path(folder) / "attempts"
    parquet, csv_path = attempts / f"{worker}.parquet", attempts / f"{worker}.csv"
    if parquet.exists():
        import pyarrow.parquet as pq

        wanted = ["operation", "outcome", "stage", "chat", "contact_id", "client_token"]
        names = set(pq.read_schema(parquet).names)
        return pq.read_table(parquet, columns=[c for c in wanted if c in names]).to_pylist()
    if not csv_path.exists():
        return []
    with open(csv_path, newline="", encoding="utf-8") as handle:
        return [row for row in csv.DictReader(handle) if row.get("contact_id") or row.get("client_token")]


def end_orphans(
    settings: RunSettings, folder: Path, workers: Iterable[str], quotas: dict[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """End the open chats of each of `workers` (lost ones), paced by `quotas` (meta.json's); their
    clean-up summary by worker."""
    already = [r for r in worker_rows(folder, COORDINATOR) if r.get("operation") in ENDING_OPERATIONS]
    found, pending = {}, {}
    for worker in sorted(set(workers)):
        rows = worker_rows(folder, worker)
        found[worker] = orphaned_contacts([*rows, *already])
        pending[worker] = unresolved_intents(folder, worker, rows)
    if not any(found.values()) and not any(pending.values()):
        return {}
    scenario = settings.scenario
    client_settings = ClientSettings(
        target=scenario.target.kind,
        endpoint_url=settings.endpoint_url,
        participant_endpoint_url=settings.participant_endpoint_url,
        region=scenario.target.region,
        retry_mode="off",
        pool_size=10,
    )
    connect, participant = make_clients(client_settings)
    recorder = Recorder(Path(folder) / "attempts", COORDINATOR)
    ending = gevent.event.Event()
    ending.set()
    summaries = {}
    try:
        for worker, contacts in found.items():
            chats = LiveChats()
            for contact, stage, chat in contacts:
                chats.started(chat or f"{worker}-orphan", contact, stage)
            ender = Customer(
                api=Api(connect, participant), recorder=recorder, chats=chats, life=scenario.chat,
                instance_id=scenario.target.instance_id, contact_flow_id=scenario.target.contact_flow_id,
                rng=random.Random(0), ending=ending, sleep=gevent.sleep, name=COORDINATOR,
            )  # fmt: skip
            for contact, stage, chat in replay_intents(ender, pending[worker]):
                if contact not in chats:
                    chats.started(chat, contact, stage)
            if not len(chats):
                continue
            log.warning("chatload: ending %d chats that lost worker %s left open", len(chats), worker)
            summaries[worker] = clean_up(
                chats, lambda chat, op, e=ender: end_for_clean_up(e, chat, op), gevent.sleep, time.time,
                deadline_s=CLEAN_UP_DEADLINE_S, rates=clean_up_rates(quotas),
            )  # fmt: skip
    finally:
        recorder.close(compact=False)  # more rows may follow (the end of the run); the report reads CSV too
    return summaries


def replay_intents(ender: Customer, intents: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """(contact id, stage, chat) of each unanswered StartChatContact, learnt by replaying its
    ClientToken (at StartChatContact's default rate; a throttled replay is tried again a few times)."""
    bucket = TokenBucket.full(*DEFAULT_CONNECT_RATES[START_CHAT], time.time())
    found = []
    for token, stage, chat in intents:
        for _ in range(REPLAY_TRIES):
            while not bucket.take(time.time()):
                gevent.sleep(0.05)
            call = ender.call(START_CHAT, stage, chat, **{**ender.start_request(), "ClientToken": token})
            if call.outcome == OK and call.response is not None:
                found.append((call.response["ContactId"], stage, chat))
                break
            if call.outcome not in (THROTTLED_TPS, THROTTLED_CONCURRENCY) and call.http_status:
                break  # refused for good (e.g. the token belongs to an older, different request)
            gevent.sleep(1.0)
    return found


def merge_summaries(into: dict[str, Any] | None, more: dict[str, Any]) -> dict[str, Any]:
    """Two clean-up summaries ({ended, still_active, not_ended, ...}) as one."""
    if not into:
        return dict(more)
    not_ended = sorted(set(into.get("not_ended", [])) | set(more.get("not_ended", [])))
    return {**into, "ended": into.get("ended", 0) + more.get("ended", 0), "still_active": len(not_ended),
            "not_ended": not_ended}  # fmt: skip
