"""The records the model keeps: chat contacts and their transcript items (plain data, no rules)."""

from __future__ import annotations

import base64
import itertools
import os
import time
from dataclasses import dataclass, field
from typing import Any

# Why a chat ended (DescribeContact's DisconnectReason and the state's "chats_ended" keys).
CUSTOMER_DISCONNECT = "CUSTOMER_DISCONNECT"
API = "API"
EXPIRED = "EXPIRED"
NEVER_CONNECTED = "CUSTOMER_CONNECTION_NOT_ESTABLISHED"
AGENT_DISCONNECT = "AGENT_DISCONNECT"  # the simulated agent ended the chat ([agents] end_after_exchanges)
END_REASONS = (CUSTOMER_DISCONNECT, API, EXPIRED, NEVER_CONNECTED, AGENT_DISCONNECT)
_h = os.urandom(10).hex()  # 64 random bits name this process's ids
_ID_PREFIX = f"{_h[:8]}-{_h[8:12]}-4{_h[12:15]}-{'89ab'[int(_h[15], 16) & 3]}{_h[16:19]}-"
_id_counter = itertools.count(int(_h[19], 16) << 44)


@dataclass(slots=True)
class Contact:
    id: str
    instance_id: str
    flow_id: str
    arn: str
    participant_id: str
    participant_token: str
    display_name: str
    initial_contact_id: str
    previous_contact_id: str | None
    related_contact_id: str | None
    customer_id: str | None
    attributes: dict[str, str] | None
    client_token: str | None
    started: float  # emulated monotonic seconds
    started_epoch: float
    duration_deadline: float
    deadline: float  # the next moment this chat ends by itself (duration or unconnected timeout)
    start_response: dict[str, Any]
    connection_token: str | None = None
    connected: bool = False
    ended: float | None = None
    ended_epoch: float | None = None
    disconnect_reason: str | None = None
    disconnect_client_token: str | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    message_ids: dict[str, dict[str, Any]] = field(default_factory=dict)  # SendMessage ClientToken -> reply
    event_ids: dict[str, dict[str, Any]] = field(default_factory=dict)  # SendEvent ClientToken -> reply
    # the customer has subscribed a socket to aws/chat at least once (websocket.py: what came before is
    # delivered on that first subscription)
    subscribed: bool = False
    agent_id: str | None = None  # the simulated agent's ParticipantId once it joined
    agent_present: bool = False
    exchanges: int = 0  # agent replies so far

    @property
    def active(self) -> bool:
        return self.ended is None


def iso8601(epoch: float) -> str:
    """AWS's ISO 8601 form with milliseconds: 2019-11-08T02:41:28.172Z."""
    whole = int(epoch)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{int((epoch - whole) * 1000):03d}Z"


def new_uuid() -> str:
    """A unique id in UUID version 4 layout: a random per-process prefix and a counter.

    Cheaper than str(uuid.uuid4()) on the hot path and unique across restarts (64 random bits per
    process). Ids are not secrets; bearer tokens come from os.urandom (new_token).
    """
    return f"{_ID_PREFIX}{next(_id_counter) & 0xFFFFFFFFFFFF:012x}"


def new_token() -> str:
    """An opaque bearer token (64 URL-safe characters from 48 random bytes)."""
    return base64.urlsafe_b64encode(os.urandom(48)).decode("ascii")


@dataclass(slots=True)
class Call:
    """One HTTP attempt as the model sees it."""

    body: Any = None  # parsed JSON, or an ApiError the wire layer met while reading it
    access_key: str | None = None
    region: str = "us-east-1"
    attempt: int = 1
    bearer: str | None = None
    instance_id: str | None = None  # URI members (DescribeContact)
    contact_id: str | None = None
    host: str | None = None  # the request's Host header (the websocket URL is built from it)
