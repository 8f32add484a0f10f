"""summary.json: the contract keys of architecture.md section 4, plus extensions."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import pandas as pd

from chatload.analysis.experience import chat_experience
from chatload.analysis.load import Run
from chatload.analysis.thresholds import VALID_EARLY_ENDS, Observed, configured, evaluate, validity
from chatload.contracts import CALL_OUTCOMES, DROPPED, START_CHAT, UNIFORM

COMPUTE = object()  # summary(experience=...) not given: computed from the run's rows


def jsonable(value: Any) -> Any:
    """Plain JSON types: numpy scalars unwrapped, NaN/inf -> None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def _calls(per_operation: pd.DataFrame) -> dict[str, dict[str, int]]:
    calls = {}
    for row in per_operation.to_dict("records"):
        entry = {"total": int(row["calls"])}
        entry.update({o: int(row.get(o, 0)) for o in CALL_OUTCOMES})
        entry["attempts"] = int(row["http_attempts"])
        entry[DROPPED] = int(row[DROPPED])
        calls[str(row["operation"])] = entry
    calls.setdefault(START_CHAT, {"total": 0, **dict.fromkeys(CALL_OUTCOMES, 0), "attempts": 0, DROPPED: 0})
    return calls


def _stages(per_stage: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {
            "name": str(r["stage"]),
            "target_rate": r["target_rate"],
            "offered_rate": r["offered_rate"],
            "accepted_rate": r["accepted_rate"],
            "tps_throttle_pct": 100 * r["tps_throttle_share"],
            "concurrency_throttle_pct": 100 * r["concurrency_throttle_share"],
            "p95_ms": r["ok_p95_ms"],
            "duration_s": r["duration_s"],
            "arrivals": int(r["arrivals"]),
            "calls": int(r["calls"]),
            "ok": int(r["ok"]),
            "dropped": int(r[DROPPED]),
            "success_pct": 100 * r["success_share"],
            "other_error_pct": 100 * r["other_error_share"],
            "p50_ms": r["ok_p50_ms"],
            "p99_ms": r["ok_p99_ms"],
            "throttled_p95_ms": r["throttled_p95_ms"],
        }
        for r in per_stage.to_dict("records")
    ]


def _locust(run: Run, start_calls: int) -> dict[str, Any] | None:
    if run.locust is None:
        return None
    stats = run.locust
    rows = stats[stats["Name"].astype(str) == START_CHAT]
    entry: dict[str, Any] = {
        "requests": {str(r["Name"]): int(r["Request Count"]) for r in stats.to_dict("records")},
        "failures": {str(r["Name"]): int(r["Failure Count"]) for r in stats.to_dict("records")},
    }
    if len(rows):
        locust_calls = int(rows["Request Count"].sum())
        entry["start_calls_match"] = abs(locust_calls - start_calls) <= max(1, 0.01 * start_calls)
        if not entry["start_calls_match"]:
            run.notes.append(f"Locust counted {locust_calls} StartChatContact requests, the attempts {start_calls}")
    return entry


def _arrivals_check(pacer: dict[str, Any] | None, obs: Observed, dropped: int) -> list[str]:
    """Notes where the pacer's own count (meta.json arrivals) differs from the attempts rows."""
    if not pacer:
        return []
    rows = {"scheduled": obs.arrivals, "started": obs.calls, "dropped": dropped}
    differ = [
        f"{k} {pacer.get(k)} vs {rows[k]}"
        for k in rows
        if isinstance(pacer.get(k), int | float) and pacer.get(k) != rows[k]
    ]
    if not differ:
        return []
    return [
        "the pacer's arrival counts (meta.json) differ from the StartChatContact rows in attempts/: "
        + ", ".join(differ)
        + " (rows lost with a killed or lost worker, or a worker that did not report)"
    ]


def _schedule(run: Run, per_stage: pd.DataFrame, arrivals: int, ok: int) -> dict[str, Any]:
    """The schedule's window: configured stages from schedule_started_at (each capped as in
    per_stage); offered and accepted StartChatContact rates over it. No configured stage: the run."""
    configured = per_stage[per_stage["configured_duration_s"].notna()]
    duration = float(configured["duration_s"].sum()) if len(configured) else run.t_end - run.schedule_t0
    per_s = duration if duration > 0 else math.nan
    return {
        "started_at": run.schedule_t0,
        "source": run.schedule_source,
        "duration_s": duration,
        "offered_rate": arrivals / per_s,
        "accepted_rate": ok / per_s,
    }


def summary(
    run: Run,
    per_stage: pd.DataFrame,
    per_operation: pd.DataFrame,
    found: dict[str, Any],
    traffic: dict[str, Any] | None = None,
    experience: Any = COMPUTE,
) -> dict[str, Any]:
    """`traffic` is arrivals.traffic() (the arrival process, dispersion and replay); without it the
    run reads as uniform with no dispersion index and no replay. `experience` is
    experience.chat_experience() of the run's rows (computed here when not given)."""
    traffic = traffic or {}
    calls = _calls(per_operation)
    start = calls[START_CHAT]
    start_row = per_operation[per_operation["operation"] == START_CHAT]
    if experience is COMPUTE:
        experience = chat_experience(run.attempts)
    obs = Observed(
        calls=start["total"],
        arrivals=start["total"] + start[DROPPED],
        outcomes={**{o: start[o] for o in CALL_OUTCOMES}, DROPPED: start[DROPPED]},
        ok_p95_ms=float(start_row["ok_p95_ms"].iloc[0]) if len(start_row) else None,
        ok_p99_ms=float(start_row["ok_p99_ms"].iloc[0]) if len(start_row) else None,
        experience=experience,
    )
    meta = run.meta
    limits = configured(meta)
    thresholds = evaluate(limits, obs)
    ended_early = meta.get("ended_early") if isinstance(meta.get("ended_early"), str) else None
    reasons = validity(obs, limits, run.cut_short, meta.get("interrupted") is True, ended_early)
    for note in run.master_lost:  # workers that lost their master stopped early, on their own
        reasons.append(
            f"master lost: worker {note.get('worker')} heard nothing from its master after "
            f"{_clock(note.get('last_heard_from_master'))} and stopped its load at "
            f"{_clock(note.get('load_stopped_at'))}"
        )
    scenario = meta.get("scenario") if isinstance(meta.get("scenario"), dict) else {}
    lost = meta.get("lost_workers") if isinstance(meta.get("lost_workers"), list) else []
    clean_up = meta.get("clean_up") if isinstance(meta.get("clean_up"), dict) else None
    locust = _locust(run, start["total"])
    notes = list(run.notes)
    if ended_early in VALID_EARLY_ENDS:
        notes.append(f"the run ended early ({ended_early}): later stages got fewer arrivals or none")
    pacer = meta.get("arrivals") if isinstance(meta.get("arrivals"), dict) else None
    notes += _arrivals_check(pacer, obs, start[DROPPED])
    notes += [item["text"] for item in found["items"] if item["name"] == "outage"]
    schedule = _schedule(run, per_stage, obs.arrivals, start["ok"])
    if lost:
        notes.append(
            f"{len(lost)} worker(s) lost during the run ({', '.join(str(w.get('worker')) for w in lost)}): what they "
            "did after that moment is missing here; a worker that was only cut off kept its rows on its own disk "
            "(master-lost-<worker>.json beside them): copy its attempts/ files here and run `chatload report` again"
        )
    if clean_up and (clean_up.get("still_active") or clean_up.get("not_ended")):
        notes.append(
            f"clean-up left {clean_up.get('still_active') or len(clean_up.get('not_ended') or [])} "
            "contact(s) not ended: they still hold concurrency quota"
        )
    result = {
        "run_id": run.run_id,
        "scenario": str(scenario.get("name") or ""),
        "target": str(meta.get("target") or ""),
        "valid": not reasons,
        "invalid_reasons": reasons,
        "duration_s": run.duration_s,
        "calls": calls,
        "arrivals": {
            "scheduled": obs.arrivals,
            "started": obs.calls,
            "dropped": start[DROPPED],
            "process": traffic.get("process", UNIFORM),
            "seed": traffic.get("seed"),
            "dispersion_index": (traffic.get("dispersion") or {}).get("dispersion_index"),
        },
        "replay": traffic.get("replay"),
        "pacer_arrivals": pacer,
        "schedule": schedule,
        "stages": _stages(per_stage),
        "chat_experience": experience,
        "findings": {k: v for k, v in found.items()},
        "thresholds": thresholds,
        "passed": not reasons and all(t["passed"] for t in thresholds),
        "cut_short": run.cut_short,
        "started_at": meta.get("started_at"),
        "schedule_started_at": run.schedule_t0,
        "ended_at": meta.get("ended_at"),
        "interrupted": meta.get("interrupted") is True,
        "ended_early": ended_early,
        "quotas": meta.get("quotas"),
        "retry": meta.get("retry"),
        "lost_workers": lost,
        "master_lost": run.master_lost,
        "clean_up": clean_up,
        "attempt_files": run.files,
        "locust": locust,
        "notes": notes,
    }
    return jsonable(result)


def _clock(epoch: Any) -> str:
    """An epoch time as UTC clock time (for sentences); "?" when unknown."""
    try:
        return time.strftime("%H:%M:%S UTC", time.gmtime(float(epoch)))
    except (TypeError, ValueError, OverflowError):
        return "?"
