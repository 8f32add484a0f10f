"""Planned versus measured: the plan of a finished run (chatload.analysis.plan, computed here, in the
report's own process) beside what the run measured, stage by stage.

A stage reads "as predicted" when its measured TPS-throttle and concurrency-throttle shares lie
inside the plan's 5-95% intervals (widened by half their width: one run is one draw, and falls
outside a 90% interval one time in ten by chance), "throttled more than the quotas explain" when one
lies above
(on a real instance: other callers use the account's bucket, or the applied quota differs from the
one assumed), and "throttled less than predicted" below. A stage with too few calls to judge
(PLAN_MIN_CALLS) reads "too few calls".
"""

from __future__ import annotations

from typing import Any

from chatload.analysis.plan import plan_for_meta

PLAN_RUNS = 100  # simulations for the report's plan: enough for 5-95% intervals, quick on long runs
PLAN_MIN_CALLS = 20
AS_PREDICTED = "as predicted"
MORE = "throttled more than the quotas explain"
LESS = "throttled less than predicted"
TOO_FEW = "too few calls"


def _verdict(measured: float, planned: dict[str, float], calls: int) -> str:
    # One run is one draw: it falls outside a 90% interval one time in ten by chance. The verdict
    # takes a margin of half the interval's width (beyond which a draw is rare, about 1 in 200) and
    # never less than one call's share (a stage of n calls cannot measure finer than 100/n %).
    margin = max(100.0 / calls if calls else 0.0, (planned["p95"] - planned["p5"]) / 2)
    if measured > planned["p95"] + margin:
        return MORE
    if measured < planned["p5"] - margin:
        return LESS
    return AS_PREDICTED


def planned_vs_measured(meta: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any] | None:
    """summary.json["planned"]: the plan's shares per stage beside the measured ones, with verdicts;
    None when the run's scenario cannot be planned (its meta.json does not describe one)."""
    plan = plan_for_meta(meta, runs=PLAN_RUNS, search=False)
    if plan is None:
        return None
    measured = {str(s["name"]): s for s in summary.get("stages", [])}
    stages = []
    for planned in plan["stages"]:
        name = str(planned["name"])
        got = measured.get(name)
        if got is None:
            continue
        calls = int(got.get("calls") or 0)
        tps, conc = float(got.get("tps_throttle_pct") or 0.0), float(got.get("concurrency_throttle_pct") or 0.0)
        if calls < PLAN_MIN_CALLS:
            verdicts = [TOO_FEW]
        else:
            verdicts = [
                _verdict(tps, planned["tps_throttle_pct"], calls),
                _verdict(conc, planned["concurrency_throttle_pct"], calls),
            ]
        verdict = MORE if MORE in verdicts else LESS if LESS in verdicts else verdicts[0]
        stages.append(
            {
                "name": name,
                "calls": calls,
                "planned_tps_throttle_pct": planned["tps_throttle_pct"],
                "measured_tps_throttle_pct": tps,
                "planned_concurrency_throttle_pct": planned["concurrency_throttle_pct"],
                "measured_concurrency_throttle_pct": conc,
                "verdict": verdict,
            }
        )
    judged = [s["verdict"] for s in stages if s["verdict"] != TOO_FEW]
    overall = MORE if MORE in judged else LESS if LESS in judged else AS_PREDICTED if judged else TOO_FEW
    return {
        "runs": plan["runs"],
        "seed": plan["seed"],
        "quotas_used": {k: plan["quotas_used"][k] for k in ("rate", "burst", "concurrent_chats")},
        "stages": stages,
        "verdict": overall,
        "notes": plan.get("notes", []),
    }


def sentence(planned: dict[str, Any] | None, target: str) -> str | None:
    """The report's one line on it."""
    if not planned or planned["verdict"] == TOO_FEW:
        return None
    q = planned["quotas_used"]
    quotas = f"{q['rate']:g}/s burst {q['burst']:g}, {q['concurrent_chats']:,} concurrent chats"
    if planned["verdict"] == AS_PREDICTED:
        return (
            f"Throttling as predicted: every stage's throttled shares lie inside the plan's 5-95% interval ({quotas})."
        )
    stages = ", ".join(s["name"] for s in planned["stages"] if s["verdict"] == planned["verdict"])
    text = (
        f"Stages {stages}: {planned['verdict']} ({quotas}; the plan's 5-95% interval, {planned['runs']} simulations)."
    )
    if planned["verdict"] == MORE and target == "aws":
        text += " On a real instance: other callers use the account's bucket, or the applied quota differs."
    return text
