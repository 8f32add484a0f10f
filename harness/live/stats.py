"""Live counters of a run: what the progress line and the web UI's Throttling tab show.

One `LiveStats` per process. The load generator calls `record(row)` for every attempts row (the
same dicts the recorder writes), `chat_started()` / `chat_ended()` around each chat, `set_stage()`
when a stage begins and `set_quota()` when the quotas are known. `record` is on the hot path: it
does a few dict look-ups, three integer increments and, for a call, one bisection into the fixed
duration buckets; no locks (gevent), no allocation except the first time a (second, operation,
outcome) appears. Until `set_stage()` is called, the stage shown is the `stage` of the rows, read
once a second (then no target rate is known).

Counts are kept per whole epoch second in a small ring (`window_s` seconds, 60 by default) and as
run totals, both as ``{operation: {outcome: count}}``. Rates are counts over the last
`rate_window_s` *complete* seconds divided by the span actually covered. The calls' durations
(``latency_ms`` of every row but dropped arrivals) are counted for the run in the fixed buckets
`DURATION_BUCKETS_MS`, per operation and outcome (`durations()`: what chatload.harness.live.metrics
serves as a histogram).

Distributed runs (Locust master and workers): each worker's `take_report()` returns what changed
since its previous report (per-second deltas, total deltas, duration bucket deltas) plus its gauges
(active chats, stage, quota); Locust ships it to the master inside its own stats message (`report_to_master` /
`worker_report`, every 3 s), and the master's `merge()` adds it into its own windows and totals.
On the master, rates end at the oldest second every live worker has fully reported, so a rate is
never computed over a second that is still on its way. chatload.harness.live.install wires all of this
on any runner.

This module imports neither locust nor gevent at import time (its tests run without them).
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chatload.contracts import DROPPED, OK, START_CHAT
from chatload.harness.live.snapshot import Counts, LiveSnapshot, add_counts, copy_counts, diff_counts

REPORT_KEY = "chatload"  # key of our figures inside Locust's worker report
REPORT_VERSION = 1
WINDOW_S = 60  # seconds kept in the ring
RATE_WINDOW_S = 5  # rates are over the last few complete seconds
STALE_WORKER_S = 10.0  # a worker silent this long no longer counts (its last report is ~3 s old at most)
# Upper bounds (ms, inclusive) of the call-duration buckets; a last bucket takes the longer calls.
DURATION_BUCKETS_MS = (5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0)

# operation -> outcome -> [count per bucket (len(DURATION_BUCKETS_MS) + 1, not cumulative), sum of ms]
Durations = dict[str, dict[str, list[float]]]


def add_durations(into: Durations, durations: Durations) -> None:
    for op, by_outcome in durations.items():
        target = into.setdefault(op, {})
        for outcome, values in by_outcome.items():
            have = target.get(outcome)
            if have is None:
                target[outcome] = list(values)
            elif len(have) == len(values):  # a report with other buckets is ignored
                for i, v in enumerate(values):
                    have[i] += v


def diff_durations(now: Durations, before: Durations | None) -> Durations:
    """now - before, only the (operation, outcome) pairs that changed."""
    before = before or {}
    out: Durations = {}
    for op, by_outcome in now.items():
        prev = before.get(op, {})
        for outcome, values in by_outcome.items():
            old = prev.get(outcome)
            if old is None:
                out.setdefault(op, {})[outcome] = list(values)
            elif old != values:
                out.setdefault(op, {})[outcome] = [v - o for v, o in zip(values, old, strict=True)]
    return out


def copy_durations(durations: Durations) -> Durations:
    return {op: {o: list(v) for o, v in by_outcome.items()} for op, by_outcome in durations.items()}


@dataclass
class _Worker:
    """What the master knows of one worker's gauges."""

    active: int = 0
    until: float = 0.0  # worker clock: every second before floor(until) is fully reported
    heard_at: float = 0.0  # master clock


class LiveStats:
    """Per-process live counters (see the module doc). `clock` is injectable for tests."""

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        *,
        window_s: int = WINDOW_S,
        rate_window_s: int = RATE_WINDOW_S,
        total_duration_s: float | None = None,
    ) -> None:
        self._clock = clock
        self.window_s = window_s
        self.rate_window_s = rate_window_s
        self.total_duration_s = total_duration_s
        self.stage: str | None = None
        self.target_rate: float | None = None
        self._stage_set_at = -math.inf
        self.quota_concurrent_chats: int | None = None
        self.quota_start_chat_rate: float | None = None
        self.quota_start_chat_burst: float | None = None
        self._active = 0
        self._peak_active = 0
        self.reset()

    # ------------------------------------------------------------------ run boundaries

    def reset(self) -> None:
        """Forget every count (a new run starts). Stage, quota and active chats are kept: they are
        states set by the harness, not counts."""
        self.started_at: float | None = None
        self.stopped_at: float | None = None
        self._seconds: dict[int, Counts] = {}
        self._current_second = -1
        self._current: Counts = {}
        self._totals: Counts = {}
        self._sent_seconds: dict[int, Counts] = {}
        self._sent_totals: Counts = {}
        self._durations: Durations = {}
        self._sent_durations: Durations = {}
        self._workers: dict[str, _Worker] = {}
        self._row_stage: str | None = None  # the rows' stage, used until set_stage() is called
        self._peak_active = self._active

    def start(self) -> None:
        """A run starts now (Locust's test_start): counts from zero."""
        self.reset()
        self.started_at = self._clock()

    def stop(self) -> None:
        """The run stopped (Locust's test_stop): elapsed time stops counting."""
        if self.started_at is not None and self.stopped_at is None:
            self.stopped_at = self._clock()

    # ------------------------------------------------------------------ hot path

    def record(self, row: dict) -> None:
        """Count one attempts row (any operation; outcome "dropped" for a dropped arrival)."""
        second = int(self._clock())
        if second != self._current_second:
            self._roll(second)
            self._row_stage = row.get("stage") or self._row_stage  # once a second, not per row
        op = row["operation"]
        outcome = row["outcome"]
        by_outcome = self._current.get(op)
        if by_outcome is None:
            by_outcome = self._current[op] = {}
        by_outcome[outcome] = by_outcome.get(outcome, 0) + 1
        by_outcome = self._totals.get(op)
        if by_outcome is None:
            by_outcome = self._totals[op] = {}
        by_outcome[outcome] = by_outcome.get(outcome, 0) + 1
        latency = row.get("latency_ms")
        if latency is not None and latency == latency and outcome != DROPPED:  # NaN: no call was made
            by_outcome = self._durations.get(op)
            if by_outcome is None:
                by_outcome = self._durations[op] = {}
            counts = by_outcome.get(outcome)
            if counts is None:
                counts = by_outcome[outcome] = [0] * (len(DURATION_BUCKETS_MS) + 2)
            counts[bisect_left(DURATION_BUCKETS_MS, latency)] += 1
            counts[-1] += latency

    def chat_started(self) -> None:
        self._active += 1
        if self._active > self._peak_active:
            self._peak_active = self._active

    def chat_ended(self) -> None:
        if self._active > 0:
            self._active -= 1

    def set_stage(self, name: str, target_rate: float) -> None:
        self.stage = name
        self.target_rate = float(target_rate)
        self._stage_set_at = self._clock()

    def set_quota(
        self, concurrent_chats: int | None, start_chat_rate: float | None, start_chat_burst: float | None = None
    ) -> None:
        if concurrent_chats is not None:
            self.quota_concurrent_chats = int(concurrent_chats)
        if start_chat_rate is not None:
            self.quota_start_chat_rate = float(start_chat_rate)
        if start_chat_burst is not None:
            self.quota_start_chat_burst = float(start_chat_burst)

    def set_duration(self, total_duration_s: float | None) -> None:
        """The run's planned length (known only once a scenario is chosen, e.g. on the web form)."""
        self.total_duration_s = total_duration_s

    def _roll(self, second: int) -> None:
        current = self._seconds.get(second)
        if current is None:
            current = self._seconds[second] = {}
            self._prune(second)
        self._current = current
        self._current_second = second

    def _prune(self, newest: int) -> None:
        oldest = newest - self.window_s
        for s in [s for s in self._seconds if s <= oldest]:
            del self._seconds[s]
            self._sent_seconds.pop(s, None)

    # ------------------------------------------------------------------ workers -> master

    def take_report(self) -> dict[str, Any]:
        """On a worker: the counts added since the previous report, and the gauges now.
        The payload is msgpack-safe (string keys, numbers, strings)."""
        now = self._clock()
        seconds: dict[str, Counts] = {}
        for second, counts in self._seconds.items():
            delta = diff_counts(counts, self._sent_seconds.get(second))
            if delta:
                seconds[str(second)] = delta
        totals = diff_counts(self._totals, self._sent_totals)
        durations = diff_durations(self._durations, self._sent_durations)
        self._sent_seconds = {second: copy_counts(counts) for second, counts in self._seconds.items()}
        self._sent_totals = copy_counts(self._totals)
        self._sent_durations = copy_durations(self._durations)
        return {
            "v": REPORT_VERSION,
            "seconds": seconds,
            "totals": totals,
            "durations": durations,
            "until": now,
            "active": self._active,
            "stage": self.stage,
            "target_rate": self.target_rate,
            "stage_set_at": self._stage_set_at if self.stage is not None else None,
            "row_stage": self._row_stage,
            "quota_concurrent_chats": self.quota_concurrent_chats,
            "quota_start_chat_rate": self.quota_start_chat_rate,
            "quota_start_chat_burst": self.quota_start_chat_burst,
            "total_duration_s": self.total_duration_s,
        }

    def merge(self, worker: str, report: dict[str, Any]) -> None:
        """On the master: add one worker's report (from `take_report`)."""
        if not isinstance(report, dict) or report.get("v") != REPORT_VERSION:
            return
        for second_text, counts in report.get("seconds", {}).items():
            second = int(second_text)
            target = self._seconds.get(second)
            if target is None:
                target = self._seconds[second] = {}
                self._prune(max(self._seconds))
                if second not in self._seconds:  # older than the ring
                    continue
            add_counts(target, counts)
        add_counts(self._totals, report.get("totals", {}))
        add_durations(self._durations, report.get("durations", {}))
        state = self._workers.setdefault(worker, _Worker())
        state.active = int(report.get("active", 0))
        state.until = max(state.until, float(report.get("until", 0.0)))
        state.heard_at = self._clock()
        stage_set_at = report.get("stage_set_at")
        if report.get("stage") is not None and stage_set_at is not None and stage_set_at > self._stage_set_at:
            self.stage = report["stage"]
            self.target_rate = report.get("target_rate")
            self._stage_set_at = stage_set_at
        if report.get("row_stage"):
            self._row_stage = report["row_stage"]
        self.set_quota(
            report.get("quota_concurrent_chats"),
            report.get("quota_start_chat_rate"),
            report.get("quota_start_chat_burst"),
        )
        if self.total_duration_s is None and report.get("total_duration_s") is not None:
            self.total_duration_s = float(report["total_duration_s"])
        self._peak_active = max(self._peak_active, self.active_chats())

    def _live_workers(self) -> list[_Worker]:
        now = self._clock()
        return [w for w in self._workers.values() if now - w.heard_at <= STALE_WORKER_S]

    # ------------------------------------------------------------------ reading

    def active_chats(self) -> int:
        return self._active + sum(w.active for w in self._live_workers())

    def durations(self) -> Durations:
        """The run's call durations: operation -> outcome -> [count per bucket of
        DURATION_BUCKETS_MS and a last one for longer calls (not cumulative), sum of ms] (a copy)."""
        return copy_durations(self._durations)

    def snapshot(self) -> LiveSnapshot:
        now = self._clock()
        live_workers = self._live_workers()
        # Seconds before `end` are complete: here for a local process, on the master the oldest
        # second every live worker has fully reported.
        end = min((w.until for w in live_workers), default=now) if self._workers else now
        end_second = math.floor(end)
        start = end_second - self.rate_window_s
        if self.started_at is not None:
            start = max(start, self.started_at)
        span = end_second - start
        window: Counts = {}
        for second in range(math.floor(start), end_second):
            counts = self._seconds.get(second)
            if counts:
                add_counts(window, counts)
        start_window = window.get(START_CHAT, {})
        if span >= 0.5:
            rates = {o: n / span for o, n in start_window.items()}
            offered_rate: float | None = sum(start_window.values()) / span
            accepted_rate: float | None = start_window.get(OK, 0) / span
        else:
            span, rates, offered_rate, accepted_rate = 0.0, {}, None, None
        start_totals = self._totals.get(START_CHAT, {})
        if self.started_at is None:
            elapsed = 0.0
        else:
            elapsed = max(0.0, (self.stopped_at if self.stopped_at is not None else now) - self.started_at)
        remaining = None
        if self.total_duration_s is not None and self.started_at is not None:
            remaining = max(0.0, self.total_duration_s - elapsed)
        return LiveSnapshot(
            now=now,
            running=self.started_at is not None and self.stopped_at is None,
            started_at=self.started_at,
            elapsed_s=elapsed,
            remaining_s=remaining,
            stage=self.stage if self.stage is not None else self._row_stage,
            target_rate=self.target_rate,
            rate_window_s=float(span),
            offered_rate=offered_rate,
            accepted_rate=accepted_rate,
            rates=rates,
            totals=copy_counts(self._totals),
            offered=sum(start_totals.values()),
            accepted=start_totals.get(OK, 0),
            dropped=start_totals.get(DROPPED, 0),
            active_chats=self._active + sum(w.active for w in live_workers),
            peak_active_chats=self._peak_active,
            quota_concurrent_chats=self.quota_concurrent_chats,
            quota_start_chat_rate=self.quota_start_chat_rate,
            workers=len(live_workers),
            series=self._series(end_second),
        )

    def _series(self, end_second: int) -> list[dict[str, Any]]:
        """StartChatContact counts per complete second in the ring, oldest first."""
        out = []
        for second in sorted(s for s in self._seconds if s < end_second):
            by_outcome = self._seconds[second].get(START_CHAT, {})
            out.append({"t": second, "offered": sum(by_outcome.values()), **by_outcome})
        return out


# ---------------------------------------------------------------------- wiring into Locust
