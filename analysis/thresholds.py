"""Thresholds (meta.json scenario.thresholds) and run validity, judged on StartChatContact calls.

Shares are fractions 0..1 of StartChatContact calls (dropped arrivals excluded), except the dropped
share, which is of arrivals (calls + dropped). Latency thresholds use successful (ok) calls.
The chat-experience thresholds (max_message_delivery_p95_ms, max_first_response_p95_s) are judged on
the websocket rows instead (analysis/experience.py: ok MessageDelivery and FirstResponse rows).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

DEFAULT_MAX_DROPPED_SHARE = 0.01
# threshold -> (chat_experience entry, figure)
EXPERIENCE_THRESHOLDS = {
    "max_message_delivery_p95_ms": ("message_delivery", "p95_ms"),
    "max_first_response_p95_s": ("first_response", "p95_s"),
}
NO_EXPERIENCE_NOTE = "no chat-experience rows: [chat] websocket = false or connect = false?"


@dataclass(frozen=True)
class Observed:
    """What the thresholds are judged against (StartChatContact over the whole run)."""

    calls: int
    arrivals: int
    outcomes: dict[str, int]
    ok_p95_ms: float | None
    ok_p99_ms: float | None
    # summary.json chat_experience (None: the run has no chat-experience rows)
    experience: dict[str, Any] | None = None

    def share(self, outcome: str) -> float | None:
        if outcome == "dropped":
            return self.outcomes.get("dropped", 0) / self.arrivals if self.arrivals else None
        return self.outcomes.get(outcome, 0) / self.calls if self.calls else None


def _limit(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def configured(meta: dict[str, Any]) -> dict[str, float]:
    """Flat {name: limit}: max_p95_ms, max_p99_ms, min_success_share, max_message_delivery_p95_ms,
    max_first_response_p95_s, max_dropped_share (default 0.01), max_outcome_share.<outcome>; unset
    limits are left out."""
    scenario = meta.get("scenario") if isinstance(meta.get("scenario"), dict) else {}
    raw = scenario.get("thresholds") if isinstance(scenario.get("thresholds"), dict) else {}
    names = ("max_p95_ms", "max_p99_ms", "min_success_share", *EXPERIENCE_THRESHOLDS)
    limits = {name: _limit(raw.get(name)) for name in names}
    dropped = _limit(raw.get("max_dropped_share"))
    limits["max_dropped_share"] = DEFAULT_MAX_DROPPED_SHARE if dropped is None else dropped
    outcome_limits = raw.get("max_outcome_share") if isinstance(raw.get("max_outcome_share"), dict) else {}
    for outcome, value in sorted(outcome_limits.items()):
        limits[f"max_outcome_share.{outcome}"] = _limit(value)
    return {name: limit for name, limit in limits.items() if limit is not None}


def _observed(name: str, obs: Observed) -> float | None:
    if name == "max_p95_ms":
        return obs.ok_p95_ms
    if name == "max_p99_ms":
        return obs.ok_p99_ms
    if name == "min_success_share":
        return obs.share("ok")
    if name == "max_dropped_share":
        return obs.share("dropped")
    if name in EXPERIENCE_THRESHOLDS:
        entry, figure = EXPERIENCE_THRESHOLDS[name]
        value = (obs.experience or {}).get(entry, {}).get(figure)
        return None if value is None else float(value)
    return obs.share(name.split(".", 1)[1])


def evaluate(limits: dict[str, float], obs: Observed) -> list[dict[str, Any]]:
    """One entry per threshold; a threshold with nothing to observe (no calls) does not pass."""
    results = []
    for name, limit in limits.items():
        value = _observed(name, obs)
        if value is None:
            passed = False
            no_rows = name in EXPERIENCE_THRESHOLDS and obs.experience is None
            note = NO_EXPERIENCE_NOTE if no_rows else "nothing to measure"
        else:
            passed = value >= limit if name.startswith("min_") else value <= limit
            note = ""
        results.append({"name": name, "limit": limit, "observed": value, "passed": passed, "note": note})
    return results


# meta.json ended_early reasons that still leave a valid run (a note, not a reason).
VALID_EARLY_ENDS = ("max_chats reached",)


def validity(
    obs: Observed,
    limits: dict[str, float],
    cut_short: bool,
    interrupted: bool = False,
    ended_early: str | None = None,
) -> list[str]:
    """Reasons the run cannot be trusted as a measurement (empty list: valid).

    A run that did not run its schedule (interrupted by SIGTERM, stopped by the kill switch, or ended
    early for any reason but max_chats) cannot pass."""
    reasons = []
    if obs.calls == 0:
        reasons.append("no StartChatContact calls were made")
    dropped = obs.share("dropped")
    limit = limits.get("max_dropped_share", DEFAULT_MAX_DROPPED_SHARE)
    if dropped is not None and dropped > limit:
        reasons.append(
            f"dropped share of arrivals {dropped:.4f} exceeds max_dropped_share {limit:g}: "
            "the load generator could not keep up with the schedule"
        )
    if cut_short:
        reasons.append("run cut short: meta.json has no ended_at (killed or still running)")
    if ended_early and ended_early not in VALID_EARLY_ENDS:
        reasons.append(f"the run ended before its schedule did: {ended_early}")
    elif interrupted:
        reasons.append("the run ended before its schedule did: interrupted by SIGTERM")
    return reasons
