"""`chatload ui`: the emulator plus Locust's web UI on loopback, both stopped by Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from chatload.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return resp.read()


def test_ui_serves_the_throttling_figures_and_stops_everything_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "chatload", "ui", "ci-smoke", "--web-port", str(port), "--out", str(tmp_path)],
        cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline, page = time.monotonic() + 30, b""
        while time.monotonic() < deadline:
            try:
                page = get(f"http://127.0.0.1:{port}/")
                break
            except OSError:
                time.sleep(0.3)
        assert b"<html" in page.lower(), "the web UI did not answer within 30 s"
        live = json.loads(get(f"http://127.0.0.1:{port}/chatload/live"))
        assert isinstance(live, dict) and live
        # the emulator and Locust are this command's children (each in its own session)
        children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        assert len(children) >= 2, children
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=40)
        assert proc.returncode in (0, 2), out
        assert "Traceback" not in out, out
        time.sleep(0.5)
        alive = [pid for pid in children if Path(f"/proc/{pid}").exists()
                 and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()]  # fmt: skip
        assert not alive, f"children left running: {alive}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
