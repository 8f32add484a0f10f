"""The kill switch in a real headless Locust run: a scenario whose every chat fails (a contact flow the
emulator does not know: 404 ResourceNotFoundException, client_error) stops long before its schedule
ends, and meta.json says the kill switch stopped it (issue 8, point 3)."""

from __future__ import annotations

import json

import pytest
from support import attempts, only_run, run_locust, scenario_file

from chatload.emulator_control import running_emulator

pytestmark = pytest.mark.e2e

HIGH = {"rate": 1000, "burst": 1000}
UNKNOWN_FLOW = "99999999-9999-4999-8999-999999999999"


def test_unexpected_errors_past_max_error_share_stop_the_run_early(tmp_path):
    path = scenario_file(
        tmp_path,
        f"""\
        # 20 chats/s for 20 s at a contact flow the emulator does not know: every start is a 404
        [[stages]]
        name = "wrong-flow"
        duration = "20s"
        target_rate = 20
        [chat]
        connect = false
        [target]
        kind = "emulator"
        contact_flow_id = "{UNKNOWN_FLOW}"
        [safety]
        max_error_share = 0.2
    """,
    )
    out = tmp_path / "out"
    args = [
        "--headless",
        "--only-summary",
        "--scenario",
        str(path),
        "--out",
        str(out),
    ]
    with running_emulator({"rates": {"StartChatContact": HIGH}}) as emu:
        done = run_locust([*args, "--endpoint-url", emu.url], timeout_s=60)
        state = emu.state()
    output = done.stdout
    assert "Traceback" not in output, output[-3000:]
    run = only_run(out)
    meta = json.loads((run / "meta.json").read_text())
    assert meta["ended_at"] is not None
    assert meta["ended_early"] and "kill switch" in meta["ended_early"], meta["ended_early"]
    assert "client_error" in meta["ended_early"] and "max_error_share" in meta["ended_early"]
    # well before the schedule's 20 s: the switch needs 50 calls (2.5 s at 20/s)
    assert meta["ended_at"] - meta["schedule_started_at"] < 10.0, meta["ended_at"] - meta["schedule_started_at"]
    frame = attempts(run, parquet_only=True)
    starts = frame[frame["operation"] == "StartChatContact"]
    assert 50 <= len(starts) < 200, len(starts)
    assert set(starts["outcome"]) == {"client_error"} and set(starts["error_code"]) == {"ResourceNotFoundException"}
    assert state["operations"]["StartChatContact"]["not_found"] == len(starts)
    assert "kill switch" in output
    summary = json.loads((run / "summary.json").read_text())
    assert summary["valid"] is False and done.returncode == 2, (done.returncode, summary["invalid_reasons"])
