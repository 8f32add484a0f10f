"""Quota inference (analysis/inference.py) on real headless Locust runs against the emulator: the
intervals the report infers from the calls must hold the quotas the emulator was configured with.

Time compression. tps-ceiling (1, 2, 3, 4, 5, 6, 8, 10, 12, 15 chats/s for 18 s each against
StartChatContact's 5/s, burst 8) lasts 3 minutes. A token bucket's decisions depend only on the
arrival times measured in units of its refill time (1 / rate): with every rate multiplied by k and
every duration divided by k, the same arrivals meet a bucket of rate 5k and the same burst 8 at the
same points of its refill cycle, so a run k times faster is the same experiment. Here k = 3: 3 to
45 chats/s, 6 s each (60 s in all) against 15/s burst 8; the inferred rate interval must hold 15 and
be at most 0.5 x 3 = 1.5 wide, the burst interval hold 8 and be at most 2 wide (tps-ceiling's own
criteria, scaled). k = 3 keeps the calls 22 ms apart at the top stage, far apart against their few
milliseconds on loopback, so the client's clock still times them well.

The concurrency run is concurrency-ceiling's shape in small: 20 chats/s held 60 s against a quota of
100 concurrent chats (reached after 5 s) for 15 s, the StartChatContact rate raised out of the way.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support import attempts, only_run, run_locust, scenario_file

from chatload.analysis.report import build_report
from chatload.contracts import DEFAULT_INSTANCE_ID
from chatload.emulator_control import running_emulator

pytestmark = pytest.mark.e2e

K = 3  # time compression of tps-ceiling
HIGH = {"rate": 5000, "burst": 5000}
TPS_CEILING_RATES = (1, 2, 3, 4, 5, 6, 8, 10, 12, 15)


def run(tmp_path: Path, text: str, config: dict, timeout_s: float) -> tuple[Path, dict]:
    """A headless Locust run of the scenario `text` against a fresh emulator with `config`: the run
    folder and its report's summary."""
    path = scenario_file(tmp_path, text)
    out = tmp_path / "out"
    with running_emulator(config) as emu:
        done = run_locust(
            ["--headless", "--only-summary", "--scenario", str(path), "--endpoint-url", emu.url, "--out", str(out)],
            timeout_s=timeout_s,
        )
    assert done.returncode in (0, 1), done.stdout[-3000:]
    folder = only_run(out)
    return folder, build_report(folder)


def width(found: dict) -> float:
    return found["high"] - found["low"]


def test_compressed_tps_ceiling_infers_rate_and_burst(tmp_path):
    stages = "\n".join(
        f'[[stages]]\nname = "{rate * K}/s"\nduration = "{18 / K:g}s"\ntarget_rate = {rate * K}'
        for rate in TPS_CEILING_RATES
    )
    text = f"""
        # tps-ceiling compressed {K}x: {K} to {15 * K} chats/s, {18 / K:g} s each, against {5 * K}/s burst 8
        users = 60
        [chat]
        connect = false
        end_by = "stop_contact"
        [retry]
        mode = "off"
        [arrivals]
        process = "uniform"
    """
    text = text.replace("        ", "") + stages + "\n"
    config = {"rates": {"StartChatContact": {"rate": 5 * K, "burst": 8}, "StopContact": HIGH}}
    folder, summary = run(tmp_path, text, config, timeout_s=180)
    starts = attempts(folder).query("operation == 'StartChatContact'")
    assert (starts["outcome"] == "throttled_tps").sum() > 100
    inferred = summary["findings"]["inferred_quotas"]
    print("inferred", inferred["rate"], inferred["burst"], inferred["evidence"]["bucket"])
    rate, burst = inferred["rate"], inferred["burst"]
    assert rate["low"] <= 5 * K <= rate["high"], inferred
    assert width(rate) <= 0.5 * K, inferred
    assert burst["low"] <= 8 <= burst["high"], inferred
    assert width(burst) <= 2, inferred
    assert inferred["evidence"]["bucket"]["start"] == "full"
    text = next(i["text"] for i in summary["findings"]["items"] if i["name"] == "inferred_rate")
    assert text.startswith("The target enforced a StartChatContact rate ")
    names = [i["name"] for i in summary["findings"]["items"]]
    assert names.index("inferred_rate") < names.index("burst_absorbed")


def test_short_concurrency_ceiling_infers_the_quota(tmp_path):
    text = """
        # 20 chats/s held 60 s against 100 concurrent chats, for 15 s
        users = 200
        [[stages]]
        name = "hold"
        duration = "15s"
        target_rate = 20
        [chat]
        connect = false
        end_by = "stop_contact"
        [chat.hold]
        distribution = "fixed"
        mean = "60s"
        [retry]
        mode = "off"
    """
    config = {
        "rates": {"StartChatContact": {"rate": 100, "burst": 100}, "StopContact": HIGH},
        "instances": [{"id": DEFAULT_INSTANCE_ID, "concurrent_chats": 100}],
    }
    folder, summary = run(tmp_path, text, config, timeout_s=120)
    starts = attempts(folder).query("operation == 'StartChatContact'")
    assert (starts["outcome"] == "throttled_concurrency").sum() > 50
    inferred = summary["findings"]["inferred_quotas"]
    print("inferred", inferred["concurrent_chats"], inferred["evidence"]["concurrent_chats"])
    chats = inferred["concurrent_chats"]
    assert chats["low"] <= 100 <= chats["high"], inferred
    assert width(chats) <= 5, inferred
    assert inferred["rate"] is None  # no TPS throttle at 20/s against 100/s
    text = next(i["text"] for i in summary["findings"]["items"] if i["name"] == "inferred_concurrent_chats")
    assert text.startswith(f"The instance allowed {chats['low']:.0f}"), text
