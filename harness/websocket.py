"""The customer's chat websocket (connect-facts.md, "The chat websocket"): protocol, session, socket.

Three layers, each testable alone:

- the protocol (pure functions): the frames the client sends (`subscribe_frame`, `HEARTBEAT_FRAME`),
  `parse_frame` for what it receives, and the tests on a transcript item (`is_chat_ended`,
  `is_response`, `is_echo`);
- `SocketState` (pure): what one chat's socket has seen, fed frame by frame with their arrival times,
  and the measurements waiting for a frame (`Expectation`); `Subscription` (pure): ChatJS's subscribe,
  resent when unanswered or refused, as a state machine over what `SocketState` saw;
- `ChatSocket`: one chat's open socket over an injected connection (`recv_text`, `send_text`, `close`,
  `abort`), a reader loop and a heartbeat loop started through an injected `spawn`, rows handed to
  an injected `record`. `open_chat_socket` opens one through harness/wsclient.py (wsproto over
  Locust's gevent-patched sockets), the only network code the socket uses.

The customer (pure core) never imports this module: the runtime injects `open_chat_socket` (bound to
its spawner and clock) as the customer's `open_socket`. Neither the socket URL (it carries a token)
nor a frame's or an exception's text ever reaches a row or a log.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
from collections import deque
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
SUBSCRIBE_RESEND_S = 1.0  # ChatJS resends a subscribe frame left unanswered this long
SUBSCRIBE_RETRY_S = 0.5  # ... and sends it again this long after a "failure" answer
# aws/chat frames a socket keeps for measurements asked for after their frame came (an echo can beat
# SendMessage's answer): the latest few, not the whole chat (memory stays flat however long it lasts).
RECENT_FRAMES = 16
CHAT_TOPIC = "aws/chat"
SUBSCRIBE_TOPIC = "aws/subscribe"
HEARTBEAT_TOPIC = "aws/heartbeat"
HEARTBEAT_FRAME = json.dumps({"topic": HEARTBEAT_TOPIC})
SUCCESS = "success"  # the subscribe answer's status that subscribes
CHAT_ENDED = "application/vnd.amazonaws.connect.event.chat.ended"
# Roles whose frames answer the customer (the first one after StartChatContact is FirstResponse).
RESPONDER_ROLES = frozenset({"SYSTEM", "AGENT", "CUSTOM_BOT"})
GATEWAY_ERROR = "GatewayError"  # error_code of a gateway error frame ({"message": ...}); its text is not kept

Record = Callable[..., Any]  # record(operation, outcome, *, t_start, latency_ms, http_status=0, error_code="")


# ------------------------------------------------------------------ protocol (pure)


def subscribe_frame() -> str:
    return json.dumps({"topic": SUBSCRIBE_TOPIC, "content": {"topics": [CHAT_TOPIC]}})


SUBSCRIBE_FRAME = subscribe_frame()


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
    """What one chat's socket has seen; `feed` each frame with its arrival time (epoch s).

    Only what a measurement can still ask for is kept, so a long chat costs no more memory than a
    short one: the latest RECENT_FRAMES aws/chat frames, the arrival of the first response and of
    chat.ended, and the subscribe answer."""

    recent: deque[tuple[float, Frame]] = field(default_factory=lambda: deque(maxlen=RECENT_FRAMES))
    pending: list[Expectation] = field(default_factory=list)
    subscribe: str = ""  # SUCCESS once subscribed (it stays); else the last answer ("failure", GATEWAY_ERROR) or ""
    subscribe_at: float = math.nan  # that answer's arrival
    answers: int = 0  # subscribe answers (gateway errors included) until subscribed: a new one is news
    heartbeat_sent: float | None = None  # unanswered heartbeat
    first_response_at: float | None = None  # the first response's arrival
    ended_at: float | None = None  # chat.ended's arrival

    def feed(self, frame: Frame, now: float) -> list[Result]:
        """Take a frame; the expectations it met, as ok results."""
        item = frame.item
        if item is not None:
            self.recent.append((now, frame))
            if self.first_response_at is None and is_response(item):
                self.first_response_at = now
            if self.ended_at is None and is_chat_ended(item):
                self.ended_at = now
        elif frame.topic == HEARTBEAT_TOPIC:
            sent, self.heartbeat_sent = self.heartbeat_sent, None
            if sent is not None:  # its round trip: a Heartbeat row (the report counts them)
                beat = Result(HEARTBEAT, OK, sent, (now - sent) * 1000.0)
                return [beat, *self._met(frame, now)] if self.pending else [beat]
        elif self.subscribe != SUCCESS and (frame.error or (frame.topic == SUBSCRIBE_TOPIC and frame.status)):
            self.subscribe = GATEWAY_ERROR if frame.error else frame.status
            self.subscribe_at = now
            self.answers += 1
        return self._met(frame, now) if self.pending else []

    def _met(self, frame: Frame, now: float) -> list[Result]:
        met = [e for e in self.pending if e.matches(frame)]
        if met:
            self.pending = [e for e in self.pending if e not in met]
        return [Result(e.operation, OK, e.t_start, (now - e.t_start) * 1000.0) for e in met]

    def seen(self, matches: Callable[[Frame], bool], since: float) -> float | None:
        """The arrival of the first frame kept that `matches`, at or after `since` (None: none).
        The first response and chat.ended are remembered beyond the recent frames: FirstResponse
        and ChatEndedDelivery may be asked for after many frames."""
        for mark, at in ((first_response, self.first_response_at), (chat_ended, self.ended_at)):
            if matches is mark and at is not None and at >= since:
                return at
        return next((at for at, frame in self.recent if at >= since and matches(frame)), None)

    def expect(self, expectation: Expectation) -> Result | None:
        """Wait for a frame, or the ok result at once when one already seen (at or after its start) meets it."""
        at = self.seen(expectation.matches, expectation.t_start)
        if at is not None:
            return Result(expectation.operation, OK, expectation.t_start, (at - expectation.t_start) * 1000.0)
        self.pending.append(expectation)
        return None

    def overdue(self, now: float, *, all_: bool = False, outcome: str = TIMEOUT) -> list[Result]:
        """Drop the expectations past their deadline (every one with `all_`), as `outcome` results."""
        gone = [e for e in self.pending if all_ or now >= e.deadline]
        self.pending = [e for e in self.pending if e not in gone]
        return [Result(e.operation, outcome, e.t_start, (min(now, e.deadline) - e.t_start) * 1000.0) for e in gone]

    def censor(self, now: float) -> None:
        """The chat has ended: drop, without a result, the expectations a closing socket does not wait
        for (FirstResponse) that were not yet due: they never had their chance (a censored wait)."""
        self.pending = [e for e in self.pending if e.settle or now >= e.deadline]

    def settle_deadline(self) -> float | None:
        """When the last expectation a closing socket waits for times out (None: none left)."""
        return max((e.deadline for e in self.pending if e.settle), default=None)


@dataclass(slots=True)
class Subscription:
    """ChatJS's subscribe (connect-facts.md), as one Subscribe row: the frame is sent again when no
    answer came within SUBSCRIBE_RESEND_S of a send, and SUBSCRIBE_RETRY_S after a "failure" answer; a
    gateway error frame ({"message": ...}) is no answer to ChatJS (it only logs it). The row's latency
    runs from the first send to the success frame; without one by `deadline` (websocket_wait) the
    client gives up: `client_error` with the last answer's code (SubscribeFailure, GatewayError), else
    `timeout`, both with the wait as latency. ChatJS's own limits (3 unanswered resends, 5 failures in
    a row) are not applied: the harness measures until websocket_wait, as for every other frame.

    `step(state, now, gone)` says what to do; the socket sends when told and calls `sent(now)`."""

    t0: float
    deadline: float
    send_at: float  # when the frame is (re)sent, unless an answer comes first
    sends: int = 0
    answers: int = 0  # the state's answers taken into account

    @classmethod
    def starting(cls, t0: float, wait_s: float) -> Subscription:
        return cls(t0, t0 + wait_s, t0)

    def sent(self, now: float) -> None:
        self.sends += 1
        self.send_at = now + SUBSCRIBE_RESEND_S

    def step(self, state: SocketState, now: float, gone: bool) -> Result | float | None:
        """The Subscribe row once settled; else None (send the frame now) or when to look again (epoch s)."""
        if state.subscribe == SUCCESS:
            return Result(SUBSCRIBE, OK, self.t0, (state.subscribe_at - self.t0) * 1000.0)
        if gone:
            return Result(SUBSCRIBE, CONNECTION_ERROR, self.t0, (now - self.t0) * 1000.0)
        if state.answers != self.answers:
            self.answers = state.answers
            if state.subscribe != GATEWAY_ERROR:  # a refusal: ask again soon
                self.send_at = state.subscribe_at + SUBSCRIBE_RETRY_S
        if now >= self.deadline:
            waited = (self.deadline - self.t0) * 1000.0
            if state.subscribe:
                code = GATEWAY_ERROR if state.subscribe == GATEWAY_ERROR else "SubscribeFailure"
                return Result(SUBSCRIBE, CLIENT_ERROR, self.t0, waited, error_code=code)
            return Result(SUBSCRIBE, TIMEOUT, self.t0, waited)
        if now >= self.send_at:
            return None
        return min(self.send_at, self.deadline)


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
    and wakes the reader). `spawn(fn)` starts fn concurrently and returns something with `join(timeout)`.
    `condition` (default a threading.Condition, gevent's under Locust) guards the state between the
    reader and the chat; tests pass one whose `wait` moves a fake clock."""

    def __init__(
        self,
        conn: Any,
        *,
        record: Record,
        clock: Callable[[], float],
        spawn: Callable[[Callable[[], Any]], Any],
        wait_s: float,
        heartbeat_s: float = HEARTBEAT_S,
        condition: Any = None,
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
        self._cond = threading.Condition() if condition is None else condition
        # Set once closing or gone: the heartbeat loop sleeps on it (one timer per beat, no lock dance).
        self._quiet = threading.Event()
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
            recv, take = self.conn.recv_text, self._take
            while (text := recv()) is not None:
                take(text)
        except Exception:  # any failure of the socket ends the reader; no text is kept
            dropped = True
        with self._cond:
            self.gone = True
            self._quiet.set()
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

    def _take(self, text: str | bytes) -> None:
        """One frame from the server (the reader's hot path: one parse, one lock, rows only when met)."""
        frame = parse_frame(text)
        if frame is None:
            return
        with self._cond:
            results = self.state.feed(frame, self.clock())
            ended = self.state.ended_at is not None and not self.closing
            if ended:
                self.closing = True
                self._quiet.set()
            self._cond.notify_all()
        if results:
            self._emit(results)
        if ended:
            self._send_close()  # the chat ended: the client closes its socket

    def _beat(self) -> None:
        while not self._quiet.wait(self.heartbeat_s):
            with self._cond:
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
        """Subscribe as ChatJS does (`Subscription`: resent when unanswered or refused, until
        websocket_wait), one Subscribe row; start heartbeats on success."""
        sub = Subscription.starting(self.clock(), self.wait_s)
        while True:
            with self._cond:
                step = sub.step(self.state, self.clock(), self.gone)
                while isinstance(step, float):
                    self._cond.wait(timeout=max(0.0, step - self.clock()))
                    step = sub.step(self.state, self.clock(), self.gone)
            if step is not None:
                break
            sending = self.clock()
            try:
                self.conn.send_text(SUBSCRIBE_FRAME)
            except Exception as exc:
                step = Result(SUBSCRIBE, CONNECTION_ERROR, sub.t0, (self.clock() - sub.t0) * 1000.0,
                              error_code=type(exc).__name__)  # fmt: skip
                break
            sub.sent(sending)
        self._emit([step])
        if step.outcome != OK:
            return False
        self._heart = self.spawn(self._beat)
        return True

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
        a timeout when none came within websocket_wait of subscribing (no row when the chat ended sooner)."""
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
        drop reported its rows already). A FirstResponse whose wait was still not over then is not
        measured: the chat ended before an answer was due."""
        with self._cond:
            cap = math.inf if settle else self.clock() + CLOSE_WAIT_S
            deadline = self.state.settle_deadline()
            while deadline is not None and not self.gone:
                left = min(deadline, cap) - self.clock()
                if left <= 0:
                    break
                self._cond.wait(timeout=left)
                deadline = self.state.settle_deadline()
            self.state.censor(self.clock())
            results = self.state.overdue(self.clock(), all_=True)
            already = self.closing
            self.closing = True
            self._quiet.set()
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


# ------------------------------------------------------------------ opening one (harness/wsclient.py)


def connect_outcome(exc: BaseException) -> tuple[str, int, str]:
    """(outcome, http_status, error_code) of a failed upgrade: a refusal by its HTTP status, like a call."""
    from chatload.harness.outcome import classify
    from chatload.harness.wsclient import UpgradeRefused

    if isinstance(exc, UpgradeRefused):
        return classify(exc.status_code), exc.status_code, ""
    if isinstance(exc, TimeoutError):
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
    `connect(url, timeout_s)` opens the connection (harness/wsclient.py's: `wss://` verifies TLS)."""
    if connect is None:
        from chatload.harness.wsclient import connect
    t0 = clock()
    if not url:
        record(WEBSOCKET_CONNECT, CLIENT_ERROR, t_start=t0, latency_ms=math.nan, error_code="NoWebsocketUrl")
        return None
    try:
        conn = connect(url, timeout_s=wait_s)
    except Exception as exc:  # classified; no message text kept (it may carry the URL)
        outcome, status, code = connect_outcome(exc)
        record(WEBSOCKET_CONNECT, outcome, t_start=t0, latency_ms=(clock() - t0) * 1000.0, http_status=status,
               error_code=code)  # fmt: skip
        return None
    del url
    record(WEBSOCKET_CONNECT, OK, t_start=t0, latency_ms=(clock() - t0) * 1000.0, http_status=101)
    sock = ChatSocket(conn, record=record, clock=clock, spawn=spawn, wait_s=wait_s,
                      heartbeat_s=heartbeat_s)  # fmt: skip
    sock.start()
    if not sock.subscribe():
        sock.close(settle=False)
        return None
    sock.expect_first_response(chat_started)
    return sock
