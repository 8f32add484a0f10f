"""The emulator from outside: its launcher and the client of its admin API (standard library only).

One launcher and one admin client, shared by the command line, the harness, the tests and the
benchmarks; it imports nothing of the emulator itself (they meet over HTTP only):

    from chatload.emulator_control import running_emulator

    with running_emulator({"rates": {"StartChatContact": {"rate": 100, "burst": 100}}}, time_scale=60) as emu:
        ...  # boto3 clients with endpoint_url=emu.url
        assert emu.state()["operations"]["StartChatContact"]["accepted"] == 1

`running_emulator(config=None, time_scale=None, ...)` takes the configuration as a dict of the TOML
file's shape (docs/emulator.md; None or {} = the built-in default; a config that lists `instances`
replaces the built-in instance) or as the path of a TOML file. It starts `python -m
chatload.emulator --port 0` with the current interpreter on 127.0.0.1 in its own process group,
waits for its `listening on` line and yields an `EmulatorProcess` (url, port, process, and the admin
calls below). On exit, even after an exception, the group gets SIGTERM, then SIGKILL. A failure to
start raises `EmulatorStartError` whose text is one line: the emulator's last line on stderr (a bad
config names its file and key) or what happened.

`prefix` wraps the command (e.g. `("ip", "netns", "exec", "NS")` for an emulator on a test host in
a network namespace). `EmulatorAdmin(url)` calls the admin API (architecture.md section 2): health(), state(), reset(),
config(), put_config(patch); and problem(), one line for a user when no emulator answers at url.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatload.contracts import LISTENING_LINE
from chatload.processes import stop_process

ADMIN = "/_emulator"


class EmulatorStartError(RuntimeError):
    """The emulator did not start: str() is one line for the user."""


class ConfigRejected(OSError):
    """The emulator refused a configuration patch: str() names the status and the emulator's reason."""


@dataclass(frozen=True)
class EmulatorAdmin:
    """The emulator's admin API at `url`. Calls raise OSError (urllib's errors) when nothing answers
    and urllib.error.HTTPError when the emulator refuses (a bad config patch)."""

    url: str
    timeout_s: float = 10.0

    def request(self, method: str, path: str, payload: Any = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            self.url.rstrip("/") + path, data=data, method=method, headers={"content-type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            return json.loads(response.read() or b"{}")

    def health(self) -> dict[str, Any]:
        return self.request("GET", f"{ADMIN}/health")

    def state(self) -> dict[str, Any]:
        return self.request("GET", f"{ADMIN}/state")

    def reset(self) -> None:
        self.request("POST", f"{ADMIN}/reset")

    def config(self) -> dict[str, Any]:
        return self.request("GET", f"{ADMIN}/config")

    def put_config(self, patch: dict[str, Any]) -> dict[str, Any]:
        """Merge `patch` into the live configuration (instances by id); returns the new config."""
        try:
            return self.request("PUT", f"{ADMIN}/config", patch)
        except urllib.error.HTTPError as error:
            detail = error.read().decode("utf-8", "replace")
            raise ConfigRejected(f"PUT {ADMIN}/config: HTTP {error.code}: {detail}") from None

    def problem(self) -> str | None:
        """None when a chatload emulator answers at url, else one line saying what to do."""
        try:
            self.health()
            return None
        except urllib.error.HTTPError as exc:
            return f"{self.url} answered HTTP {exc.code} to {ADMIN}/health: is this a chatload emulator?"
        except (OSError, ValueError):
            return (
                f"no chatload emulator answers at {self.url}: start one with `chatload emulator`, "
                "or pass --endpoint-url URL"
            )


@dataclass
class EmulatorProcess:
    """A running emulator: where it listens, its process, and its admin API."""

    url: str
    port: int
    process: subprocess.Popen

    @property
    def admin(self) -> EmulatorAdmin:
        return EmulatorAdmin(self.url)

    def state(self) -> dict[str, Any]:
        return self.admin.state()

    def health(self) -> dict[str, Any]:
        return self.admin.health()

    def reset(self) -> None:
        self.admin.reset()

    def config(self) -> dict[str, Any]:
        return self.admin.config()

    def put_config(self, patch: dict[str, Any]) -> dict[str, Any]:
        return self.admin.put_config(patch)


@contextlib.contextmanager
def running_emulator(
    config: dict[str, Any] | Path | None = None,
    time_scale: float | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    startup_timeout_s: float = 15.0,
    quiet: bool = True,
    prefix: tuple[str, ...] = (),
) -> Iterator[EmulatorProcess]:
    """Run `python -m chatload.emulator` for the duration of the with-block (see the module doc)."""
    with tempfile.TemporaryDirectory(prefix="chatload-emulator-") as tmp:
        if isinstance(config, Path):
            config_path = config
            if time_scale is not None:
                raise ValueError("time_scale goes into the config file when the config is a path")
        else:
            settings = json.loads(json.dumps(config or {}))
            if time_scale is not None:
                settings.setdefault("emulator", {})["time_scale"] = time_scale
            config_path = Path(tmp) / "emulator.toml"
            config_path.write_text(to_toml(settings), encoding="utf-8")
        command = [*prefix, sys.executable, "-m", "chatload.emulator", "--host", host, "--port", str(port),
                   "--config", str(config_path)]  # fmt: skip
        if quiet:
            command.append("--quiet")
        stderr_path = Path(tmp) / "stderr.log"
        with open(stderr_path, "wb") as stderr:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, text=True,
                start_new_session=True,
            )  # fmt: skip
        try:
            url = _wait_for_listening(process, startup_timeout_s, stderr_path)
            # keep draining stdout so that the emulator never blocks on a full pipe
            threading.Thread(target=_drain, args=(process.stdout,), daemon=True).start()
            yield EmulatorProcess(url=url, port=int(url.rsplit(":", 1)[1]), process=process)
        finally:
            stop_process(process, grace_s=5.0)
            if process.stdout is not None:
                with contextlib.suppress(OSError, ValueError):
                    process.stdout.close()


def _wait_for_listening(process: subprocess.Popen, timeout_s: float, stderr_path: Path) -> str:
    found: list[str] = []

    def scan() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith(LISTENING_LINE):
                found.append(line[len(LISTENING_LINE) :].strip())
                return

    reader = threading.Thread(target=scan, daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout_s
    while reader.is_alive() and time.monotonic() < deadline and process.poll() is None:
        reader.join(0.05)
    reader.join(0.2)
    if found:
        return found[0]
    stop_process(process, grace_s=5.0)
    lines = stderr_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    if lines:
        raise EmulatorStartError(lines[-1].removeprefix("chatload: "))
    if process.returncode not in (None, 0) and time.monotonic() < deadline:
        raise EmulatorStartError(f"the emulator exited with code {process.returncode}")
    raise EmulatorStartError(f"the emulator did not start listening within {timeout_s:.0f} s")


def _drain(stream: Any) -> None:
    with contextlib.suppress(ValueError, OSError):
        for _ in stream:
            pass


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def to_toml(config: dict[str, Any]) -> str:
    """An emulator config dict as TOML text (tables for mappings, [[instances]] for the list)."""
    lines: list[str] = []
    for section, content in config.items():
        if section == "instances":
            for item in content:
                lines.append("[[instances]]")
                lines.extend(f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in item.items())
        elif isinstance(content, dict):
            lines.append(f"[{section}]")
            lines.extend(f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in content.items())
        else:
            lines.insert(0, f"{json.dumps(str(section))} = {_toml_value(content)}")
    return "\n".join(lines) + "\n"
