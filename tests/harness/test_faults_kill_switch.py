"""The kill switch in a real headless Locust run: a scenario whose every chat fails (a contact flow the
emulator does not know: 404 ResourceNotFoundException, client_error) stops long before its schedule
ends, and meta.json says the kill switch stopped it (issue 8, point 3)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from emulator.testing import running_emulator

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e

HIGH = {"rate": 1000, "burst": 1000}
UNKNOWN_FLOW = "99999999-9999-4999-8999-999999999999"


def test_unexpected_errors_past_max_error_share_stop_the_run_early(tmp_path):
    path = tmp_path / "scenario.toml"
    path.write_text(textwrap.dedent(f"""\
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
    """))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "locust", "-f", str(ROOT / "locustfile.py"), "--headless", "--only-summary",
           "--scenario", str(path), "--out", str(out)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    with running_emulator({"rates": {"StartChatContact": HIGH}}) as emu:
        proc = subprocess.Popen([*cmd, "--endpoint-url", emu.url], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            output, _ = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        state = emu.state()
    assert "Traceback" not in output, output[-3000:]
    (run,) = list(out.iterdir())
    meta = json.loads((run / "meta.json").read_text())
    assert meta["ended_at"] is not None
    assert meta["ended_early"] and "kill switch" in meta["ended_early"], meta["ended_early"]
    assert "client_error" in meta["ended_early"] and "max_error_share" in meta["ended_early"]
    # well before the schedule's 20 s: the switch needs 50 calls (2.5 s at 20/s)
    assert meta["ended_at"] - meta["schedule_started_at"] < 10.0, meta["ended_at"] - meta["schedule_started_at"]
    frame = pd.concat([pd.read_parquet(f) for f in (run / "attempts").glob("*.parquet")], ignore_index=True)
    starts = frame[frame["operation"] == "StartChatContact"]
    assert 50 <= len(starts) < 200, len(starts)
    assert set(starts["outcome"]) == {"client_error"} and set(starts["error_code"]) == {"ResourceNotFoundException"}
    assert state["operations"]["StartChatContact"]["not_found"] == len(starts)
    assert "kill switch" in output
    summary = json.loads((run / "summary.json").read_text())
    assert summary["valid"] is False and proc.returncode == 2, (proc.returncode, summary["invalid_reasons"])
