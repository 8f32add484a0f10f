"""The burst absorbed by a token bucket, and outages (target unreachable), on hand-modelled runs."""

from __future__ import annotations

from fractions import Fraction

import pytest

from chatload.analysis import plots
from chatload.analysis.pipeline import analyze

SCC = "StartChatContact"


def bucket_outcomes(times: list[Fraction], rate: int, burst: int) -> list[str]:
    """A token bucket of `burst` tokens refilling at `rate`/s, full at time 0 (exact arithmetic)."""
    tokens, last, outcomes = Fraction(burst), Fraction(0), []
    for t in times:
        tokens = min(Fraction(burst), tokens + rate * (t - last))
        last = t
        if tokens >= 1:
            tokens -= 1
            outcomes.append("ok")
        else:
            outcomes.append("throttled_tps")
    return outcomes


def burst_run(make_run, r, quota_rate: int | None):
    # "low": 2/s for 5 s (arrivals 0.25 + 0.5 k) keeps the 5/s burst-8 bucket full;
    # "high": 6/s for 10 s from 5.0 (arrivals 5 + k/6, k = 0..59)
    low = [("low", Fraction(1, 4) + Fraction(k, 2)) for k in range(10)]
    high = [("high", 5 + Fraction(k, 6)) for k in range(60)]
    outcomes = bucket_outcomes([t for _, t in low + high], rate=5, burst=8)
    rows = [
        r(float(t), SCC, o, 10, t_intended=float(t), stage=s, chat=f"c{i}")
        for i, ((s, t), o) in enumerate(zip(low + high, outcomes, strict=True))
    ]
    quota = {"source": "emulator", "StartChatContact": {"burst": 8, **({"rate": quota_rate} if quota_rate else {})}}
    stages = [{"name": "low", "duration_s": 5, "target_rate": 2}, {"name": "high", "duration_s": 10, "target_rate": 6}]
    return make_run(
        {"w1": rows}, ended_at=1015.0, quotas=quota, scenario={"name": "burst", "stages": stages, "thresholds": {}}
    ), outcomes


def test_burst_of_a_full_bucket_hit_above_its_rate(make_run, attempt_row):
    run_dir, outcomes = burst_run(make_run, attempt_row, quota_rate=5)
    # by hand: before arrival k of "high" the bucket holds 8 - k/6 tokens, so k = 0..42 pass (43 ok)
    # and k = 43 at 5 + 43/6 s is the first throttle
    assert outcomes[10:53] == ["ok"] * 43 and outcomes[53] == "throttled_tps"
    burst = next(i for i in analyze(run_dir).findings["items"] if i["name"] == "burst_absorbed")["numbers"]
    # 43 ok in the 43/6 s from the stage's first call to the throttle, beyond 5/s: 43 - 5 x 43/6 = 43/6
    assert burst["burst"] == pytest.approx(43 / 6)
    assert (burst["ok_before"], burst["stage"], burst["rate_source"]) == (43, "high", "rate quota")
    assert burst["burst"] <= burst["quota_burst"] == 8 < burst["burst"] + 1  # the model's bound


def test_burst_without_a_known_rate_uses_the_sustained_rate_after_the_throttle(make_run, attempt_row):
    run_dir, outcomes = burst_run(make_run, attempt_row, quota_rate=None)
    # after the throttle (k = 43..59) the bucket passes 5 of every 6: 44-48, 50-54, 56-59 -> 14 ok
    assert outcomes[53:].count("ok") == 14
    found = analyze(run_dir).findings
    burst = next(i for i in found["items"] if i["name"] == "burst_absorbed")["numbers"]
    rate = 14 / (15 - (5 + 43 / 6))  # over the rest of the stage window [5 + 43/6, 15]
    assert burst["rate"] == pytest.approx(rate)
    assert burst["burst"] == pytest.approx(43 - rate * 43 / 6)  # 7.59
    assert burst["rate_source"] == "sustained accepted rate after the first throttle"


def test_outage_is_a_finding_a_note_and_a_band_in_the_plots(make_run, attempt_row):
    r = attempt_row
    rows = [r(float(t), SCC, "ok", 10, t_intended=float(t), stage="only", chat=f"a{t}") for t in range(4)]
    # unreachable: StartChatContact at 4.0, 4.5, ..., 7.5 (8 calls, 2 ms each) and one disconnect at 6.2
    rows += [
        r(4 + 0.5 * k, SCC, "connection_error", 2, t_intended=4 + 0.5 * k, stage="only", chat=f"b{k}") for k in range(8)
    ]
    rows += [r(6.2, "DisconnectParticipant", "connection_error", 2, stage="only", chat="a1")]
    rows += [r(float(t), SCC, "ok", 10, t_intended=float(t), stage="only", chat=f"c{t}") for t in range(8, 10)]
    # a lone connection error between answered calls is no outage
    rows += [r(9.3, SCC, "connection_error", 2, t_intended=9.3, stage="only", chat="d")]
    result = analyze(make_run({"w1": rows}))
    gaps = result.findings["outages"]
    # from the first failed call (1004.0) to the last one's return (1007.5 + 0.002): 3.502 s, 9 calls
    assert len(gaps) == 1
    assert (gaps[0]["from_s"], gaps[0]["to_s"], gaps[0]["failed_calls"]) == (4.0, pytest.approx(7.502), 9)
    note = next(n for n in result.summary["notes"] if "unreachable" in n)
    assert "00:16:44 to 00:16:47" in note and "(second 4.0 to 7.5 of the run, 3.5 s)" in note
    assert "9 calls failed with connection_error" in note
    assert "Target unreachable 1 time(s), 3.5 s in all." in result.findings["headline"]
    assert result.per_second["connection_error"].tolist()[4:8] == [2, 2, 2, 2]
    figure = plots.outcomes_stacked(result.per_second, gaps)
    assert "target unreachable" in [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    band = [p for p in figure.axes[0].patches if p.get_label() == "target unreachable"]
    assert len(band) == 1 and band[0].get_x() == 4.0
