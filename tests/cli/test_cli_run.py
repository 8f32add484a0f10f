"""`chatload run` end to end: it starts its own emulator and Locust, leaves a complete run folder, exits
by the report and stops what it started; the ad-hoc form; `chatload compare` of the two runs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e

SCENARIO = """\
    # 2 chats/s for 4 s under the emulator's default quotas: connect, a message, a short hold
    [[stages]]
    name = "steady"
    duration = "4s"
    target_rate = 2
    [chat]
    connect = true
    messages = 1
    message_interval = "0.3s"
    [chat.hold]
    distribution = "fixed"
    mean = "0.5s"
    [thresholds]
    max_p95_ms = 5000
    min_success_share = 0.9
"""


def chatload(*args: str, timeout_s: float = 120) -> subprocess.CompletedProcess:
    """`python -m chatload ARGS`; on a timeout it gets SIGTERM (it stops its Locust and emulator),
    then SIGKILL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "chatload", *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        raise AssertionError(f"chatload {' '.join(args)} did not end within {timeout_s} s:\n{err[-3000:]}") from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def nothing_listens(url: str) -> bool:
    parts = urlsplit(url)
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((parts.hostname, parts.port)) != 0


def check_run_folder(out: Path, done: subprocess.CompletedProcess) -> Path:
    assert done.returncode == 0, (done.returncode, done.stderr[-3000:])
    assert "Traceback" not in done.stdout + done.stderr, done.stderr[-3000:]
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    for name in (
        "meta.json",
        "summary.json",
        "report.html",
        "report.md",
        "junit.xml",
        "locust.html",
        "locust_stats.csv",
        "locust_stats_history.csv",
        "tables/per_second.csv",
    ):
        assert (run / name).is_file(), (name, sorted(p.name for p in run.iterdir()))
    assert list((run / "attempts").glob("*.parquet")) and not list((run / "attempts").glob("*.csv"))
    meta = json.loads((run / "meta.json").read_text())
    assert meta["ended_at"] is not None and meta["target"] == "emulator"
    assert meta["clean_up"]["still_active"] == 0
    assert nothing_listens(meta["endpoint"]), meta["endpoint"]  # the emulator it started is gone
    summary = json.loads((run / "summary.json").read_text())
    assert summary["valid"] is True and summary["passed"] is True, summary.get("invalid_reasons")
    assert str(run) in done.stderr  # it says where the run folder is
    return run


def test_run_a_scenario_file_then_an_adhoc_run_then_compare_them(tmp_path):
    path = tmp_path / "short.toml"
    path.write_text(textwrap.dedent(SCENARIO))
    first = check_run_folder(tmp_path / "a", chatload("run", str(path), "--out", str(tmp_path / "a")))
    summary = json.loads((first / "summary.json").read_text())
    assert summary["calls"]["StartChatContact"]["ok"] == 8  # 2/s for 4 s
    messages = summary["calls"]["SendMessage"]  # the last chat starts as the run ends: it skips its message
    assert messages["ok"] == messages["total"] >= 6, messages
    assert {t["name"] for t in summary["thresholds"]} >= {"max_p95_ms", "min_success_share"}

    second = check_run_folder(
        tmp_path / "b", chatload("run", "--rate", "3", "--duration", "5s", "--hold", "1s", "--out", str(tmp_path / "b"))
    )
    meta = json.loads((second / "meta.json").read_text())
    assert [(s["duration_s"], s["target_rate"]) for s in meta["scenario"]["stages"]] == [(5.0, 3.0)]
    assert json.loads((second / "summary.json").read_text())["calls"]["StartChatContact"]["ok"] == 15

    compared = chatload("compare", str(first), str(second), "--out", str(tmp_path / "cmp"), timeout_s=60)
    assert compared.returncode == 0, compared.stderr[-3000:]
    assert "Traceback" not in compared.stdout + compared.stderr
    page = (tmp_path / "cmp" / "compare.html").read_text(encoding="utf-8")
    assert first.name in page and second.name in page


GATED = """\
    # gated: 8 chats/s for 6 s, StartChatContact quota {rate}/s burst 8 on the emulator
    name = "gated"
    [[stages]]
    name = "steady"
    duration = "6s"
    target_rate = 8
    [chat]
    connect = false
    end_by = "stop_contact"
    [thresholds.regression]
    max_accepted_rate_drop = 0.05
    max_p95_increase = 3.0
    max_throttle_share_increase = 0.01
    [target.emulator_config.rates]
    StartChatContact = {{ rate = {rate}, burst = 8 }}
    StopContact = {{ rate = 100, burst = 100 }}
"""


def test_run_with_a_baseline_gates_on_it(tmp_path: Path):
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text(textwrap.dedent(GATED.format(rate=20)))
    bad.write_text(textwrap.dedent(GATED.format(rate=4)))  # a lower quota: throttled, fewer accepted
    done = chatload("run", str(good), "--out", str(tmp_path / "base"))
    assert done.returncode == 0, done.stderr[-3000:]
    (baseline,) = [p for p in (tmp_path / "base").iterdir() if p.is_dir()]
    again = chatload("report", str(baseline), "--baseline", str(baseline))  # a run against itself
    assert again.returncode == 0, again.stderr[-2000:]
    worse = chatload("run", str(bad), "--out", str(tmp_path / "next"), "--baseline", str(baseline))
    assert worse.returncode == 1, worse.stderr[-3000:]
    (run,) = [p for p in (tmp_path / "next").iterdir() if p.is_dir()]
    summary = json.loads((run / "summary.json").read_text())
    failed = {c["name"] for c in summary["regression"]["checks"] if not c["passed"]}
    assert failed >= {"accepted_rate_drop[steady]", "throttle_share_increase[throttled_tps]"}, summary["regression"]
    assert "regression accepted_rate_drop[steady]" in (run / "junit.xml").read_text()
    missing = chatload("run", str(good), "--out", str(tmp_path / "x"), "--baseline", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "--baseline" in missing.stderr and "Traceback" not in missing.stderr
