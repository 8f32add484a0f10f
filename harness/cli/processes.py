"""What the `chatload` command asks of its child processes: Locust in the foreground, and whether
an endpoint given with --endpoint-url answers.

Plain subprocess management, no gevent: the CLI process never imports Locust, gevent or boto3. The
emulator launcher is chatload.emulator_control's; every process started here is stopped by the code
that started it, also on errors and Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error

from chatload.emulator_control import EmulatorAdmin
from chatload.processes import stop_group, stop_process

WORKERS_GRACE_S = 75.0  # the clean-up's 60 s deadline, and some


class ProcessError(Exception):
    """A child process could not be started or answered badly: one line for the user."""


def check_endpoint(url: str, timeout_s: float = 3.0) -> dict | None:
    """The emulator's state at `url`, or None for a non-emulator endpoint that answers HTTP.
    Raises ProcessError when nothing answers."""
    admin = EmulatorAdmin(url, timeout_s=timeout_s)
    try:
        admin.health()
    except urllib.error.HTTPError:
        return None  # something answers HTTP but is not our emulator: a real or other endpoint
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ProcessError(
            f"--endpoint-url {url}: nothing answers there ({reason}); start one with "
            f"`chatload emulator` or leave out --endpoint-url to let `chatload run` start its own"
        ) from None
    try:
        return admin.state()
    except (OSError, ValueError):
        return {}


def run_locust(cmd: list[str], watchdog_s: float | None) -> int:
    """Run Locust in the foreground, forwarding Ctrl-C and SIGTERM so that it can flush its data
    and end every chat. A watchdog stops it when it runs far past its schedule."""
    proc = subprocess.Popen(cmd, start_new_session=True)
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
        stop_process(proc)
        # Locust's --processes workers outlive a master that died or refused to start: they get
        # SIGTERM (they end their chats) and, after the clean-up's deadline, SIGKILL.
        if stop_group(proc.pid, grace_s=WORKERS_GRACE_S):
            print("chatload: stopped the Locust workers the master left behind", file=sys.stderr)
