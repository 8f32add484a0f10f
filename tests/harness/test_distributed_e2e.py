"""A real Locust master and two real workers (three processes) against the emulator.

Each run is 20 chats/s for 10 s (a few seconds more with start-up and the report). The attempts
files in the master's run folder must hold exactly what the emulator counted, whether the workers
wrote them directly (same filesystem) or shipped their rows to the master (CHATLOAD_SHIP_ROWS=1);
a worker killed mid-run is noted as lost and the run still ends by itself, by its thresholds.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from support import LocustProcess, attempts, env_without, only_run, running_locust, scenario_file

from chatload.contracts import DEFAULT_INSTANCE_ID
from chatload.emulator_control import running_emulator
from chatload.harness.runtime.workers import LOSS_REBALANCE_DELAY_S
from chatload.processes import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

HIGH = {"rate": 1000, "burst": 1000}
CONFIG = {"rates": {"StartChatContact": HIGH, "StopContact": HIGH}}
RATE, DURATION_S = 20, 10
SCENARIO = f"""\
    # {RATE} chats/s for {DURATION_S} s, each chat started and stopped at once
    [[stages]]
    name = "steady"
    duration = "{DURATION_S}s"
    target_rate = {RATE}
    [chat]
    connect = false
"""
EMULATOR_CLASSES = {
    "ok": "accepted",
    "throttled_tps": "throttled_tps",
    "throttled_concurrency": "throttled_concurrency",
}


@dataclass
class Cluster:
    master: LocustProcess
    workers: list[LocustProcess]

    def output(self) -> str:
        return "\n".join(f"--- {p.log_path.name}\n{p.output()[-3000:]}" for p in (self.master, *self.workers))

    def wait(self, timeout_s: float) -> int:
        try:
            return self.master.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the master did not end within {timeout_s} s:\n{self.output()}") from None


@contextlib.contextmanager
def cluster(tmp_path: Path, emulator_url: str, worker_env: dict[str, str] | None = None) -> Iterator[Cluster]:
    """A headless master expecting 2 workers, and the 2 workers; every process group is stopped on exit."""
    scenario = scenario_file(tmp_path, SCENARIO)
    port = str(free_port())
    env = env_without("AWS_", "CHATLOAD_")
    with contextlib.ExitStack() as stack:
        master = stack.enter_context(
            running_locust([
                "--master", "--headless", "--only-summary", "--expect-workers", "2", "--expect-workers-max-wait", "30",
                "--master-bind-host", "127.0.0.1", "--master-bind-port", port,
                "--scenario", str(scenario), "--endpoint-url", emulator_url, "--out", str(tmp_path / "out"),
            ], log=tmp_path / "master.log", env=env)
        )  # fmt: skip
        workers = [
            stack.enter_context(
                running_locust(
                    ["--worker", "--master-host", "127.0.0.1", "--master-port", port],
                    log=tmp_path / log,
                    env={**env, **(worker_env or {})},
                )
            )
            for log in ("worker-a.log", "worker-b.log")
        ]
        yield Cluster(master, workers)


def counts(frame: pd.DataFrame, operation: str) -> dict[str, int]:
    return frame[frame["operation"] == operation]["outcome"].value_counts().to_dict()


def assert_counts_match(frame: pd.DataFrame, state: dict) -> None:
    for operation, by_class in state["operations"].items():
        mine = counts(frame, operation)
        assert sum(mine.values()) == by_class["requests"], (operation, mine, by_class)
        for outcome, key in EMULATOR_CLASSES.items():
            assert mine.get(outcome, 0) == by_class[key], (operation, outcome, mine, by_class)


def assert_rate(state: dict) -> None:
    offered = state["operations"]["StartChatContact"]["requests"] / DURATION_S
    assert abs(offered - RATE) <= 0.02 * RATE, offered


def run_to_the_end(tmp_path: Path, worker_env: dict[str, str] | None) -> tuple[int, Path, dict]:
    with running_emulator(CONFIG) as emu, cluster(tmp_path, emu.url, worker_env) as procs:
        code = procs.wait(60)
        for worker in procs.workers:  # the master's quit reaches them
            worker.wait(15)
        state = emu.state()
        assert code in (0, 1), procs.output()
    return code, only_run(tmp_path / "out"), state


def test_two_workers_on_one_filesystem_write_into_the_run_folder(tmp_path):
    code, run, state = run_to_the_end(tmp_path, None)
    assert_rate(state)
    frame = attempts(run)
    assert_counts_match(frame, state)
    assert sorted(p.name for p in (run / "attempts").iterdir()) == ["w0.parquet", "w1.parquet"]
    assert sorted(frame["worker"].unique()) == ["w0", "w1"]
    meta = json.loads((run / "meta.json").read_text())
    assert meta["workers"] == ["w0", "w1"] and meta["lost_workers"] == []
    assert "shipped_rows" not in meta  # written directly: the token matched
    assert meta["clean_up"]["still_active"] == 0 and "unreported_workers" not in meta["clean_up"]
    assert not (run / ".chatload-run-token").exists()
    assert state["instances"][DEFAULT_INSTANCE_ID]["active_chats"] == 0
    summary = json.loads((run / "summary.json").read_text())
    assert code == (0 if summary["passed"] else 1)


def test_workers_that_ship_their_rows_reach_the_masters_run_folder(tmp_path):
    code, run, state = run_to_the_end(tmp_path, {"CHATLOAD_SHIP_ROWS": "1"})
    assert_rate(state)
    frame = attempts(run)
    assert_counts_match(frame, state)
    assert sorted(p.name for p in (run / "attempts").iterdir()) == ["w0.parquet", "w1.parquet"]
    meta = json.loads((run / "meta.json").read_text())
    assert meta["workers"] == ["w0", "w1"] and meta["lost_workers"] == []
    shipped = meta["shipped_rows"]
    assert set(shipped) == {"w0", "w1"} and sum(shipped.values()) == len(frame)
    assert frame["worker"].value_counts().to_dict() == shipped
    assert meta["clean_up"]["still_active"] == 0
    assert not (run / ".chatload-run-token").exists()
    summary = json.loads((run / "summary.json").read_text())
    assert code == (0 if summary["passed"] else 1)


def test_a_worker_killed_mid_run_is_noted_and_the_run_ends_by_its_thresholds(tmp_path):
    with running_emulator(CONFIG) as emu, cluster(tmp_path, emu.url, {"CHATLOAD_SHIP_ROWS": "1"}) as procs:
        deadline = time.time() + 30
        shipped = []
        while time.time() < deadline and len(shipped) < 2:
            shipped = list((tmp_path / "out").glob("*/attempts/w*.csv"))
            time.sleep(0.2)
        assert len(shipped) == 2, procs.output()
        time.sleep(2.0)  # a few seconds into the schedule
        victim = procs.workers[1]
        os.killpg(victim.proc.pid, signal.SIGKILL)
        killed_at = time.time()
        victim.proc.wait()
        code = procs.wait(60)
        procs.workers[0].wait(15)
        state = emu.state()
        output = procs.output()
    assert code in (0, 1), output
    run = only_run(tmp_path / "out")
    meta = json.loads((run / "meta.json").read_text())
    (lost,) = meta["lost_workers"]
    survivor = ({"w0", "w1"} - {lost["worker"]}).pop()
    assert killed_at < lost["at"] < killed_at + 10, (lost, killed_at)
    assert meta["workers"] == ["w0", "w1"]
    assert meta["clean_up"]["unreported_workers"] == [lost["worker"]]
    frame = attempts(run)
    mine = frame[frame["worker"] == lost["worker"]]
    assert len(mine) > 0 and (mine["t_start"] < killed_at).all()  # what it sent before dying is kept
    assert (run / "attempts" / f"{lost['worker']}.parquet").is_file()
    starts = counts(frame, "StartChatContact")
    assert sum(starts.values()) <= state["operations"]["StartChatContact"]["requests"]
    theirs = frame[(frame["worker"] == survivor) & (frame["operation"] == "StartChatContact")]
    # the lost share goes to the survivor LOSS_REBALANCE_DELAY_S after the loss (never earlier: a worker
    # only cut off may still be offering it); the survivor then takes the whole rate
    late = theirs[theirs["t_start"] > lost["at"] + LOSS_REBALANCE_DELAY_S + 1.0]
    if len(late) >= 2:
        rate = (len(late) - 1) / (late["t_start"].max() - late["t_start"].min())
        assert rate > 0.8 * RATE, rate
    summary = json.loads((run / "summary.json").read_text())
    assert [w["worker"] for w in summary["lost_workers"]] == [lost["worker"]]
    assert code == (0 if summary["passed"] else 1), (code, summary.get("passed"), summary.get("invalid_reasons"))
