"""install() on real Locust processes: a local headless run, a master with two local workers, and a
web UI run whose Throttling rows and /chatload/live route are read over HTTP.

The locustfile is our own (written into tmp_path): each user records a fixed, known set of rows into
LiveStats, so the figures the master shows can be checked exactly."""

from __future__ import annotations

import json
import subprocess
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest
from support import run_locust, running_locust

from chatload.processes import free_port

LOCUSTFILE = textwrap.dedent(
    """
    import gevent
    from locust import User, constant, events, task

    from chatload.harness.live.install import install
    from chatload.harness.live.stats import LiveStats

    live = LiveStats()


    @events.init.add_listener
    def _install(environment, **_kwargs):
        install(environment, live, total_duration_s=30)


    class FakeCustomer(User):
        wait_time = constant(600)
        done = False

        @task
        def chats(self):
            if self.done:
                return
            self.done = True
            live.set_stage("only", 4)
            live.set_quota(50, 5)
            # per user: 10 ok, 5 TPS throttles, 3 dropped, 2 SendMessage server errors, 3 live chats
            for outcome, n in (("ok", 10), ("throttled_tps", 5), ("dropped", 3)):
                for _ in range(n):
                    live.record({"operation": "StartChatContact", "outcome": outcome})
                    gevent.sleep(0.05)
            for _ in range(2):
                live.record({"operation": "SendMessage", "outcome": "server_error"})
            for _ in range(3):
                live.chat_started()
    """
)


def live_locustfile(tmp_path: Path) -> Path:
    locustfile = tmp_path / "live_locustfile.py"
    locustfile.write_text(LOCUSTFILE)
    return locustfile


def run_live(tmp_path: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Our locustfile run to its end in tmp_path; `stdout` is Locust's stdout and stderr together."""
    return run_locust(args, timeout_s=timeout, locustfile=live_locustfile(tmp_path), cwd=tmp_path)


def progress_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("[chatload] ")]


@pytest.mark.e2e
@pytest.mark.timeout(90)
def test_headless_local_run_prints_plain_progress_lines(tmp_path):
    result = run_live(tmp_path, "--headless", "-u", "2", "-r", "10", "-t", "4s", "--only-summary")
    assert result.returncode == 0, result.stdout[-2000:]
    lines = progress_lines(result.stdout)
    assert len(lines) >= 2, result.stdout[-2000:]  # one at the start, the last at the stop
    assert "\r" not in result.stdout and "\x1b[K" not in result.stdout
    last = lines[-1]
    assert last.startswith("[chatload] stopped 0:0")
    assert "(0:2" in last  # 30 s planned, about 4 s elapsed: 0:25..0:26 left
    assert "throttled tps 10 conc 0 unknown 0 | errors 4 | dropped 6 | chats 6/50" in last
    assert "workers" not in last


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_master_with_two_workers_shows_global_figures(tmp_path):
    master_port = str(free_port())  # not Locust's fixed 5557: runs side by side must not share workers
    args = ["--headless", "--processes", "2", "-u", "4", "-r", "10", "-t", "6s", "--only-summary"]
    ports = [
        "--master-bind-host",
        "127.0.0.1",
        "--master-bind-port",
        master_port,
        "--master-host",
        "127.0.0.1",
        "--master-port",
        master_port,
    ]  # loopback only
    result = run_live(tmp_path, *args, *ports, timeout=90)
    assert result.returncode == 0, result.stdout[-3000:]
    lines = progress_lines(result.stdout)
    assert lines, result.stdout[-3000:]
    last = lines[-1]
    # 4 users over 2 workers, every figure summed on the master
    assert "throttled tps 20 conc 0 unknown 0 | errors 8 | dropped 12 | chats 12/50" in last, last
    assert last.endswith("workers 2"), last


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


@pytest.mark.e2e
@pytest.mark.timeout(90)
def test_web_ui_serves_throttling_rows_and_live_json(tmp_path):
    port = free_port()
    args = [
        "--web-host",
        "127.0.0.1",
        "--web-port",
        str(port),
        "--autostart",
        "-u",
        "2",
        "-r",
        "10",
        "-t",
        "20s",
    ]
    base = f"http://127.0.0.1:{port}"
    with running_locust(args, locustfile=live_locustfile(tmp_path), cwd=tmp_path):
        deadline = time.monotonic() + 30
        live, rows = {}, []
        while time.monotonic() < deadline:
            time.sleep(0.5)
            try:
                live = get_json(base + "/chatload/live")
                stats = get_json(base + "/stats/requests")
            except OSError:
                continue
            rows = next((e["data"] for e in stats.get("extended_stats", []) if e["key"] == "throttling"), [])
            if live.get("offered") == 36:
                break
        assert live.get("offered") == 36, live  # 2 users x (10 ok + 5 throttled + 3 dropped)
        assert live["accepted"] == 20 and live["dropped"] == 6 and live["active_chats"] == 6
        assert live["stage"] == "only" and live["quota"]["concurrent_chats"] == 50
        figures = {r["figure"]: r for r in rows}
        assert "Offered arrivals (StartChatContact)" in figures
        with urllib.request.urlopen(base + "/", timeout=5) as response:
            page = response.read().decode()
        assert '"extended_tabs": [{"key": "throttling", "title": "Throttling"}]' in page
