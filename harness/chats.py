"""The chats this process started and has not ended yet, and ending them all at stop.

Connection tokens live only in memory here: never in a row, a log or a file.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from chatload.contracts import DEFAULT_CONNECT_RATES, DEFAULT_PARTICIPANT_RATES, DISCONNECT, STOP_CONTACT
from chatload.harness.safety import ALREADY_ENDED, ENDED, RETRY, clean_up_summary, stop_result
from chatload.tokenbucket import TokenBucket

log = logging.getLogger("chatload")

# Clean-up gives up on an endpoint once this many calls in a row, over at least this long, got no answer.
GIVE_UP_MIN_CALLS = 3
GIVE_UP_UNANSWERED_S = 5.0
# AWS's default rates (rate/s, burst) for the calls that end chats: the clean-up keeps to them instead
# of ending hundreds of chats at once (which only earns throttles and spends the account's bucket).
CLEAN_UP_RATES: dict[str, tuple[float, float]] = {
    DISCONNECT: DEFAULT_PARTICIPANT_RATES[DISCONNECT],
    STOP_CONTACT: DEFAULT_CONNECT_RATES[STOP_CONTACT],
}


def clean_up_rates(quotas: Mapping[str, Any] | None) -> dict[str, tuple[float, float]]:
    """The clean-up's pace: the rates the run's quotas name for DisconnectParticipant and StopContact
    (meta.json "quotas": an emulator's configured rates), else AWS's defaults. An emulator with raised
    quotas holding 10,000 chats at the stop is emptied in seconds, not the hour AWS's defaults take."""
    rates = dict(CLEAN_UP_RATES)
    for operation, table in ((DISCONNECT, "participant_rates"), (STOP_CONTACT, "rates")):
        entry = ((quotas or {}).get(table) or {}).get(operation)
        if isinstance(entry, Mapping) and entry.get("rate") is not None and entry.get("burst") is not None:
            rates[operation] = (float(entry["rate"]), float(entry["burst"]))
    return rates


@dataclass
class LiveChat:
    chat: str  # synthetic chat id
    contact_id: str
    stage: str
    connection_token: str | None = field(default=None, repr=False)


class LiveChats:
    """Registry of started, not-yet-ended chats of one process (keyed by contact id). `gauge` (the
    live counters) hears chat_started() / chat_ended() as chats come and go."""

    def __init__(self, gauge: Any = None) -> None:
        self._live: dict[str, LiveChat] = {}
        self._gauge = gauge

    def started(self, chat: str, contact_id: str, stage: str) -> LiveChat:
        live = self._live[contact_id] = LiveChat(chat, contact_id, stage)
        if self._gauge is not None:
            self._gauge.chat_started()
        return live

    def ended(self, contact_id: str) -> None:
        if self._live.pop(contact_id, None) is not None and self._gauge is not None:
            self._gauge.chat_ended()

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, contact_id: str) -> bool:
        return contact_id in self._live

    def chats(self) -> list[LiveChat]:
        return list(self._live.values())


def end_result(operation: str, http_status: int, error_code: str) -> str:
    """What an ending call's answer means for the contact: ended, already_ended, retry or failed.

    StopContact answers are read by the safety rules; a DisconnectParticipant refused for a reason
    other than throttling or a server fault (e.g. a token the service no longer knows) is `retry`
    too: the next round ends the contact by StopContact.
    """
    result = stop_result(http_status, error_code)
    if operation == DISCONNECT and result not in (ENDED, RETRY):
        return RETRY
    return result


def clean_up(
    chats: LiveChats,
    end: Callable[[LiveChat, str], tuple[str, int, str]],
    sleep: Callable[[float], Any],
    clock: Callable[[], float],
    deadline_s: float = 60.0,
    pause_s: float = 1.0,
    give_up_unanswered_s: float = GIVE_UP_UNANSWERED_S,
    rates: Mapping[str, tuple[float, float]] | None = None,
) -> dict[str, Any]:
    """End every chat still live: DisconnectParticipant where connected, else StopContact; throttled
    or failed ends are retried by StopContact in later rounds (a pause between rounds) until
    `deadline_s`, which also holds within a round. `end(chat, operation)` makes (and records) the
    call and returns (operation, http_status, error_code). Returns meta.json's "clean_up" entry.

    An endpoint that stopped answering (no HTTP response: refused, reset, timed out) is given up once
    at least GIVE_UP_MIN_CALLS calls in a row have gone unanswered for `give_up_unanswered_s`: retrying
    a dead endpoint until the deadline would only delay the end of the run. Every chat not ended, tried
    or not, is named in "not_ended".

    With `rates` ({operation: (rate, burst)}), calls are paced by client-side token buckets: a chat
    that could be disconnected is ended by StopContact instead when only StopContact has a token, and
    when neither has one the clean-up waits for the next token (never past the deadline)."""
    pending = chats.chats()
    now = clock()
    buckets = None if rates is None else {op: TokenBucket.full(r, b, now) for op, (r, b) in rates.items()}
    results: dict[str, str] = {chat.contact_id: RETRY for chat in pending}
    started = last_answer = clock()
    unanswered = 0
    first_round = True

    def unreachable() -> bool:
        return unanswered >= GIVE_UP_MIN_CALLS and clock() - last_answer >= give_up_unanswered_s

    while pending:
        retry: list[LiveChat] = []
        for n, chat in enumerate(pending):
            if clock() - started > deadline_s or unreachable():
                retry.extend(pending[n:])
                break
            options = (DISCONNECT, STOP_CONTACT) if first_round and chat.connection_token else (STOP_CONTACT,)
            operation = options[0] if buckets is None else _paced(options, buckets, sleep, clock, started + deadline_s)
            if operation is None:  # the deadline came while waiting for a token
                retry.extend(pending[n:])
                break
            op, status, code = end(chat, operation)
            if status:
                unanswered, last_answer = 0, clock()
            else:
                unanswered += 1
            result = end_result(op, status, code)
            results[chat.contact_id] = result
            if result in (ENDED, ALREADY_ENDED):
                chats.ended(chat.contact_id)
            elif result == RETRY:
                retry.append(chat)
        first_round = False
        if unreachable():
            log.warning(
                "chatload: clean-up: no answer from the endpoint for %.0f s (%d calls in a row); "
                "giving up on %d chats", clock() - last_answer, unanswered, len(retry),
            )  # fmt: skip
            break
        if not retry or clock() - started + pause_s > deadline_s:
            break
        sleep(pause_s)
        pending = retry
    return clean_up_summary(results)


def _paced(
    options: tuple[str, ...],
    buckets: Mapping[str, TokenBucket],
    sleep: Callable[[float], Any],
    clock: Callable[[], float],
    deadline: float,
) -> str | None:
    """The first of `options` with a token (spent), waiting for one if need be; None at the deadline."""
    while True:
        now = clock()
        if now > deadline:
            return None
        waits = []
        for operation in options:
            bucket = buckets.get(operation)
            if bucket is None or bucket.take(now):
                return operation
            waits.append((1.0 - bucket.level(now)) / bucket.rate)
        sleep(max(min(waits), 0.001))
