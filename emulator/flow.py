"""Transcript items and the simulated contact flow and agent, on the emulator's clock (pure: no I/O).

Every message and event of a chat is a transcript Item appended with `add_item`, which also hands it
to the store's observer (the websocket hub pushes it on `aws/chat`). Timed actions (the flow's
greeting, the agent joining, its replies) sit in the store's agenda, a heap of
(emulated due time, seq, contact id, action, argument) processed by `ChatStore.advance` (at the start
of each request, and by the live server's ticker). An action of a chat that has ended is dropped
when it comes due, so nothing outlives its chat.

- [flow] greeting (default "Thanks for contacting us.") after greeting_delay (1 s): a SYSTEM message,
  in the transcript from then on; a customer whose socket subscribes later gets it (and whatever else
  came before) on subscribing (websocket.py).
- [agents] join = {distribution, mean}: an AGENT joins (participant.joined) after that delay;
  reply_think: it answers every customer message after that think time; end_after_exchanges = N > 0:
  after its N-th reply it leaves (participant.left), which ends the chat (chat.ended, reason
  AGENT_DISCONNECT).
"""

from __future__ import annotations

import heapq
from typing import Any

from chatload.emulator.contacts import Contact, iso8601, new_uuid

EVENT = "application/vnd.amazonaws.connect.event."
JOINED = EVENT + "participant.joined"
LEFT = EVENT + "participant.left"
CHAT_ENDED = EVENT + "chat.ended"
SYSTEM_NAME = "SYSTEM_MESSAGE"
AGENT_NAME = "Agent"

GREETING = "greeting"
AGENT_JOIN = "agent_join"
AGENT_REPLY = "agent_reply"


def item(
    contact: Contact,
    epoch: float,
    *,
    kind: str,
    content_type: str,
    role: str,
    participant_id: str,
    name: str,
    content: str | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {"AbsoluteTime": iso8601(epoch)}
    if content is not None:
        out["Content"] = content
    out.update(
        {
            "ContentType": content_type,
            "Id": new_uuid(),
            "Type": kind,
            "ParticipantId": participant_id,
            "DisplayName": name,
            "ParticipantRole": role,
            "InitialContactId": contact.initial_contact_id,
            "ContactId": contact.id,
        }
    )
    return out


def add_item(store: Any, contact: Contact, entry: dict[str, Any]) -> dict[str, Any]:
    contact.messages.append(entry)
    observer = store.observer
    if observer is not None:
        observer.item(contact, entry)
    return entry


def event(
    store: Any,
    contact: Contact,
    content_type: str,
    role: str,
    participant_id: str,
    name: str,
    epoch: float | None = None,
) -> None:
    """An EVENT Item of the chat (at `epoch`, default now), pushed to its sockets."""
    at = store.clock.epoch() if epoch is None else epoch
    add_item(store, contact, item(contact, at, kind="EVENT", content_type=content_type, role=role,
                                  participant_id=participant_id, name=name))  # fmt: skip


def message(
    store: Any, contact: Contact, role: str, participant_id: str, name: str, content: str, epoch: float
) -> None:
    """A plain-text MESSAGE Item of the chat at `epoch`, pushed to its sockets."""
    add_item(store, contact, item(contact, epoch, kind="MESSAGE", content_type="text/plain", role=role,
                                  participant_id=participant_id, name=name, content=content))  # fmt: skip


def schedule(store: Any, contact: Contact, due: float, action: str, argument: Any = None) -> None:
    heapq.heappush(store.agenda, (due, next(store.agenda_seq), contact.id, action, argument))


def on_start(store: Any, contact: Contact, now: float) -> None:
    """A new chat: schedule the flow's greeting and the agent."""
    config = store.config
    if config.flow_greeting:
        schedule(store, contact, now + config.flow_greeting_delay_s, GREETING)
    if config.agent_join is not None:
        distribution, mean = config.agent_join
        delay = store.flow_rng.expovariate(1.0 / mean) if distribution == "exponential" and mean > 0 else mean
        schedule(store, contact, now + delay, AGENT_JOIN)


def on_customer_message(store: Any, contact: Contact, now: float) -> None:
    think = store.config.agent_reply_think_s
    if contact.agent_present and think is not None:
        schedule(store, contact, now + think, AGENT_REPLY)


def run(store: Any, contact: Contact, action: str, at: float) -> None:
    """Carry out one due action of a live chat."""
    epoch = store.clock.epoch() - (store.clock.now() - at)
    if action == GREETING:
        message(store, contact, "SYSTEM", SYSTEM_NAME, SYSTEM_NAME, store.config.flow_greeting, epoch)
    elif action == AGENT_JOIN:
        contact.agent_id = new_uuid()
        contact.agent_present = True
        event(store, contact, JOINED, "AGENT", contact.agent_id, AGENT_NAME, epoch)
    elif action == AGENT_REPLY and contact.agent_present:
        contact.exchanges += 1
        message(store, contact, "AGENT", contact.agent_id or "", AGENT_NAME, f"Agent reply {contact.exchanges}", epoch)
        limit = store.config.agent_end_after_exchanges
        if limit and contact.exchanges >= limit:
            store.agent_ends(contact, at)


def agent_leaves(store: Any, contact: Contact) -> None:
    """participant.left of the agent, if one is present (the chat is ending)."""
    if contact.agent_present:
        contact.agent_present = False
        event(store, contact, LEFT, "AGENT", contact.agent_id or "", AGENT_NAME)
