"""A target that misbehaves on purpose (the emulator's [faults]): headless Locust runs whose every
call is classified as the emulator says it answered it.

- 200 ms +- 50 ms added, 500s, 503s, resets and requests never answered: the open model still offers
  the planned rate, the calls start on time (start_lag_ms), the latency percentiles carry the added
  delay, and each class equals the emulator's fault counters: timeouts are `timeout`, resets
  `connection_error`, 5xx `server_error`, and none is merged with the throttles;
- a delay long enough to keep every customer busy: arrivals are dropped and the run is invalid.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import attempts, only_run, run_locust, scenario_file

from chatload.emulator_control import running_emulator

pytestmark = pytest.mark.e2e

HIGH = {"rate": 1000, "burst": 1000}
RATE, SECONDS = 10, 20


def test_a_brownout_is_classified_as_the_emulator_injected_it(tmp_path: Path):
    faults = {
        "seed": 3,
        "no_answer_max_real_s": 60,  # longer than the client's 15 s read timeout: each one is a timeout
        "StartChatContact": {
            "latency": {"distribution": "uniform", "mean_ms": 200, "spread_ms": 50},
            "server_error_share": 0.05,
            "service_unavailable_share": 0.03,
            "reset_share": 0.03,
            "no_answer_share": 0.02,
        },
    }
    config = {"rates": {"StartChatContact": HIGH, "StopContact": HIGH}, "faults": faults}
    path = scenario_file(
        tmp_path,
        f"""\
        # {RATE} chats/s for {SECONDS} s against a brownout
        [[stages]]
        name = "brownout"
        duration = "{SECONDS}s"
        target_rate = {RATE}
        [chat]
        connect = false
        end_by = "stop_contact"
        [thresholds]
        max_dropped_share = 0.01
        """,
    )
    out = tmp_path / "out"
    with running_emulator(config) as emu:
        done = run_locust(
            ["--headless", "--only-summary", "--scenario", str(path), "--endpoint-url", emu.url, "--out", str(out)],
            timeout_s=120,
        )
        state = emu.state()
    assert done.returncode in (0, 1), done.stdout[-3000:]
    run = only_run(out)
    frame = attempts(run)
    starts = frame[frame["operation"] == "StartChatContact"]
    calls = starts[starts["outcome"] != "dropped"]
    injected = state["faults"]["StartChatContact"]
    by_class = calls["outcome"].value_counts().to_dict()
    assert injected["abandoned"] == 0, injected
    assert by_class.get("server_error", 0) == injected["server_error"] + injected["service_unavailable"]
    assert by_class.get("connection_error", 0) == injected["reset"] + injected["no_answer_closed"]
    assert by_class.get("timeout", 0) == injected["no_answer"] - injected["no_answer_closed"]
    assert injected["server_error"] and injected["service_unavailable"] and injected["reset"] and injected["no_answer"]
    assert not any(o.startswith("throttled") for o in by_class), by_class
    assert by_class.get("ok", 0) == state["operations"]["StartChatContact"]["accepted"]
    # the open model: the planned rate was offered, on time, whatever the target did
    assert abs(len(starts) / SECONDS - RATE) <= 0.02 * RATE, len(starts)
    assert (starts["outcome"] == "dropped").sum() == 0
    assert calls["start_lag_ms"].quantile(0.95) < 50, calls["start_lag_ms"].describe()
    ok = calls[calls["outcome"] == "ok"]["latency_ms"]
    assert ok.quantile(0.05) >= 150 and ok.quantile(0.5) >= 190 and ok.quantile(0.95) <= 400, ok.describe()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["calls"]["StartChatContact"]["timeout"] == by_class.get("timeout", 0)
    print(f"brownout: offered {len(starts) / SECONDS:.2f}/s, ok p50 {ok.quantile(0.5):.0f} ms, classes {by_class}, "
          f"injected {injected}")  # fmt: skip


def test_a_target_too_slow_for_the_pool_drops_arrivals_and_invalidates_the_run(tmp_path: Path):
    # the pool is sized for calls of ~0.5 s (16 users at 5/s here); 5 s answers keep every customer
    # busy after ~3 s, and the arrivals that find none free are dropped
    config = {
        "rates": {"StartChatContact": HIGH, "StopContact": HIGH},
        "faults": {"StartChatContact": {"latency": {"distribution": "fixed", "mean_ms": 5000}}},
    }
    path = scenario_file(
        tmp_path,
        """\
        # 5 chats/s for 6 s against a target that answers StartChatContact in 5 s
        [[stages]]
        name = "too-slow"
        duration = "6s"
        target_rate = 5
        [chat]
        connect = false
        end_by = "stop_contact"
        """,
    )
    out = tmp_path / "out"
    with running_emulator(config) as emu:
        done = run_locust(
            ["--headless", "--only-summary", "--scenario", str(path), "--endpoint-url", emu.url, "--out", str(out)],
            timeout_s=120,
        )
        state = emu.state()
    run = only_run(out)
    frame = attempts(run)
    dropped = frame[frame["outcome"] == "dropped"]
    assert len(dropped) >= 5 and (dropped["operation"] == "StartChatContact").all()
    assert dropped["latency_ms"].isna().all() and (dropped["attempts"] == 0).all()
    started = (frame[frame["operation"] == "StartChatContact"]["outcome"] == "ok").sum()
    assert started == state["operations"]["StartChatContact"]["accepted"] and started + len(dropped) == 30
    assert state["faults"]["StartChatContact"]["delayed"] == started
    meta = json.loads((run / "meta.json").read_text())
    assert meta["arrivals"] == {"scheduled": 30, "started": int(started), "dropped": len(dropped)}
    assert done.returncode == 2, done.stdout[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["valid"] is False and any("dropped" in r for r in summary["invalid_reasons"])
