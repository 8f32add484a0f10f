"""`python -m emulator` / `chatload emulator`: serve the emulator with uvicorn (httptools + uvloop).

One process, one event loop (buckets and quotas are global state), TCP_NODELAY on every accepted
connection, keep-alive. Once accepting connections it prints exactly one stdout line,
`chatload emulator listening on http://HOST:PORT`, and flushes. A taken port or a bad config file
gives one line on stderr and exit status 2; SIGTERM / SIGINT stop it cleanly with status 0.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import gc
import socket
import sys

from chatload.contracts import DEFAULT_HOST, DEFAULT_PORT, LISTENING_LINE

GC_FREEZE_EVERY_S = 0.25


def _keep_gc_young(loop: asyncio.AbstractEventLoop) -> None:
    """Keep the cyclic garbage collector's pauses short however many contacts the store holds.

    Every GC_FREEZE_EVERY_S everything alive is moved to the permanent generation (gc.freeze(), a
    constant-time list splice), so a collection only ever scans objects made since the last freeze:
    a long run with a million retained contacts pauses no longer than an empty one. Frozen objects
    are still freed by reference counting when the store drops them (purge), so memory stays flat;
    only a reference cycle that was alive at a freeze and dies later is never reclaimed (the store
    keeps no cycles; uvicorn keeps one per connection).
    """
    gc.set_threshold(5_000, 10, 10)

    def tick() -> None:
        gc.freeze()
        loop.call_later(GC_FREEZE_EVERY_S, tick)

    tick()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chatload emulator",
        description="Amazon Connect chat emulator (StartChatContact, StopContact, DescribeContact and the "
        "Participant Service) with AWS's rate and concurrency quotas.",
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST})")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port to listen on, 0 = any free port (default {DEFAULT_PORT})"
    )
    parser.add_argument("--config", default=None, help="TOML configuration file (default: built-in)")
    parser.add_argument("--quiet", action="store_true", help="no log lines besides the listening line and errors")
    return parser


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not 0 <= args.port <= 65535:
        print(f"chatload emulator: --port: must be 0..65535, got {args.port}", file=sys.stderr)
        return 2

    from chatload.emulator.config import ConfigError, load_config

    try:
        config = load_config(args.config)
    except ConfigError as error:
        print(f"chatload emulator: {error}", file=sys.stderr)
        return 2
    try:
        sock = _listen(args.host, args.port)
    except OSError as error:
        reason = "address already in use" if error.errno == errno.EADDRINUSE else (error.strerror or str(error))
        print(f"chatload emulator: cannot listen on {args.host}:{args.port}: {reason}", file=sys.stderr)
        return 2

    from chatload.emulator.app import make_app
    from chatload.emulator.http_stack import serve
    from chatload.emulator.model import ChatStore

    host, port = sock.getsockname()[:2]
    shown_host = f"[{host}]" if ":" in host else host

    def announce() -> None:
        _keep_gc_young(asyncio.get_running_loop())
        print(f"{LISTENING_LINE}http://{shown_host}:{port}", flush=True)

    store = ChatStore(config)
    gc.collect()
    try:
        serve(make_app(store), sock, quiet=args.quiet, on_started=announce)
    finally:
        sock.close()
    return 0
