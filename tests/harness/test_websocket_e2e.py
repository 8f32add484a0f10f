"""A short headless Locust run with the chat websocket on, against the emulator: every connected chat
opens and subscribes its socket, every message sent comes back on it, and the emulator's socket
counters match the harness's rows; no socket is left open."""

import pytest
from support import attempts, only_run, run_locust, scenario_file

from chatload.emulator_control import running_emulator

pytestmark = pytest.mark.e2e

HIGH = {"rate": 1000, "burst": 1000}


def count(frame, operation, outcome=None):
    rows = frame[frame["operation"] == operation]
    return int((rows["outcome"] == outcome).sum()) if outcome else len(rows)


def test_chats_over_the_websocket(tmp_path):
    config = {
        "rates": {"StartChatContact": HIGH, "StopContact": HIGH},
        "participant_rates": {
            op: HIGH for op in ("CreateParticipantConnection", "SendMessage", "DisconnectParticipant")
        },
    }
    path = scenario_file(
        tmp_path,
        """\
        # the chat websocket: connect, 2 messages, end by DisconnectParticipant
        users = 20
        [[stages]]
        name = "ws"
        duration = "4s"
        target_rate = 3
        [chat]
        connect = true
        messages = 2
        message_interval = "0.2s"
        websocket = true
        websocket_wait = "3s"
        [chat.hold]
        distribution = "fixed"
        mean = "0.3s"
    """,
    )
    with running_emulator(config) as emu:
        done = run_locust(
            ["--headless", "--only-summary", "--scenario", str(path), "--endpoint-url", emu.url,
             "--out", str(tmp_path / "out")],
            timeout_s=90,
        )  # fmt: skip
        state = emu.state()
    assert done.returncode in (0, 1), done.stdout[-3000:]
    frame = attempts(only_run(tmp_path / "out"), parquet_only=True)
    sockets = state["websocket"]
    connected = count(frame, "CreateParticipantConnection", "ok")
    assert connected > 0
    assert count(frame, "WebSocketConnect", "ok") == connected == sockets["opened"]
    assert count(frame, "WebSocketConnect") == connected and sockets["refused"] == 0
    assert count(frame, "Subscribe", "ok") == count(frame, "Subscribe") == connected
    # the client sends only subscribe and heartbeat frames
    assert sockets["frames_received"] - sockets["heartbeats"] == count(frame, "Subscribe")
    sent = count(frame, "SendMessage", "ok")
    assert sent > 0 and count(frame, "MessageDelivery", "ok") == count(frame, "MessageDelivery") == sent
    # every chat its customer ended heard chat.ended (chats cut by the run's end were closed by the clean-up)
    ended = count(frame, "ChatEndedDelivery", "ok")
    assert ended == count(frame, "ChatEndedDelivery") > 0
    disconnected = set(frame[(frame["operation"] == "DisconnectParticipant") & (frame["outcome"] == "ok")]["chat"])
    assert set(frame[frame["operation"] == "ChatEndedDelivery"]["chat"]) <= disconnected
    assert sockets["frames_pushed"] >= sent + ended
    assert count(frame, "WebSocketClose") == 0 and count(frame, "Heartbeat") == 0
    assert sockets["open"] == 0
    assert sockets["closed_by_client"] + sockets["closed_by_server"] == sockets["opened"]
    assert "X-Amz" not in done.stdout and "/connect/" not in done.stdout
