"""Real headless Locust runs of locustfile.py against the emulator (each a few seconds).

The harness's per-class counts (from the attempts files) must equal the emulator's own counters.
"""

import json
import signal
import subprocess
import time

import pandas as pd
import pytest
from support import attempts, attempts_csv, only_run, run_locust, running_locust, scenario_file

from chatload.contracts import DEFAULT_INSTANCE_ID
from chatload.emulator_control import running_emulator
from chatload.processes import free_port

pytestmark = pytest.mark.e2e

HIGH = {"rate": 1000, "burst": 1000}
HIGH_PARTICIPANT = {op: HIGH for op in ("CreateParticipantConnection", "SendMessage", "DisconnectParticipant")}


def locust(args: list[str], timeout_s: float = 90) -> subprocess.CompletedProcess:
    """Run `locust -f locustfile.py --headless --only-summary ARGS` to its end (output in `stdout`)."""
    return run_locust(["--headless", "--only-summary", *args], timeout_s=timeout_s)


def counts(frame: pd.DataFrame, operation: str) -> dict[str, int]:
    return frame[frame["operation"] == operation]["outcome"].value_counts().to_dict()


EMULATOR_CLASSES = {
    "ok": "accepted",
    "throttled_tps": "throttled_tps",
    "throttled_concurrency": "throttled_concurrency",
}


def test_both_kinds_of_429_are_counted_exactly(tmp_path):
    config = {
        "rates": {"StopContact": HIGH},
        "participant_rates": HIGH_PARTICIPANT,
        "instances": [{"id": DEFAULT_INSTANCE_ID, "concurrent_chats": 15}],
    }
    path = scenario_file(
        tmp_path,
        """\
        # both 429s: 10/s offered against 5/s burst 8, and 15 concurrent chats held long
        users = 40
        [[stages]]
        name = "burst"
        duration = "6s"
        target_rate = 10
        [chat]
        connect = true
        messages = 1
        message_interval = "0.5s"
        [chat.hold]
        distribution = "fixed"
        mean = "30s"
    """,
    )
    with running_emulator(config) as emu:
        done = locust(["--scenario", str(path), "--endpoint-url", emu.url, "--out", str(tmp_path / "out")])
        state = emu.state()
    assert done.returncode in (0, 1), done.stdout[-3000:]
    run = only_run(tmp_path / "out")
    frame = attempts(run, parquet_only=True)
    ours = counts(frame, "StartChatContact")
    assert ours.get("throttled_tps", 0) > 0 and ours.get("throttled_concurrency", 0) > 0, ours
    for operation, by_class in state["operations"].items():
        mine = counts(frame, operation)
        assert sum(mine.values()) == by_class["requests"], (operation, mine, by_class)
        for outcome, key in EMULATOR_CLASSES.items():
            assert mine.get(outcome, 0) == by_class[key], (operation, outcome, mine, by_class)
    assert state["instances"][DEFAULT_INSTANCE_ID]["active_chats"] == 0
    meta = json.loads((run / "meta.json").read_text())
    assert meta["clean_up"]["still_active"] == 0 and meta["ended_at"] is not None
    assert meta["quotas"]["source"] == "emulator" and meta["quotas"]["concurrent_chats"] == 15
    assert meta["workers"] == ["local"]
    assert (frame["attempts"] == 1).all() and (frame["first_outcome"] == frame["outcome"]).all()
    for name in (
        "locust_stats.csv",
        "locust_stats_history.csv",
        "locust_failures.csv",
        "locust_exceptions.csv",
        "locust.html",
    ):
        assert (run / name).is_file(), name
    failures = pd.read_csv(run / "locust_failures.csv")
    assert set(failures["Error"]) <= {
        "throttled_tps TooManyRequestsException",
        "throttled_concurrency LimitExceededException",
    }
    assert "Token" not in (run / "meta.json").read_text()


def test_forty_chats_per_second_over_two_processes(tmp_path):
    config = {"rates": {"StartChatContact": HIGH, "StopContact": HIGH}}
    path = scenario_file(
        tmp_path,
        """\
        # 40 chats/s, no holds
        [[stages]]
        name = "forty"
        duration = "10s"
        target_rate = 40
        [chat]
        connect = false
    """,
    )
    with running_emulator(config) as emu:
        port = str(free_port())  # never Locust's default 5557: other Locust processes may be about
        done = locust(
            [
                "--scenario",
                str(path),
                "--endpoint-url",
                emu.url,
                "--out",
                str(tmp_path / "out"),
                "--processes",
                "2",
                "--master-bind-host",
                "127.0.0.1",
                "--master-bind-port",
                port,
                "--master-host",
                "127.0.0.1",
                "--master-port",
                port,
            ]
        )
        state = emu.state()
    assert done.returncode in (0, 1), done.stdout[-3000:]
    offered = state["operations"]["StartChatContact"]["requests"] / 10.0
    assert 39.6 <= offered <= 40.4, offered
    run = only_run(tmp_path / "out")
    frame = attempts(run, parquet_only=True)
    assert sorted(frame["worker"].unique()) == ["w0", "w1"]
    starts = frame[frame["operation"] == "StartChatContact"]
    assert len(starts) == state["operations"]["StartChatContact"]["requests"]
    per_worker = starts["worker"].value_counts()
    assert abs(per_worker["w0"] - per_worker["w1"]) <= 2  # each worker takes half
    assert state["instances"][DEFAULT_INSTANCE_ID]["active_chats"] == 0
    meta = json.loads((run / "meta.json").read_text())
    assert meta["workers"] == ["w0", "w1"] and meta["clean_up"]["still_active"] == 0


# A target too slow for the pool: tests/harness/test_brownout_e2e.py (a target that is really slow).


def test_a_bad_scenario_is_one_line_and_exit_2(tmp_path):
    path = scenario_file(
        tmp_path,
        """\
        # broken
        [[stages]]
        name = "x"
        duration = "10s"
        target_rate = "fast"
    """,
    )
    done = locust(["--scenario", str(path), "--out", str(tmp_path / "out")], timeout_s=60)
    assert done.returncode == 2
    assert f"chatload: {path}: stages[0].target_rate" in done.stdout
    assert "Traceback" not in done.stdout and not (tmp_path / "out").exists()


def test_no_emulator_is_said_clearly(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    done = locust(["--scenario", "ci-smoke", "--endpoint-url", url, "--out", str(tmp_path / "out")], timeout_s=60)
    assert done.returncode == 2
    assert f"no chatload emulator answers at {url}" in done.stdout and "Traceback" not in done.stdout


def test_sigterm_ends_the_run_its_chats_and_keeps_the_rows(tmp_path):
    args = [
        "--headless",
        "--only-summary",
        "--rate",
        "4",
        "--duration",
        "60s",
        "--hold",
        "30s",
        "--out",
        str(tmp_path / "out"),
    ]
    with running_emulator() as emu:
        with running_locust([*args, "--endpoint-url", emu.url]) as harness:
            deadline = time.time() + 30
            while time.time() < deadline and not attempts_csv(tmp_path / "out"):
                time.sleep(0.2)
            time.sleep(2)
            harness.proc.send_signal(signal.SIGTERM)
            code = harness.wait(45)
            out = harness.output()
        state = emu.state()
    assert code in (0, 1, 2), out[-3000:]
    run = only_run(tmp_path / "out")
    meta = json.loads((run / "meta.json").read_text())
    assert meta["interrupted"] is True and meta["ended_early"] == "interrupted by SIGTERM"
    assert meta["clean_up"]["still_active"] == 0
    assert state["instances"][DEFAULT_INSTANCE_ID]["active_chats"] == 0
    frame = attempts(run, parquet_only=True)
    assert counts(frame, "StartChatContact").get("ok", 0) == state["operations"]["StartChatContact"]["accepted"] > 0
