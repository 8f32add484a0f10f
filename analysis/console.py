"""The few lines `chatload report` prints (CI logs): validity, the schedule's rates, a compact stage
table, the arrival process (and the replay), the findings' headline, the quotas inferred from the
calls, thresholds, notes and the report's path (formatting only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chatload.contracts import START_CHAT, THROTTLES, UNIFORM

MAX_STAGE_ROWS = 20
MAX_NOTES = 3
STAGE_HEADER = ("stage", "target/s", "offered/s", "accepted/s", "ok%", "tps%", "conc%", "other%", "dropped")


def _num(value: Any, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _pct(value: Any) -> str:
    return "-" if value is None else f"{value:.1f}"


def stage_table(stages: list[dict[str, Any]]) -> list[str]:
    """Fixed-width rows: target, offered and accepted rate, ok/TPS/concurrency/other shares, dropped."""
    rows = [
        (
            str(s["name"]),
            _num(s["target_rate"]),
            _num(s["offered_rate"]),
            _num(s["accepted_rate"]),
            _pct(s["success_pct"]),
            _pct(s["tps_throttle_pct"]),
            _pct(s["concurrency_throttle_pct"]),
            _pct(s["other_error_pct"]),
            str(s["dropped"]),
        )
        for s in stages[:MAX_STAGE_ROWS]
    ]
    widths = [max(len(r[i]) for r in [STAGE_HEADER, *rows]) for i in range(len(STAGE_HEADER))]
    lines = [
        "  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in [STAGE_HEADER, *rows]
    ]
    if len(stages) > MAX_STAGE_ROWS:
        lines.append(f"  ... {len(stages) - MAX_STAGE_ROWS} more stages in the report")
    return lines


def experience_line(experience: dict[str, Any]) -> str:
    """The websocket's figures in one line (summary.json chat_experience)."""

    def ms(value: Any) -> str:
        return "n/a" if value is None else f"{value:.0f} ms"

    delivery, first = experience["message_delivery"], experience["first_response"]
    return (
        f"chat experience: delivery p50/p95/p99 {ms(delivery['p50_ms'])}/{ms(delivery['p95_ms'])}/"
        f"{ms(delivery['p99_ms'])}, first response p95 {ms(first['p95_ms'])}, {experience['lost_frames']} lost, "
        f"{experience['late_frames']} late, {experience['unexpected_closes']} unexpected closes, "
        f"{experience['missed_heartbeats']} missed heartbeats"
    )


def threshold_line(thresholds: list[dict[str, Any]]) -> str:
    if not thresholds:
        return "thresholds: none configured"
    parts = []
    for t in thresholds:
        sign = ">=" if t["name"].startswith("min_") else "<="
        observed = "n/a" if t["observed"] is None else f"{t['observed']:.4g}"
        parts.append(f"{t['name']} {observed} {sign} {t['limit']:g} {'ok' if t['passed'] else 'FAIL'}")
    return "thresholds: " + "; ".join(parts)


def arrivals_line(arrivals: dict[str, Any]) -> str:
    """The arrival process, its seed and the dispersion index of the offered arrivals per second."""
    process, seed, index = arrivals.get("process") or UNIFORM, arrivals.get("seed"), arrivals.get("dispersion_index")
    named = "uniform (evenly spaced)" if process == UNIFORM else f"{process}, seed {_seed(seed)}"
    return f"arrivals: {named}; dispersion index {_num(index)} (about 1 for Poisson, about 0 for evenly spaced)"


def _seed(seed: Any) -> str:
    return "not recorded" if seed is None else str(seed)


def replay_line(replay: dict[str, Any]) -> str:
    return (
        f"replay: {replay['file']} {replay['recorded_start']} to {replay['recorded_end']}, scale {replay['scale']:g}, "
        f"speed {replay['speed']:g}x; concurrency {replay['concurrency_factor']:g}x the recorded day's "
        f"(peak {replay['peak_active_chats']} active chats, about {replay['recorded_peak_active_chats']:.1f} "
        "on the recorded day)"
    )


def _span(found: dict[str, Any] | None, digits: int, known: Any, unit: str = "") -> str:
    """ "4.99-5.01 (known 5)" (a digit more, up to two, while both ends round alike); "-" when the run
    does not show it; ">=4.99" without an upper bound."""
    if not found:
        text = "-"
    elif found.get("high") is None:
        text = f">={found['low']:.{digits}f}"
    else:
        for extra in range(3):
            low, high = f"{found['low']:.{digits + extra}f}", f"{found['high']:.{digits + extra}f}"
            text = f"{low}-{high}"
            if low != high:
                break
        else:
            text = low
    return text + ("" if text == "-" else unit) + (f" (known {known:g})" if isinstance(known, int | float) else "")


def inferred_line(summary: dict[str, Any]) -> str:
    """The quotas the run's calls allow (findings.inferred_quotas) beside the ones known before."""
    inferred = summary["findings"].get("inferred_quotas") or {}
    quotas = summary.get("quotas") or {}
    start = quotas.get(START_CHAT) if isinstance(quotas.get(START_CHAT), dict) else {}
    return (
        f"quotas inferred: StartChatContact rate {_span(inferred.get('rate'), 2, start.get('rate'), '/s')}, "
        f"burst {_span(inferred.get('burst'), 1, start.get('burst'))}; "
        f"concurrent chats {_span(inferred.get('concurrent_chats'), 0, quotas.get('concurrent_chats'))}"
    )


def summary_lines(summary: dict[str, Any], run_dir: Path) -> list[str]:
    start = summary["calls"][START_CHAT]
    arrivals, schedule = summary["arrivals"], summary["schedule"]
    failed = [t["name"] for t in summary["thresholds"] if not t["passed"]]
    if not summary["valid"]:
        verdict = "INVALID: " + "; ".join(summary["invalid_reasons"])
    else:
        verdict = "valid, thresholds " + ("passed" if not failed else "FAILED: " + ", ".join(failed))
    throttles = ", ".join(f"{c} {start.get(c, 0)}" for c in THROTTLES)
    lines = [
        f"run {summary['run_id']}: {verdict}",
        f"StartChatContact: offered {_num(schedule['offered_rate'])}/s, accepted {_num(schedule['accepted_rate'])}/s "
        f"over the {schedule['duration_s']:.1f} s schedule ({arrivals['scheduled']} arrivals, {start['ok']} ok, "
        f"{arrivals['dropped']} dropped; {throttles})",
        *stage_table(summary["stages"]),
        arrivals_line(summary["arrivals"]),
        *([replay_line(summary["replay"])] if summary.get("replay") else []),
        f"findings: {summary['findings']['headline']}",
        inferred_line(summary),
        *([experience_line(summary["chat_experience"])] if summary.get("chat_experience") else []),
        threshold_line(summary["thresholds"]),
    ]
    notes = summary["notes"]
    lines += [f"note: {n}" for n in notes[:MAX_NOTES]]
    if len(notes) > MAX_NOTES:
        lines.append(f"note: ... {len(notes) - MAX_NOTES} more in the report")
    lines.append(f"report: {run_dir / 'report.html'}")
    return lines
