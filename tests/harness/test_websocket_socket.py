"""ChatSocket without a network or threads: a fake wire (the connection and the condition) over a fake
clock, so ChatJS's subscribe (resent after 1 s unanswered, 500 ms after a refusal, until websocket_wait)
is checked to the millisecond; what a socket's state keeps of a long chat; the run's end; the wire
(harness/wsclient.py) over a socketpair."""

from __future__ import annotations

import heapq
import itertools
import json
import math
import socket
from collections.abc import Callable

import pytest
from support import FakeClock

from chatload.harness.websocket import (
    CHAT_ENDED,
    RECENT_FRAMES,
    SUBSCRIBE_FRAME,
    ChatSocket,
    Expectation,
    Frame,
    SocketState,
    Subscription,
    echo_of,
    first_response,
    open_chat_socket,
)
from chatload.harness.wsclient import WsConnection

SUCCESS = '{"topic":"aws/subscribe","content":{"status":"success","topics":["aws/chat"]}}'
FAILURE = '{"topic":"aws/subscribe","content":{"status":"failure","topics":[]}}'
GATEWAY = '{"message":"Forbidden","connectionId":"c","requestId":"r"}'
CLOSED = None  # in a script: the server closes the socket (the reader stops)

Answer = Callable[[int], list[tuple[float, str | None]]]  # n-th subscribe frame -> [(delay s, frame)]


class FakeWire:
    """ChatSocket's connection and condition over a FakeClock. What the client sends is answered by
    `answer(n)` (n: the subscribe frame's number from 1): frames due after a delay. The condition's
    `wait(timeout)` is where time passes: it delivers the next frame due within the timeout (moving the
    clock to it), else moves the clock by the whole timeout. No threads: the socket's reader is not
    started; frames go straight to its `_take`."""

    def __init__(self, clock: FakeClock, answer: Answer, *, fail_send: BaseException | None = None) -> None:
        self.clock = clock
        self.answer = answer
        self.fail_send = fail_send
        self.sent: list[tuple[float, str]] = []
        self.due: list[tuple[float, int, str | None]] = []
        self.order = itertools.count()
        self.sock: ChatSocket | None = None
        self.closed = False

    # ---- the connection
    def send_text(self, text: str) -> None:
        if self.fail_send is not None:
            raise self.fail_send
        self.sent.append((self.clock(), text))
        if text == SUBSCRIBE_FRAME:
            for delay, frame in self.answer(len(self.subscribes())):
                heapq.heappush(self.due, (self.clock() + delay, next(self.order), frame))

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def subscribes(self) -> list[float]:
        """When each subscribe frame was sent, relative to the first (s, rounded to the ms)."""
        times = [t for t, text in self.sent if text == SUBSCRIBE_FRAME]
        return [round(t - times[0], 3) for t in times]

    # ---- the condition
    def __enter__(self) -> FakeWire:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def notify_all(self) -> None:
        pass

    def wait(self, timeout: float | None = None) -> bool:
        assert timeout is not None and timeout >= 0, "the socket never waits without a bound"
        target = self.clock() + timeout
        if self.due and self.due[0][0] <= target:
            at, _, frame = heapq.heappop(self.due)
            self.clock.t = max(self.clock.t, at)
            assert self.sock is not None
            if frame is CLOSED:
                self.sock.gone = True
            else:
                self.sock._take(frame)
            return True
        self.clock.t = target
        return False


class Loop:
    """What `spawn` returns: never started (the fake wire delivers frames itself)."""

    def __init__(self, fn: Callable[[], object]) -> None:
        self.fn = fn

    def join(self, timeout: float | None = None) -> None:
        pass


def subscribe_over(answer: Answer, *, wait_s: float = 5.0, fail_send: BaseException | None = None):
    """Subscribe a ChatSocket over a fake wire: (subscribed?, rows as (operation, outcome, latency ms,
    error code), the wire)."""
    clock = FakeClock()
    wire = FakeWire(clock, answer, fail_send=fail_send)
    rows: list[tuple[str, str, float, str]] = []
    spawned: list[Loop] = []

    def record(operation, outcome, *, t_start, latency_ms, http_status=0, error_code=""):
        assert t_start == 1_000_000.0  # from the first send
        rows.append((operation, outcome, round(latency_ms, 3), error_code))

    def spawn(fn):
        spawned.append(Loop(fn))
        return spawned[-1]

    sock = ChatSocket(wire, record=record, clock=clock, spawn=spawn, wait_s=wait_s, condition=wire)
    wire.sock = sock
    ok = sock.subscribe()
    assert (len(spawned) == 1) == ok  # heartbeats start only once subscribed
    return ok, rows, wire


def always(*frames_after: tuple[float, str | None]) -> Answer:
    return lambda n: list(frames_after)


# ------------------------------------------------------------------ ChatJS's subscribe


def test_an_answered_subscribe_is_sent_once():
    ok, rows, wire = subscribe_over(always((0.05, SUCCESS)))
    assert ok and rows == [("Subscribe", "ok", 50.0, "")]
    assert wire.subscribes() == [0.0]


def test_an_unanswered_subscribe_is_resent_every_second():
    ok, rows, wire = subscribe_over(lambda n: [(0.1, SUCCESS)] if n == 3 else [])
    assert ok and wire.subscribes() == [0.0, 1.0, 2.0]
    assert rows == [("Subscribe", "ok", 2100.0, "")]  # one row, from the first send


def test_a_refused_subscribe_is_retried_after_500_ms():
    ok, rows, wire = subscribe_over(lambda n: [(0.1, FAILURE if n < 3 else SUCCESS)])
    assert ok and wire.subscribes() == [0.0, 0.6, 1.2]  # each 500 ms after the failure answer
    assert rows == [("Subscribe", "ok", 1300.0, "")]


def test_a_late_answer_to_the_first_frame_counts():
    # the first frame's answer comes after the resend went out: subscribed then; the second answer is no news
    ok, rows, wire = subscribe_over(lambda n: [(1.2, SUCCESS)])
    assert ok and wire.subscribes() == [0.0, 1.0]
    assert rows == [("Subscribe", "ok", 1200.0, "")]
    wire.wait(5.0)  # the resend's answer arrives
    assert wire.sock.state.subscribe == "success" and len(rows) == 1


def test_no_answer_until_websocket_wait_is_a_timeout():
    ok, rows, wire = subscribe_over(always(), wait_s=3.5)
    assert not ok and rows == [("Subscribe", "timeout", 3500.0, "")]
    assert wire.subscribes() == [0.0, 1.0, 2.0, 3.0]


def test_refusals_until_websocket_wait_are_a_client_error():
    ok, rows, wire = subscribe_over(always((0.1, FAILURE)), wait_s=2.0)
    assert not ok and rows == [("Subscribe", "client_error", 2000.0, "SubscribeFailure")]
    assert wire.subscribes() == [0.0, 0.6, 1.2, 1.8]


def test_a_gateway_error_is_no_answer_to_chatjs():
    # ChatJS only logs a {"message": ...} frame: the frame is resent after 1 s as if unanswered
    ok, rows, wire = subscribe_over(always((0.1, GATEWAY)), wait_s=2.5)
    assert not ok and rows == [("Subscribe", "client_error", 2500.0, "GatewayError")]
    assert wire.subscribes() == [0.0, 1.0, 2.0]
    # ... and a success after one still subscribes
    ok, rows, wire = subscribe_over(lambda n: [(0.1, GATEWAY if n == 1 else SUCCESS)])
    assert ok and rows == [("Subscribe", "ok", 1100.0, "")] and wire.subscribes() == [0.0, 1.0]


def test_a_socket_closed_while_subscribing():
    ok, rows, wire = subscribe_over(lambda n: [(0.2, FAILURE)] if n == 1 else [(0.3, CLOSED)])
    assert not ok and rows == [("Subscribe", "connection_error", 1000.0, "")]  # 0.2 + 0.5 + 0.3
    assert wire.subscribes() == [0.0, 0.7]
    ok, rows, _ = subscribe_over(always(), fail_send=BrokenPipeError())
    assert not ok and rows == [("Subscribe", "connection_error", 0.0, "BrokenPipeError")]


def test_the_subscription_as_a_state_machine():
    state, sub = SocketState(), Subscription.starting(10.0, 3.0)
    assert sub.step(state, 10.0, False) is None  # send now
    sub.sent(10.0)
    assert sub.step(state, 10.0, False) == 11.0  # look again when the resend is due
    state.feed(Frame("aws/subscribe", status="failure"), 10.2)
    assert sub.step(state, 10.2, False) == pytest.approx(10.7)  # a refusal brings the resend forward
    assert sub.step(state, 10.7, False) is None
    sub.sent(10.7)
    state.feed(Frame("aws/subscribe", status="success"), 10.8)
    state.feed(Frame("aws/subscribe", status="failure"), 10.9)  # once subscribed, it stays so
    done = sub.step(state, 11.0, False)
    assert (done.outcome, done.latency_ms, sub.sends) == ("ok", pytest.approx(800.0), 2)


# ------------------------------------------------------------------ what a socket keeps


def chat(role: str, n: int, content_type: str = "text/plain") -> Frame:
    item = {"Id": f"i{n}", "Type": "MESSAGE", "ParticipantRole": role, "Content": f"m{n}", "ContentType": content_type}
    return Frame("aws/chat", item=item)


def test_a_long_chat_keeps_only_what_measurements_need():
    state = SocketState()
    state.feed(chat("SYSTEM", 0), 1.0)  # the greeting
    for n in range(1, 1001):
        state.feed(chat("CUSTOMER", n), 1.0 + n)
        state.feed(Frame("aws/heartbeat"), 1.0 + n)
    state.feed(Frame("aws/chat", item={"ContentType": CHAT_ENDED, "ParticipantRole": "SYSTEM"}), 2000.0)
    assert len(state.recent) == RECENT_FRAMES  # not the whole chat
    # the first response and the end are remembered whatever came between
    first = state.expect(Expectation("FirstResponse", 0.5, math.inf, first_response))
    assert first.outcome == "ok" and first.latency_ms == 500.0
    assert state.ended_at == 2000.0
    # a recent echo is found at once; one long gone is waited for
    assert state.expect(Expectation("MessageDelivery", 999.9, 2010.0, echo_of("i999", ""))).outcome == "ok"
    assert state.expect(Expectation("MessageDelivery", 1.5, 2010.0, echo_of("i1", ""))) is None
    assert len(state.pending) == 1


def test_a_chat_that_ends_censors_a_first_response_not_yet_due():
    """A chat that ended (by its customer or the run's end) before its FirstResponse wait was over never
    had its chance to hear an answer: no FirstResponse row.
    One whose wait had passed is still a timeout, and what a closing socket waits for (an echo) too."""
    state = SocketState()
    state.expect(Expectation("FirstResponse", 0.0, 10.0, first_response, settle=False))
    state.expect(Expectation("MessageDelivery", 4.0, 14.0, echo_of("m1", "")))
    state.censor(5.0)
    assert [e.operation for e in state.pending] == ["MessageDelivery"]
    late = SocketState()
    late.expect(Expectation("FirstResponse", 0.0, 10.0, first_response, settle=False))
    late.censor(10.0)
    assert [r.outcome for r in late.overdue(10.0, all_=True)] == ["timeout"]


# ------------------------------------------------------------------ the wire (harness/wsclient.py)


def open_pair():
    """A client WsConnection over one end of a socketpair, and the server's wsproto on the other."""
    from wsproto import ConnectionType, WSConnection
    from wsproto.events import AcceptConnection, Request

    client_end, server_end = socket.socketpair()
    client, server = WSConnection(ConnectionType.CLIENT), WSConnection(ConnectionType.SERVER)
    server.receive_data(client.send(Request(host="127.0.0.1", target="/connect/x")))
    assert isinstance(next(server.events()), Request)
    client.receive_data(server.send(AcceptConnection()))
    assert isinstance(next(client.events()), AcceptConnection)
    return WsConnection(client_end, client), server, server_end


def test_the_connection_reads_text_answers_pings_and_ends_on_the_servers_close():
    from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage

    conn, server, end = open_pair()
    try:
        end.sendall(
            server.send(Ping(payload=b"hi")) + server.send(TextMessage(data="hé", message_finished=False))
            + server.send(TextMessage(data="llo")) + server.send(BytesMessage(data=b"\xff"))
            + server.send(CloseConnection(code=1000))
        )  # fmt: skip
        assert conn.recv_text() == "héllo"  # the ping answered on the way, the fragments joined
        assert conn.recv_text() == "\ufffd"  # binary: replaced
        assert conn.recv_text() is None  # the server's close, answered
        server.receive_data(end.recv(65536))
        got = list(server.events())
        assert isinstance(got[0], Pong) and got[0].payload == b"hi"
        assert isinstance(got[-1], CloseConnection) and got[-1].code == 1000
    finally:
        conn.abort()
        end.close()


def test_text_that_is_not_utf8_breaks_the_socket():
    conn, _, end = open_pair()
    try:
        end.sendall(b"\x81\x02\xff\xfe")  # a text frame (server frames are unmasked) with invalid UTF-8
        with pytest.raises(ConnectionAbortedError):
            conn.recv_text()
    finally:
        conn.abort()
        end.close()


def test_a_connection_cut_without_a_close_frame_is_an_error():
    conn, _, end = open_pair()
    end.close()
    with pytest.raises(ConnectionResetError):
        conn.recv_text()
    conn.abort()


def test_the_socket_is_opened_with_the_wait_as_its_timeout():
    seen = {}

    def connect(url, **kw):
        seen.update(kw)
        raise ConnectionRefusedError

    rows = []
    sock = open_chat_socket(
        "ws://127.0.0.1:9/x", record=lambda op, outcome, **kw: rows.append((op, outcome)), chat_started=0.0,
        wait_s=1.0, clock=FakeClock(), spawn=Loop, connect=connect,
    )  # fmt: skip
    assert sock is None and rows == [("WebSocketConnect", "connection_error")]
    assert seen == {"timeout_s": 1.0}
    assert json.loads(SUBSCRIBE_FRAME) == {"topic": "aws/subscribe", "content": {"topics": ["aws/chat"]}}
