"""Persistent chats through real Locust against the emulator: every rehydration is accepted."""

import importlib.util
from pathlib import Path

import pytest

from emulator.testing import running_emulator

pytestmark = pytest.mark.e2e

_spec = importlib.util.spec_from_file_location("locust_e2e", Path(__file__).with_name("test_locust_e2e.py"))
e2e = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(e2e)


@pytest.mark.parametrize("rehydration", ["ENTIRE_PAST_SESSION", "FROM_SEGMENT"])
def test_each_customer_continues_its_past_chats(tmp_path: Path, rehydration: str) -> None:
    # 3 users, 3 chats/s for 5 s, chats of ~0.6 s: each customer lives ~5 chats in a row, so most starts
    # rehydrate, and ENTIRE_PAST_SESSION sessions grow past two contacts (the case that must name the
    # first one).
    path = e2e.scenario(tmp_path, f"""
        # persistent chats, short
        users = 3
        [[stages]]
        name = "steady"
        duration = "5s"
        target_rate = 3
        [[stages]]
        name = "drain"
        duration = "1s"
        target_rate = 0
        [chat]
        connect = true
        end_by = "disconnect"
        persistent = "{rehydration}"
        messages = 2
        message_interval = "0.2s"
        hold = "0.2s"
        [thresholds]
        max_dropped_share = 1
        [target.emulator_config.participant_rates]
        CreateParticipantConnection = {{ rate = 1000, burst = 1000 }}
        DisconnectParticipant = {{ rate = 1000, burst = 1000 }}
        SendMessage = {{ rate = 1000, burst = 1000 }}
        [target.emulator_config.rates]
        StartChatContact = {{ rate = 1000, burst = 1000 }}
    """)
    out = tmp_path / "out"
    with running_emulator() as emu:
        result = e2e.locust(["--scenario", str(path), "--endpoint-url", emu.url, "--out", str(out)], timeout_s=60)
        state = emu.state()
    frame = e2e.attempts(e2e.only_run(out))
    starts = frame[frame["operation"] == "StartChatContact"]
    assert (starts["outcome"] != "client_error").all(), starts[starts["outcome"] == "client_error"]
    assert state["operations"]["StartChatContact"]["invalid"] == 0, result.stdout[-3000:]
    # more chats than customers: rehydrated starts happened
    assert (starts["outcome"] == "ok").sum() > 6, result.stdout[-3000:]
    assert state["instances"][next(iter(state["instances"]))]["active_chats"] == 0
