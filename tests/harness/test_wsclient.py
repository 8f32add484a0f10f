"""The chat socket's wire (harness/wsclient.py) against the emulator's websocket, and a TLS refusal."""

from __future__ import annotations

import json
import socket
import threading

import pytest
from support import connect_client, participant_client, start_chat

from chatload.emulator_control import running_emulator
from chatload.harness.wsclient import UpgradeRefused, connect

pytestmark = pytest.mark.e2e
SUBSCRIBE = '{"topic":"aws/subscribe","content":{"topics":["aws/chat"]}}'
SUBSCRIBED = '{"topic":"aws/subscribe","content":{"status":"success","topics":["aws/chat"]}}'
QUIET = {"flow": {"greeting": ""}, "agents": {"join": False, "reply_think": False}}


@pytest.fixture(scope="module")
def emu():
    with running_emulator(QUIET) as handle:
        yield handle


def joined(emu) -> tuple:
    chat = start_chat(connect_client(emu.url))
    p = participant_client(emu.url)
    out = p.create_participant_connection(
        ParticipantToken=chat["ParticipantToken"], Type=["WEBSOCKET", "CONNECTION_CREDENTIALS"]
    )
    return p, out["ConnectionCredentials"]["ConnectionToken"], out["Websocket"]["Url"]


def test_subscribe_heartbeat_push_and_the_chat_ended_close(emu) -> None:
    p, token, url = joined(emu)
    conn = connect(url, timeout_s=5)
    try:
        conn.send_text(SUBSCRIBE)
        assert conn.recv_text() == SUBSCRIBED
        conn.send_text('{"topic":"aws/heartbeat"}')
        assert json.loads(conn.recv_text())["topic"] == "aws/heartbeat"
        sent = p.send_message(ConnectionToken=token, ContentType="text/plain", Content="hello")
        echo = json.loads(json.loads(conn.recv_text())["content"])
        assert (echo["Id"], echo["Content"], echo["ParticipantRole"]) == (sent["Id"], "hello", "CUSTOMER")
        p.disconnect_participant(ConnectionToken=token)
        texts = []
        while (text := conn.recv_text()) is not None:  # the server's close ends the stream
            texts.append(json.loads(json.loads(text)["content"])["ContentType"])
        assert texts[-1] == "application/vnd.amazonaws.connect.event.chat.ended"
    finally:
        conn.abort()


def test_a_client_close_is_answered_by_the_server(emu) -> None:
    before = emu.state()["websocket"]["closed_by_client"]
    _, _, url = joined(emu)
    conn = connect(url, timeout_s=5)
    conn.send_text(SUBSCRIBE)
    assert conn.recv_text() == SUBSCRIBED
    conn.close()
    assert conn.recv_text() is None  # the server's close frame in answer
    conn.abort()
    assert emu.state()["websocket"]["closed_by_client"] == before + 1


def test_a_refused_upgrade_carries_its_http_status(emu) -> None:
    _, _, url = joined(emu)
    bad = url.rsplit("/", 1)[0] + "/not-a-token"
    with pytest.raises(UpgradeRefused) as refused:
        connect(bad, timeout_s=5)
    assert refused.value.status_code == 403
    assert "not-a-token" not in str(refused.value)


def test_a_silent_server_times_out_and_a_closed_port_is_an_os_error() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(TimeoutError):
            connect(f"ws://127.0.0.1:{port}/connect/x", timeout_s=0.3)
    with pytest.raises(OSError):
        connect(f"ws://127.0.0.1:{port}/connect/x", timeout_s=1)  # nothing listens there now
    with pytest.raises(ValueError):
        connect("http://127.0.0.1/connect/x", timeout_s=1)


def test_wss_verifies_the_servers_certificate() -> None:
    """A TLS server with a certificate no CA signed: the handshake fails (verification is on)."""
    import ssl
    import subprocess
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp, socket.socket() as listener:
        key, cert = Path(tmp) / "key.pem", Path(tmp) / "cert.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
             "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        def serve_once() -> None:
            conn, _ = listener.accept()
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (ssl.SSLError, OSError):
                pass

        server = threading.Thread(target=serve_once, daemon=True)
        server.start()
        with pytest.raises(ssl.SSLCertVerificationError):
            connect(f"wss://127.0.0.1:{port}/connect/x", timeout_s=5)
        server.join(timeout=5)
