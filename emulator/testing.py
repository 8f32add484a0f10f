"""Start an emulator process for a test or a script and always stop it.

    from emulator.testing import running_emulator

    with running_emulator({"rates": {"StartChatContact": {"rate": 100, "burst": 100}}}, time_scale=60) as emu:
        client = boto3.client("connect", endpoint_url=emu.url, ...)
        ...
        assert emu.state()["operations"]["StartChatContact"]["accepted"] == 1

`running_emulator(config=None, time_scale=None, *, startup_timeout_s=10.0, quiet=True)` writes
`config` (a dict of the TOML file's shape, see docs/emulator.md; None or {} = the built-in default;
keys not given keep their defaults, but a config that lists `instances` replaces the built-in
instance) to a temporary TOML file, starts `python -m emulator --port 0 --config FILE` with the current interpreter
on 127.0.0.1, waits for its `listening on` line and yields an EmulatorHandle:

    .url            "http://127.0.0.1:PORT"
    .port           int
    .process        the subprocess.Popen
    .state()        GET /_emulator/state as a dict
    .reset()        POST /_emulator/reset
    .put_config(d)  PUT /_emulator/config (merged into the live config); returns the new config dict
    .config()       GET /_emulator/config as a dict
    .health()       GET /_emulator/health as a dict

`connect_client(url, max_attempts=1, retry_mode="standard", access_key=..., region=...)` and
`participant_client(url, ...)` build boto3 clients pointed at the emulator (dummy credentials,
retries pinned; the participant client is unsigned); boto3 is imported only when they are called.

`time_scale` (emulated seconds per real second) overrides config["emulator"]["time_scale"]. On exit,
even after an exception, the process gets SIGTERM, then SIGKILL after 5 s. The emulator's stderr
goes to a temporary file whose last lines are put in the error raised when it fails to start.
Standard library only: importing this module loads no boto3, locust or gevent.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LISTENING = "chatload emulator listening on "


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
    """The emulator config dict as TOML text (tables for mappings, [[instances]] for the list)."""
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


@dataclass
class EmulatorHandle:
    url: str
    port: int
    process: subprocess.Popen

    def _request(self, method: str, path: str, payload: Any = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            detail = error.read().decode("utf-8", "replace")
            raise RuntimeError(f"{method} {path}: HTTP {error.code}: {detail}") from None

    def state(self) -> dict[str, Any]:
        return self._request("GET", "/_emulator/state")

    def health(self) -> dict[str, Any]:
        return self._request("GET", "/_emulator/health")

    def reset(self) -> None:
        self._request("POST", "/_emulator/reset")

    def config(self) -> dict[str, Any]:
        return self._request("GET", "/_emulator/config")

    def put_config(self, patch: dict[str, Any]) -> dict[str, Any]:
        return self._request("PUT", "/_emulator/config", patch)


def connect_client(url: str, *, max_attempts: int = 1, retry_mode: str = "standard",
                   access_key: str = "AKIDCHATLOAD", region: str = "us-east-1", **config: Any) -> Any:
    """A boto3 `connect` client for the emulator at `url` (retries pinned; dummy credentials)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "connect", endpoint_url=url, region_name=region, aws_access_key_id=access_key,
        aws_secret_access_key="chatload",
        config=Config(retries={"mode": retry_mode, "total_max_attempts": max_attempts}, **config),
    )


def participant_client(url: str, *, max_attempts: int = 1, retry_mode: str = "standard",
                       region: str = "us-east-1", **config: Any) -> Any:
    """A boto3 `connectparticipant` client for the emulator at `url` (unsigned: bearer tokens only)."""
    import boto3
    import botocore
    from botocore.config import Config

    return boto3.client(
        "connectparticipant", endpoint_url=url, region_name=region,
        config=Config(signature_version=botocore.UNSIGNED,
                      retries={"mode": retry_mode, "total_max_attempts": max_attempts}, **config),
    )


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@contextlib.contextmanager
def running_emulator(config: dict[str, Any] | None = None, time_scale: float | None = None, *,
                     startup_timeout_s: float = 10.0, quiet: bool = True) -> Iterator[EmulatorHandle]:
    """Run `python -m emulator --port 0` with `config` for the duration of the with-block."""
    config = json.loads(json.dumps(config or {}))
    if time_scale is not None:
        config.setdefault("emulator", {})["time_scale"] = time_scale
    with tempfile.TemporaryDirectory(prefix="chatload-emulator-") as tmp:
        config_path = Path(tmp) / "emulator.toml"
        config_path.write_text(to_toml(config), encoding="utf-8")
        stderr_path = Path(tmp) / "stderr.log"
        root = str(Path(__file__).resolve().parent.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "") if env.get("PYTHONPATH") else root
        command = [sys.executable, "-m", "emulator", "--host", "127.0.0.1", "--port", "0",
                   "--config", str(config_path)]
        if quiet:
            command.append("--quiet")
        with open(stderr_path, "wb") as stderr:
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, env=env, cwd=root,
                                       text=True, bufsize=1)
        try:
            url = _wait_for_listening(process, startup_timeout_s, stderr_path)
            port = int(url.rsplit(":", 1)[1])
            yield EmulatorHandle(url=url, port=port, process=process)
        finally:
            _stop(process)
            if process.stdout is not None:
                process.stdout.close()


def _wait_for_listening(process: subprocess.Popen, timeout_s: float, stderr_path: Path) -> str:
    import selectors

    deadline = time.monotonic() + timeout_s
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if selector.select(timeout=max(0.0, deadline - time.monotonic())):
                line = process.stdout.readline()
                if line.startswith(LISTENING):
                    return line[len(LISTENING):].strip()
                if not line and process.poll() is not None:
                    break
    tail = stderr_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-5:]
    _stop(process)
    raise RuntimeError(f"emulator did not start (exit {process.poll()}): {' | '.join(tail)}")
