"""The HTTP stack the emulator (and the benchmark's no-op reference) runs on.

uvicorn with httptools and uvloop, one process, one event loop, keep-alive, no access log, no
Server/Date headers. Three additions to uvicorn's httptools protocol:
- TCP_NODELAY is set on every accepted connection, so small answers never wait for a delayed ACK
  (the 40 ms Nagle stall);
- the status line + headers and the body, which uvicorn writes separately, are joined into one
  socket write (flushed at the end of the current event-loop step), halving the send() calls;
- at shutdown, a request that waits on purpose (an injected fault: scope `chatload.waiting` is True)
  has its connection closed at once instead of holding up the graceful shutdown.
`reset_connection(send)` resets the connection of a request (SO_LINGER 0, then abort: the client reads
a TCP RST and no answer), found from the ASGI `send` callable, so the hot path pays nothing for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import struct
from collections.abc import Callable, Generator
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

KEEP_ALIVE_S = 75
_LINGER_ZERO = struct.pack("ii", 1, 0)  # close() then sends a TCP RST instead of a FIN


class CoalescingTransport:
    """Buffers writes made during one event-loop step and sends them in one write."""

    __slots__ = ("_buffer", "_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._buffer: list[bytes] = []
        self._pending = False

    def write(self, data: bytes) -> None:
        self._buffer.append(data)
        if not self._pending:
            self._pending = True
            self._loop.call_soon(self._flush)

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def _flush(self) -> None:
        self._pending = False
        if self._buffer:
            data = b"".join(self._buffer)
            self._buffer.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class FastProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with TCP_NODELAY and coalesced writes."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        raw = transport.get_extra_info("socket")
        if raw is not None:
            with contextlib.suppress(OSError):
                raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]

    def shutdown(self) -> None:
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete and cycle.scope.get("chatload.waiting"):
            self.transport.close()  # a held request: the app sees the disconnect and returns
            return
        super().shutdown()


def reset_connection(send: Callable) -> bool:
    """Drop the connection of the request whose ASGI `send` this is with a TCP reset, answering nothing
    (an injected fault). uvicorn's `send` is a method of the request's cycle, which holds the
    connection's transport. False when `send` is not uvicorn's (nothing is done)."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None or not hasattr(transport, "abort"):
        return False
    raw = transport.get_extra_info("socket")
    if raw is not None:
        with contextlib.suppress(OSError):
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
    transport.abort()
    return True


def serve(app: Callable, sock: socket.socket, *, quiet: bool, on_started: Callable[[], None]) -> None:
    """Serve `app` on the listening socket until SIGTERM/SIGINT, then return (no signal re-raised)."""

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                on_started()

        @contextlib.contextmanager
        def capture_signals(self) -> Generator[None, None, None]:
            originals = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in originals.items():
                    signal.signal(sig, handler)

    config = uvicorn.Config(
        app,
        loop="uvloop",
        http=FastProtocol,
        ws="wsproto",  # the chat websocket (websocket.py); wsproto answers a refused upgrade with 403
        lifespan="off",
        interface="asgi3",
        access_log=False,
        log_level="warning" if quiet else "info",
        server_header=False,
        date_header=False,
        timeout_keep_alive=KEEP_ALIVE_S,
        timeout_graceful_shutdown=2,
        backlog=2048,
    )
    with contextlib.suppress(KeyboardInterrupt):
        Server(config).run(sockets=[sock])
