"""A simulated chat customer: what one arrival does, from StartChatContact to the end of the chat.

    StartChatContact (PersistentChat from this customer's previous ended contact, if asked)
      └ ok → [connect] wait connect_delay → CreateParticipantConnection(CONNECTION_CREDENTIALS)
                 [websocket] ask for WEBSOCKET too → open the socket, subscribe, heartbeat, read every frame
             → messages × (wait message_interval → SendMessage [websocket: expect its echo])
             → hold (drawn from the hold distribution)
             → end: DisconnectParticipant (end_by "disconnect" and connected) or StopContact
               [websocket: expect chat.ended, then close the socket]

Every call is timed, classified, recorded and reported. Waits end early when the run is ending
(the `ending` event), so customers disconnect promptly at the end. A failed StartChatContact ends
the chat there. An end call that fails is tried again twice after a short pause; a chat still not
ended stays in the registry for the clean-up at stop.

The websocket's I/O is injected like the Api: `open_socket(url, record=..., chat_started=...)`
(harness/websocket.py's `open_chat_socket`, bound by the runtime to its spawner, clock and wait)
returns an open, subscribed socket or None, and writes its rows through `record`; this module never
touches the network. The socket is closed when the chat's life here ends, however it ends.
"""

from __future__ import annotations

import json
import math
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Any

from chatload.contracts import CREATE_CONNECTION, DISCONNECT, OK, SEND_MESSAGE, START_CHAT, STOP_CONTACT
from chatload.harness.chats import LiveChats, end_result
from chatload.harness.recorder import Recorder, new_row
from chatload.harness.safety import ALREADY_ENDED, ENDED, RETRY

if TYPE_CHECKING:
    from chatload.harness.client import Api

END_TRIES = 3
END_PAUSE_S = 0.5
DISPLAY_NAME = "chatload customer"


@dataclass(frozen=True, slots=True)
class Arrival:
    """One arrival from the pacer: when it was meant to start (epoch s) and its stage's name."""

    t_intended: float
    stage: str


@dataclass(slots=True)
class Call:
    """One API call (or websocket measurement) as the customer saw it: classified, timed, its attempts
    counted. Made by the client (harness/client.py) and by the chat socket's rows."""

    operation: str
    outcome: str
    http_status: int
    error_code: str
    attempts: int
    first_outcome: str
    t_start: float
    latency_ms: float
    response: dict | None = None


def message_content(content_type: str, n: int) -> str:
    if content_type == "application/json":
        return json.dumps({"chatload": n})
    return f"chatload message {n}"


class Customer:
    """One Locust user's customer. `report(call)` tells Locust about each call; `ending.wait(s)`
    waits up to s seconds and returns True once the run is ending; `sleep(s)` always waits."""

    def __init__(
        self,
        *,
        api: Api,
        recorder: Recorder,
        chats: LiveChats,
        life: Any,
        instance_id: str,
        contact_flow_id: str,
        rng: random.Random,
        ending: Any,
        sleep: Callable[[float], Any],
        name: str,
        report: Callable[[Call], Any] | None = None,
        open_socket: Callable[..., Any] | None = None,
    ) -> None:
        self.api = api
        self.recorder = recorder
        self.chats = chats
        self.life = life
        self.instance_id = instance_id
        self.contact_flow_id = contact_flow_id
        self.rng = rng
        self.ending = ending
        self.sleep = sleep
        self.name = name
        self.report = report
        self.open_socket = open_socket
        self.started_chats = 0
        self.last_ended_contact: str | None = None  # FROM_SEGMENT continues from exactly this contact
        self.session_first_contact: str | None = None  # ENTIRE_PAST_SESSION names the session's first
        types = ["text/plain"]
        if life.message_content_type != "text/plain":
            types.append(life.message_content_type)
        self._content_types = types

    # ------------------------------------------------------------------ one call

    def call(
        self, operation: str, stage: str, chat: str, contact_id: str = "", t_intended: float = math.nan, **kw: Any
    ) -> Call:
        call = self.api.call(operation, **kw)
        client_token = kw.get("ClientToken", "") if operation == START_CHAT else ""
        if not contact_id and call.response is not None:
            contact_id = call.response.get("ContactId", "")
        self.keep(call, stage, chat, contact_id, t_intended=t_intended, client_token=client_token)
        return call

    def keep(
        self, call: Call, stage: str, chat: str, contact_id: str, *, t_intended: float = math.nan,
        client_token: str = "",
    ) -> None:  # fmt: skip
        """The call's attempts row, and the call reported (to Locust's stats, the kill switch)."""
        self.recorder.record(
            new_row(
                call.operation, call.outcome, t_start=call.t_start, latency_ms=call.latency_ms,
                http_status=call.http_status, error_code=call.error_code, attempts=call.attempts,
                first_outcome=call.first_outcome, t_intended=t_intended, stage=stage, chat=chat,
                contact_id=contact_id, client_token=client_token,
            )
        )  # fmt: skip
        if self.report is not None:  # a measurement with no latency (NaN) is reported as 0 ms
            self.report(call if call.latency_ms == call.latency_ms else replace(call, latency_ms=0.0))

    def socket_row(
        self, stage: str, chat: str, contact_id: str, operation: str, outcome: str, *, t_start: float,
        latency_ms: float, http_status: int = 0, error_code: str = "",
    ) -> None:  # fmt: skip
        """Record (and report) one of the websocket's measurements, as a call's row."""
        call = Call(operation, outcome, http_status, error_code, 1, outcome, t_start, latency_ms)
        self.keep(call, stage, chat, contact_id)

    # ------------------------------------------------------------------ one chat

    def start_request(self) -> dict[str, Any]:
        life = self.life
        request: dict[str, Any] = {
            "InstanceId": self.instance_id,
            "ContactFlowId": self.contact_flow_id,
            "ParticipantDetails": {"DisplayName": DISPLAY_NAME},
            "ClientToken": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
        }
        if len(self._content_types) > 1:
            request["SupportedMessagingContentTypes"] = self._content_types
        if life.chat_duration_minutes:
            request["ChatDurationInMinutes"] = int(life.chat_duration_minutes)
        if life.persistent and self.last_ended_contact:
            # AWS: ENTIRE_PAST_SESSION takes the first contact of a past session (and continues from its
            # most recent ended contact); FROM_SEGMENT continues from exactly the contact named.
            source = self.session_first_contact if life.persistent == "ENTIRE_PAST_SESSION" else None
            request["PersistentChat"] = {
                "RehydrationType": life.persistent,
                "SourceContactId": source or self.last_ended_contact,
            }
        return request

    def live_chat(self, arrival: Arrival) -> None:
        """Live one chat for this arrival (returns when it has ended, or failed to start)."""
        self.started_chats += 1
        chat = f"{self.name}-{self.started_chats}"
        stage = arrival.stage
        life = self.life
        request = self.start_request()
        self.recorder.intend(request["ClientToken"], stage, chat, arrival.t_intended)
        start = self.call(START_CHAT, stage, chat, t_intended=arrival.t_intended, **request)
        if start.outcome != OK:
            return
        contact_id = start.response["ContactId"]
        live = self.chats.started(chat, contact_id, stage)
        participant_token = start.response["ParticipantToken"]
        ending = self.ending
        socket = None
        websocket = life.websocket and self.open_socket is not None
        if life.connect and not (life.connect_delay_s > 0 and ending.wait(life.connect_delay_s)):
            connection = self.call(
                CREATE_CONNECTION,
                stage,
                chat,
                contact_id,
                ParticipantToken=participant_token,
                Type=["WEBSOCKET", "CONNECTION_CREDENTIALS"] if websocket else ["CONNECTION_CREDENTIALS"],
                ConnectParticipant=True,
            )
            if connection.outcome == OK:
                live.connection_token = connection.response["ConnectionCredentials"]["ConnectionToken"]
                if websocket:
                    assert self.open_socket is not None
                    socket = self.open_socket(
                        (connection.response.get("Websocket") or {}).get("Url", ""),
                        record=partial(self.socket_row, stage, chat, contact_id),
                        chat_started=start.t_start,
                    )
        del participant_token
        try:
            self.talk_and_end(live, socket)
        finally:
            if socket is not None:
                socket.close(settle=not ending.is_set())

    def talk_and_end(self, live: Any, socket: Any) -> None:
        """Messages, hold and the end of a started chat (`socket`: its open websocket, or None)."""
        life, ending = self.life, self.ending
        stage, chat, contact_id = live.stage, live.chat, live.contact_id
        if live.connection_token:
            for n in range(1, life.messages + 1):
                if ending.wait(life.message_interval_s):
                    break
                content = message_content(life.message_content_type, n)
                sent = self.call(
                    SEND_MESSAGE,
                    stage,
                    chat,
                    contact_id,
                    ConnectionToken=live.connection_token,
                    ContentType=life.message_content_type,
                    Content=content,
                )
                if socket is not None and sent.outcome == OK:
                    socket.expect_echo((sent.response or {}).get("Id"), content, sent.t_start)
        hold_s = life.hold.sample(self.rng)
        if hold_s > 0 and not ending.is_set():
            ending.wait(hold_s)
        if ending.is_set():
            # The run is over: every customer cut short at once would end its chat in the same
            # instant and earn a storm of throttles; the clean-up ends them all, paced (harness/chats.py).
            return
        self.end_chat(live, socket)

    def end_chat(self, live: Any, socket: Any = None) -> bool:
        """End a live chat by end_by (StopContact when not connected); True once it has ended. With
        `socket`, the ending call that ended it starts a ChatEndedDelivery measurement."""
        use_disconnect = self.life.end_by == "disconnect" and live.connection_token
        for attempt in range(END_TRIES):
            if attempt:
                self.sleep(END_PAUSE_S * attempt * (0.5 + self.rng.random()))
            if use_disconnect:
                call = self.call(
                    DISCONNECT, live.stage, live.chat, live.contact_id,
                    ConnectionToken=live.connection_token,
                )  # fmt: skip
            else:
                call = self.call(
                    STOP_CONTACT, live.stage, live.chat, live.contact_id,
                    InstanceId=self.instance_id, ContactId=live.contact_id,
                )  # fmt: skip
            result = end_result(call.operation, call.http_status, call.error_code)
            if result in (ENDED, ALREADY_ENDED):
                if socket is not None and result == ENDED:
                    socket.expect_chat_ended(call.t_start)
                self.chats.ended(live.contact_id)
                self.last_ended_contact = live.contact_id
                if self.session_first_contact is None:
                    self.session_first_contact = live.contact_id
                return True
            if result != RETRY:
                return False
            if call.operation == DISCONNECT and call.outcome != OK and not call.outcome.startswith("throttled"):
                use_disconnect = False  # the connection is gone: end the contact itself
        return False
