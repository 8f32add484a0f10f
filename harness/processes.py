"""Child processes the `chatload` command starts: the emulator and Locust.

Plain subprocess management, no gevent: the CLI process must not import Locust, gevent or boto3.
Every process started here is stopped by the code that started it (context managers), also on
errors and Ctrl-C.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

LISTENING = re.compile(r"chatload emulator listening on (http://\S+)")


class ProcessError(Exception):
    """A child process could not be started or answered badly: one line for the user."""


@dataclass
class EmulatorProcess:
    url: str
    process: subprocess.Popen[str]


def project_root() -> Path:
    """The folder holding locustfile.py and scenarios/ (the repository root)."""
    return Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def emulator_process(
    host: str = "127.0.0.1",
    port: int = 0,
    config: Path | None = None,
    startup_timeout_s: float = 15.0,
) -> Iterator[EmulatorProcess]:
    """Start `python -m emulator` and yield once it listens; always stop it afterwards."""
    cmd = [sys.executable, "-m", "emulator", "--host", host, "--port", str(port), "--quiet"]
    if config is not None:
        cmd += ["--config", str(config)]
    proc = subprocess.Popen(
        cmd,
        cwd=project_root(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        url = _read_listening_line(proc, startup_timeout_s)
        # Keep draining stdout so the emulator never blocks on a full pipe.
        threading.Thread(target=_drain, args=(proc.stdout,), daemon=True).start()
        threading.Thread(target=_drain, args=(proc.stderr,), daemon=True).start()
        yield EmulatorProcess(url=url, process=proc)
    finally:
        stop_process(proc)


def _read_listening_line(proc: subprocess.Popen[str], timeout_s: float) -> str:
    assert proc.stdout is not None and proc.stderr is not None
    found: list[str] = []

    def scan() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            match = LISTENING.search(line)
            if match:
                found.append(match.group(1))
                return

    reader = threading.Thread(target=scan, daemon=True)
    reader.start()
    reader.join(timeout_s)
    if found:
        return found[0]
    if proc.poll() is not None:
        err = (proc.stderr.read() or "").strip().splitlines()
        raise ProcessError(err[-1] if err else f"the emulator exited with code {proc.returncode}")
    raise ProcessError(f"the emulator did not start listening within {timeout_s:.0f} s")


def _drain(stream: object) -> None:
    with contextlib.suppress(ValueError, OSError):
        for _ in stream:  # type: ignore[attr-defined]
            pass


def stop_process(proc: subprocess.Popen[str], grace_s: float = 10.0) -> None:
    """SIGTERM the process group, then SIGKILL after `grace_s`."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` right now."""
    import socket

    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def check_endpoint(url: str, timeout_s: float = 3.0) -> dict | None:
    """GET the emulator's health page. Returns the emulator state, or None for a non-emulator
    endpoint that answers HTTP. Raises ProcessError when nothing answers."""
    base = url.rstrip("/")
    try:
        with urllib.request.urlopen(f"{base}/_emulator/health", timeout=timeout_s):
            pass
    except urllib.error.HTTPError:
        return None  # something answers HTTP but is not our emulator: a real or other endpoint
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ProcessError(
            f"--endpoint-url {url}: nothing answers there ({reason}); start one with "
            f"`chatload emulator` or leave out --endpoint-url to let `chatload run` start its own"
        ) from None
    try:
        with urllib.request.urlopen(f"{base}/_emulator/state", timeout=timeout_s) as resp:
            return json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError):
        return {}


def run_locust(cmd: list[str], watchdog_s: float | None) -> int:
    """Run Locust in the foreground, forwarding Ctrl-C and SIGTERM so that it can flush its data
    and end every chat. A watchdog stops it when it runs far past its schedule."""
    proc = subprocess.Popen(cmd, cwd=project_root(), start_new_session=True)
    forwarded = {"count": 0}

    def forward(signum: int, _frame: object) -> None:
        forwarded["count"] += 1
        sig = signal.SIGTERM if forwarded["count"] == 1 else signal.SIGKILL
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)

    old_int = signal.signal(signal.SIGINT, forward)
    old_term = signal.signal(signal.SIGTERM, forward)
    deadline = None if watchdog_s is None else time.monotonic() + watchdog_s
    try:
        while True:
            try:
                return proc.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                if deadline is not None and time.monotonic() > deadline:
                    print(
                        f"chatload: Locust ran {watchdog_s:.0f} s, far past its schedule; stopping it",
                        file=sys.stderr,
                    )
                    deadline = None
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGTERM)
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
        stop_process(proc)  # type: ignore[arg-type]
