"""Helpers shared by the tests: `import support` (pyproject's pytest `pythonpath` puts tests/ on the path).

- `running_locust` / `run_locust`: a real Locust in its own process group, output to a log file, always
  stopped (also when the test fails);
- `FakeClock`: a clock the test moves by hand;
- run folders: `scenario_file`, `only_run`, `attempts`, `attempts_csv`.

Fixtures are in tests/conftest.py (a conftest is not importable under --import-mode=importlib).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pandas as pd

from chatload.processes import stop_process

ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILE = ROOT / "locustfile.py"


# --- Locust processes ---------------------------------------------------------------------------------


def env_without(*prefixes: str) -> dict[str, str]:
    """os.environ without the variables whose names start with one of `prefixes`."""
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


class LocustProcess:
    """A Locust started by `running_locust`: the process, its log file and how to wait for or stop it."""

    def __init__(self, proc: subprocess.Popen, log_path: Path, timeout_s: float, grace_s: float) -> None:
        self.proc = proc
        self.log_path = log_path
        self.timeout_s = timeout_s
        self.grace_s = grace_s
        self._kept: str | None = None  # the output, once a temporary log file is gone

    @property
    def args(self) -> list[str]:
        return list(self.proc.args)

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    def output(self) -> str:
        """Everything Locust wrote so far (stdout and stderr, in the order written)."""
        if self._kept is not None:
            return self._kept
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def tail(self, chars: int = 4000) -> str:
        return self.output()[-chars:]

    def wait(self, timeout_s: float | None = None) -> int:
        """The exit code; if Locust has not ended within `timeout_s` (default: the context manager's), it is
        stopped and AssertionError carries the end of its log."""
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"locust did not end within {timeout_s} s:\n{self.tail()}") from None

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL after the grace period; then SIGKILL what is left of the group
        (worker processes outlive a master that ended)."""
        stop_process(self.proc, self.grace_s)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def running_locust(
    args: Sequence[str],
    *,
    locustfile: Path = LOCUSTFILE,
    log: Path | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout_s: float = 90,
    grace_s: float = 10,
    prefix: Sequence[str] = (),
) -> Iterator[LocustProcess]:
    """`python -m locust -f LOCUSTFILE ARGS` in its own process group (stdin closed, stdout and stderr to
    `log`, default a temporary file whose text `output()` still gives after the block), its environment
    os.environ without AWS_* unless `env` is given, run in `cwd` (default the repository). Yields a
    `LocustProcess` (`wait()` defaults to `timeout_s`); the whole process group is stopped on exit,
    whatever happens. `prefix` wraps the command (e.g. `ip netns exec NS` for a test host)."""
    temp_dir = None
    if log is None:
        temp_dir = Path(tempfile.mkdtemp(prefix="chatload-test-locust-"))
        log = temp_dir / "locust.log"
    cmd = [*prefix, sys.executable, "-m", "locust", "-f", str(locustfile), *args]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT if cwd is None else cwd,
            env=env_without("AWS_") if env is None else dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    handle = LocustProcess(proc, log, timeout_s, grace_s)
    try:
        yield handle
    finally:
        handle.stop()
        if temp_dir is not None:
            with contextlib.suppress(OSError):
                handle._kept = handle.output()
            shutil.rmtree(temp_dir, ignore_errors=True)


def run_locust(args: Sequence[str], timeout_s: float = 90, **kwargs) -> subprocess.CompletedProcess:
    """Run Locust to its end (`running_locust`'s keywords): returncode, and its output as `stdout`
    (stdout and stderr together). Not ended within `timeout_s`: AssertionError with the log's end."""
    with running_locust(args, timeout_s=timeout_s, **kwargs) as locust:
        code = locust.wait()
        return subprocess.CompletedProcess(locust.args, code, locust.output(), "")


# --- a fake clock -------------------------------------------------------------------------------------


class FakeClock:
    """A clock that stands still: calling it gives `t`; tests move it by `advance()` or by setting `t`."""

    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


# --- scenarios and run folders ------------------------------------------------------------------------


def scenario_file(tmp_path: Path, text: str) -> Path:
    """`text` (dedented) written to tmp_path/scenario.toml."""
    path = tmp_path / "scenario.toml"
    path.write_text(textwrap.dedent(text))
    return path


def only_run(out: Path) -> Path:
    """The one run folder in `out` (nothing else may be there)."""
    (run,) = list(out.iterdir())
    assert run.is_dir(), run
    return run


def attempts_csv(out: Path) -> list[Path]:
    """The attempts CSV files of a local (single-process) run in `out`: there while the run writes."""
    return list(out.glob("*/attempts/local.csv"))


def attempts(run: Path, *, parquet_only: bool = False) -> pd.DataFrame:
    """Every attempts file of the run folder as one frame: per worker its Parquet file, else its CSV
    (a worker still writing or killed has only the CSV). `parquet_only`: the Parquet files alone, at
    least one (a run that ended cleanly has compacted every CSV)."""
    folder = run / "attempts"
    files = {} if parquet_only else {p.stem: p for p in folder.glob("*.csv")}
    files.update({p.stem: p for p in folder.glob("*.parquet")})
    assert files, list(folder.iterdir())
    frames = [pd.read_parquet(p) if p.suffix == ".parquet" else pd.read_csv(p) for _, p in sorted(files.items())]
    return pd.concat(frames, ignore_index=True)


# --- boto3 clients for the emulator ---------------------------------------------------------------------


def connect_client(
    url: str, *, max_attempts: int = 1, retry_mode: str = "standard", access_key: str = "AKIDCHATLOAD",
    region: str = "us-east-1", **config,
):  # fmt: skip
    """A boto3 `connect` client for the emulator at `url` (retries pinned: one attempt sees every answer raw)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "connect", endpoint_url=url, region_name=region, aws_access_key_id=access_key,
        aws_secret_access_key="chatload",
        config=Config(retries={"mode": retry_mode, "total_max_attempts": max_attempts}, **config),
    )  # fmt: skip


def participant_client(
    url: str, *, max_attempts: int = 1, retry_mode: str = "standard", region: str = "us-east-1", **config
):
    """A boto3 `connectparticipant` client for the emulator at `url` (unsigned: bearer tokens only)."""
    import boto3
    import botocore
    from botocore.config import Config

    retries = {"mode": retry_mode, "total_max_attempts": max_attempts}
    return boto3.client(
        "connectparticipant", endpoint_url=url, region_name=region,
        config=Config(signature_version=botocore.UNSIGNED, retries=retries, **config),
    )  # fmt: skip


def start_chat(client, **extra):
    """StartChatContact on the emulator's default instance and flow."""
    from chatload.contracts import DEFAULT_CONTACT_FLOW_ID, DEFAULT_INSTANCE_ID

    return client.start_chat_contact(
        InstanceId=DEFAULT_INSTANCE_ID, ContactFlowId=DEFAULT_CONTACT_FLOW_ID,
        ParticipantDetails={"DisplayName": "Ann"}, **extra,
    )  # fmt: skip


def wait_for(predicate, timeout_s: float = 5.0, step_s: float = 0.02) -> bool:
    """Poll `predicate` until it holds or timeout_s passes; whether it held (asked once more at the end)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step_s)
    return bool(predicate())


def error_of(call, *args, **kwargs) -> dict:
    """The error response (botocore's ClientError.response) of a boto3 call that must fail."""
    import pytest
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as caught:
        call(*args, **kwargs)
    return caught.value.response
