"""The chat websocket (ASGI "websocket" scope), served on the emulator's port and event loop.

URL: `ws://<Host>/connect/<url token>` as CreateParticipantConnection returned it. The upgrade is
refused (HTTP 403, counted `refused`) when the URL token is unknown or older than 100 emulated seconds,
its chat has ended, or the participant already has max_sockets_per_participant open sockets.

Frames (client -> server, answers byte for byte as ChatJS expects):
  {"topic":"aws/subscribe","content":{"topics":["aws/chat"]}}
      -> {"topic":"aws/subscribe","content":{"status":"success","topics":["aws/chat"]}}
  {"topic":"aws/heartbeat"} -> {"topic":"aws/heartbeat"}
  {"topic":"aws/ping"}      -> {"topic":"aws/ping","statusCode":200,"statusContent":"OK"}
  anything else             -> a gateway-style error {"message":"Forbidden","connectionId":..,"requestId":..}
Every transcript item of the chat is pushed to each subscribed socket, in order, as
{"topic":"aws/chat","contentType":"application/json","content":"<item as a JSON string>"}. When the chat
ends, chat.ended is pushed and then the server closes the socket (code 1000).

The customer's first subscription of a chat (its first socket's subscribe frame) is answered, then
gets every Item that came before it except the customer's own (the flow's greeting, the agent
joining and its replies), in order and unchanged (same Id and AbsoluteTime as in GetTranscript). A real
customer sees the flow's first message however late its socket subscribes, because ChatJS loads the
transcript on connect; without this hold a greeting due before the subscription would reach nobody
(an assumption, docs/emulator.md). Later subscriptions (a refresh, a second socket) get live Items only.

The hub is the store's observer (model.py calls item() and ended() synchronously); each socket has a
queue drained by its own writer task, so the model never awaits. A ticker task (started with the
first request) runs the store's due deadlines and flow actions every TICK_REAL_S real seconds, so
timed events (duration, unconnected timeout, greeting, agent) are pushed without waiting for a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

from chatload.emulator.contacts import Contact, new_uuid
from chatload.emulator.model import SOCKET_COUNTERS, ChatStore

TICK_REAL_S = 0.02
SUBSCRIBED = '{"topic":"aws/subscribe","content":{"status":"success","topics":["aws/chat"]}}'
SUBSCRIBE_FAILED = '{"topic":"aws/subscribe","content":{"status":"failure","topics":[]}}'
HEARTBEAT = '{"topic":"aws/heartbeat"}'
PING = '{"topic":"aws/ping","statusCode":200,"statusContent":"OK"}'
_CLOSE = object()


def _chat_frame(item: dict[str, Any]) -> str:
    """A transcript Item as the `aws/chat` frame that carries it."""
    return json.dumps(
        {"topic": "aws/chat", "contentType": "application/json", "content": json.dumps(item)},
        separators=(",", ":"),
    )


class Socket:
    __slots__ = ("connection_id", "contact_id", "participant", "queue", "subscribed")

    def __init__(self, contact_id: str, participant: str) -> None:
        self.contact_id = contact_id
        self.participant = participant
        self.connection_id = new_uuid()
        self.subscribed = False
        self.queue: asyncio.Queue[Any] = asyncio.Queue()


class Hub:
    """All open sockets by chat, and their counters."""

    def __init__(self, store: ChatStore) -> None:
        self.store = store
        self.by_contact: dict[str, list[Socket]] = {}
        self.counts = dict.fromkeys(SOCKET_COUNTERS, 0)
        self.ticker: asyncio.Task | None = None
        store.observer = self

    # ---- observer (called by the model) --------------------------------------------------------
    def item(self, contact: Contact, item: dict[str, Any]) -> None:
        sockets = self.by_contact.get(contact.id)
        if not sockets:
            return
        frame = _chat_frame(item)
        for sock in sockets:
            if sock.subscribed:
                sock.queue.put_nowait(frame)

    def ended(self, contact: Contact) -> None:
        for sock in self.by_contact.get(contact.id, ()):
            sock.queue.put_nowait(_CLOSE)

    def reset(self) -> None:
        for sockets in self.by_contact.values():
            for sock in sockets:
                sock.queue.put_nowait(_CLOSE)
        self.counts = dict.fromkeys(SOCKET_COUNTERS, 0)
        self.counts["open"] = sum(len(s) for s in self.by_contact.values())

    def state(self) -> dict[str, int]:
        return dict(self.counts)

    # ---- the ticker ----------------------------------------------------------------------------
    def start(self) -> None:
        if self.ticker is None:
            self.ticker = asyncio.get_running_loop().create_task(self._tick())

    async def _tick(self) -> None:
        store = self.store
        while True:
            await asyncio.sleep(TICK_REAL_S)
            now = store.clock.now()
            if (store.expiries and store.expiries[0][0] <= now) or (store.agenda and store.agenda[0][0] <= now):
                try:
                    store.advance(now)
                except Exception:  # a bug must not stop the ticker
                    import traceback

                    traceback.print_exc()

    # ---- one socket ----------------------------------------------------------------------------
    def _admit(self, path: str) -> Socket | str:
        store = self.store
        if not path.startswith("/connect/"):
            return "unknown path"
        entry = store.ws_urls.get(path[9:])
        now = store.clock.now()
        if entry is None or entry[1] <= now:
            return "expired or unknown URL"
        contact = store.contacts.get(entry[0])
        if contact is None or contact.ended is not None:
            return "chat ended"
        sockets = self.by_contact.get(contact.id, [])
        if len(sockets) >= store.config.max_sockets_per_participant:
            return "too many sockets"
        return Socket(contact.id, contact.participant_id)

    async def serve(self, scope: dict, receive: Callable, send: Callable) -> None:
        first = await receive()
        if first["type"] != "websocket.connect":
            return
        admitted = self._admit(scope.get("path", ""))
        if isinstance(admitted, str):
            self.counts["refused"] += 1
            await send({"type": "websocket.close", "code": 1008})  # before accept: HTTP 403
            return
        sock = admitted
        await send({"type": "websocket.accept"})
        self.by_contact.setdefault(sock.contact_id, []).append(sock)
        self.counts["open"] += 1
        self.counts["opened"] += 1
        writer = asyncio.get_running_loop().create_task(self._write(sock, send))
        by_client = True
        try:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    break
                self.counts["frames_received"] += 1
                answer = self._answer(sock, message.get("text"), message.get("bytes"))
                if answer is not None:
                    sock.queue.put_nowait(answer)
                    if answer == SUBSCRIBED:
                        self._deliver_held(sock)
        finally:
            if not writer.done():
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await writer
            elif not writer.cancelled() and writer.exception() is None and writer.result() is True:
                by_client = False
            sockets = self.by_contact.get(sock.contact_id)
            if sockets is not None and sock in sockets:
                sockets.remove(sock)
                if not sockets:
                    del self.by_contact[sock.contact_id]
            self.counts["open"] -= 1
            self.counts["closed_by_client" if by_client else "closed_by_server"] += 1

    async def _write(self, sock: Socket, send: Callable) -> bool:
        """Send the socket's queued frames in order; True once it closed the socket (server side)."""
        while True:
            frame = await sock.queue.get()
            if frame is _CLOSE:
                with contextlib.suppress(Exception):
                    await send({"type": "websocket.close", "code": 1000})
                return True
            try:
                await send({"type": "websocket.send", "text": frame})
            except Exception:
                return False
            if frame.startswith('{"topic":"aws/chat"'):
                self.counts["frames_pushed"] += 1

    def _deliver_held(self, sock: Socket) -> None:
        """On the customer's first subscription of its chat, queue (after the subscribe answer) the Items
        that came before it, the customer's own excepted; later Items follow live, so order holds."""
        contact = self.store.contacts.get(sock.contact_id)
        if contact is None or contact.subscribed:
            return
        contact.subscribed = True
        for entry in contact.messages:
            if entry["ParticipantRole"] != "CUSTOMER":
                sock.queue.put_nowait(_chat_frame(entry))

    def _answer(self, sock: Socket, text: str | None, data: bytes | None) -> str | None:
        try:
            frame = json.loads(text if text is not None else (data or b""))
        except (ValueError, RecursionError, UnicodeDecodeError):
            frame = None
        topic = frame.get("topic") if isinstance(frame, dict) else None
        if topic == "aws/heartbeat":
            self.counts["heartbeats"] += 1
            return HEARTBEAT
        if topic == "aws/ping":
            self.counts["heartbeats"] += 1
            return PING
        if topic == "aws/subscribe":
            content = frame.get("content") if isinstance(frame, dict) else None
            topics = content.get("topics") if isinstance(content, dict) else None
            if isinstance(topics, list) and "aws/chat" in topics:
                sock.subscribed = True
                return SUBSCRIBED
            return SUBSCRIBE_FAILED
        return json.dumps({"message": "Forbidden", "connectionId": sock.connection_id, "requestId": new_uuid()})
