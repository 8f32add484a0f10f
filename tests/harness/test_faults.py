"""Faults during a real headless Locust run against the emulator (issue 8, point 6).

- the emulator is SIGKILLed mid-run: later calls are `connection_error`, the run ends by itself within
  a bounded time, the run folder is complete and the per-second table shows the gap;
- the harness gets SIGTERM mid-run: the run folder stays complete and `chatload report` builds it;
- the harness gets SIGKILL (no chance to clean up): the attempts CSV keeps all but the last second
  and `chatload report` builds a report marked cut short (exit 2).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from support import ROOT, attempts, attempts_csv, only_run, running_locust, scenario_file

from chatload.emulator_control import running_emulator

pytestmark = pytest.mark.e2e

HIGH = {"rate": 1000, "burst": 1000}
HIGH_RATES = {
    "rates": {"StartChatContact": HIGH, "StopContact": HIGH},
    "participant_rates": {op: HIGH for op in ("CreateParticipantConnection", "SendMessage", "DisconnectParticipant")},
}
RUN_FILES = (
    "meta.json",
    "summary.json",
    "report.html",
    "locust_stats.csv",
    "locust_stats_history.csv",
    "locust_failures.csv",
    "locust_exceptions.csv",
    "locust.html",
)


def locust(args: list[str], log: Path):
    """A headless `locust -f locustfile.py --only-summary ARGS` (`running_locust`), output to `log`."""
    return running_locust(["--headless", "--only-summary", *args], log=log)


def wait_for(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        time.sleep(0.1)


def chatload_report(run: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "chatload", "report", str(run)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_emulator_killed_mid_run_gives_connection_errors_and_a_complete_run(tmp_path):
    path = scenario_file(
        tmp_path,
        """\
        # 4 chats/s for 10 s; each chat connects, sends a message and holds 1 s
        [[stages]]
        name = "steady"
        duration = "10s"
        target_rate = 4
        [chat]
        connect = true
        messages = 1
        message_interval = "0.3s"
        [chat.hold]
        distribution = "fixed"
        mean = "1s"
    """,
    )
    out = tmp_path / "out"
    with (
        running_emulator(HIGH_RATES) as emu,
        locust(["--scenario", str(path), "--endpoint-url", emu.url, "--out", str(out)], tmp_path / "log") as harness,
    ):
        wait_for(lambda: attempts_csv(out), 30, "the schedule starting")
        time.sleep(3.5)
        emu.process.send_signal(signal.SIGKILL)
        emu.process.wait(timeout=5)
        killed_at = time.time()
        code = harness.wait(timeout_s=90)
    output = harness.output()
    assert code in (0, 1, 2), output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    run = only_run(out)
    for name in RUN_FILES:
        assert (run / name).is_file(), (name, sorted(p.name for p in run.iterdir()))
    meta = json.loads((run / "meta.json").read_text())
    assert meta["ended_at"] is not None and meta["interrupted"] is False
    # the run ended by itself soon after the schedule: clean-up gave up on the dead endpoint promptly
    schedule_end = meta["schedule_started_at"] + 10.0
    assert meta["ended_at"] - schedule_end < 20.0, meta["ended_at"] - schedule_end
    frame = attempts(run)
    after = frame[frame["t_start"] > killed_at]
    assert len(after) > 0 and set(after["outcome"]) == {"connection_error"}, after["outcome"].value_counts()
    assert (after["http_status"] == 0).all()
    starts_after = after[after["operation"] == "StartChatContact"]
    assert len(starts_after) >= 10, len(starts_after)  # the run went on: arrivals kept coming
    before = frame[frame["t_start"] < killed_at - 1.0]
    assert (before["outcome"] == "ok").sum() > 10
    # chats live at the kill could not be ended: meta.json says which
    clean = meta["clean_up"]
    assert clean["still_active"] == len(clean["not_ended"])
    live_at_kill = set(frame[(frame["operation"] == "StartChatContact") & (frame["outcome"] == "ok")]["contact_id"])
    ended_ok = set(
        frame[frame["operation"].isin(["DisconnectParticipant", "StopContact"]) & (frame["outcome"] == "ok")][
            "contact_id"
        ]
    )
    assert set(clean["not_ended"]) == live_at_kill - ended_ok
    # the report shows the gap: connection errors and no ok in the seconds after the kill
    per_second = pd.read_csv(run / "tables" / "per_second.csv")
    gap = per_second[per_second["t"] >= killed_at + 1.0]
    assert len(gap) >= 5 and gap["ok"].sum() == 0, gap[["t", "ok", "connection_error"]]
    starts_in_gap = starts_after[starts_after["t_start"] >= gap["t"].min()]
    assert abs(gap["connection_error"].sum() - len(starts_in_gap)) <= 1 and len(starts_in_gap) >= 5
    assert per_second[per_second["t"] < killed_at - 1.0]["ok"].sum() > 10
    summary = json.loads((run / "summary.json").read_text())
    assert summary["calls"]["StartChatContact"]["connection_error"] == len(
        frame[(frame["operation"] == "StartChatContact") & (frame["outcome"] == "connection_error")]
    )
    assert summary["cut_short"] is False


def test_sigterm_mid_run_leaves_a_complete_run_folder_that_chatload_report_builds(tmp_path):
    out = tmp_path / "out"
    with running_emulator(HIGH_RATES) as emu:
        with locust(
            ["--rate", "4", "--duration", "60s", "--hold", "20s", "--endpoint-url", emu.url, "--out", str(out)],
            tmp_path / "log",
        ) as harness:
            wait_for(lambda: attempts_csv(out), 30, "the schedule starting")
            time.sleep(2)
            harness.proc.send_signal(signal.SIGTERM)
            code = harness.wait(timeout_s=60)
        active = emu.state()["instances"]
    output = harness.output()
    assert code in (0, 1, 2) and "Traceback" not in output, output[-3000:]
    run = only_run(out)
    meta = json.loads((run / "meta.json").read_text())
    assert meta["interrupted"] is True and meta["ended_at"] is not None
    assert meta["clean_up"]["still_active"] == 0 and all(i["active_chats"] == 0 for i in active.values())
    for name in ("locust_stats.csv", "locust_stats_history.csv", "locust_failures.csv", "locust.html"):
        assert (run / name).is_file(), name
    frame = attempts(run)
    assert (frame[frame["operation"] == "StartChatContact"]["outcome"] == "ok").sum() >= 4
    for name in ("summary.json", "report.html"):
        (run / name).unlink(missing_ok=True)  # rebuilt from the folder alone
    done = chatload_report(run)
    assert done.returncode in (0, 1, 2), done.stderr[-3000:]
    assert "Traceback" not in done.stdout + done.stderr, done.stderr[-3000:]
    assert (run / "report.html").is_file()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["cut_short"] is False and summary["calls"]["StartChatContact"]["ok"] >= 4


def test_sigkill_of_the_harness_keeps_the_rows_up_to_the_last_second_and_the_report_says_cut_short(tmp_path):
    out = tmp_path / "out"
    with running_emulator(HIGH_RATES) as emu:
        with locust(
            ["--rate", "5", "--duration", "60s", "--hold", "0s", "--endpoint-url", emu.url, "--out", str(out)],
            tmp_path / "log",
        ) as harness:
            wait_for(lambda: attempts_csv(out), 30, "the schedule starting")
            time.sleep(3)
            os.killpg(harness.proc.pid, signal.SIGKILL)
            killed_at = time.time()
            harness.wait(timeout_s=10)
        state = emu.state()
    run = only_run(out)
    meta = json.loads((run / "meta.json").read_text())
    assert meta["ended_at"] is None
    (csv_file,) = attempts_csv(out)
    assert not list((run / "attempts").glob("*.parquet"))
    text = csv_file.read_text(encoding="utf-8")
    rows = pd.read_csv(csv_file)  # readable: header and whole rows (a partial last line at most)
    assert list(rows.columns[:3]) == ["t_intended", "t_start", "latency_ms"]
    starts = rows[rows["operation"] == "StartChatContact"]
    made = state["operations"]["StartChatContact"]["requests"]
    assert len(starts) >= 10, text[-2000:]
    # at most the last second is lost: 5 chats/s, flushed every 0.5 s
    assert made - len(starts) <= 7, (made, len(starts))
    assert starts["t_start"].max() >= killed_at - 1.5
    done = chatload_report(run)
    assert done.returncode == 2, (done.returncode, done.stdout[-2000:], done.stderr[-2000:])
    assert "Traceback" not in done.stdout + done.stderr, done.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["cut_short"] is True and summary["valid"] is False
    assert any("cut short" in reason for reason in summary["invalid_reasons"])
    assert (run / "report.html").is_file() and "cut short" in (run / "report.html").read_text(encoding="utf-8")
