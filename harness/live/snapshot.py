"""The figures of a live run at one moment (`LiveSnapshot`) and the count helpers (pure).

Counts are ``{operation: {outcome: count}}``. live.stats produces snapshots; live.progress and
live.webui only format them (outcome classes in contracts.OUTCOMES order, any other string after them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chatload.contracts import DROPPED, OK, START_CHAT, THROTTLES

Counts = dict[str, dict[str, int]]  # operation -> outcome -> count


def add_counts(into: Counts, counts: Counts) -> None:
    for op, by_outcome in counts.items():
        target = into.setdefault(op, {})
        for outcome, n in by_outcome.items():
            target[outcome] = target.get(outcome, 0) + n


def diff_counts(now: Counts, before: Counts | None) -> Counts:
    """now - before, only the non-zero entries (counters only grow)."""
    before = before or {}
    out: Counts = {}
    for op, by_outcome in now.items():
        prev = before.get(op, {})
        changed = {o: n - prev.get(o, 0) for o, n in by_outcome.items() if n != prev.get(o, 0)}
        if changed:
            out[op] = changed
    return out


def copy_counts(counts: Counts) -> Counts:
    return {op: dict(by_outcome) for op, by_outcome in counts.items()}


@dataclass(frozen=True)
class LiveSnapshot:
    """The figures at one moment, ready to format (pure data, JSON-able via `to_dict`)."""

    now: float
    running: bool
    started_at: float | None
    elapsed_s: float
    remaining_s: float | None
    stage: str | None
    target_rate: float | None
    rate_window_s: float  # span the rates cover; 0 when no complete second yet
    offered_rate: float | None  # StartChatContact rows per second, dropped included
    accepted_rate: float | None  # StartChatContact ok per second
    rates: dict[str, float]  # StartChatContact outcome -> per second
    totals: Counts  # operation -> outcome -> count for the run
    offered: int
    accepted: int
    dropped: int
    active_chats: int
    peak_active_chats: int
    quota_concurrent_chats: int | None
    quota_start_chat_rate: float | None
    workers: int  # workers reporting (0 on a local runner)
    series: list[dict[str, Any]] = field(default_factory=list)  # per second, StartChatContact

    def start_chat(self, outcome: str) -> int:
        return self.totals.get(START_CHAT, {}).get(outcome, 0)

    def other_errors(self) -> int:
        """Failed calls that are not StartChatContact throttles: errors of every operation and
        throttles of the Participant Service and other Connect operations."""
        n = 0
        for op, by_outcome in self.totals.items():
            for outcome, count in by_outcome.items():
                if outcome in (OK, DROPPED) or (op == START_CHAT and outcome in THROTTLES):
                    continue
                n += count
        return n

    def to_dict(self) -> dict[str, Any]:
        return {
            "now": self.now,
            "running": self.running,
            "started_at": self.started_at,
            "elapsed_s": round(self.elapsed_s, 3),
            "remaining_s": None if self.remaining_s is None else round(self.remaining_s, 3),
            "stage": self.stage,
            "target_rate": self.target_rate,
            "rate_window_s": self.rate_window_s,
            "offered_rate": self.offered_rate,
            "accepted_rate": self.accepted_rate,
            "rates": dict(self.rates),
            "offered": self.offered,
            "accepted": self.accepted,
            "dropped": self.dropped,
            "other_errors": self.other_errors(),
            "totals": copy_counts(self.totals),
            "active_chats": self.active_chats,
            "peak_active_chats": self.peak_active_chats,
            "quota": {
                "concurrent_chats": self.quota_concurrent_chats,
                "start_chat_rate": self.quota_start_chat_rate,
            },
            "workers": self.workers,
            "series": list(self.series),
        }
