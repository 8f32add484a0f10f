"""Findings a capacity planner can act on, each with the numbers it came from (pure: tables in, dict out)."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from chatload.analysis import inference
from chatload.analysis.arrivals import process_label
from chatload.analysis.columns import ONSET_SHARE, SUSTAINED_WINDOW_S
from chatload.contracts import CHAT_EXPERIENCE_OPERATIONS, DROPPED, OK, POISSON, START_CHAT, THROTTLED_TPS, UNIFORM


@dataclass(frozen=True)
class Quotas:
    """Quotas known for the run (meta.json "quotas"); None where unknown."""

    rate: float | None = None
    burst: float | None = None
    concurrent_chats: float | None = None
    source: str = "unknown"


def _num(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def quotas_of(meta: dict[str, Any]) -> Quotas:
    quotas = meta.get("quotas") if isinstance(meta.get("quotas"), dict) else {}
    start = quotas.get(START_CHAT) if isinstance(quotas.get(START_CHAT), dict) else {}
    return Quotas(
        rate=_num(start.get("rate")),
        burst=_num(start.get("burst")),
        concurrent_chats=_num(quotas.get("concurrent_chats")),
        source=str(quotas.get("source") or "unknown"),
    )


def best_window(per_second: pd.DataFrame, column: str, window_s: int = SUSTAINED_WINDOW_S) -> dict[str, Any]:
    """Highest mean of `column` over `window_s` consecutive seconds (the whole run if shorter).

    Returns rate, window_s and the window's first second (None for an empty run).
    """
    values = per_second[column].astype("float64")
    if values.empty:
        return {"rate": 0.0, "window_s": 0, "from_second": None}
    window = min(window_s, len(values))
    means = values.rolling(window).mean()
    end = int(np.nanargmax(means.to_numpy())) if means.notna().any() else window - 1
    return {"rate": float(means.iloc[end]), "window_s": window, "from_second": int(end - window + 1)}


def tps_onset(per_stage: pd.DataFrame, share: float = ONSET_SHARE) -> dict[str, Any]:
    """First stage in time whose TPS-throttle share of StartChatContact calls exceeds `share`."""
    ordered = per_stage[per_stage["calls"] > 0].sort_values(["start_s", "order"], kind="stable")
    over = ordered[ordered["tps_throttle_share"] > share]
    if over.empty:
        clean = ordered["offered_rate"].max() if len(ordered) else None
        return {"rate": None, "stage": None, "share": None, "highest_clean_offered_rate": _num(clean)}
    first = over.iloc[0]
    before = ordered[(ordered["start_s"] < first["start_s"]) & (ordered["tps_throttle_share"] <= share)]
    return {
        "rate": float(first["offered_rate"]),
        "stage": str(first["stage"]),
        "share": float(first["tps_throttle_share"]),
        "highest_clean_offered_rate": _num(before["offered_rate"].max()) if len(before) else None,
    }


def burst_absorbed(attempts: pd.DataFrame, per_stage: pd.DataFrame, quotas: Quotas) -> dict[str, Any]:
    """Calls the StartChatContact token bucket let through beyond its refill rate before it ran dry.

    Token-bucket model: a bucket of B tokens refills at r/s and every accepted call takes one. In the
    stage holding the first TPS throttle (at t*), from the stage's first call (t_s) on:
        burst = ok calls started in [t_s, t*) - r x (t* - t_s), at least 0
    r is the known rate quota (meta.json quotas) or, without one, the sustained accepted rate: ok calls
    per second in the rest of that stage after t*. For a bucket full at t_s (and not full again
    before t*) with refill r, burst <= B < burst + 1.
    """
    empty = {"burst": None, "ok_before": None, "seconds": None, "stage": None, "rate": None, "rate_source": None}
    calls = attempts.loc[
        (attempts["operation"] == START_CHAT) & (attempts["outcome"] != DROPPED), ["t_start", "outcome", "stage"]
    ]
    throttles = calls[calls["outcome"] == THROTTLED_TPS]
    if throttles.empty:
        return empty
    first = throttles.loc[throttles["t_start"].idxmin()]
    stage = str(first["stage"])
    stage_calls = calls[calls["stage"] == first["stage"]]
    t_s, t_star = float(stage_calls["t_start"].min()), float(first["t_start"])
    ok = stage_calls["outcome"] == OK
    ok_before = int((ok & stage_calls["t_start"].between(t_s, t_star, "left")).sum())
    rate, source = quotas.rate, "rate quota"
    if rate is None:
        row = per_stage[per_stage["stage"] == stage]
        end = float((row["start_s"] + row["duration_s"]).iloc[0]) if len(row) else math.nan
        after = int((ok & (stage_calls["t_start"] >= t_star)).sum())
        rate = after / (end - t_star) if end - t_star > 0 else 0.0
        source = "sustained accepted rate after the first throttle"
    return {
        "burst": max(0.0, ok_before - rate * (t_star - t_s)),
        "ok_before": ok_before,
        "seconds": t_star - t_s,
        "stage": stage,
        "rate": rate,
        "rate_source": source,
    }


def concurrency(peak: int, per_operation: pd.DataFrame, quotas: Quotas) -> dict[str, Any]:
    row = per_operation[per_operation["operation"] == START_CHAT]
    throttled = int(row["throttled_concurrency"].sum()) if len(row) else 0
    quota = quotas.concurrent_chats
    return {
        "peak_active_chats": int(peak),
        "quota": quota,
        "peak_share_of_quota": peak / quota if quota else None,
        "throttled_concurrency": throttled,
        "hit": bool(throttled > 0 or (quota is not None and peak >= quota)),
    }


def retries(per_operation: pd.DataFrame) -> dict[str, Any]:
    """HTTP attempts per call, for StartChatContact and for every API operation (the chat socket's
    rows are no HTTP calls: counted, they would water the figure down)."""
    row = per_operation[per_operation["operation"] == START_CHAT]
    api = per_operation[~per_operation["operation"].isin(CHAT_EXPERIENCE_OPERATIONS)]
    calls_all, attempts_all = int(api["calls"].sum()), int(api["http_attempts"].sum())
    calls, attempts = (int(row["calls"].sum()), int(row["http_attempts"].sum())) if len(row) else (0, 0)
    return {
        "start_calls": calls,
        "start_http_attempts": attempts,
        "start_amplification": attempts / calls if calls else None,
        "all_calls": calls_all,
        "all_http_attempts": attempts_all,
        "all_amplification": attempts_all / calls_all if calls_all else None,
        "throttles_hidden_by_retries": int(per_operation["throttles_hidden_by_retries"].sum()),
    }


def littles_law(target_rate: float, durations: pd.DataFrame, quotas: Quotas, target_given: bool) -> dict[str, Any]:
    """Concurrency L = arrival rate λ x mean chat duration W; rate quota needed = λ (no retries)."""
    ended = durations[~durations["censored"]] if len(durations) else durations
    basis = ended if len(ended) else durations
    mean_s = float(basis["duration_s"].mean()) if len(basis) else None
    needed = target_rate * mean_s if mean_s is not None else None
    return {
        "target_rate": target_rate,
        "target_source": "--target-peak-rate" if target_given else "peak offered rate",
        "mean_chat_duration_s": mean_s,
        "duration_basis": "ended chats" if len(ended) else ("chats still active at run end" if len(basis) else None),
        "chats_measured": len(basis),
        "concurrency_needed": needed,
        "concurrency_quota": quotas.concurrent_chats,
        "concurrency_quota_sufficient": (
            None if needed is None or quotas.concurrent_chats is None else quotas.concurrent_chats >= math.ceil(needed)
        ),
        "rate_needed": target_rate,
        "rate_quota": quotas.rate,
        "rate_quota_burst": quotas.burst,
        "rate_quota_sufficient": None if quotas.rate is None else quotas.rate >= target_rate,
        "quota_source": quotas.source,
    }


def _ends(found: dict[str, Any], digits: int) -> tuple[str, str | None]:
    """Both ends of an inferred interval, a digit more (up to two) while they round alike; (low,
    None) when they still do, so the caller prints one value."""
    for extra in range(3):
        low, high = _fmt(found["low"], digits + extra), _fmt(found["high"], digits + extra)
        if low != high:
            return low, high
    return low, None


def _interval(found: dict[str, Any], digits: int, unit: str = "") -> str:
    """ "between 4.99 and 5.01/s", "of 5.00/s" when both ends round alike, "of at least 4.99/s"
    without an upper bound."""
    if found["high"] is None:
        return f"of at least {_fmt(found['low'], digits)}{unit}"
    low, high = _ends(found, digits)
    return f"of {low}{unit}" if high is None else f"between {low} and {high}{unit}"


def _span(found: dict[str, Any], digits: int) -> str:
    """ "4.99-5.01", "5.000" when both ends round alike, ">= 4.99" without an upper bound."""
    if found["high"] is None:
        return f">= {_fmt(found['low'], digits)}"
    low, high = _ends(found, digits)
    return low if high is None else f"{low}-{high}"


def inferred_rate_item(bucket: dict[str, Any], quotas: Quotas, target: str) -> dict[str, Any]:
    """The StartChatContact token bucket the run is consistent with (inference.rate_and_burst)."""
    evidence = bucket["evidence"]
    if bucket["rate"] is None:
        text = " ".join(bucket["notes"][:1]) or "No StartChatContact rate or burst inferred."
    else:
        burst = bucket["burst"]
        burst_text = _interval(burst, 1).replace("between ", "").replace(" and ", " to ").removeprefix("of ")
        text = (
            f"The target enforced a StartChatContact rate {_interval(bucket['rate'], 2, '/s')} with a burst of "
            f"{burst_text} (from {evidence['accepted_attempts']} accepted and {evidence['throttled_attempts']} "
            f"throttled attempts; quota known {_fmt(quotas.rate)}/s burst {_fmt(quotas.burst, 0)})."
        )
        if target == "aws":
            text += (
                " Other callers in the account share this bucket, so the inferred rate is what was left for this run."
            )
        text += "".join(f" {note}" for note in bucket["notes"])
    return {
        "name": "inferred_rate",
        "text": text,
        "numbers": {
            "rate": bucket["rate"],
            "burst": bucket["burst"],
            **evidence,
            "quota_rate": quotas.rate,
            "quota_burst": quotas.burst,
            "target": target,
        },
    }


def _chats_interval(found: dict[str, Any]) -> str:
    low, high = _fmt(found["low"], 0), _fmt(found["high"], 0)
    return low if low == high else f"between {low} and {high}"


def inferred_chats_item(chats: dict[str, Any], quotas: Quotas, target: str) -> dict[str, Any]:
    """The concurrent chats quota the run is consistent with (inference.concurrent_chats)."""
    found, evidence = chats["concurrent_chats"], chats["evidence"]
    if found is None:
        text = " ".join(chats["notes"]) or "No concurrent chats quota inferred."
    else:
        text = (
            f"The instance allowed {_chats_interval(found)} concurrent chats (the harness counted "
            f"{evidence['harness_active_at_first']} active at the first LimitExceededException and "
            f"{evidence['harness_active_at_last']} at the last, with {evidence['in_flight_at_first']} and "
            f"{evidence['in_flight_at_last']} start or end calls in flight; from {evidence['accepted_calls']} "
            f"accepted and {evidence['refused_calls']} refused starts; quota known {_fmt(quotas.concurrent_chats, 0)})."
        )
        if target == "aws":
            text += " Chats of other callers on the instance count too: this is what was left for the run."
    return {
        "name": "inferred_concurrent_chats",
        "text": text,
        "numbers": {"concurrent_chats": found, **evidence, "quota": quotas.concurrent_chats, "target": target},
    }


def dispersion_item(traffic: dict[str, Any]) -> dict[str, Any]:
    """The burstiness of the offered arrivals: shown for every run, stressed for Poisson ones."""
    found = traffic["dispersion"]
    index, seconds, mean = found["dispersion_index"], found["seconds"], found["mean_per_second"]
    if index is None:
        text = (
            f"Arrival process: {traffic['label']}. No dispersion index: {seconds} full seconds inside step stages "
            f"with a rate > 0 (at least {found['min_seconds']} needed)."
        )
    else:
        weak = (
            f"; at {_fmt(mean)} arrivals per second the counts tell the two apart poorly"
            if mean is not None and mean < 1
            else ""
        )
        text = (
            f"Arrival process: {traffic['label']}. Dispersion index of the offered arrivals per second "
            f"{_fmt(index)} over {seconds} s of step stages (about 1 for Poisson arrivals, about 0 for "
            f"evenly spaced ones{weak})."
        )
    return {
        "name": "arrival_dispersion",
        "text": text,
        "numbers": {"process": traffic["process"], "seed": traffic["seed"], **found},
        "highlight": traffic["process"] == POISSON,
    }


def replay_item(replay: dict[str, Any]) -> dict[str, Any]:
    """What was replayed, and the run's concurrency against the recorded day's (Little's law)."""
    text = (
        f"Replayed {replay['file']} from {_when(replay['recorded_start'])} to {_when(replay['recorded_end'])} "
        f"({replay['intervals']} intervals, scale {replay['scale']:g}, speed {replay['speed']:g}x): "
        f"{replay['recorded_chats']:.0f} chats recorded after scaling, {replay['offered_chats']} offered. "
        + replay["note"]
    )
    return {"name": "replay", "text": text, "numbers": replay, "highlight": replay["speed"] != 1}


def _when(recorded: Any) -> str:
    return "?" if recorded is None else (recorded if isinstance(recorded, str) else f"{recorded:g} s")


def outage_text(gap: dict[str, Any]) -> str:
    return (
        f"Target unreachable from {_clock(gap['from'])} to {_clock(gap['to'])} "
        f"(second {gap['from_s']:.1f} to {gap['to_s']:.1f} of the run, {gap['seconds']:.1f} s): "
        f"{gap['failed_calls']} calls failed with connection_error."
    )


def _clock(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%H:%M:%S")


def _fmt(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.{digits}f}"


def findings(
    per_second: pd.DataFrame,
    per_stage: pd.DataFrame,
    per_operation: pd.DataFrame,
    attempts: pd.DataFrame,
    durations: pd.DataFrame,
    peak: int,
    quotas: Quotas,
    target_peak_rate: float | None = None,
    outages: list[dict[str, Any]] | None = None,
    traffic: dict[str, Any] | None = None,
    target_kind: str | None = None,
) -> dict[str, Any]:
    """The findings: numbers in `numbers`, a sentence in `text` and, for the ones the report should
    stress, `highlight` (the burstiness of Poisson arrivals, a replay's concurrency factor).

    `traffic` is arrivals.traffic(): the arrival process, the dispersion index and the replay.
    `target_kind` is meta.json's target ("emulator" or "aws"; None reads as the emulator): the quotas
    inferred from the calls (inference.py) lead the throttling sentences."""
    traffic = traffic or {"process": UNIFORM, "seed": None, "label": process_label(UNIFORM, None)}
    label = traffic["label"]
    sustained = best_window(per_second, "accepted")
    offered = best_window(per_second, "offered")
    onset = tps_onset(per_stage)
    burst = burst_absorbed(attempts, per_stage, quotas)
    conc = concurrency(peak, per_operation, quotas)
    retry = retries(per_operation)
    target = target_peak_rate if target_peak_rate is not None else offered["rate"]
    little = littles_law(target, durations, quotas, target_peak_rate is not None)
    kind = str(target_kind or "emulator")
    bucket = inference.rate_and_burst(attempts, kind)
    chats = inference.concurrent_chats(attempts)
    inferred = inference.combine(bucket, chats, kind)
    items = [
        {
            "name": "max_sustained_accepted_rate",
            "text": f"Highest sustained accepted StartChatContact rate: {_fmt(sustained['rate'])}/s "
            f"(best {sustained['window_s']} s rolling mean, from second {sustained['from_second']}).",
            "numbers": sustained,
        },
        inferred_rate_item(bucket, quotas, kind),
        {
            "name": "tps_throttle_onset",
            "text": (
                f"TPS throttling starts at an offered rate of {_fmt(onset['rate'])}/s ({label}; "
                f"stage {onset['stage']}: {_fmt(100 * onset['share'], 1)}% of calls throttled)."
                if onset["rate"] is not None
                else f"No stage had more than {100 * ONSET_SHARE:g}% TPS throttles "
                f"(highest offered rate {_fmt(onset['highest_clean_offered_rate'])}/s; {label})."
            ),
            "numbers": {**onset, "arrival_process": traffic["process"], "seed": traffic["seed"]},
        },
        {
            "name": "burst_absorbed",
            "text": (
                f"Burst absorbed before the first TPS throttle: about {_fmt(burst['burst'], 1)} calls "
                f"(quota burst {_fmt(quotas.burst, 0)}): {burst['ok_before']} ok calls in "
                f"{_fmt(burst['seconds'])} s of stage {burst['stage']} beyond {_fmt(burst['rate'])}/s "
                f"({burst['rate_source']})."
                if burst["burst"] is not None
                else f"No TPS throttle: no burst limit observed (quota burst {_fmt(quotas.burst, 0)})."
            ),
            "numbers": {**burst, "quota_burst": quotas.burst, "quota_rate": quotas.rate},
        },
        inferred_chats_item(chats, quotas, kind),
        {
            "name": "concurrency",
            "text": f"Peak active chats {conc['peak_active_chats']} against a quota of "
            f"{_fmt(conc['quota'], 0)}; {conc['throttled_concurrency']} concurrency throttles; "
            f"quota {'hit' if conc['hit'] else 'not hit'}.",
            "numbers": conc,
        },
        {
            "name": "retry_amplification",
            "text": f"Retry amplification: {retry['start_http_attempts']} HTTP attempts for "
            f"{retry['start_calls']} StartChatContact calls ({_fmt(retry['start_amplification'])}x); "
            f"all operations {_fmt(retry['all_amplification'])}x.",
            "numbers": retry,
        },
        {
            "name": "littles_law",
            "text": f"For {_fmt(target)} chats/s ({little['target_source']}) and a mean chat duration of "
            f"{_fmt(little['mean_chat_duration_s'])} s: concurrency quota needed "
            f"{_fmt(little['concurrency_needed'], 1)} (known {_fmt(quotas.concurrent_chats, 0)}), "
            f"StartChatContact rate quota needed {_fmt(target)}/s (known {_fmt(quotas.rate)}/s).",
            "numbers": little,
        },
    ]
    if "dispersion" in traffic:
        items.append(dispersion_item(traffic))
    if traffic.get("replay"):
        items.append(replay_item(traffic["replay"]))
    outages = outages or []
    items += [{"name": "outage", "text": outage_text(gap), "numbers": gap} for gap in outages]
    headline = (
        f"Sustained {_fmt(sustained['rate'])} accepted chats/s; "
        + (
            f"TPS throttling from {_fmt(onset['rate'])}/s offered; "
            if onset["rate"] is not None
            else "no TPS throttling; "
        )
        + (
            f"inferred rate {_span(bucket['rate'], 2)}/s, burst {_span(bucket['burst'], 1)}; "
            if bucket["rate"] is not None
            else ""
        )
        + f"peak {conc['peak_active_chats']} active chats"
        + (f" of {_fmt(conc['quota'], 0)}" if conc["quota"] is not None else "")
        + (" (concurrency quota hit" if conc["hit"] else "")
        + (
            f"{'; ' if conc['hit'] else ' ('}inferred quota {_chats_interval(chats['concurrent_chats'])})."
            if chats["concurrent_chats"] is not None
            else (")." if conc["hit"] else ".")
        )
        + (
            f" Target unreachable {len(outages)} time(s), {sum(g['seconds'] for g in outages):.1f} s in all."
            if outages
            else ""
        )
    )
    return {
        "max_sustained_accepted_rate": sustained["rate"],
        "tps_throttle_onset_rate": onset["rate"],
        "peak_active_chats": conc["peak_active_chats"],
        "concurrency_quota_hit": conc["hit"],
        "peak_offered_rate": offered["rate"],
        "burst_absorbed": burst["burst"],
        "retry_amplification": retry["start_amplification"],
        "littles_law": little,
        "inferred_quotas": inferred,
        "outages": outages,
        "headline": headline,
        "items": items,
    }
