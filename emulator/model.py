"""The emulator's rules and state: chats, participants, their lifecycle, quotas and counters.

Pure: no HTTP, no sockets; time comes from an injected clock (clock.py), so every rule is testable
by calling `ChatStore.handle(operation, call)` directly. The wire layer (app.py) only translates.

Order of checks for StartChatContact (each failure stops the request and feeds one counter):
  0. injected faults ([faults], faults.py; the wire layer): a 500, a 503, a reset or no answer ends the
     request here, before any check, token or counter of this model (counted in "faults" only)
  1. caller: an `Authorization` header naming a SigV4 access key (else 403 MissingAuthenticationToken)
  2. rate bucket of (access key, region, StartChatContact)        -> 429 TooManyRequestsException
  3. request validation (JSON, model constraints, documented rules) -> 400 InvalidParameterException /
     InvalidRequestException (413 RequestEntityTooLargeException for a body over 1 MiB)
  4. instance and contact flow exist                              -> 404 ResourceNotFoundException
  5. idempotent replay: same ClientToken on the same instance returns the first answer, no new slot
  6. persistent chat source (exists, ended)                       -> 404 / 400 InvalidRequestException
  7. concurrent active chats quota of the instance                -> 429 LimitExceededException
Participant operations: bearer token (403 AccessDeniedException) -> rate bucket of (instance,
operation) (429 ThrottlingException) -> validation (400 ValidationException) -> action.
Every attempt that reaches step 2 spends a token, whatever happens after. An injected latency holds
back the answer after the last step (the work is done on arrival).

A chat holds its quota slot until it ends: DisconnectParticipant, StopContact, its
ChatDurationInMinutes running out, or (switchable: unconnected_timeout_s = 0 turns it off) no
CreateParticipantConnection within unconnected_timeout_s. Deadlines sit in a heap processed lazily
at the start of every request; ended contacts are purged retention_s after they end.
"""

from __future__ import annotations

import functools
import hashlib
import heapq
import itertools
import random
from collections import deque
from collections.abc import Callable
from typing import Any

from chatload.contracts import (
    CREATE_CONNECTION,
    DESCRIBE_CONTACT,
    DISCONNECT,
    GET_TRANSCRIPT,
    SEND_EVENT,
    SEND_MESSAGE,
    START_CHAT,
    STOP_CONTACT,
    THROTTLED_CONCURRENCY,
    THROTTLED_TPS,
)
from chatload.emulator import flow, participants
from chatload.emulator.clock import ScaledClock
from chatload.emulator.config import EmulatorConfig
from chatload.emulator.contacts import (
    AGENT_DISCONNECT,
    API,
    END_REASONS,
    EXPIRED,
    NEVER_CONNECTED,
    Call,
    Contact,
    new_token,
    new_uuid,
)
from chatload.emulator.errors import COUNTERS, ApiError
from chatload.emulator.faults import FaultInjector
from chatload.emulator.throttle import BucketSet
from chatload.emulator.validation import CONNECT_OPERATIONS, PARTICIPANT_OPERATIONS, Invalid, Validators

OPERATIONS = CONNECT_OPERATIONS + PARTICIPANT_OPERATIONS
# GET /_emulator/state's "per_second": what each emulated second of an operation saw (a ground truth of
# the offered rate and its burstiness), for the last hour.
PER_SECOND_COUNTS = ("requests", "accepted", THROTTLED_TPS, THROTTLED_CONCURRENCY)
PER_SECOND_KEPT = 3600
DEFAULT_CHAT_MINUTES = 1500
# GET /_emulator/state's "websocket" (websocket.py keeps them; zeros when no socket server runs)
SOCKET_COUNTERS = (
    "open",
    "opened",
    "closed_by_client",
    "closed_by_server",
    "refused",
    "frames_pushed",
    "frames_received",
    "heartbeats",
)


@functools.lru_cache(maxsize=1024)
def _account_id(access_key: str) -> str:
    return str(int(hashlib.sha256(access_key.encode()).hexdigest()[:12], 16) % 10**12).zfill(12)


def _instance_id(value: str) -> str:
    """An instance id or ARN (arn:aws:connect:region:account:instance/<id>) -> the id."""
    if value.startswith("arn:") and "instance/" in value:
        return value.split("instance/", 1)[1].split("/", 1)[0]
    return value


class ChatStore:
    """All emulated state. One instance per process; every method runs on the event loop thread."""

    def __init__(self, config: EmulatorConfig, clock: Any | None = None, validators: Validators | None = None) -> None:
        self.config = config
        self.clock = clock if clock is not None else ScaledClock(config.time_scale)
        self.validators = validators if validators is not None else Validators.from_botocore()
        # Injected faults (faults.py): drawn and counted here, carried out by the wire layer (app.py).
        # An injected failure never reaches handle(); an added latency holds back handle()'s answer.
        self.faults = FaultInjector(config.faults, self.clock)
        # Told of every transcript item and chat end (the websocket hub, websocket.py); None = nobody.
        self.observer: Any = None
        self._ops: dict[str, Callable[[Call, float], dict[str, Any]]] = {
            START_CHAT: self._start_chat_contact,
            STOP_CONTACT: self._stop_contact,
            DESCRIBE_CONTACT: self._describe_contact,
            CREATE_CONNECTION: lambda call, now: participants.create_connection(self, call, now),
            SEND_MESSAGE: lambda call, now: participants.send_message(self, call, now),
            SEND_EVENT: lambda call, now: participants.send_event(self, call, now),
            DISCONNECT: lambda call, now: participants.disconnect(self, call, now),
            GET_TRANSCRIPT: lambda call, now: participants.get_transcript(self, call, now),
        }
        self.reset()

    # ---- state ---------------------------------------------------------------------------------
    def reset(self) -> None:
        """All contacts, counters and buckets back to the start state (configuration is kept)."""
        self.contacts: dict[str, Contact] = {}
        self.by_participant_token: dict[str, str] = {}
        self.by_connection_token: dict[str, str] = {}
        self.idempotency: dict[tuple[str, str], str] = {}
        self.session_latest: dict[str, str] = {}  # initial contact id -> latest contact of the session
        self.active: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self.expiries: list[tuple[float, str]] = []
        self.purges: list[tuple[float, str]] = []
        self.agenda: list[tuple[float, int, str, str, Any]] = []  # flow.py's timed actions
        self.agenda_seq = itertools.count()  # ties in the agenda keep their order
        self.flow_rng = random.Random()  # the agent's drawn queue times
        self.ws_urls: dict[str, tuple[str, float]] = {}  # websocket URL token -> (contact id, expiry)
        self.ws_url_expiries: deque[tuple[float, str]] = deque()
        self._stale_expiries = 0
        self.buckets = BucketSet.empty()
        self.counters: dict[str, dict[str, int]] = {op: dict.fromkeys(COUNTERS, 0) for op in OPERATIONS}
        self.chats_ended: dict[str, int] = dict.fromkeys(END_REASONS, 0)
        self.unknown_requests = 0
        # per operation: emulated epoch second -> [requests, accepted, throttled_tps, throttled_concurrency]
        self.per_second: dict[str, dict[int, list[int]]] = {}
        self.faults.restart()
        if self.observer is not None:
            self.observer.reset()

    def apply_config(self, config: EmulatorConfig) -> None:
        """Switch to a new configuration. Changed rates rebuild their buckets at the current level."""
        now = self.clock.now()
        if config.time_scale != self.config.time_scale:
            self.clock.set_scale(config.time_scale)
            now = self.clock.now()
        for key, bucket in self.buckets.buckets.items():
            limit = config.connect_rate(key[3]) if key[0] == "connect" else config.participant_rate(key[2])
            if (limit.rate, limit.burst) != (bucket.rate, bucket.burst):
                bucket.reconfigure(limit.rate, limit.burst, now)
        if config.faults is not self.config.faults:  # the patch set `faults` (merge_config makes a new one)
            self.faults.configure(config.faults)
        self.config = config

    def state(self) -> dict[str, Any]:
        """The ground truth of GET /_emulator/state."""
        now = self.clock.now()
        self.advance(now)
        accounts: dict[str, str] = {}
        buckets = []
        for key, bucket in self.buckets.buckets.items():
            entry: dict[str, Any] = {
                "operation": key[-1],
                "rate": bucket.rate,
                "burst": bucket.burst,
                "tokens": round(bucket.level(now), 3),
            }
            if key[0] == "connect":  # access keys never leave the process: accounts are numbered
                entry["account"] = accounts.setdefault(key[1], f"account-{len(accounts) + 1}")
                entry["region"] = key[2]
            else:
                entry["instance"] = key[1]
            buckets.append(entry)
        return {
            "status": "ok",
            "time_scale": self.config.time_scale,
            "emulated_epoch": self.clock.epoch(),
            "instances": {
                inst.id: {
                    "active_chats": self.active.get(inst.id, 0),
                    "peak_active_chats": self.peak.get(inst.id, 0),
                    "concurrent_chats": inst.concurrent_chats,
                    "contact_flows": list(inst.contact_flows),
                }
                for inst in self.config.instances.values()
            },
            "operations": {op: dict(c) for op, c in self.counters.items()},
            "faults": self.faults.state(),
            "no_answer_held": self.faults.held,
            "elapsed_s": round(self.faults.elapsed(), 6),
            "chats_ended": dict(self.chats_ended),
            "websocket": self.observer.state() if self.observer is not None else dict.fromkeys(SOCKET_COUNTERS, 0),
            "contacts_retained": len(self.contacts),
            "unknown_requests": self.unknown_requests,
            "buckets": buckets,
            "per_second": {
                op: {
                    str(second): dict(zip(PER_SECOND_COUNTS, counts, strict=True)) for second, counts in seconds.items()
                }
                for op, seconds in self.per_second.items()
            },
        }

    # ---- entry point ---------------------------------------------------------------------------
    def handle(self, operation: str, call: Call) -> dict[str, Any]:
        """Run one attempt of `operation`; returns the response body or raises ApiError."""
        now = self.clock.now()
        if (
            (self.expiries and self.expiries[0][0] <= now)
            or (self.agenda and self.agenda[0][0] <= now)
            or (self.purges and self.purges[0][0] <= now)
        ):
            self.advance(now)
        counters = self.counters[operation]
        counters["requests"] += 1
        second = self._second(operation)
        second[0] += 1
        if call.attempt > 1:
            counters["retried_attempts"] += 1
        try:
            result = self._ops[operation](call, now)
        except ApiError as error:
            counters[error.counter] += 1
            if error.counter == THROTTLED_TPS:
                second[2] += 1
            elif error.counter == THROTTLED_CONCURRENCY:
                second[3] += 1
            raise
        counters["accepted"] += 1
        second[1] += 1
        return result

    def _second(self, operation: str) -> list[int]:
        """This emulated second's counts of `operation` (the last PER_SECOND_KEPT seconds are kept)."""
        seconds = self.per_second.setdefault(operation, {})
        now = int(self.clock.epoch())
        counts = seconds.get(now)
        if counts is None:
            counts = seconds[now] = [0, 0, 0, 0]
            if len(seconds) > PER_SECOND_KEPT:
                for old in sorted(seconds)[: len(seconds) - PER_SECOND_KEPT]:
                    del seconds[old]
        return counts

    # ---- lifecycle -----------------------------------------------------------------------------
    def advance(self, now: float) -> None:
        """End chats whose deadline passed, run the flow's due actions (in time order with the
        deadlines), expire websocket URLs and purge contacts whose retention ran out."""
        expiries = self.expiries
        agenda = self.agenda
        while True:
            if expiries and expiries[0][0] <= now and not (agenda and agenda[0][0] < expiries[0][0]):
                deadline, contact_id = heapq.heappop(expiries)
                contact = self.contacts.get(contact_id)
                if contact is None or contact.ended is not None or contact.deadline != deadline:
                    self._stale_expiries -= 1
                    continue
                reason = EXPIRED if deadline >= contact.duration_deadline else NEVER_CONNECTED
                self.end_chat(contact, deadline, reason)
            elif agenda and agenda[0][0] <= now:
                due, _, contact_id, action, _ = heapq.heappop(agenda)
                contact = self.contacts.get(contact_id)
                if contact is not None and contact.ended is None:
                    flow.run(self, contact, action, due)
            else:
                break
        urls = self.ws_url_expiries
        while urls and urls[0][0] <= now:
            self.ws_urls.pop(urls.popleft()[1], None)
        purges = self.purges
        while purges and purges[0][0] <= now:
            _, contact_id = heapq.heappop(purges)
            self._purge(contact_id)

    def move_deadline(self, contact: Contact, deadline: float) -> None:
        self._stale_expiries += 1  # the old entry stays in the heap until popped or compacted
        contact.deadline = deadline
        heapq.heappush(self.expiries, (deadline, contact.id))

    def end_chat(self, contact: Contact, at: float, reason: str) -> None:
        contact.ended = at
        contact.ended_epoch = self.clock.epoch() - (self.clock.now() - at)
        contact.disconnect_reason = reason
        self.active[contact.instance_id] -= 1
        self.chats_ended[reason] += 1
        if reason != EXPIRED and reason != NEVER_CONNECTED:
            self._stale_expiries += 1
            if self._stale_expiries > 1024 and self._stale_expiries * 2 > len(self.expiries):
                self._compact_expiries()
        heapq.heappush(self.purges, (at + self.config.retention_s, contact.id))
        flow.agent_leaves(self, contact)
        flow.add_item(
            self,
            contact,
            flow.item(
                contact,
                contact.ended_epoch,
                kind="EVENT",
                content_type=flow.CHAT_ENDED,
                role="SYSTEM",
                participant_id=flow.SYSTEM_NAME,
                name=flow.SYSTEM_NAME,
            ),
        )
        if self.observer is not None:
            self.observer.ended(contact)

    def agent_ends(self, contact: Contact, at: float) -> None:
        """The simulated agent disconnected: the chat ends (flow.py)."""
        self.end_chat(contact, at, AGENT_DISCONNECT)

    def _compact_expiries(self) -> None:
        live = [(c.deadline, c.id) for c in self.contacts.values() if c.ended is None]
        heapq.heapify(live)
        self.expiries = live
        self._stale_expiries = 0

    def _purge(self, contact_id: str) -> None:
        contact = self.contacts.pop(contact_id, None)
        if contact is None:
            return
        self.by_participant_token.pop(contact.participant_token, None)
        if contact.connection_token:
            self.by_connection_token.pop(contact.connection_token, None)
        if contact.client_token is not None:
            key = (contact.instance_id, contact.client_token)
            if self.idempotency.get(key) == contact_id:
                del self.idempotency[key]
        if self.session_latest.get(contact.initial_contact_id) == contact_id:
            del self.session_latest[contact.initial_contact_id]

    # ---- shared checks -------------------------------------------------------------------------
    def _take_connect(self, operation: str, call: Call, now: float) -> None:
        if call.access_key is None:
            raise ApiError("MissingAuthenticationTokenException", "Missing Authentication Token")
        limit = self.config.connect_rate(operation)
        if not self.buckets.take(("connect", call.access_key, call.region, operation), limit.rate, limit.burst, now):
            raise ApiError("TooManyRequestsException", self.config.throttle_message)

    def valid_body(self, operation: str, call: Call, request_error: str, parameter_error: str) -> dict:
        body = call.body
        if isinstance(body, ApiError):
            raise ApiError(request_error if body.code != "RequestEntityTooLargeException" else body.code, body.message)
        try:
            self.validators.check(operation, body)
        except Invalid as invalid:
            raise ApiError(request_error if invalid.request_level else parameter_error, str(invalid)) from None
        return body

    def _instance(self, instance_ref: str) -> Any:
        inst = self.config.instances.get(_instance_id(instance_ref))
        if inst is None:
            raise ApiError("ResourceNotFoundException", f"InstanceId: instance {instance_ref} not found")
        return inst

    # ---- Connect -------------------------------------------------------------------------------
    def _start_chat_contact(self, call: Call, now: float) -> dict[str, Any]:
        self._take_connect(START_CHAT, call, now)
        body = self.valid_body(START_CHAT, call, "InvalidRequestException", "InvalidParameterException")
        inst = self._instance(body["InstanceId"])
        if body["ContactFlowId"] not in inst.contact_flows:
            raise ApiError(
                "ResourceNotFoundException",
                f"ContactFlowId: contact flow {body['ContactFlowId']} not found in instance {inst.id}",
            )
        client_token = body.get("ClientToken")
        if client_token is not None:
            replay = self.idempotency.get((inst.id, client_token))
            if replay is not None:
                self.counters[START_CHAT]["idempotent_replays"] += 1
                return self.contacts[replay].start_response
        continued_from, initial_id = self._persistent_source(body, inst.id)
        active = self.active.get(inst.id, 0)
        if active >= inst.concurrent_chats:
            raise ApiError("LimitExceededException", self.config.quota_message)

        contact_id = new_uuid()
        token = new_token()
        response: dict[str, Any] = {
            "ContactId": contact_id,
            "ParticipantId": new_uuid(),
            "ParticipantToken": token,
        }
        if continued_from is not None:
            response["ContinuedFromContactId"] = continued_from
        duration_s = 60.0 * int(body.get("ChatDurationInMinutes") or DEFAULT_CHAT_MINUTES)
        timeout = self.config.unconnected_timeout_s
        deadline = now + duration_s if timeout <= 0 else now + min(duration_s, timeout)
        epoch = self.clock.epoch()
        contact = Contact(
            id=contact_id,
            instance_id=inst.id,
            flow_id=body["ContactFlowId"],
            arn=f"arn:aws:connect:{call.region}:{_account_id(call.access_key or '')}"
            f":instance/{inst.id}/contact/{contact_id}",
            participant_id=response["ParticipantId"],
            participant_token=token,
            display_name=body["ParticipantDetails"]["DisplayName"],
            initial_contact_id=initial_id or contact_id,
            previous_contact_id=continued_from,
            related_contact_id=body.get("RelatedContactId"),
            customer_id=body.get("CustomerId"),
            attributes=body.get("Attributes"),
            client_token=client_token,
            started=now,
            started_epoch=epoch,
            duration_deadline=now + duration_s,
            deadline=deadline,
            start_response=response,
        )
        self.contacts[contact_id] = contact
        self.by_participant_token[token] = contact_id
        if client_token is not None:
            self.idempotency[(inst.id, client_token)] = contact_id
        self.session_latest[contact.initial_contact_id] = contact_id
        self.active[inst.id] = active + 1
        if active + 1 > self.peak.get(inst.id, 0):
            self.peak[inst.id] = active + 1
        heapq.heappush(self.expiries, (deadline, contact_id))
        initial = body.get("InitialMessage")
        if initial is not None:
            participants.append_message(contact, initial["ContentType"], initial["Content"], epoch)
        flow.on_start(self, contact, now)
        connection_types = body.get("ConnectionTypes")
        if connection_types:
            response.update(participants.connect(self, contact, connection_types, call.host))
        return response

    def _persistent_source(self, body: dict[str, Any], instance_id: str) -> tuple[str | None, str | None]:
        """(ContinuedFromContactId, initial contact of the session) for a persistent chat, else Nones."""
        persistent = body.get("PersistentChat")
        if persistent is None:
            return None, None
        source_id = persistent["SourceContactId"]
        source = self.contacts.get(source_id)
        if source is None or source.instance_id != instance_id:
            raise ApiError(
                "ResourceNotFoundException", f"PersistentChat.SourceContactId: contact {source_id} not found"
            )
        if persistent["RehydrationType"] == "FROM_SEGMENT":
            latest = source
        else:
            if source.initial_contact_id != source.id:
                raise ApiError(
                    "InvalidRequestException",
                    "PersistentChat.SourceContactId: ENTIRE_PAST_SESSION needs the initial contact "
                    f"of a past session, and {source_id} is not one",
                )
            latest = self.contacts.get(self.session_latest.get(source.id, source.id), source)
        if latest.ended is None:
            raise ApiError(
                "InvalidRequestException",
                f"PersistentChat.SourceContactId: contact {latest.id} is still active; "
                "only an ended chat can be continued",
            )
        return latest.id, source.initial_contact_id

    def _stop_contact(self, call: Call, now: float) -> dict[str, Any]:
        self._take_connect(STOP_CONTACT, call, now)
        body = self.valid_body(STOP_CONTACT, call, "InvalidRequestException", "InvalidParameterException")
        inst = self._instance(body["InstanceId"])
        contact = self.contacts.get(body["ContactId"])
        if contact is None or contact.instance_id != inst.id or contact.ended is not None:
            raise ApiError(
                "ContactNotFoundException", f"ContactId: contact {body['ContactId']} is not active or does not exist"
            )
        self.end_chat(contact, now, API)
        return {}

    def _describe_contact(self, call: Call, now: float) -> dict[str, Any]:
        self._take_connect(DESCRIBE_CONTACT, call, now)
        body = {"InstanceId": call.instance_id, "ContactId": call.contact_id}
        for name, value in body.items():
            if not value or len(value) > (100 if name == "InstanceId" else 256):
                raise ApiError(
                    "InvalidParameterException",
                    f"Value at '{name}' failed to satisfy constraint: Member must have length "
                    f"between 1 and {100 if name == 'InstanceId' else 256}",
                )
        inst = self._instance(call.instance_id or "")
        contact = self.contacts.get(call.contact_id or "")
        if contact is None or contact.instance_id != inst.id:
            raise ApiError("ResourceNotFoundException", f"ContactId: contact {call.contact_id} not found")
        described: dict[str, Any] = {
            "Arn": contact.arn,
            "Id": contact.id,
            "InitialContactId": contact.initial_contact_id,
            "InitiationMethod": "API",
            "Channel": "CHAT",
            "InitiationTimestamp": contact.started_epoch,
            "LastUpdateTimestamp": contact.ended_epoch or contact.started_epoch,
        }
        optional = {
            "PreviousContactId": contact.previous_contact_id,
            "RelatedContactId": contact.related_contact_id,
            "CustomerId": contact.customer_id,
            "DisconnectTimestamp": contact.ended_epoch,
            "DisconnectReason": contact.disconnect_reason,
            "Attributes": contact.attributes,
        }
        described.update({k: v for k, v in optional.items() if v is not None})
        return {"Contact": described}
