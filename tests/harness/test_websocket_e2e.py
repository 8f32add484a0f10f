"""A short headless Locust run with the chat websocket on, against the emulator (issue 14): every
connected chat opens and subscribes its socket and hears the flow's greeting, every message sent comes
back on it, every chat its customer ends hears chat.ended, and the emulator's socket counters match
what the harness's rows say it sent and received; no socket is left open."""

import math
import time

import pandas as pd
import pytest
from support import attempts, only_run, run_locust, scenario_file

from chatload.emulator_control import running_emulator
from chatload.harness.websocket import HEARTBEAT_S

pytestmark = pytest.mark.e2e

HIGH = {"rate": 1000, "burst": 1000}


def rows(frame: pd.DataFrame, operation: str, outcome: str | None = None) -> pd.DataFrame:
    mine = frame[frame["operation"] == operation]
    return mine if outcome is None else mine[mine["outcome"] == outcome]


def count(frame: pd.DataFrame, operation: str, outcome: str | None = None) -> int:
    return len(rows(frame, operation, outcome))


def chats(frame: pd.DataFrame, operation: str, outcome: str | None = None) -> set[str]:
    return set(rows(frame, operation, outcome)["chat"])


def ends(frame: pd.DataFrame, operation: str) -> pd.Series:
    """Per chat, when its `operation` row's measurement ended (epoch s): t_start + latency."""
    mine = rows(frame, operation, "ok")
    return (mine["t_start"] + mine["latency_ms"] / 1000.0).set_axis(mine["chat"])


def closed_sockets(emu, timeout_s: float = 5.0) -> dict:
    """The emulator's socket counters once it has seen every socket close (bounded wait: the client's
    last close frames may still be on their way when Locust has exited)."""
    deadline = time.monotonic() + timeout_s
    sockets = emu.state()["websocket"]
    while sockets["open"] and time.monotonic() < deadline:
        time.sleep(0.1)
        sockets = emu.state()["websocket"]
    return sockets


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
        # the chat websocket: connect after the flow's greeting (due 1 s after the start), 2 messages,
        # end by DisconnectParticipant; the drain lets every chat end at its own pace
        users = 20
        [[stages]]
        name = "ws"
        duration = "4s"
        target_rate = 3
        [[stages]]
        name = "drain"
        duration = "4s"
        target_rate = 0
        [chat]
        connect = true
        connect_delay = "1.5s"
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
        sockets = closed_sockets(emu)
    assert done.returncode in (0, 1), done.stdout[-3000:]
    frame = attempts(only_run(tmp_path / "out"), parquet_only=True)

    # every connected chat opened its socket and subscribed it, once
    connected = chats(frame, "CreateParticipantConnection", "ok")
    assert len(connected) == count(frame, "CreateParticipantConnection", "ok") > 0
    assert chats(frame, "WebSocketConnect", "ok") == connected
    assert count(frame, "WebSocketConnect") == len(connected) == sockets["opened"] and sockets["refused"] == 0
    subscribes = rows(frame, "Subscribe")
    assert chats(frame, "Subscribe", "ok") == connected and len(subscribes) == len(connected)

    # the flow's greeting was due before any socket subscribed: the emulator held it for each
    assert chats(frame, "FirstResponse", "ok") == connected and count(frame, "FirstResponse") == len(connected)

    # every message sent came back on its socket
    sent = count(frame, "SendMessage", "ok")
    assert sent > 0 and count(frame, "MessageDelivery", "ok") == count(frame, "MessageDelivery") == sent

    # the drain let every customer end its chat, and each heard chat.ended
    assert chats(frame, "DisconnectParticipant", "ok") == connected
    assert chats(frame, "ChatEndedDelivery", "ok") == connected and count(frame, "ChatEndedDelivery") == len(connected)
    assert count(frame, "WebSocketClose") == 0 and count(frame, "Heartbeat") == 0

    # what the emulator received: subscribe frames (ChatJS resends one unanswered for 1 s: a Subscribe row
    # of latency L sent at most ceil(L / 1 s) frames) and heartbeats (at most one per HEARTBEAT_S between
    # the subscription and chat.ended; chats of about a second here send none) -- nothing else
    subscribe_frames = sockets["frames_received"] - sockets["heartbeats"]
    most = sum(max(1, math.ceil(latency / 1000.0)) for latency in subscribes["latency_ms"])
    assert len(connected) <= subscribe_frames <= most
    alive = ends(frame, "ChatEndedDelivery") - ends(frame, "Subscribe").reindex(ends(frame, "ChatEndedDelivery").index)
    assert sockets["heartbeats"] <= sum(math.floor(s / HEARTBEAT_S) for s in alive)

    # what it pushed on aws/chat: at least the greetings, the echoes and the chat.ended events
    assert sockets["frames_pushed"] >= len(connected) + sent + len(connected)

    # no socket left open: each closed by the client or by the server after chat.ended
    assert sockets["open"] == 0
    assert sockets["closed_by_client"] + sockets["closed_by_server"] == sockets["opened"]
    assert "X-Amz" not in done.stdout and "/connect/" not in done.stdout
