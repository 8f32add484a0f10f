"""The customer's chat websocket: the pure protocol (no sockets), then a chat's life against a fake
gateway on 127.0.0.1 that speaks connect-facts.md's protocol (rows and their outcomes)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import math
import random
import socket
import struct
import threading
import time
from dataclasses import replace
from functools import partial

import pytest

from chatload.harness.chats import LiveChats
from chatload.harness.client import Call
from chatload.harness.customer import Arrival, Customer
from chatload.harness.scenario.files import adhoc_scenario, load_scenario
from chatload.harness.scenario.model import ChatLife, HoldTime
from chatload.harness.scenario.schema import ScenarioError
from chatload.harness.websocket import (
    CHAT_ENDED,
    HEARTBEAT_FRAME,
    Expectation,
    Frame,
    SocketState,
    chat_ended,
    echo_of,
    first_response,
    is_echo,
    is_response,
    open_chat_socket,
    parse_frame,
    subscribe_frame,
)

# ------------------------------------------------------------------ the protocol (pure)


def chat_frame(item: dict) -> str:
    return json.dumps({"topic": "aws/chat", "contentType": "application/json", "content": json.dumps(item)})


def item(role="AGENT", content="hi", type_="MESSAGE", id_="i1", content_type="text/plain"):
    return {"Id": id_, "Type": type_, "ParticipantRole": role, "Content": content, "ContentType": content_type}


ENDED_ITEM = item("SYSTEM", "", "EVENT", "e1", CHAT_ENDED)


def test_frames_we_send():
    assert json.loads(subscribe_frame()) == {"topic": "aws/subscribe", "content": {"topics": ["aws/chat"]}}
    assert json.loads(HEARTBEAT_FRAME) == {"topic": "aws/heartbeat"}


def test_frames_we_read():
    answer = parse_frame('{"topic":"aws/subscribe","content":{"status":"success","topics":["aws/chat"]}}')
    assert answer == Frame("aws/subscribe", status="success")
    assert parse_frame('{"topic":"aws/subscribe","content":{"status":"failure"}}').status == "failure"
    chat = parse_frame(chat_frame(item()))
    assert chat.topic == "aws/chat" and chat.item["ParticipantRole"] == "AGENT"
    assert parse_frame('{"message":"Forbidden","connectionId":"c","requestId":"r"}').error
    assert parse_frame('{"topic":"aws/heartbeat"}') == Frame("aws/heartbeat")
    assert parse_frame("not json") is None and parse_frame("[1]") is None
    assert parse_frame('{"topic":"aws/chat","content":"{broken"}').item is None


def test_echoes_responses_and_the_end():
    mine = item("CUSTOMER", "chatload message 1", id_="m1")
    assert is_echo(mine, "m1", "whatever") and not is_echo(mine, "m2", "chatload message 1")
    assert is_echo(mine, None, "chatload message 1") and not is_echo(mine, None, "chatload message 2")
    assert not is_echo(item("AGENT", "chatload message 1"), None, "chatload message 1")
    for role in ("SYSTEM", "AGENT", "CUSTOM_BOT"):
        assert is_response(item(role))
    assert not is_response(mine) and not is_response(ENDED_ITEM)
    assert chat_ended(Frame("aws/chat", item=ENDED_ITEM)) and not chat_ended(Frame("aws/chat", item=mine))


def test_state_matches_frames_to_measurements():
    state = SocketState()
    assert state.expect(Expectation("MessageDelivery", 10.0, 11.0, echo_of("m1", "x"))) is None
    assert state.feed(Frame("aws/chat", item=item("AGENT")), 10.2) == []  # not the echo
    [ok] = state.feed(Frame("aws/chat", item=item("CUSTOMER", id_="m1")), 10.25)
    assert (ok.operation, ok.outcome, round(ok.latency_ms)) == ("MessageDelivery", "ok", 250)
    # a frame seen before the measurement was asked for (at or after its start) counts at once
    early = state.expect(Expectation("FirstResponse", 9.0, 20.0, first_response))
    assert early.outcome == "ok" and round(early.latency_ms) == 1200
    state.expect(Expectation("ChatEndedDelivery", 12.0, 13.0, chat_ended))
    assert state.settle_deadline() == 13.0
    assert state.overdue(12.5) == []
    [late] = state.overdue(13.5)
    assert (late.operation, late.outcome, late.latency_ms) == ("ChatEndedDelivery", "timeout", 1000.0)
    state.feed(Frame("aws/chat", item=ENDED_ITEM), 14.0)
    assert state.ended_at == 14.0
    state.feed(Frame(error=True), 14.1)
    assert state.subscribe == "GatewayError"


# ------------------------------------------------------------------ a fake gateway on 127.0.0.1

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def read_exact(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError
        data += chunk
    return data


def read_frame(conn: socket.socket) -> tuple[int, bytes]:
    b1, b2 = read_exact(conn, 2)
    n = b2 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", read_exact(conn, 2))
    elif n == 127:
        (n,) = struct.unpack("!Q", read_exact(conn, 8))
    mask = read_exact(conn, 4) if b2 & 0x80 else b"\0\0\0\0"
    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(read_exact(conn, n)))
    return b1 & 0x0F, payload


def frame_bytes(opcode: int, payload: bytes) -> bytes:
    n = len(payload)
    head = bytes([0x80 | opcode])
    if n < 126:
        head += bytes([n])
    elif n < 65536:
        head += bytes([126]) + struct.pack("!H", n)
    else:
        head += bytes([127]) + struct.pack("!Q", n)
    return head + payload


class Gateway:
    """Speaks the chat websocket's protocol to every client: the subscribe answer (then a SYSTEM
    greeting), heartbeat answers, `push`ed aws/chat frames, the close handshake. `status` other than
    101 refuses the upgrade; `heartbeats` False leaves heartbeats unanswered; `drop_after_subscribe`
    closes the TCP connection right after the subscribe answer; `answers` are the statuses of a
    connection's first subscribe answers ("success", "failure", None: no answer; then "success")."""

    def __init__(self, status=101, heartbeats=True, greet=True, drop_after_subscribe=False, answers=()):
        self.status, self.heartbeats, self.greet, self.drop = status, heartbeats, greet, drop_after_subscribe
        self.answers = list(answers)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.open = 0
        self.received: list[str] = []
        self.paths: list[str] = []
        self.lock = threading.Lock()
        self.stopped = False
        self.threads = [threading.Thread(target=self.accept, daemon=True)]
        self.threads[0].start()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/connect?X-Amz-Security-Token=secret-in-url"

    def accept(self):
        self.listener.settimeout(0.05)
        while not self.stopped:
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            thread = threading.Thread(target=self.serve, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def send(self, conn, text: str, opcode=1):
        with self.lock:
            conn.sendall(frame_bytes(opcode, text.encode()))

    def push(self, frame: str | bytes):
        for conn in list(self.conns):
            with contextlib.suppress(OSError):
                if isinstance(frame, bytes):  # raw payload of a text frame, valid UTF-8 or not
                    with self.lock:
                        conn.sendall(frame_bytes(1, frame))
                else:
                    self.send(conn, frame)

    def serve(self, conn: socket.socket):
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                request += chunk
            lines = request.decode().split("\r\n")
            self.paths.append(lines[0].split()[1])
            key = next(line.split(":", 1)[1].strip() for line in lines if line.lower().startswith("sec-websocket-key"))
            if self.status != 101:
                conn.sendall(
                    f"HTTP/1.1 {self.status} Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()
                )
                return
            accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
            conn.sendall(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {accept}\r\n\r\n".encode()
            )
            self.conns.append(conn)
            self.open += 1
            answers = list(self.answers)
            try:
                while True:
                    opcode, payload = read_frame(conn)
                    if opcode == 8:
                        self.send(conn, "", opcode=8)
                        return
                    text = payload.decode()
                    self.received.append(text)
                    topic = json.loads(text).get("topic")
                    if topic == "aws/subscribe":
                        status = answers.pop(0) if answers else "success"
                        if status is None:
                            continue
                        answer = {"topic": "aws/subscribe", "content": {"status": status, "topics": ["aws/chat"]}}
                        self.send(conn, json.dumps(answer))
                        if status != "success":
                            continue
                        if self.drop:
                            conn.shutdown(socket.SHUT_RDWR)
                            return
                        if self.greet:
                            self.send(conn, chat_frame(item("SYSTEM", "Welcome", id_="greet")))
                    elif topic == "aws/heartbeat" and self.heartbeats:
                        self.send(conn, json.dumps({"topic": "aws/heartbeat"}))
            except (OSError, ConnectionError):
                return
            finally:
                self.conns.remove(conn)
                self.open -= 1

    def stop(self):
        self.stopped = True
        self.threads[0].join(timeout=5)
        self.listener.close()
        for conn in list(self.conns):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in self.threads:
            thread.join(timeout=5)
        assert not any(t.is_alive() for t in self.threads)


@pytest.fixture
def gateway_factory():
    made = []

    def make(**kw):
        gw = Gateway(**kw)
        made.append(gw)
        return gw

    yield make
    for gw in made:
        gw.stop()


class GatewayApi:
    """Answers every call ok; CreateParticipantConnection hands out the gateway's URL, SendMessage
    makes the gateway echo the message (unless `echo` is False), DisconnectParticipant makes it push
    chat.ended (unless `end` is False)."""

    def __init__(self, gateway: Gateway, echo=True, end=True):
        self.gateway, self.echo, self.end = gateway, echo, end
        self.calls = []

    def call(self, operation, **kw):
        self.calls.append((operation, kw))
        n = len(self.calls)
        t0 = time.time()
        response = {"ResponseMetadata": {"HTTPStatusCode": 200}}
        if operation == "StartChatContact":
            response.update(ContactId="contact-1", ParticipantId="p", ParticipantToken="ptoken-secret")
        elif operation == "CreateParticipantConnection":
            response["ConnectionCredentials"] = {"ConnectionToken": "ctoken-secret", "Expiry": "x"}
            if "WEBSOCKET" in kw["Type"]:
                response["Websocket"] = {"Url": self.gateway.url, "ConnectionExpiry": "x"}
        elif operation == "SendMessage":
            response["Id"] = f"m{n}"
            if self.echo:
                self.gateway.push(chat_frame(item("CUSTOMER", kw["Content"], id_=f"m{n}")))
        elif operation == "DisconnectParticipant" and self.end:
            self.gateway.push(chat_frame(ENDED_ITEM))
        return Call(operation, "ok", 200, "", 1, "ok", t0, (time.time() - t0) * 1000.0, response)


class SleepingEnding:
    """The run never ends; waits really wait (heartbeats need time to pass)."""

    def wait(self, timeout):
        time.sleep(timeout)
        return False

    def is_set(self):
        return False


def spawn_thread(fn):
    thread = threading.Thread(target=fn, daemon=True)
    thread.start()
    spawned.append(thread)
    return thread


spawned: list[threading.Thread] = []


@pytest.fixture(autouse=True)
def no_thread_left():
    spawned.clear()
    yield
    for thread in spawned:
        thread.join(timeout=5)
    assert not any(t.is_alive() for t in spawned)


LIFE = ChatLife(
    connect=True, messages=2, message_interval_s=0.05, hold=HoldTime("fixed", 0.1), websocket=True, websocket_wait_s=0.5
)


class ListRecorder:
    def __init__(self):
        self.rows = []
        self.lock = threading.Lock()

    def record(self, row):
        with self.lock:
            self.rows.append(row)

    def intend(self, *args):
        pass


def live_one_chat(api, life=LIFE, heartbeat_s=10.0):
    rec = ListRecorder()
    reported = []
    customer = Customer(
        api=api, recorder=rec, chats=LiveChats(), life=life, instance_id="inst", contact_flow_id="flow",
        rng=random.Random(1), ending=SleepingEnding(), sleep=time.sleep, name="local-u1", report=reported.append,
        open_socket=partial(open_chat_socket, wait_s=life.websocket_wait_s, clock=time.time, spawn=spawn_thread,
                            heartbeat_s=heartbeat_s),
    )  # fmt: skip
    customer.live_chat(Arrival(time.time(), "steady"))
    return list(rec.rows), reported


def socket_rows(rows):
    calls = {"StartChatContact", "CreateParticipantConnection", "SendMessage", "DisconnectParticipant", "StopContact"}
    return [(r["operation"], r["outcome"]) for r in rows if r["operation"] not in calls]


def wait_until(predicate, timeout=5.0):
    deadline = time.time() + timeout
    while not predicate() and time.time() < deadline:
        time.sleep(0.01)
    return predicate()


def test_a_chat_over_the_websocket(tmp_path, gateway_factory):
    gw = gateway_factory()
    api = GatewayApi(gw)
    rows, reported = live_one_chat(api)
    connection = next(kw for op, kw in api.calls if op == "CreateParticipantConnection")
    assert connection["Type"] == ["WEBSOCKET", "CONNECTION_CREDENTIALS"]
    assert sorted(socket_rows(rows)) == sorted(
        [
            ("WebSocketConnect", "ok"),
            ("Subscribe", "ok"),
            ("FirstResponse", "ok"),
            ("MessageDelivery", "ok"),
            ("MessageDelivery", "ok"),
            ("ChatEndedDelivery", "ok"),
        ]
    )
    for r in rows:
        assert r["chat"] == "local-u1-1" and r["contact_id"] == "contact-1" and r["stage"] == "steady"
        assert r["latency_ms"] >= 0
        assert "secret" not in json.dumps(r, default=str)  # neither tokens nor the socket's URL
    assert {r.operation for r in reported} >= {"WebSocketConnect", "MessageDelivery", "ChatEndedDelivery"}
    assert json.loads(gw.received[0]) == {"topic": "aws/subscribe", "content": {"topics": ["aws/chat"]}}
    assert gw.paths == ["/connect?X-Amz-Security-Token=secret-in-url"]
    assert wait_until(lambda: gw.open == 0)  # the client closed its socket


def test_heartbeats_answered_and_missed(tmp_path, gateway_factory):
    life = ChatLife(connect=True, hold=HoldTime("fixed", 0.5), websocket=True, websocket_wait_s=0.5)
    gw = gateway_factory()
    rows, _ = live_one_chat(GatewayApi(gw), life, heartbeat_s=0.1)
    sent = gw.received.count(HEARTBEAT_FRAME)
    beats = [r for r in rows if r["operation"] == "Heartbeat"]
    assert sent >= 2 and {r["outcome"] for r in beats} == {"ok"}  # each answered: its round trip
    assert sent - 1 <= len(beats) <= sent  # the last one's answer may still be on its way at the close
    assert all(0 <= r["latency_ms"] < 100 for r in beats)
    silent = gateway_factory(heartbeats=False)
    rows, _ = live_one_chat(GatewayApi(silent), life, heartbeat_s=0.1)
    missed = [r for r in rows if r["operation"] == "Heartbeat"]
    assert missed and {r["outcome"] for r in missed} == {"timeout"}


def test_a_refused_upgrade_is_classified_by_its_status(tmp_path, gateway_factory):
    gw = gateway_factory(status=403)
    api = GatewayApi(gw)
    rows, _ = live_one_chat(api)
    [connect] = [r for r in rows if r["operation"] == "WebSocketConnect"]
    assert (connect["outcome"], connect["http_status"]) == ("client_error", 403)
    assert socket_rows(rows) == [("WebSocketConnect", "client_error")]
    # the chat lives on without its socket
    assert [op for op, _ in api.calls].count("SendMessage") == 2 and api.calls[-1][0] == "DisconnectParticipant"


def test_a_missing_echo_and_a_missing_end_are_timeouts(tmp_path, gateway_factory):
    gw = gateway_factory(greet=False)
    rows, _ = live_one_chat(GatewayApi(gw, echo=False, end=False))
    assert sorted(socket_rows(rows)) == sorted(
        [
            ("WebSocketConnect", "ok"),
            ("Subscribe", "ok"),
            ("MessageDelivery", "timeout"),
            ("MessageDelivery", "timeout"),
            ("ChatEndedDelivery", "timeout"),
            ("FirstResponse", "timeout"),
        ]
    )
    for r in rows:
        if r["outcome"] == "timeout" and r["operation"] != "FirstResponse":
            assert r["latency_ms"] == pytest.approx(500.0, abs=1.0)  # websocket_wait
    assert wait_until(lambda: gw.open == 0)


def test_an_unexpected_close(tmp_path, gateway_factory):
    gw = gateway_factory(drop_after_subscribe=True)
    rows, _ = live_one_chat(GatewayApi(gw))
    ops = socket_rows(rows)
    assert ("WebSocketClose", "connection_error") in ops
    assert ops.count(("MessageDelivery", "connection_error")) == 2
    assert ("ChatEndedDelivery", "connection_error") in ops
    assert not any(math.isnan(r["latency_ms"]) for r in rows)


def test_subscribe_resent_as_chatjs_does(tmp_path, gateway_factory):
    # unanswered, then refused, then subscribed: frames at 0 s, 1 s (no answer), 1.5 s (500 ms after the refusal)
    gw = gateway_factory(answers=[None, "failure"])
    rows, _ = live_one_chat(GatewayApi(gw), replace(LIFE, websocket_wait_s=3.0))
    subscribes = [r for r in rows if r["operation"] == "Subscribe"]
    assert [(r["outcome"], r["error_code"]) for r in subscribes] == [("ok", "")]
    assert 1450.0 <= subscribes[0]["latency_ms"] < 2500.0
    assert gw.received.count(subscribe_frame()) == 3
    assert ("FirstResponse", "ok") in socket_rows(rows)  # the greeting follows the success answer
    assert wait_until(lambda: gw.open == 0)


def test_invalid_utf8_drops_the_socket(tmp_path, gateway_factory):
    # websocket-client's own check is off (harness/websocket.py): the client's strict decode fails the socket
    gw = gateway_factory()
    api = GatewayApi(gw)
    real_call = api.call

    def call(operation, **kw):
        if operation == "SendMessage":
            gw.push(b'{"topic":"aws/chat","content":"\xff\xfe"}')
        return real_call(operation, **kw)

    api.call = call
    rows, _ = live_one_chat(api)
    [close] = [r for r in rows if r["operation"] == "WebSocketClose"]
    assert (close["outcome"], close["error_code"]) == ("connection_error", "Dropped")
    assert wait_until(lambda: gw.open == 0)


def test_no_url_no_socket(tmp_path):
    rows = []

    def record(op, outcome, **kw):
        rows.append((op, outcome, kw["error_code"]))

    sock = open_chat_socket("", record=record, chat_started=0.0, wait_s=1.0, clock=time.time, spawn=spawn_thread)
    assert sock is None and rows == [("WebSocketConnect", "client_error", "NoWebsocketUrl")]


def test_a_refused_connection(tmp_path):
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens there now
    rows = []
    sock = open_chat_socket(
        f"ws://127.0.0.1:{port}/x", record=lambda op, outcome, **kw: rows.append((op, outcome)), chat_started=0.0,
        wait_s=1.0, clock=time.time, spawn=spawn_thread,
    )  # fmt: skip
    assert sock is None and rows == [("WebSocketConnect", "connection_error")]


# ------------------------------------------------------------------ the [chat] keys

STAGE = '[[stages]]\nname = "s"\nduration = "10s"\ntarget_rate = 2\n'


def test_chat_keys(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(STAGE + '[chat]\nwebsocket = true\nwebsocket_wait = "2s"\n', encoding="utf-8")
    chat = load_scenario(path).chat
    assert (chat.websocket, chat.websocket_wait_s) == (True, 2.0)
    # on by default for a customer that connects; websocket = false keeps the HTTP-only chat
    path.write_text(STAGE, encoding="utf-8")
    assert (load_scenario(path).chat.websocket, load_scenario(path).chat.websocket_wait_s) == (True, 10.0)
    assert adhoc_scenario(2.0, 10.0).chat.websocket
    path.write_text(STAGE + "[chat]\nwebsocket = false\n", encoding="utf-8")
    assert load_scenario(path).chat.websocket is False
    # no connection, no socket: by default simply none; asked for explicitly, a one-line error
    path.write_text(STAGE + '[chat]\nconnect = false\nend_by = "stop_contact"\n', encoding="utf-8")
    assert load_scenario(path).chat.websocket is False
    for text, words in [
        ('websocket = true\nconnect = false\nend_by = "stop_contact"\n', "websocket: needs connect = true"),
        ('websocket_wait = "0s"\n', "websocket_wait: must be longer than 0"),
    ]:
        path.write_text(STAGE + "[chat]\n" + text, encoding="utf-8")
        with pytest.raises(ScenarioError, match=words) as raised:
            load_scenario(path)
        assert "\n" not in str(raised.value)
