"""Processes lost in the middle of a run, against the emulator, on one machine:

- the master SIGKILLed: every worker notices within MASTER_SILENCE_S (5 s), stops offering load,
  ends its chats through the paced clean-up and leaves its rows and a master-lost note on its disk;
- a worker SIGKILLed: the master notes it lost and ends the chats it left open with StopContact.
Either way the emulator holds no active chat afterwards. (docs/distributed.md states the bounds.)
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from support import env_without, running_locust, scenario_file, wait_for

from chatload.emulator_control import running_emulator
from chatload.harness.runtime.workers import LOSS_REBALANCE_DELAY_S
from chatload.processes import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

HIGH = {"rate": 1000, "burst": 1000}
CONFIG = {"rates": {"StartChatContact": HIGH, "StopContact": HIGH}}
RATE = 10
SCENARIO = f"""\
    # {RATE} chats/s for 60 s, each chat held 30 s and ended by StopContact
    [[stages]]
    name = "steady"
    duration = "60s"
    target_rate = {RATE}
    [chat]
    connect = false
    end_by = "stop_contact"
    hold = "30s"
"""


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def last_start_second(state: dict) -> int:
    seconds = state["per_second"].get("StartChatContact", {})
    return max((int(s) for s, c in seconds.items() if c["requests"]), default=0)


def test_workers_stop_and_end_their_chats_when_the_master_is_killed(tmp_path: Path):
    scenario = scenario_file(tmp_path, SCENARIO)
    port = str(free_port())
    out = tmp_path / "out"
    with running_emulator(CONFIG) as emu:
        args = [
            "--headless", "--only-summary", "--processes", "2", "--scenario", str(scenario),
            "--endpoint-url", emu.url, "--out", str(out),
            "--master-bind-host", "127.0.0.1", "--master-bind-port", port,
            "--master-host", "127.0.0.1", "--master-port", port,
        ]  # fmt: skip
        with running_locust(args, env=env_without("AWS_", "CHATLOAD_"), timeout_s=150) as locust:
            assert wait_for(
                lambda: (
                    emu.state()["instances"] and sum(i["active_chats"] for i in emu.state()["instances"].values()) >= 50
                ),
                40,
                step_s=0.2,
            ), locust.output()[-3000:]
            os.kill(locust.proc.pid, signal.SIGKILL)  # the master only: its forked workers live on
            killed_at = time.time()
            locust.proc.wait()
            # every worker stops by itself and ends its chats through the paced clean-up
            assert wait_for(lambda: not group_alive(locust.proc.pid), 90, step_s=0.2), locust.output()[-3000:]
            stopped_by = time.time()
            state = emu.state()
    last = last_start_second(state)
    assert last <= killed_at + 10, (last - killed_at, "StartChatContact went on after the master died")
    active = {i: s["active_chats"] for i, s in state["instances"].items()}
    assert sum(active.values()) == 0, active
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    notes = sorted(run.glob("master-lost-*.json"))
    assert [n.name for n in notes] == ["master-lost-w0.json", "master-lost-w1.json"], list(run.iterdir())
    for note in map(lambda p: json.loads(p.read_text()), notes):
        silence = note["load_stopped_at"] - note["last_heard_from_master"]
        assert 4.0 <= silence <= 10.0, note
        assert note["clean_up"]["still_active"] == 0, note
        assert Path(note["attempts"]).is_file()
    # chatload report on that folder: the rows of both workers, and the run marked "master lost"
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "chatload", "report", str(run)], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["valid"] is False and any(r.startswith("master lost") for r in summary["invalid_reasons"])
    assert [n["worker"] for n in summary["master_lost"]] == ["w0", "w1"]
    print(f"master killed; StartChatContact stopped {last - killed_at:+.1f} s after; processes gone after "
          f"{stopped_by - killed_at:.1f} s")  # fmt: skip


def test_the_master_ends_the_chats_of_a_killed_worker(tmp_path: Path):
    scenario = scenario_file(tmp_path, SCENARIO.replace('duration = "60s"', 'duration = "25s"'))
    port = str(free_port())
    env = env_without("AWS_", "CHATLOAD_")
    out = tmp_path / "out"
    with running_emulator(CONFIG) as emu:
        master_args = [
            "--master", "--headless", "--only-summary", "--expect-workers", "2", "--expect-workers-max-wait", "30",
            "--master-bind-host", "127.0.0.1", "--master-bind-port", port,
            "--scenario", str(scenario), "--endpoint-url", emu.url, "--out", str(out),
        ]  # fmt: skip
        worker_args = ["--worker", "--master-host", "127.0.0.1", "--master-port", port]
        with (
            running_locust(master_args, log=tmp_path / "master.log", env=env, timeout_s=170) as master,
            running_locust(worker_args, log=tmp_path / "a.log", env=env) as worker_a,
            running_locust(worker_args, log=tmp_path / "b.log", env=env) as worker_b,
        ):
            assert wait_for(
                lambda: sum(i["active_chats"] for i in emu.state()["instances"].values()) >= 40, 40, step_s=0.2
            )
            os.killpg(worker_b.proc.pid, signal.SIGKILL)
            worker_b.proc.wait()
            code = master.wait(160)
            worker_a.wait(30)
            state = emu.state()
    assert code in (0, 1), master.output()[-3000:]
    assert sum(i["active_chats"] for i in state["instances"].values()) == 0, state["instances"]
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    meta = json.loads((run / "meta.json").read_text())
    (lost,) = meta["lost_workers"]
    orphans = meta["clean_up"]["orphans"][lost["worker"]]
    assert orphans["ended"] > 0 and orphans["still_active"] == 0, orphans
    assert meta["clean_up"]["still_active"] == 0, meta["clean_up"]
    # the lost share went to the survivor, LOSS_REBALANCE_DELAY_S after the loss and not before: the
    # target never saw more than the plan (+10%) in any 5 s, and the whole rate once rebalanced
    seconds = {int(s): c["requests"] for s, c in state["per_second"]["StartChatContact"].items()}
    t0, end = meta["schedule_started_at"], meta["schedule_started_at"] + 25
    windows = [sum(seconds.get(s + k, 0) for k in range(5)) for s in range(int(t0) + 1, int(end) - 5)]
    assert max(windows) <= 1.1 * RATE * 5, windows
    rebalanced = lost["at"] + LOSS_REBALANCE_DELAY_S + 1
    after = [seconds.get(s, 0) for s in range(int(rebalanced) + 1, int(end) - 1)]
    assert len(after) >= 5 and sum(after) / len(after) >= 0.85 * RATE, (after, lost, t0)
