"""No secrets in a run folder or in Locust's output, even at --loglevel DEBUG (issue 8, point 5).

A recording reverse proxy on loopback sits between Locust and the emulator and keeps every
ParticipantToken and ConnectionToken the emulator hands out (response bodies), the token in every
chat socket's URL (Websocket.Url: the socket is on by default, and the proxy tunnels its upgrade),
every bearer token sent back (X-Amz-Bearer) and every SigV4 signature (Authorization). After a short
run with connect and messages, every file of the run folder (as bytes; Parquet files also cell by
cell) and the Locust process's output are scanned for each of them, for the dummy access key and for
the dummy secret key.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow.parquet as pq
import pytest
from support import run_locust, scenario_file

from chatload.contracts import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY
from chatload.emulator_control import running_emulator

pytestmark = pytest.mark.e2e

HIGH = {"rate": 1000, "burst": 1000}
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection", "upgrade"}
TOKEN_KEYS = ("ParticipantToken", "ConnectionToken")
SIGNATURE = re.compile(r"Signature=([0-9a-f]{64})")


class Seen:
    """What went through the proxy: secrets by kind, and how many answers carried each kind."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.secrets: dict[str, set[str]] = {
            "ParticipantToken": set(),
            "ConnectionToken": set(),
            "WebsocketUrl": set(),  # the token a socket's URL carries (its last path segment)
            "bearer": set(),
            "signature": set(),
        }
        self.operations: dict[str, int] = {}

    def add(self, kind: str, value: str) -> None:
        with self.lock:
            self.secrets[kind].add(value)

    def count(self, operation: str) -> None:
        with self.lock:
            self.operations[operation] = self.operations.get(operation, 0) + 1


def collect_tokens(value: object, seen: Seen) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if key in TOKEN_KEYS and isinstance(item, str):
                seen.add(key, item)
            elif key == "Websocket" and isinstance(item, dict) and isinstance(item.get("Url"), str):
                seen.add("WebsocketUrl", item["Url"].rstrip("/").rsplit("/", 1)[-1])
            else:
                collect_tokens(item, seen)
    elif isinstance(value, list):
        for item in value:
            collect_tokens(item, seen)


@contextmanager
def recording_proxy(upstream: str, seen: Seen) -> Iterator[str]:
    """A reverse proxy on 127.0.0.1 (free port) in front of `upstream`, recording into `seen`."""
    target = urlsplit(upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as boto3 expects

        def log_message(self, *_args: object) -> None:
            pass

        def forward(self) -> None:
            if self.headers.get("Upgrade", "").lower() == "websocket":
                self.tunnel()
                return
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            if "X-Amz-Bearer" in self.headers:
                seen.add("bearer", self.headers["X-Amz-Bearer"])
            match = SIGNATURE.search(self.headers.get("Authorization", ""))
            if match:
                seen.add("signature", match.group(1))
            upstream_conn = http.client.HTTPConnection(target.hostname, target.port, timeout=10)
            try:
                upstream_conn.request(self.command, self.path, body=body, headers=headers)
                answer = upstream_conn.getresponse()
                data = answer.read()
                answer_headers = [(k, v) for k, v in answer.getheaders() if k.lower() not in HOP_BY_HOP]
                status = answer.status
            finally:
                upstream_conn.close()
            if data[:1] == b"{":
                try:
                    parsed = json.loads(data)
                except ValueError:
                    parsed = None
                collect_tokens(parsed, seen)
                if isinstance(parsed, dict):
                    for key in TOKEN_KEYS:
                        if key in json.dumps(parsed):
                            seen.count(key)
            self.send_response_only(status)
            for key, value in answer_headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def tunnel(self) -> None:
            """A chat socket's upgrade: the request as it came, then the bytes both ways until a side closes."""
            seen.count("upgrade")
            upstream_sock = socket.create_connection((target.hostname, target.port), timeout=10)
            upstream_sock.settimeout(None)
            head = "".join(f"{k}: {v}\r\n" for k, v in self.headers.items())
            upstream_sock.sendall(f"{self.requestline}\r\n{head}\r\n".encode("latin-1"))

            def pump(source: socket.socket, sink: socket.socket) -> None:
                with contextlib.suppress(OSError):
                    while data := source.recv(65536):
                        sink.sendall(data)
                with contextlib.suppress(OSError):
                    sink.shutdown(socket.SHUT_WR)

            back = threading.Thread(target=pump, args=(upstream_sock, self.connection), daemon=True)
            back.start()
            pump(self.connection, upstream_sock)
            back.join(timeout=10)
            upstream_sock.close()
            self.close_connection = True

        do_GET = do_POST = do_PUT = do_DELETE = forward

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def texts_of(path: Path) -> Iterator[tuple[str, bytes]]:
    """The file's bytes, and for Parquet every cell as text (compressed pages hide raw bytes)."""
    data = path.read_bytes()
    yield str(path), data
    if path.suffix == ".parquet":
        table = pq.read_table(path)
        for name in table.column_names:
            cells = "\n".join("" if v is None else str(v) for v in table.column(name).to_pylist())
            yield f"{path}[{name}]", cells.encode()


def test_no_token_or_credential_reaches_the_run_folder_or_the_log(tmp_path):
    scenario = scenario_file(
        tmp_path,
        """\
        # 5 chats/s for 4 s: connect, three messages, hold, disconnect
        [[stages]]
        name = "secrets"
        duration = "4s"
        target_rate = 5
        [chat]
        connect = true
        messages = 3
        message_interval = "0.2s"
        [chat.hold]
        distribution = "fixed"
        mean = "0.5s"
    """,
    )
    out = tmp_path / "out"
    seen = Seen()
    config = {
        "rates": {"StartChatContact": HIGH, "StopContact": HIGH},
        "participant_rates": {
            op: HIGH for op in ("CreateParticipantConnection", "SendMessage", "DisconnectParticipant")
        },
    }
    log = tmp_path / "locust.log"  # outside the run folder: scanned on its own
    with running_emulator(config) as emu, recording_proxy(emu.url, seen) as proxy:
        args = [
            "--headless",
            "--loglevel",
            "DEBUG",
            "--scenario",
            str(scenario),
            "--endpoint-url",
            proxy,
            "--out",
            str(out),
        ]
        done = run_locust(args, timeout_s=90, log=log)
        state = emu.state()
    assert done.returncode in (0, 1), done.stdout[-3000:]
    # the proxy really saw the secrets of every chat
    chats = state["operations"]["StartChatContact"]["accepted"]
    connections = state["operations"]["CreateParticipantConnection"]["accepted"]
    assert chats >= 15 and connections == chats, state["operations"]
    assert len(seen.secrets["ParticipantToken"]) == chats
    assert len(seen.secrets["ConnectionToken"]) == connections
    # every customer held its chat's socket (the default), through the proxy, and it worked
    assert len(seen.secrets["WebsocketUrl"]) == connections == seen.operations["upgrade"]
    assert state["websocket"]["opened"] == connections and state["websocket"]["frames_pushed"] > 0
    # every ParticipantToken went out as a bearer (CreateParticipantConnection), and connection tokens
    # did too (messages, disconnects); a chat the paced clean-up ended by StopContact never sends its own
    assert seen.secrets["bearer"] >= seen.secrets["ParticipantToken"]
    assert seen.secrets["bearer"] & seen.secrets["ConnectionToken"]
    assert seen.secrets["signature"]
    needles: dict[bytes, str] = {}
    for kind, values in seen.secrets.items():
        for value in values:
            needles[value[:16].encode()] = kind  # a prefix: a truncated token is a leak too
    needles[DEFAULT_ACCESS_KEY.encode()] = "access key"
    run = next(out.iterdir())
    files = sorted(p for p in run.rglob("*") if p.is_file())
    names = {p.relative_to(run).as_posix() for p in files}
    for expected in (
        "meta.json",
        "summary.json",
        "report.html",
        "report.md",
        "junit.xml",
        "locust.html",
        "locust_stats.csv",
        "locust_stats_history.csv",
        "locust_failures.csv",
        "attempts/local.parquet",
        "tables/per_second.csv",
    ):
        assert expected in names, (expected, sorted(names))
    sources = [(where, data) for path in files for where, data in texts_of(path)]
    sources += [("locust output (stdout and stderr)", log.read_bytes())]
    # the dummy secret key is also the project's name: look for it where a leaked credential would be
    secret_key = re.compile(
        rb"(?i)(secret|aws_secret_access_key|password|credential)[\"' :=]{1,6}" + re.escape(DEFAULT_SECRET_KEY.encode())
    )
    leaks = []
    for where, data in sources:
        for needle, kind in needles.items():
            if needle in data:
                leaks.append(f"{kind} in {where}")
        if secret_key.search(data):
            leaks.append(f"secret key in {where}")
        if re.search(rb"(?i)x-amz-bearer|authorization: aws4", data):
            leaks.append(f"an auth header in {where}")
    assert not leaks, leaks
    assert len(sources) >= 15
