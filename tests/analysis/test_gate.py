"""Regression gates (analysis/gate.py) on synthetic runs with answers worked out by hand, and through
`chatload report --baseline` / `chatload compare --gate` (junit cases, exit codes)."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from chatload.analysis.compare import main as compare_main
from chatload.analysis.gate import GateMismatch, gate, regression_limits
from chatload.analysis.pipeline import analyze
from chatload.analysis.report import main as report_main

REGRESSION = {"max_accepted_rate_drop": 0.05, "max_p95_increase": 0.25, "max_throttle_share_increase": 0.01}


def scenario(stages=("only",), regression=REGRESSION):
    return {
        "name": "test",
        "stages": [{"name": s, "duration_s": 10, "target_rate": 2} for s in stages],
        "thresholds": {"max_dropped_share": 0.01, "regression": dict(regression)},
    }


def rows(attempt_row, ok: int, throttled: int, latency: float, stage: str = "only"):
    """ok + throttled StartChatContact calls spread over the 10 s stage, ok ones at `latency` ms."""
    out = []
    for i in range(ok + throttled):
        t = 0.05 + i * 10.0 / (ok + throttled)
        outcome = "ok" if i < ok else "throttled_tps"
        out.append(attempt_row(t, "StartChatContact", outcome, latency, t_intended=t, stage=stage, chat=f"c{i}"))
    return out


def test_a_run_against_itself_passes(make_run, attempt_row):
    run = make_run({"w1": rows(attempt_row, 20, 0, 100.0)}, scenario=scenario())
    a = analyze(run)
    checks = gate(a, a, regression_limits(a.run.meta))
    names = [c["name"] for c in checks]
    assert names == [
        "accepted_rate_drop[only]",
        "p95_increase[StartChatContact]",
        "throttle_share_increase[throttled_tps]",
        "throttle_share_increase[throttled_concurrency]",
        "throttle_share_increase[throttled_unknown]",
    ]
    assert all(c["passed"] for c in checks) and checks[0]["observed"] == 0


def test_a_lower_quota_fails_on_accepted_rate_and_throttle_share(make_run, attempt_row):
    baseline = analyze(make_run({"w1": rows(attempt_row, 20, 0, 100.0)}, scenario=scenario()))
    # the same 20 arrivals, 16 accepted and 4 throttled: accepted 1.6/s against 2.0/s is a 20% drop,
    # the TPS-throttled share rises by 4/20 = 0.2; latency 110 ms against 100 ms is +10% (under 25%)
    worse = analyze(make_run({"w1": rows(attempt_row, 16, 4, 110.0)}, scenario=scenario()))
    checks = {c["name"]: c for c in gate(baseline, worse, REGRESSION)}
    assert checks["accepted_rate_drop[only]"]["observed"] == pytest.approx(0.2)
    assert not checks["accepted_rate_drop[only]"]["passed"]
    assert checks["throttle_share_increase[throttled_tps]"]["observed"] == pytest.approx(0.2)
    assert not checks["throttle_share_increase[throttled_tps]"]["passed"]
    assert checks["p95_increase[StartChatContact]"]["observed"] == pytest.approx(0.1)
    assert checks["p95_increase[StartChatContact]"]["passed"]


def test_runs_that_do_not_line_up_cannot_be_gated(make_run, attempt_row):
    one = analyze(make_run({"w1": rows(attempt_row, 20, 0, 100.0)}, scenario=scenario()))
    other_stages = analyze(
        make_run({"w1": rows(attempt_row, 20, 0, 100.0, stage="a")}, scenario=scenario(stages=("a",)))
    )
    with pytest.raises(GateMismatch, match="stages do not line up"):
        gate(one, other_stages, REGRESSION)
    renamed = {**scenario(), "name": "other"}
    with pytest.raises(GateMismatch, match="different scenarios"):
        gate(one, analyze(make_run({"w1": rows(attempt_row, 20, 0, 100.0)}, scenario=renamed)), REGRESSION)


def test_report_with_a_baseline_adds_junit_cases_and_exits_1_on_a_regression(make_run, attempt_row, capsys):
    baseline = make_run({"w1": rows(attempt_row, 20, 0, 100.0)}, scenario=scenario())
    same = make_run({"w1": rows(attempt_row, 20, 0, 100.0)}, scenario=scenario())
    worse = make_run({"w1": rows(attempt_row, 16, 4, 110.0)}, scenario=scenario())
    assert report_main([str(same), "--baseline", str(baseline)]) == 0
    assert report_main([str(worse), "--baseline", str(baseline)]) == 1
    summary = json.loads((worse / "summary.json").read_text())
    assert summary["regression"]["passed"] is False and summary["passed"] is False
    cases = ET.parse(worse / "junit.xml").getroot().iter("testcase")
    failed = {c.get("name") for c in cases if c.find("failure") is not None}
    assert (
        "regression accepted_rate_drop[only]" in failed
        and "regression throttle_share_increase[throttled_tps]" in failed
    )
    assert "regression accepted_rate_drop[only]" in (worse / "report.md").read_text()
    # a different stage list: exit 2, one line
    other = make_run({"w1": rows(attempt_row, 20, 0, 100.0, stage="a")}, scenario=scenario(stages=("a",)))
    capsys.readouterr()
    assert report_main([str(other), "--baseline", str(baseline)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "stages do not line up" in err[0]


def test_compare_gate_writes_gate_xml_and_exits_by_the_checks(make_run, attempt_row, tmp_path):
    baseline = make_run({"w1": rows(attempt_row, 20, 0, 100.0)}, scenario=scenario())
    worse = make_run({"w1": rows(attempt_row, 16, 4, 110.0)}, scenario=scenario())
    assert compare_main([str(baseline), str(baseline), "--gate", "--out", str(tmp_path / "c1")]) == 0
    assert compare_main([str(baseline), str(worse), "--gate", "--out", str(tmp_path / "c2")]) == 1
    root = ET.parse(tmp_path / "c2" / "gate.xml").getroot()
    assert int(root.get("failures")) == 2 and int(root.get("tests")) == 6  # validity + 5 checks
    no_table = make_run({"w1": rows(attempt_row, 20, 0, 100.0)}, scenario=scenario(regression={}))
    assert compare_main([str(baseline), str(no_table), "--gate", "--out", str(tmp_path / "c3")]) == 2


def test_the_command_line_carries_the_gate(make_run, attempt_row, tmp_path):
    baseline = make_run({"w1": rows(attempt_row, 20, 0, 100.0)}, scenario=scenario())
    worse = make_run({"w1": rows(attempt_row, 16, 4, 110.0)}, scenario=scenario())
    command = [sys.executable, "-m", "chatload", "compare", str(baseline), str(worse), "--gate"]
    done = subprocess.run([*command, "--out", str(tmp_path / "c")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "REGRESSION: accepted_rate_drop[only]" in done.stdout and "regression gate: FAILED" in done.stdout
