"""Persistent chats through real Locust against the emulator: every rehydration is accepted."""

from pathlib import Path

import pytest
from support import attempts, only_run, run_locust, scenario_file

from chatload.emulator_control import running_emulator

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("rehydration", ["ENTIRE_PAST_SESSION", "FROM_SEGMENT"])
def test_each_customer_continues_its_past_chats(tmp_path: Path, rehydration: str) -> None:
    # 3 users, 3 chats/s for 5 s, chats of ~0.6 s: each customer lives ~5 chats in a row, so most starts
    # rehydrate, and ENTIRE_PAST_SESSION sessions grow past two contacts (the case that must name the
    # first one).
    path = scenario_file(
        tmp_path,
        f"""
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
    """,
    )
    out = tmp_path / "out"
    with running_emulator() as emu:
        result = run_locust(
            ["--headless", "--only-summary", "--scenario", str(path), "--endpoint-url", emu.url, "--out", str(out)],
            timeout_s=60,
        )
        state = emu.state()
    frame = attempts(only_run(out), parquet_only=True)
    starts = frame[frame["operation"] == "StartChatContact"]
    assert (starts["outcome"] != "client_error").all(), starts[starts["outcome"] == "client_error"]
    assert state["operations"]["StartChatContact"]["invalid"] == 0, result.stdout[-3000:]
    # more chats than customers: rehydrated starts happened
    assert (starts["outcome"] == "ok").sum() > 6, result.stdout[-3000:]
    assert state["instances"][next(iter(state["instances"]))]["active_chats"] == 0
