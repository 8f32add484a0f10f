"""What the HTML and Markdown reports show: display tables and run facts (no formatting into markup)."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pandas as pd

from chatload.contracts import DROPPED, OK, POISSON, START_CHAT, THROTTLED_CONCURRENCY, THROTTLED_TPS, UNIFORM


def _pct(share: pd.Series) -> pd.Series:
    return (100 * share).round(2)


def planned_view(planned: dict[str, Any] | None) -> pd.DataFrame:
    """Planned versus measured throttled shares per stage (summary.json["planned"])."""
    rows = []
    for s in (planned or {}).get("stages", []):
        tps, conc = s["planned_tps_throttle_pct"], s["planned_concurrency_throttle_pct"]
        rows.append(
            {
                "stage": s["name"],
                "calls": s["calls"],
                "TPS throttle % planned [5-95%]": f"{tps['mean']:.2f} [{tps['p5']:.2f}-{tps['p95']:.2f}]",
                "TPS throttle % measured": round(s["measured_tps_throttle_pct"], 2),
                "concurrency % planned [5-95%]": f"{conc['mean']:.2f} [{conc['p5']:.2f}-{conc['p95']:.2f}]",
                "concurrency % measured": round(s["measured_concurrency_throttle_pct"], 2),
                "verdict": s["verdict"],
            }
        )
    return pd.DataFrame(rows)


def stage_view(per_stage: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "stage": per_stage["stage"],
            "target /s": per_stage["target_rate"].round(3),
            "duration s": per_stage["duration_s"].round(2),
            "offered /s": per_stage["offered_rate"].round(3),
            "accepted /s": per_stage["accepted_rate"].round(3),
            "calls": per_stage["calls"],
            "ok %": _pct(per_stage["success_share"]),
            "TPS throttle %": _pct(per_stage["tps_throttle_share"]),
            "concurrency throttle %": _pct(per_stage["concurrency_throttle_share"]),
            "other error %": _pct(per_stage["other_error_share"]),
            "dropped": per_stage[DROPPED],
            "ok p50 ms": per_stage["ok_p50_ms"].round(1),
            "ok p95 ms": per_stage["ok_p95_ms"].round(1),
            "ok p99 ms": per_stage["ok_p99_ms"].round(1),
            "throttled p95 ms": per_stage["throttled_p95_ms"].round(1),
        }
    )


def operation_view(per_operation: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "operation": per_operation["operation"],
            "calls": per_operation["calls"],
            "ok": per_operation[OK],
            "TPS throttled": per_operation[THROTTLED_TPS],
            "concurrency throttled": per_operation[THROTTLED_CONCURRENCY],
            "other": per_operation["calls"]
            - per_operation[OK]
            - per_operation[THROTTLED_TPS]
            - per_operation[THROTTLED_CONCURRENCY],
            "dropped": per_operation[DROPPED],
            "HTTP attempts": per_operation["http_attempts"],
            "amplification": per_operation["retry_amplification"].round(3),
            "ok %": _pct(per_operation["success_share"]),
            "ok p50 ms": per_operation["ok_p50_ms"].round(1),
            "ok p95 ms": per_operation["ok_p95_ms"].round(1),
            "ok p99 ms": per_operation["ok_p99_ms"].round(1),
        }
    )


def error_view(errors: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "operation": errors["operation"],
            "outcome": errors["outcome"],
            "HTTP status": errors["http_status"],
            "error code": errors["error_code"].replace("", "–"),
            "calls": errors["calls"],
            "% of operation": _pct(errors["share_of_operation"]),
        }
    )


EXPERIENCE_LABELS = {
    "websocket_connect": "WebSocketConnect (upgrade)",
    "subscribe": "Subscribe (success frame)",
    "message_delivery": "MessageDelivery (echo of a sent message)",
    "first_response": "FirstResponse (first frame from another participant)",
    "chat_ended_delivery": "ChatEndedDelivery (chat.ended frame)",
    "heartbeat": "Heartbeat (round trip)",
}


def experience_view(experience: dict[str, Any] | None) -> pd.DataFrame:
    """Chat experience per websocket measurement (summary.json["chat_experience"]); ok latencies."""
    columns = ["measurement", "count", "ok", "timeout", "connection_error", "other", "p50 ms", "p95 ms", "p99 ms"]
    rows = []
    for key, label in EXPERIENCE_LABELS.items():
        entry = (experience or {}).get(key)
        if not entry or not entry["count"]:  # e.g. no heartbeat in chats shorter than 10 s
            continue
        rows.append(
            [label, *(entry[k] for k in ("count", "ok", "timeout", "connection_error", "other"))]
            + [None if entry[f"{q}_ms"] is None else round(entry[f"{q}_ms"], 1) for q in ("p50", "p95", "p99")]
        )
    return pd.DataFrame(rows, columns=columns)


def experience_facts(experience: dict[str, Any]) -> pd.DataFrame:
    """Frames lost and late, unexpected closes, missed heartbeats, first response in seconds."""
    first = experience["first_response"]
    seconds = "/".join("–" if first[f"{q}_s"] is None else f"{first[f'{q}_s']:.3g}" for q in ("p50", "p95", "p99"))
    late = f"{experience['late_frame_ms'] / 1000:g} s"
    rows = [
        ("first response p50/p95/p99 (s)", seconds),
        ("lost frames (MessageDelivery, ChatEndedDelivery timeouts)", str(experience["lost_frames"])),
        (f"late frames (delivered ok, slower than {late})", str(experience["late_frames"])),
        ("unexpected closes (WebSocketClose)", str(experience["unexpected_closes"])),
        ("missed heartbeats (of heartbeats sent)", f"{experience['missed_heartbeats']} of {experience['heartbeats']}"),
    ]
    return pd.DataFrame(rows, columns=["", "value"])


def threshold_view(thresholds: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "threshold": t["name"],
                "limit": t["limit"],
                "observed": None if t["observed"] is None else round(t["observed"], 4),
                "result": "pass" if t["passed"] else ("fail: " + t["note"] if t.get("note") else "fail"),
            }
            for t in thresholds
        ],
        columns=["threshold", "limit", "observed", "result"],
    )


def _when(epoch: Any) -> str:
    if not isinstance(epoch, int | float) or not math.isfinite(epoch):
        return "not recorded"
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def arrivals_fact(summary: dict[str, Any], meta: dict[str, Any]) -> str:
    """The arrival process and seed, with the dispersion index of the offered arrivals."""
    arrivals = summary["arrivals"]
    process, seed, index = arrivals.get("process") or UNIFORM, arrivals.get("seed"), arrivals.get("dispersion_index")
    text = {POISSON: "Poisson", UNIFORM: "uniform (evenly spaced)"}.get(process, str(process))
    if process != UNIFORM:
        text += f", seed {seed if seed is not None else 'not recorded'}"
    text += "; dispersion index " + ("n/a" if index is None else f"{index:.2f}")
    scenario = meta.get("scenario") if isinstance(meta.get("scenario"), dict) else {}
    if "arrivals" not in scenario:
        text += " (meta.json names no arrival process: a run from before there was a choice)"
    return text


def replay_fact(replay: dict[str, Any]) -> str:
    window = replay.get("window")
    return (
        f"{replay['file']} ({replay.get('shape') or '?'}), recorded {replay['recorded_start']} to "
        f"{replay['recorded_end']}" + (f" (window {window[0]} to {window[1]})" if window else "") + f", "
        f"scale {replay['scale']:g}, speed {replay['speed']:g}x: {replay['recorded_chats']:.0f} chats after "
        f"scaling, {replay['offered_chats']} offered; concurrency {replay['concurrency_factor']:g}x the "
        f"recorded day's (peak {replay['peak_active_chats']} active, about "
        f"{replay['recorded_peak_active_chats']:.1f} on the recorded day)"
    )


def _span(found: dict[str, Any] | None, digits: int, unit: str = "") -> str:
    """ "4.99 to 5.01/s" (a digit more, up to two, while both ends round alike)."""
    if not found:
        return "not shown by the run"
    if found.get("high") is None:
        return f"at least {found['low']:.{digits}f}{unit}"
    for extra in range(3):
        low, high = f"{found['low']:.{digits + extra}f}", f"{found['high']:.{digits + extra}f}"
        if low != high:
            return f"{low} to {high}{unit}"
    return f"{low}{unit}"


def _inferred(summary: dict[str, Any]) -> dict[str, Any]:
    found = (summary.get("findings") or {}).get("inferred_quotas")
    return found if isinstance(found, dict) else {}


def inferred_fact(summary: dict[str, Any]) -> str:
    """The quotas the calls show (findings.inferred_quotas), as one line of the run facts."""
    inferred = _inferred(summary)
    return (
        f"StartChatContact {_span(inferred.get('rate'), 2, '/s')} burst {_span(inferred.get('burst'), 1)}, "
        f"concurrent chats {_span(inferred.get('concurrent_chats'), 0)} (from the calls; see the findings)"
    )


def quota_view(summary: dict[str, Any]) -> pd.DataFrame:
    """Each quota as known before the run (meta.json) beside the interval the run's calls allow."""
    quotas = summary.get("quotas") or {}
    start = quotas.get(START_CHAT) if isinstance(quotas.get(START_CHAT), dict) else {}
    inferred = _inferred(summary)
    rows = [
        ("StartChatContact rate /s", start.get("rate"), inferred.get("rate")),
        ("StartChatContact burst", start.get("burst"), inferred.get("burst")),
        ("concurrent chats", quotas.get("concurrent_chats"), inferred.get("concurrent_chats")),
    ]
    return pd.DataFrame(
        [
            {
                "quota": name,
                "known": known,
                "inferred low": found["low"] if found else None,
                "inferred high": (found["high"] if found["high"] is not None else "no bound") if found else None,
            }
            for name, known, found in rows
        ],
        columns=["quota", "known", "inferred low", "inferred high"],
    )


def run_facts(summary: dict[str, Any], meta: dict[str, Any]) -> list[tuple[str, str]]:
    quotas = summary.get("quotas") or {}
    start_quota = quotas.get(START_CHAT) if isinstance(quotas.get(START_CHAT), dict) else {}
    lost = summary.get("lost_workers") or []
    clean = summary.get("clean_up")
    facts = [
        ("run", summary["run_id"]),
        ("scenario", summary["scenario"] or "unknown"),
        ("target", f"{summary['target'] or 'unknown'} {meta.get('endpoint') or ''}".strip()),
        ("instance", str(meta.get("instance") or "unknown")),
        ("prepared", _when(summary.get("started_at"))),
        (
            "schedule started",
            f"{_when(summary['schedule']['started_at'])} (from {summary['schedule']['source']}); "
            f"{summary['schedule']['duration_s']:.1f} s of schedule",
        ),
        ("arrival process", arrivals_fact(summary, meta)),
        *([("replay", replay_fact(summary["replay"]))] if summary.get("replay") else []),
        ("ended", _when(summary.get("ended_at")) if not summary["cut_short"] else "cut short (no ended_at)"),
        ("duration", f"{summary['duration_s']:.1f} s from the schedule's start to the run's end"),
        ("ended early", summary.get("ended_early") or ("interrupted" if summary.get("interrupted") else "no")),
        ("workers", ", ".join(map(str, meta.get("workers") or [])) or "unknown"),
        (
            "lost workers",
            ", ".join(f"{w.get('worker')} at {_when(w.get('at'))}" if isinstance(w, dict) else str(w) for w in lost)
            or "none",
        ),
        ("retry policy", str(summary.get("retry") or "unknown")),
        (
            "quotas known",
            f"StartChatContact {start_quota.get('rate', '?')}/s burst {start_quota.get('burst', '?')}, "
            f"concurrent chats {quotas.get('concurrent_chats', '?')} (source {quotas.get('source', '?')})",
        ),
        ("quotas inferred", inferred_fact(summary)),
        (
            "clean-up",
            "not recorded"
            if not clean
            else f"{clean.get('ended', 0)} ended, {clean.get('still_active', 0)} still active"
            + (f"; not ended: {', '.join(map(str, clean.get('not_ended') or []))}" if clean.get("not_ended") else ""),
        ),
        ("attempt files", ", ".join(summary.get("attempt_files") or []) or "none"),
    ]
    return [(k, str(v)) for k, v in facts]


def status_line(summary: dict[str, Any]) -> str:
    if not summary["valid"]:
        return "INVALID run: " + "; ".join(summary["invalid_reasons"])
    failed = [t["name"] for t in summary["thresholds"] if not t["passed"]]
    return "PASSED: all thresholds met" if not failed else "FAILED thresholds: " + ", ".join(failed)
