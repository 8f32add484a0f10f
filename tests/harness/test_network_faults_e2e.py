"""A master and two workers on test hosts of their own (network namespaces, tests/netns.py) against
the emulator on a fourth: a run across a real network, then a worker cut off from the master.

Addresses are 10.231.N.x inside the namespaces these tests make (and delete, also on failure);
nothing else is ever addressed. Workers ship their rows over the network (CHATLOAD_SHIP_ROWS=1: each
host has a folder of its own).
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from netns import Network, private_network
from support import LocustProcess, attempts, env_without, running_locust, scenario_file

from chatload.emulator_control import running_emulator
from chatload.harness.runtime.workers import LOSS_REBALANCE_DELAY_S

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

HIGH = {"rate": 1000, "burst": 1000}
CONFIG = {"rates": {"StartChatContact": HIGH, "StopContact": HIGH}}
RATE = 20
MASTER_PORT = 5557  # inside the master's own namespace: nothing else listens there
EMULATOR_PORT = 8700


def scenario(tmp_path: Path, seconds: int) -> Path:
    return scenario_file(
        tmp_path,
        f"""\
        # {RATE} chats/s for {seconds} s, each chat started and stopped at once
        [[stages]]
        name = "steady"
        duration = "{seconds}s"
        target_rate = {RATE}
        [chat]
        connect = false
        end_by = "stop_contact"
        """,
    )


@contextlib.contextmanager
def cluster(net: Network, tmp_path: Path, seconds: int) -> Iterator[tuple[object, LocustProcess, list[LocustProcess]]]:
    path = scenario(tmp_path, seconds)
    env = {**env_without("AWS_", "CHATLOAD_"), "CHATLOAD_SHIP_ROWS": "1"}
    target = f"http://{net.addr('target')}:{EMULATOR_PORT}"
    with contextlib.ExitStack() as stack:
        emu = stack.enter_context(
            running_emulator(CONFIG, host="0.0.0.0", port=EMULATOR_PORT, prefix=net.prefix("target"))
        )
        master = stack.enter_context(
            running_locust([
                "--master", "--headless", "--only-summary", "--expect-workers", "2", "--expect-workers-max-wait", "30",
                "--master-bind-host", net.addr("master"), "--master-bind-port", str(MASTER_PORT),
                "--scenario", str(path), "--endpoint-url", target, "--out", str(tmp_path / "master"),
            ], log=tmp_path / "master.log", env=env, prefix=net.prefix("master"), timeout_s=200)
        )  # fmt: skip
        workers = [
            stack.enter_context(
                running_locust(
                    [
                        "--worker",
                        "--master-host",
                        net.addr("master"),
                        "--master-port",
                        str(MASTER_PORT),
                        "--out",
                        str(tmp_path / host),
                    ],
                    log=tmp_path / f"{host}.log",
                    env=env,
                    prefix=net.prefix(host),
                    cwd=tmp_path,
                )
            )
            for host in ("w1", "w2")
        ]
        yield emu, master, workers


def state_of(net: Network) -> dict:
    """GET /_emulator/state from a host of the network (the emulator's address exists only there)."""
    url = f"http://{net.addr('target')}:{EMULATOR_PORT}/_emulator/state"
    code = f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=10).read().decode())"
    done = net.run("master", sys.executable, "-c", code)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def only_run(folder: Path) -> Path:
    (run,) = [p for p in folder.iterdir() if p.is_dir()]
    return run


def test_a_run_across_hosts_ships_every_row_to_the_master(tmp_path: Path):
    with private_network("master", "w1", "w2", "target") as net, cluster(net, tmp_path, 15) as (_, master, workers):
        code = master.wait(120)
        for worker in workers:
            worker.wait(30)
        state = state_of(net)
    assert code in (0, 1), master.output()[-3000:]
    run = only_run(tmp_path / "master")
    frame = attempts(run)
    assert set(frame["worker"]) == {"w0", "w1"}
    starts = frame[frame["operation"] == "StartChatContact"]
    assert len(starts) == state["operations"]["StartChatContact"]["requests"]  # every row reached the master
    for outcome, key in (("ok", "accepted"), ("throttled_tps", "throttled_tps")):
        assert (starts["outcome"] == outcome).sum() == state["operations"]["StartChatContact"][key]
    meta = json.loads((run / "meta.json").read_text())
    assert abs(len(starts) / 15 - RATE) <= 0.02 * RATE, len(starts)
    assert meta["shipped_rows"] and meta["lost_workers"] == []
    assert state["instances"] and sum(i["active_chats"] for i in state["instances"].values()) == 0


def test_a_worker_cut_off_from_the_master_stops_and_the_target_never_gets_more_than_the_plan(tmp_path: Path):
    seconds = 45
    with (
        private_network("master", "w1", "w2", "target") as net,
        cluster(net, tmp_path, seconds) as (_, master, workers),
    ):
        deadline = time.time() + 60
        while time.time() < deadline and not list((tmp_path / "master").glob("*/attempts/w*.csv")):
            time.sleep(0.2)
        time.sleep(8)  # well into the schedule
        net.partition("w2", "master")
        cut_at = time.time()
        workers[1].wait(60)  # the cut-off worker stops by itself (and ends its chats, it still reaches the target)
        stopped_at = time.time()
        time.sleep(3)
        net.heal("w2", "master")  # it stays out: it quit when it lost the master
        code = master.wait(150)
        workers[0].wait(30)
        state = state_of(net)
    assert code in (0, 1, 2), master.output()[-3000:]
    run = only_run(tmp_path / "master")
    meta = json.loads((run / "meta.json").read_text())
    (lost,) = meta["lost_workers"]
    assert cut_at < lost["at"] < cut_at + 10, (lost, cut_at)
    # the cut-off worker: it noticed the silence, stopped, kept its rows on its own disk
    # (Locust gives workers the master's options, --out included: on one disk the note lands in the
    # master's run folder; on a machine of its own, in the same path there)
    (note_path,) = list(tmp_path.glob("**/master-lost-*.json"))
    note = json.loads(note_path.read_text())
    assert note["load_stopped_at"] - cut_at <= 10, (note, cut_at)
    assert Path(note["attempts"]).is_file()
    # the target never saw more than the plan + 10% in any 5 s
    seconds_seen = {int(s): c["requests"] for s, c in state["per_second"]["StartChatContact"].items()}
    t0 = meta["schedule_started_at"]
    windows = [sum(seconds_seen.get(s + k, 0) for k in range(5)) for s in range(int(t0) + 1, int(t0 + seconds) - 5)]
    assert max(windows) <= 1.1 * RATE * 5, windows
    # once the lost share was handed on, the remaining worker carried the whole rate
    after = [seconds_seen.get(s, 0) for s in range(int(lost["at"] + LOSS_REBALANCE_DELAY_S) + 2, int(t0 + seconds) - 1)]
    assert len(after) >= 5 and sum(after) / len(after) >= 0.9 * RATE, after
    print(
        f"partition: cut-off worker stopped offering {note['load_stopped_at'] - cut_at:.1f} s after the cut "
        f"(process gone after {stopped_at - cut_at:.1f} s); master noticed after {lost['at'] - cut_at:.1f} s; "
        f"peak 5 s window {max(windows)} requests (plan {RATE * 5})"
    )


def test_packet_loss_shows_as_slow_calls_or_timeouts_never_as_throttles(tmp_path: Path):
    """5% of the packets between the load host and the target dropped both ways (iptables' statistic
    match) once the run is going (its preparation asks the emulator's admin API with short timeouts):
    TCP retransmits most of them, so calls get slower, and a lost connection attempt or answer can end
    in a timeout or connection error; none of it may ever be counted as a throttle."""
    path = scenario(tmp_path, 20)
    with private_network("load", "target") as net:
        target = f"http://{net.addr('target')}:{EMULATOR_PORT}"
        env = env_without("AWS_", "CHATLOAD_")
        with (
            running_emulator(CONFIG, host="0.0.0.0", port=EMULATOR_PORT, prefix=net.prefix("target")),
            running_locust(
                ["--headless", "--only-summary", "--scenario", str(path), "--endpoint-url", target,
                 "--out", str(tmp_path / "out")],
                log=tmp_path / "load.log", env=env, prefix=net.prefix("load"), timeout_s=150,
            ) as locust,
        ):  # fmt: skip
            deadline = time.time() + 60
            while time.time() < deadline and not list((tmp_path / "out").glob("*/attempts/*.csv")):
                time.sleep(0.2)
            for chain, flag in (("INPUT", "-s"), ("OUTPUT", "-d")):
                done = net.run("load", "iptables", "-A", chain, flag, net.addr("target"), "-m", "statistic",
                               "--mode", "random", "--probability", "0.05", "-j", "DROP")  # fmt: skip
                if done.returncode != 0:
                    pytest.skip(f"iptables cannot drop packets here: {done.stderr.strip()}")
            lossy_from = time.time()
            code = locust.wait(150)
            state = state_of_via(net, "load")
    assert code in (0, 1, 2), locust.output()[-3000:]
    frame = attempts(only_run(tmp_path / "out"))
    calls = frame[(frame["outcome"] != "dropped") & (frame["t_start"] >= lossy_from)]
    assert len(calls) > 100, len(calls)
    assert not calls["outcome"].str.startswith("throttled").any(), calls["outcome"].value_counts()
    assert state["operations"]["StartChatContact"]["throttled_tps"] == 0
    slow = (calls["latency_ms"] > 150).sum()
    failed = calls["outcome"].isin(["timeout", "connection_error"]).sum()
    assert slow + failed > 0, calls["latency_ms"].describe()  # the loss showed, as slowness or failures
    print(f"packet loss: {len(calls)} calls, {slow} slower than 150 ms, {failed} timeouts or connection errors, "
          f"classes {calls['outcome'].value_counts().to_dict()}")  # fmt: skip


def state_of_via(net: Network, host: str) -> dict:
    url = f"http://{net.addr('target')}:{EMULATOR_PORT}/_emulator/state"
    code = f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=10).read().decode())"
    for _ in range(5):  # the lossy link may lose this request too
        done = net.run(host, sys.executable, "-c", code)
        if done.returncode == 0:
            return json.loads(done.stdout)
    raise AssertionError(done.stderr)
