"""The customer's chat websocket (connect-facts.md, "The chat websocket"): protocol, session, socket.

Three layers, each testable alone:

- the protocol (pure functions): the frames the client sends (`subscribe_frame`, `HEARTBEAT_FRAME`),
  `parse_frame` for what it receives, and the tests on a transcript item (`is_chat_ended`,
  `is_response`, `is_echo`);
- `SocketState` (pure): what one chat's socket has seen, fed frame by frame with their arrival times,
  and the measurements waiting for a frame (`Expectation`);
- `ChatSocket`: one chat's open socket over an injected connection (`recv_text`, `send_text`, `close`,
  `abort`), a reader loop and a heartbeat loop started through an injected `spawn`, rows handed to
  an injected `record`. `open_chat_socket` opens one with websocket-client (patched sockets under
  Locust's gevent): the only place here that touches the network.

The customer (pure core) never imports this module: the runtime injects `open_chat_socket` (bound to
its spawner and clock) as the customer's `open_socket`. Neither the socket URL (it carries a token)
nor a frame's or an exception's text ever reaches a row or a log.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chatload.contracts import (
    CHAT_ENDED_DELIVERY,
    CLIENT_ERROR,
    CONNECTION_ERROR,
    FIRST_RESPONSE,
    HEARTBEAT,
    MESSAGE_DELIVERY,
    OK,
    SUBSCRIBE,
    TIMEOUT,
    WEBSOCKET_CLOSE,
    WEBSOCKET_CONNECT,
)

HEARTBEAT_S = 10.0  # ChatJS's heartbeat period
CLOSE_WAIT_S = 1.0  # how long a closing socket waits for the server's close frame
CHAT_TOPIC = "aws/chat"
SUBSCRIBE_TOPIC = "aws/subscribe"
HEARTBEAT_TOPIC = "aws/heartbeat"
HEARTBEAT_FRAME = json.dumps({"topic": HEARTBEAT_TOPIC})
CHAT_ENDED = "application/vnd.amazonaws.connect.event.chat.ended"
# Roles whose frames answer the customer (the first one after StartChatContact is FirstResponse).
RESPONDER_ROLES = frozenset({"SYSTEM", "AGENT", "CUSTOM_BOT"})
GATEWAY_ERROR = "GatewayError"  # error_code of a gateway error frame ({"message": ...}); its text is not kept

Record = Callable[..., Any]  # record(operation, outcome, *, t_start, latency_ms, http_status=0, error_code="")


# ------------------------------------------------------------------ protocol (pure)


def subscribe_frame() -> str:
    return json.dumps({"topic": SUBSCRIBE_TOPIC, "content": {"topics": [CHAT_TOPIC]}})


@dataclass(frozen=True, slots=True)
class Frame:
    """A frame from the server: its topic, and what it carries.

    `item` is the transcript item of an aws/chat frame (its `content` is a JSON string), `status`
    the subscribe answer's ("success", "failure"), `error` True for a gateway error frame."""

    topic: str = ""
    item: dict | None = None
    status: str = ""
    error: bool = False


def parse_frame(text: str | bytes) -> Frame | None:
    """The frame in `text`, or None when it is not a JSON object."""
    try:
        data = json.loads(text)
    except (ValueError, TypeError):
        return None
    if not isinstance(data, dict):
        return None
    topic = data.get("topic")
    if not isinstance(topic, str):
        return Frame(error="message" in data)
    content = data.get("content")
    if topic == CHAT_TOPIC:
        if isinstance(content, str):
            try:
                content = json.loads(content)
            except ValueError:
                content = None
        return Frame(topic, item=content if isinstance(content, dict) else None)
    if topic == SUBSCRIBE_TOPIC and isinstance(content, dict):
        return Frame(topic, status=str(content.get("status", "")))
    return Frame(topic)


def is_chat_ended(item: dict) -> bool:
    return item.get("ContentType") == CHAT_ENDED


def is_response(item: dict) -> bool:
    """A frame from another participant (SYSTEM, AGENT or CUSTOM_BOT), the chat's end excepted."""
    return item.get("ParticipantRole") in RESPONDER_ROLES and not is_chat_ended(item)


def is_echo(item: dict, message_id: str | None, content: str) -> bool:
    """The customer's own message coming back: by its Id when SendMessage answered one, else by content."""
    if message_id:
        return item.get("Id") == message_id
    own = item.get("ParticipantRole") == "CUSTOMER" and item.get("Type") == "MESSAGE"
    return own and item.get("Content") == content


# ------------------------------------------------------------------ one socket's state (pure)


@dataclass(slots=True)
class Expectation:
    """A measurement waiting for a frame: `operation` from `t_start` until a frame `matches`; a
    timeout after `deadline`. `settle`: a closing socket waits for it until its deadline."""

    operation: str
    t_start: float
    deadline: float
    matches: Callable[[Frame], bool]
    settle: bool = True


@dataclass(frozen=True, slots=True)
class Result:
    """One row's worth: what `record` is called with."""

    operation: str
    outcome: str
    t_start: float
    latency_ms: float
    http_status: int = 0
    error_code: str = ""


@dataclass(slots=True)
class SocketState:
    """What one chat's socket has seen; `feed` each frame with its arrival time (epoch s)."""

    frames: list[tuple[float, Frame]] = field(default_factory=list)
    pending: list[Expectation] = field(default_factory=list)
    subscribe: str = ""  # "success", "failure", GATEWAY_ERROR, or "" (no answer yet)
    heartbeat_sent: float | None = None  # unanswered heartbeat
    ended_at: float | None = None  # chat.ended's arrival

    def feed(self, frame: Frame, now: float) -> list[Result]:
        """Take a frame; the expectations it met, as ok results."""
        self.frames.append((now, frame))
        if frame.error and not self.subscribe:
            self.subscribe = GATEWAY_ERROR
        elif frame.topic == SUBSCRIBE_TOPIC and frame.status:
            self.subscribe = frame.status
        elif frame.topic == HEARTBEAT_TOPIC:
            self.heartbeat_sent = None
        elif frame.item is not None and is_chat_ended(frame.item) and self.ended_at is None:
            self.ended_at = now
        met = [e for e in self.pending if e.matches(frame)]
        self.pending = [e for e in self.pending if e not in met]
        return [Result(e.operation, OK, e.t_start, (now - e.t_start) * 1000.0) for e in met]

    def expect(self, expectation: Expectation) -> Result | None:
        """Wait for a frame, or the ok result at once when one already seen (at or after its start) meets it."""
        for at, frame in self.frames:
            if at >= expectation.t_start and expectation.matches(frame):
                return Result(expectation.operation, OK, expectation.t_start, (at - expectation.t_start) * 1000.0)
        self.pending.append(expectation)
        return None

    def overdue(self, now: float, *, all_: bool = False, outcome: str = TIMEOUT) -> list[Result]:
        """Drop the expectations past their deadline (every one with `all_`), as `outcome` results."""
        gone = [e for e in self.pending if all_ or now >= e.deadline]
        self.pending = [e for e in self.pending if e not in gone]
        return [Result(e.operation, outcome, e.t_start, (min(now, e.deadline) - e.t_start) * 1000.0) for e in gone]

    def settle_deadline(self) -> float | None:
        """When the last expectation a closing socket waits for times out (None: none left)."""
        return max((e.deadline for e in self.pending if e.settle), default=None)


def echo_of(message_id: str | None, content: str) -> Callable[[Frame], bool]:
    return lambda frame: frame.item is not None and is_echo(frame.item, message_id, content)


def first_response(frame: Frame) -> bool:
    return frame.item is not None and is_response(frame.item)


def chat_ended(frame: Frame) -> bool:
    return frame.item is not None and is_chat_ended(frame.item)


# ------------------------------------------------------------------ one open socket (I/O injected)


class ChatSocket:
    """One chat's open, subscribed socket. `conn` has `recv_text()` (a text frame, None once the
    server closed), `send_text(s)`, `close()` (sends the close frame) and `abort()` (closes the socket
    and wakes the reader). `spawn(fn)` starts fn concurrently and returns something with `join(timeout)`."""

    def __init__(
        self,
        conn: Any,
        *,
        record: Record,
        clock: Callable[[], float],
        spawn: Callable[[Callable[[], Any]], Any],
        wait_s: float,
        heartbeat_s: float = HEARTBEAT_S,
    ) -> None:
        self.conn = conn
        self.record = record
        self.clock = clock
        self.spawn = spawn
        self.wait_s = wait_s
        self.heartbeat_s = heartbeat_s
        self.state = SocketState()
        self.opened_at = clock()
        self.closing = False  # we close it (or the chat ended): a close is no surprise
        self.gone = False  # the reader has stopped: nothing more arrives
        self.dropped = False  # ... because the socket closed unexpectedly
        self._cond = threading.Condition()  # gevent's under Locust's monkey patching
        self._reader: Any = None
        self._heart: Any = None

    def _emit(self, results: list[Result]) -> None:
        for r in results:
            self.record(
                r.operation, r.outcome, t_start=r.t_start, latency_ms=r.latency_ms,
                http_status=r.http_status, error_code=r.error_code,
            )  # fmt: skip

    # ---------------------------------------------------------------- the loops

    def start(self) -> None:
        self._reader = self.spawn(self._read)

    def _read(self) -> None:
        dropped = False
        try:
            while True:
                text = self.conn.recv_text()
                if text is None:
                    break
                frame = parse_frame(text)
                if frame is None:
                    continue
                with self._cond:
                    results = self.state.feed(frame, self.clock())
                    ended = self.state.ended_at is not None and not self.closing
                    if ended:
                        self.closing = True
                    self._cond.notify_all()
                self._emit(results)
                if ended:
                    self._send_close()  # the chat ended: the client closes its socket
        except Exception:  # any failure of the socket ends the reader; no text is kept
            dropped = True
        with self._cond:
            self.gone = True
            surprise = self.dropped = not self.closing
            now = self.clock()
            results = self.state.overdue(now, all_=True, outcome=CONNECTION_ERROR) if surprise else []
            self._cond.notify_all()
        if surprise:
            self._emit(results)
            self.record(
                WEBSOCKET_CLOSE, CONNECTION_ERROR, t_start=now, latency_ms=(now - self.opened_at) * 1000.0,
                error_code="Dropped" if dropped else "ClosedByServer",
            )  # fmt: skip

    def _beat(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self.closing or self.gone, timeout=self.heartbeat_s)
                if self.closing or self.gone:
                    return
                missed = self.state.heartbeat_sent
                self.state.heartbeat_sent = self.clock()
            if missed is not None:
                self.record(HEARTBEAT, TIMEOUT, t_start=missed, latency_ms=self.heartbeat_s * 1000.0)
            try:
                self.conn.send_text(HEARTBEAT_FRAME)
            except Exception:  # the reader reports the dropped socket
                return

    # ---------------------------------------------------------------- the chat's steps

    def subscribe(self) -> bool:
        """Send the subscribe frame and wait for its answer (a Subscribe row); start heartbeats on success."""
        t0 = self.clock()
        try:
            self.conn.send_text(subscribe_frame())
        except Exception as exc:
            self.record(SUBSCRIBE, CONNECTION_ERROR, t_start=t0, latency_ms=(self.clock() - t0) * 1000.0,
                        error_code=type(exc).__name__)  # fmt: skip
            return False
        with self._cond:
            self._cond.wait_for(lambda: self.state.subscribe or self.gone, timeout=self.wait_s)
            answer, gone = self.state.subscribe, self.gone
            answered_at = next((at for at, f in reversed(self.state.frames) if f.status or f.error), self.clock())
        if answer == "success":
            self.record(SUBSCRIBE, OK, t_start=t0, latency_ms=(answered_at - t0) * 1000.0)
            self._heart = self.spawn(self._beat)
            return True
        if answer:
            code = GATEWAY_ERROR if answer == GATEWAY_ERROR else "SubscribeFailure"
            self.record(SUBSCRIBE, CLIENT_ERROR, t_start=t0, latency_ms=(answered_at - t0) * 1000.0, error_code=code)
        elif gone:
            self.record(SUBSCRIBE, CONNECTION_ERROR, t_start=t0, latency_ms=(self.clock() - t0) * 1000.0)
        else:
            self.record(SUBSCRIBE, TIMEOUT, t_start=t0, latency_ms=self.wait_s * 1000.0)
        return False

    def _expect(self, operation: str, t_start: float, matches: Callable[[Frame], bool], *, settle: bool = True) -> None:
        with self._cond:
            result = self.state.expect(Expectation(operation, t_start, t_start + self.wait_s, matches, settle))
            results = [] if result is None else [result]
            if result is None and self.gone:  # nothing more can arrive
                outcome = CONNECTION_ERROR if self.dropped else TIMEOUT
                results = self.state.overdue(self.clock(), all_=True, outcome=outcome)
        self._emit(results)

    def expect_first_response(self, t_start: float) -> None:
        """FirstResponse: from StartChatContact (t_start) until the first frame of another participant;
        a timeout when none came within websocket_wait of subscribing, or before the chat ended."""
        with self._cond:
            result = self.state.expect(
                Expectation(FIRST_RESPONSE, t_start, self.clock() + self.wait_s, first_response, settle=False)
            )
        if result is not None:
            self._emit([result])

    def expect_echo(self, message_id: str | None, content: str, t_start: float) -> None:
        """MessageDelivery: from sending a message (t_start) until its echo arrives."""
        self._expect(MESSAGE_DELIVERY, t_start, echo_of(message_id, content))

    def expect_chat_ended(self, t_start: float) -> None:
        """ChatEndedDelivery: from the ending call (t_start) until the chat.ended frame; no row when the
        chat had ended (by someone else) before the call."""
        with self._cond:
            if self.state.ended_at is not None and self.state.ended_at < t_start:
                return
        self._expect(CHAT_ENDED_DELIVERY, t_start, chat_ended)

    def close(self, *, settle: bool = True) -> None:
        """Close the socket: first wait for the frames still expected, until their deadlines (without
        `settle`, when the run is ending: CLOSE_WAIT_S at most); what stays missing is a timeout (a
        drop reported its rows already)."""
        with self._cond:
            cap = math.inf if settle else self.clock() + CLOSE_WAIT_S
            deadline = self.state.settle_deadline()
            while deadline is not None and not self.gone:
                left = min(deadline, cap) - self.clock()
                if left <= 0:
                    break
                self._cond.wait(timeout=left)
                deadline = self.state.settle_deadline()
            results = self.state.overdue(self.clock(), all_=True)
            already = self.closing
            self.closing = True
            self._cond.notify_all()
        self._emit(results)
        if not already:
            self._send_close()
        if self._reader is not None:
            self._reader.join(timeout=CLOSE_WAIT_S)
        with contextlib.suppress(Exception):  # closing anyway
            self.conn.abort()
        for loop in (self._reader, self._heart):
            if loop is not None:
                loop.join(timeout=CLOSE_WAIT_S)

    def _send_close(self) -> None:
        with contextlib.suppress(Exception):  # a socket already gone
            self.conn.close()


# ------------------------------------------------------------------ the network (websocket-client)


class ClientConnection:
    """websocket-client's WebSocket as ChatSocket's `conn`."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws

    def recv_text(self) -> str | None:
        import websocket

        while True:
            opcode, data = self.ws.recv_data()  # answers pings itself
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return None
            if opcode in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
                return data.decode("utf-8", "replace")

    def send_text(self, text: str) -> None:
        self.ws.send(text)

    def close(self) -> None:
        self.ws.send_close()

    def abort(self) -> None:
        self.ws.abort()  # wakes a reader blocked in recv
        self.ws.shutdown()


def connect_outcome(exc: BaseException) -> tuple[str, int, str]:
    """(outcome, http_status, error_code) of a failed upgrade: a refusal by its HTTP status, like a call."""
    import websocket

    from chatload.harness.outcome import classify

    if isinstance(exc, websocket.WebSocketBadStatusException):
        status = int(getattr(exc, "status_code", 0) or 0)
        return classify(status), status, ""
    if isinstance(exc, websocket.WebSocketTimeoutException | TimeoutError):
        return TIMEOUT, 0, type(exc).__name__
    return CONNECTION_ERROR, 0, type(exc).__name__


def open_chat_socket(
    url: str,
    *,
    record: Record,
    chat_started: float,
    wait_s: float,
    clock: Callable[[], float],
    spawn: Callable[[Callable[[], Any]], Any],
    heartbeat_s: float = HEARTBEAT_S,
    connect: Callable[..., Any] | None = None,
) -> ChatSocket | None:
    """Open the chat's socket at `url` (a WebSocketConnect row), subscribe (a Subscribe row) and
    expect the first response; the ChatSocket, or None when it could not be opened and subscribed.
    `wss://` URLs verify TLS (websocket-client's default)."""
    if connect is None:
        import websocket

        connect = websocket.create_connection
    t0 = clock()
    if not url:
        record(WEBSOCKET_CONNECT, CLIENT_ERROR, t_start=t0, latency_ms=math.nan, error_code="NoWebsocketUrl")
        return None
    try:
        ws = connect(url, timeout=wait_s, enable_multithread=True)
    except Exception as exc:  # classified; no message text kept (it may carry the URL)
        outcome, status, code = connect_outcome(exc)
        record(WEBSOCKET_CONNECT, outcome, t_start=t0, latency_ms=(clock() - t0) * 1000.0, http_status=status,
               error_code=code)  # fmt: skip
        return None
    del url
    record(WEBSOCKET_CONNECT, OK, t_start=t0, latency_ms=(clock() - t0) * 1000.0, http_status=101)
    ws.settimeout(None)  # the reader waits as long as the chat lives
    sock = ChatSocket(ClientConnection(ws), record=record, clock=clock, spawn=spawn, wait_s=wait_s,
                      heartbeat_s=heartbeat_s)  # fmt: skip
    sock.start()
    if not sock.subscribe():
        sock.close(settle=False)
        return None
    sock.expect_first_response(chat_started)
    return sock
