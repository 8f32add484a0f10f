"""Errors people hit with the `chatload` command: one clear line, exit code 2, no traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from chatload.processes import free_port

ROOT = Path(__file__).resolve().parents[2]


def chatload(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chatload", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("chatload")]
    assert lines, result.stderr
    for needle in needles:
        assert needle in result.stderr, (needle, result.stderr)


def test_help_for_every_command() -> None:
    assert chatload("--help").returncode == 0
    for command in ("run", "ui", "emulator", "report", "compare", "scenarios"):
        result = chatload(command, "--help")
        assert result.returncode == 0, (command, result.stderr)
        assert "usage: chatload " + command in result.stdout


def test_unknown_option_is_exit_2() -> None:
    result = chatload("run", "--no-such-flag")
    assert result.returncode == 2
    assert "unrecognized arguments: --no-such-flag" in result.stderr
    assert "Traceback" not in result.stderr


def test_scenario_typo_names_file_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "typo.toml"
    bad.write_text('# a scenario with a typo\n[[stages]]\nname = "a"\nduration = "5s"\ntarget_rat = 2\n')
    result = chatload("run", str(bad))
    assert_one_line_error(result, "typo.toml", "target_rat")


def test_unknown_scenario_name() -> None:
    result = chatload("run", "no-such-scenario")
    assert_one_line_error(result, "no-such-scenario", "chatload scenarios")


def test_adhoc_run_needs_rate_and_duration() -> None:
    assert_one_line_error(chatload("run", "--rate", "2"), "--duration")
    assert_one_line_error(chatload("run", "--rate", "2", "--duration", "soon"), "--duration")


def test_endpoint_unreachable(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = chatload("run", "ci-smoke", "--endpoint-url", url, "--out", str(tmp_path))
    assert_one_line_error(result, url, "nothing answers")


def test_real_instance_needs_consent(tmp_path: Path) -> None:
    result = chatload(
        "run", "ci-smoke", "--target", "aws", "--region", "eu-west-2",
        "--instance-id", "11111111-0000-4000-8000-000000000000",
        "--contact-flow-id", "22222222-0000-4000-8000-000000000000", "--out", str(tmp_path),
    )  # fmt: skip
    assert_one_line_error(result, "--confirm-real-instance")


def test_emulator_port_taken() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = chatload("emulator", "--port", str(port), timeout=30)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert str(port) in result.stderr
    assert "Traceback" not in result.stderr


def test_scenarios_lists_every_builtin() -> None:
    result = chatload("scenarios")
    assert result.returncode == 0, result.stderr
    names = {line.split()[0] for line in result.stdout.splitlines() if line.strip()}
    expected = {p.stem for p in (ROOT / "scenarios").glob("*.toml")}
    assert expected <= names
    assert {"ci-smoke", "tps-ceiling", "concurrency-ceiling", "retry-storm"} <= names


@pytest.mark.parametrize("command", ["report", "compare"])
def test_missing_run_folder(tmp_path: Path, command: str) -> None:
    args = [str(tmp_path / "nope")] if command == "report" else [str(tmp_path / "a"), str(tmp_path / "b")]
    result = chatload(command, *args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_real_instance_without_credentials(tmp_path: Path) -> None:
    """Consent given but no credentials anywhere: one line, exit 2, and nothing sent (no IMDS either)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=str(tmp_path / "none"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
        HOME=str(tmp_path),
    )
    result = subprocess.run(
        [sys.executable, "-m", "chatload", "run", "ci-smoke", "--target", "aws", "--region", "eu-west-2",
         "--instance-id", "11111111-0000-4000-8000-000000000000",
         "--contact-flow-id", "22222222-0000-4000-8000-000000000000",
         "--confirm-real-instance", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert_one_line_error(result, "no AWS credentials")
