"""`python -m emulator`: the listening line, bad input, signals."""

import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from chatload.contracts import LISTENING_LINE as LISTENING
from chatload.emulator.server import main

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def launch(*args):
    return subprocess.Popen(
        [sys.executable, "-m", "chatload.emulator", *args],
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def finish(process, timeout=10):
    try:
        out, err = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return process.returncode, out, err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_prints_one_listening_line_and_exits_0_on_signal(sig):
    process = launch("--port", "0", "--quiet")
    try:
        line = process.stdout.readline()
        assert line.startswith(LISTENING + "http://127.0.0.1:")
        port = int(line.strip().rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        process.send_signal(sig)
        code, out, err = finish(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert code == 0
    assert out == ""  # exactly one stdout line in all
    assert "Traceback" not in err


def test_port_taken_is_one_line_and_exit_2():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code, out, err = finish(launch("--port", str(port)))
    assert code == 2 and out == ""
    assert err.strip().count("\n") == 0 and f"127.0.0.1:{port}" in err and "already in use" in err


def test_bad_config_file_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[rates]\nStartChatContact = { rate = 'fast', burst = 8 }\n")
    code, out, err = finish(launch("--port", "0", "--config", str(bad)))
    assert code == 2 and out == ""
    assert err.strip().count("\n") == 0 and str(bad) in err and "rates.StartChatContact.rate" in err
    assert "Traceback" not in err
    code, _, err = finish(launch("--port", "0", "--config", str(tmp_path / "missing.toml")))
    assert code == 2 and "file not found" in err


def test_main_rejects_an_impossible_port(capsys):
    assert main(["--port", "70000"]) == 2
    assert "--port" in capsys.readouterr().err


def test_running_emulator_reports_a_start_failure_and_leaves_no_process():
    from chatload.emulator_control import running_emulator

    with (
        pytest.raises(RuntimeError, match=r"rates\.StartChatContact\.rate"),
        running_emulator({"rates": {"StartChatContact": {"rate": -1, "burst": 8}}}),
    ):
        pass


def test_running_emulator_stops_the_process_even_when_the_block_fails():
    from chatload.emulator_control import running_emulator

    with pytest.raises(ZeroDivisionError), running_emulator() as handle:
        process = handle.process
        assert handle.health() == {"status": "ok"}
        1 / 0  # noqa: B018
    assert process.poll() is not None
