"""The chat socket's wire: a small websocket client on wsproto (sans-I/O) over a plain socket.

Under Locust the socket is gevent's (patched), so a blocked read only parks its greenlet. Why not
websocket-client: it reads the upgrade answer one byte per `recv` and every frame in two or three
more, and at 10,000 open chats in one process those calls were most of the socket's CPU. Here each
`recv` takes whatever the kernel holds (up to 64 KiB) and wsproto parses it; pings are answered,
and a close from the server is answered and reported as the end of the stream.

`connect(url, timeout_s)` opens `ws://` or `wss://` (TLS verified against the system's CAs, with
the URL's host name) and returns a `WsConnection`, or raises: `UpgradeRefused` (the server answered
the upgrade with an HTTP status: a refusal, classified like a call), `TimeoutError`, or `OSError`.
Neither the URL (it carries the connection's token) nor any frame text is kept in an exception.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from urllib.parse import urlsplit

from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)

RECV_BYTES = 65536
NORMAL_CLOSURE = 1000
# RFC 6455 close codes of a broken stream: a protocol error, or text that is not UTF-8 (wsproto
# closes with these when it cannot parse a frame); the reader reports them as a dropped socket.
BROKEN_CODES = frozenset({1002, 1007})


class UpgradeRefused(OSError):
    """The server answered the websocket upgrade with an HTTP status instead of 101."""

    def __init__(self, status_code: int) -> None:
        super().__init__(f"websocket upgrade refused with HTTP {status_code}")
        self.status_code = status_code


class WsConnection:
    """One open websocket: `recv_text()` (the next text frame, None once closed by the server),
    `send_text(s)`, `close()` (sends the close frame) and `abort()` (closes the socket: a reader
    blocked in `recv_text` wakes with an error). One reader and one writer may run concurrently."""

    def __init__(self, sock: socket.socket, ws: WSConnection) -> None:
        self.sock = sock
        self.ws = ws  # frames that came with the upgrade's answer wait in it, unparsed
        self._parts: list[str] = []

    def recv_text(self) -> str | None:
        while True:
            for event in self.ws.events():
                if isinstance(event, TextMessage | BytesMessage):
                    data = event.data if isinstance(event, TextMessage) else event.data.decode("utf-8", "replace")
                    self._parts.append(data)
                    if event.message_finished:
                        text, self._parts = "".join(self._parts), []
                        return text
                elif isinstance(event, Ping):
                    self._send(self.ws.send(event.response()))
                elif isinstance(event, CloseConnection):
                    if event.code in BROKEN_CODES:  # wsproto could not parse what came (or the server says so)
                        raise ConnectionAbortedError(f"websocket closed with code {event.code}")
                    if self.ws.state is ConnectionState.REMOTE_CLOSING:
                        with contextlib.suppress(OSError):
                            self._send(self.ws.send(event.response()))
                    return None
            data = self.sock.recv(RECV_BYTES)
            if not data:
                raise ConnectionResetError("the server closed the connection without a close frame")
            self.ws.receive_data(data)

    def send_text(self, text: str) -> None:
        self._send(self.ws.send(TextMessage(data=text)))

    def close(self) -> None:
        if self.ws.state is ConnectionState.OPEN:
            self._send(self.ws.send(CloseConnection(code=NORMAL_CLOSURE)))

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()

    def _send(self, data: bytes) -> None:
        self.sock.sendall(data)


def connect(url: str, timeout_s: float) -> WsConnection:
    """Open the websocket at `url` (ws:// or wss://); the upgrade must complete within timeout_s."""
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError("not a ws:// or wss:// URL")
    secure = parts.scheme == "wss"
    port = parts.port or (443 if secure else 80)
    default_port = port == (443 if secure else 80)
    host = parts.hostname if default_port else f"{parts.hostname}:{port}"
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        sock = socket.create_connection((parts.hostname, port), timeout=timeout_s)
    except TimeoutError:
        raise TimeoutError("websocket connect timed out") from None
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if secure:
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=parts.hostname)
        ws = WSConnection(ConnectionType.CLIENT)
        sock.sendall(ws.send(Request(host=host, target=target)))
        _await_upgrade(sock, ws)
        sock.settimeout(None)  # the reader waits as long as the chat lives
        return WsConnection(sock, ws)
    except BaseException:
        sock.close()
        raise


def _await_upgrade(sock: socket.socket, ws: WSConnection) -> None:
    """Read until the server accepts the upgrade (any frame bytes that came with its answer stay in
    `ws`, parsed by the first `recv_text`) or refuses it (UpgradeRefused with its status)."""
    while True:
        try:
            data = sock.recv(RECV_BYTES)
        except TimeoutError:
            raise TimeoutError("websocket upgrade timed out") from None
        if not data:
            raise ConnectionResetError("the server closed the connection during the upgrade")
        ws.receive_data(data)
        for event in ws.events():
            if isinstance(event, AcceptConnection):
                return
            if isinstance(event, RejectConnection):
                raise UpgradeRefused(event.status_code)
