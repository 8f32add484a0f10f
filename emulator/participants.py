"""The Participant Service operations (CreateParticipantConnection, SendMessage, SendEvent,
DisconnectParticipant, GetTranscript) as rules over the ChatStore (model.py). Pure: no HTTP.

Order of checks: the bearer token (`X-Amz-Bearer`: the ParticipantToken for
CreateParticipantConnection, the ConnectionToken for the others) names a chat that has not ended,
else 403 AccessDeniedException -> the instance's rate bucket for the operation, else 429
ThrottlingException -> validation, else 400 ValidationException -> the action.

A retried DisconnectParticipant with the ClientToken of the disconnect that ended the chat answers
200 again instead of 403. SendMessage or SendEvent with a ClientToken already used in this chat for
the same operation returns the first answer. SendEvent (typing, receipts) becomes an EVENT Item of
the customer in the transcript, pushed like a message; unlike a message it never prompts the agent.
CreateParticipantConnection with WEBSOCKET returns `ws://<Host of the request>/connect/<url token>`;
the URL token is good for WEBSOCKET_LIFETIME_S emulated seconds (websocket.py serves it).
"""

from __future__ import annotations

from collections import deque
from typing import Any, Protocol

from chatload.contracts import CREATE_CONNECTION, DISCONNECT, GET_TRANSCRIPT, SEND_EVENT, SEND_MESSAGE
from chatload.emulator import flow, transcript
from chatload.emulator.clock import ScaledClock
from chatload.emulator.config import EmulatorConfig
from chatload.emulator.contacts import CUSTOMER_DISCONNECT, Call, Contact, iso8601, new_token, new_uuid
from chatload.emulator.errors import ApiError
from chatload.emulator.throttle import BucketSet


class ChatStore(Protocol):
    """What the participant operations need of the store (model.ChatStore, which calls them)."""

    config: EmulatorConfig
    clock: ScaledClock
    buckets: BucketSet
    contacts: dict[str, Contact]
    by_participant_token: dict[str, str]
    by_connection_token: dict[str, str]
    ws_urls: dict[str, tuple[str, float]]
    ws_url_expiries: deque[tuple[float, str]]
    observer: Any

    def move_deadline(self, contact: Contact, deadline: float) -> None: ...

    def end_chat(self, contact: Contact, at: float, reason: str) -> None: ...

    def valid_body(self, operation: str, call: Call, request_error: str, parameter_error: str) -> dict: ...


CONNECTION_TOKEN_LIFETIME_S = 86400.0
WEBSOCKET_LIFETIME_S = 100.0
ACCESS_DENIED = "You do not have sufficient access to perform this action."


def _disconnect_replay(operation: str, call: Call, contact: Contact) -> bool:
    """A retried DisconnectParticipant (same ClientToken) of the disconnect that ended this chat."""
    return (
        operation == DISCONNECT
        and isinstance(call.body, dict)
        and contact.disconnect_client_token is not None
        and call.body.get("ClientToken") == contact.disconnect_client_token
    )


def _authorize(
    store: ChatStore, operation: str, call: Call, now: float, *, by_connection: bool
) -> tuple[Contact, dict[str, Any]]:
    """Bearer token -> rate bucket of (instance, operation) -> validation; returns (contact, body)."""
    tokens = store.by_connection_token if by_connection else store.by_participant_token
    contact = store.contacts.get(tokens.get(call.bearer or "", ""))
    if contact is None or (contact.ended is not None and not _disconnect_replay(operation, call, contact)):
        raise ApiError("AccessDeniedException", ACCESS_DENIED)
    limit = store.config.participant_rate(operation)
    if not store.buckets.take(("participant", contact.instance_id, operation), limit.rate, limit.burst, now):
        raise ApiError("ThrottlingException", store.config.participant_throttle_message)
    return contact, store.valid_body(operation, call, "ValidationException", "ValidationException")


def connect(store: ChatStore, contact: Contact, types: list[str], host: str | None = None) -> dict[str, Any]:
    """Mark the customer connected (stops the unconnected timeout) and return the connection details."""
    if contact.connection_token is None:
        contact.connection_token = new_token()
        store.by_connection_token[contact.connection_token] = contact.id
    if not contact.connected:
        contact.connected = True
        if contact.deadline != contact.duration_deadline:
            store.move_deadline(contact, contact.duration_deadline)
    epoch = store.clock.epoch()
    out: dict[str, Any] = {}
    if "WEBSOCKET" in types:
        url_token = new_token()
        expiry = store.clock.now() + WEBSOCKET_LIFETIME_S
        store.ws_urls[url_token] = (contact.id, expiry)
        store.ws_url_expiries.append((expiry, url_token))
        out["Websocket"] = {
            "Url": f"ws://{host or '127.0.0.1'}/connect/{url_token}",
            "ConnectionExpiry": iso8601(epoch + WEBSOCKET_LIFETIME_S),
        }
    if "CONNECTION_CREDENTIALS" in types:
        out["ConnectionCredentials"] = {
            "ConnectionToken": contact.connection_token,
            "Expiry": iso8601(epoch + CONNECTION_TOKEN_LIFETIME_S),
        }
    return out


def append_message(contact: Contact, content_type: str, content: str, epoch: float) -> dict[str, Any]:
    item = {
        "AbsoluteTime": iso8601(epoch),
        "Content": content,
        "ContentType": content_type,
        "Id": new_uuid(),
        "Type": "MESSAGE",
        "ParticipantId": contact.participant_id,
        "DisplayName": contact.display_name,
        "ParticipantRole": "CUSTOMER",
        "InitialContactId": contact.initial_contact_id,
        "ContactId": contact.id,
    }
    contact.messages.append(item)
    return item


def create_connection(store: ChatStore, call: Call, now: float) -> dict[str, Any]:
    contact, body = _authorize(store, CREATE_CONNECTION, call, now, by_connection=False)
    return connect(store, contact, body.get("Type") or [], call.host)


def send_message(store: ChatStore, call: Call, now: float) -> dict[str, Any]:
    contact, body = _authorize(store, SEND_MESSAGE, call, now, by_connection=True)
    client_token = body.get("ClientToken")
    if client_token is not None and client_token in contact.message_ids:
        return contact.message_ids[client_token]
    item = append_message(contact, body["ContentType"], body["Content"], store.clock.epoch())
    if store.observer is not None:
        store.observer.item(contact, item)
    flow.on_customer_message(store, contact, now)
    reply = {"Id": item["Id"], "AbsoluteTime": item["AbsoluteTime"]}
    if client_token is not None:
        contact.message_ids[client_token] = reply
    return reply


def send_event(store: ChatStore, call: Call, now: float) -> dict[str, Any]:
    contact, body = _authorize(store, SEND_EVENT, call, now, by_connection=True)
    client_token = body.get("ClientToken")
    if client_token is not None and client_token in contact.event_ids:
        return contact.event_ids[client_token]
    entry = flow.item(
        contact,
        store.clock.epoch(),
        kind="EVENT",
        content_type=body["ContentType"],
        role="CUSTOMER",
        participant_id=contact.participant_id,
        name=contact.display_name,
        content=body.get("Content"),
    )
    flow.add_item(store, contact, entry)
    reply = {"Id": entry["Id"], "AbsoluteTime": entry["AbsoluteTime"]}
    if client_token is not None:
        contact.event_ids[client_token] = reply
    return reply


def disconnect(store: ChatStore, call: Call, now: float) -> dict[str, Any]:
    contact, body = _authorize(store, DISCONNECT, call, now, by_connection=True)
    if contact.ended is None:
        contact.disconnect_client_token = body.get("ClientToken")
        flow.event(store, contact, flow.LEFT, "CUSTOMER", contact.participant_id, contact.display_name)
        store.end_chat(contact, now, CUSTOMER_DISCONNECT)
    return {}


def get_transcript(store: ChatStore, call: Call, now: float) -> dict[str, Any]:
    contact, body = _authorize(store, GET_TRANSCRIPT, call, now, by_connection=True)
    target = contact
    wanted = body.get("ContactId")
    if wanted is not None and wanted != contact.id:
        other = store.contacts.get(wanted)
        if other is None or other.initial_contact_id != contact.initial_contact_id:
            raise ApiError(
                "ValidationException", f"ContactId: contact {wanted} is not part of this participant's chat session"
            )
        target = other
    try:
        items, next_token = transcript.page(target.messages, body)
    except transcript.BadPosition as bad:
        raise ApiError("ValidationException", str(bad)) from None
    out: dict[str, Any] = {"InitialContactId": contact.initial_contact_id, "Transcript": items}
    if next_token is not None:
        out["NextToken"] = next_token
    return out
