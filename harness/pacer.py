"""The arrival schedule of an open workload, as pure functions of elapsed time (no clocks, no gevent).

An open workload starts chats at a target rate whatever the target answers: the pacer says *when*
each chat should start, from the time elapsed since the run began, and the runtime starts it then
(or counts it as dropped when no user is free). The pacer never looks at responses, so a slow
target cannot slow the offered rate down (no coordinated omission).

The math, for stages i = 0..n-1 with start time T_i, duration d_i, start rate a_i and end rate b_i
(a step stage has a_i = b_i = target_rate; a linear stage goes from start_rate to target_rate):

    rate    r(t) = a_i + (b_i - a_i) * u / d_i,              u = t - T_i,  T_i < t <= T_i + d_i
    count   A(t) = ∫₀ᵗ r = A_i + a_i * u + (b_i - a_i) * u² / (2 d_i),    A_i = A(T_i)

A(t) is the number of arrivals expected by time t. Arrival k (k = 1, 2, ...) happens when A(t) = k:
inside stage i (A_i < k <= A_{i+1}) with m = k - A_i and c = (b_i - a_i) / (2 d_i) it solves
c u² + a_i u - m = 0, written in the form that is stable for c of either sign and for c = 0:

    u = 2 m / (a_i + sqrt(a_i² + 4 c m))

Zero-rate stages add nothing to A and are skipped; an arrival beyond A(end) is at math.inf.
A constant 2/s stage therefore starts chats at 0.5 s, 1.0 s, 1.5 s, ...; a stage of rate r and
length d holds r*d arrivals (up to the fraction carried over from earlier stages).

Several processes share one schedule through `Share`: process p with fraction f_p expects
f_p * A(t) arrivals by t (its own count), the fractions add up to 1, so the offered rates add up
to the global target. `wait(schedule, elapsed, hits, share)` is Vegeta's pacer: the seconds
until this process's arrival hits+1 (negative when it is already late, math.inf when the schedule
has no more arrivals for it).
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from chatload.contracts import ARRIVAL_PROCESSES, POISSON, UNIFORM
from chatload.harness.scenario.model import Stage

# Tolerance for float sums: an arrival whose count is within EPS of the schedule's total still exists.
EPS = 1e-9


@dataclass(frozen=True)
class _Segment:
    start: float  # T_i
    duration: float  # d_i
    rate_from: float  # a_i
    rate_to: float  # b_i
    before: float  # A_i, arrivals expected before this segment

    @property
    def arrivals(self) -> float:
        return (self.rate_from + self.rate_to) / 2 * self.duration

    def count(self, u: float) -> float:
        """Arrivals expected in the first u seconds of this segment."""
        return self.rate_from * u + (self.rate_to - self.rate_from) * u * u / (2 * self.duration)

    def rate(self, u: float) -> float:
        return self.rate_from + (self.rate_to - self.rate_from) * u / self.duration

    def time_of(self, m: float) -> float:
        """Seconds into the segment at which m arrivals (0 < m <= arrivals) are expected."""
        c = (self.rate_to - self.rate_from) / (2 * self.duration)
        root = math.sqrt(max(self.rate_from**2 + 4 * c * m, 0.0))
        denominator = self.rate_from + root
        if denominator <= 0:
            return self.duration
        return min(max(2 * m / denominator, 0.0), self.duration)


class Schedule:
    """The global arrival schedule of a scenario's stages (see the module doc for the math).

    Times are seconds since the start of the run. At a stage boundary the earlier stage owns the
    instant: stage i covers (T_i, T_i + d_i] (stage 0 also covers t = 0), so an arrival that falls
    exactly at the end of a stage is counted in that stage.
    """

    def __init__(self, stages: Iterable[Stage]) -> None:
        self.stages: tuple[Stage, ...] = tuple(stages)
        if not self.stages:
            raise ValueError("a schedule needs at least one stage")
        segments: list[_Segment] = []
        start = 0.0
        before = 0.0
        previous_rate = 0.0
        for stage in self.stages:
            if stage.duration_s <= 0 or stage.target_rate < 0:
                raise ValueError(f"stage {stage.name!r}: duration must be > 0 and rate >= 0")
            if stage.ramp == "linear":
                rate_from = previous_rate if stage.start_rate is None else stage.start_rate
            else:
                rate_from = stage.target_rate
            segment = _Segment(start, stage.duration_s, rate_from, stage.target_rate, before)
            segments.append(segment)
            start += stage.duration_s
            before += segment.arrivals
            previous_rate = stage.target_rate
        self._segments = tuple(segments)
        self._ends = tuple(s.start + s.duration for s in segments)
        self._counts_at_end = tuple(s.before + s.arrivals for s in segments)
        self.duration_s: float = start
        self.total_arrivals: float = before

    def __repr__(self) -> str:
        return f"Schedule({len(self.stages)} stages, {self.duration_s:g} s, {self.total_arrivals:g} arrivals)"

    def stage_at(self, t: float) -> int:
        """Index of the stage running at t (0 before the start, the last one after the end)."""
        if t <= 0:
            return 0
        return min(bisect_left(self._ends, t), len(self._segments) - 1)

    def rate_at(self, t: float) -> float:
        """Target arrival rate (chats/s) at t; 0 before the start and after the end."""
        if t < 0 or t > self.duration_s:
            return 0.0
        segment = self._segments[self.stage_at(t)]
        return segment.rate(t - segment.start)

    def expected_arrivals(self, t: float) -> float:
        """A(t): arrivals expected from 0 to t (constant after the end)."""
        if t <= 0:
            return 0.0
        if t >= self.duration_s:
            return self.total_arrivals
        segment = self._segments[self.stage_at(t)]
        return segment.before + segment.count(t - segment.start)

    def arrival_time(self, k: float) -> float:
        """Time of arrival k (k = 1, 2, ...; fractional k allowed), the inverse of expected_arrivals.

        math.inf when the schedule ends before k arrivals; 0.0 for k <= 0.
        """
        if k <= 0:
            return 0.0
        if k > self.total_arrivals + EPS:
            return math.inf
        index = min(bisect_left(self._counts_at_end, k - EPS), len(self._segments) - 1)
        segment = self._segments[index]
        m = min(k - segment.before, segment.arrivals)
        if m <= 0:
            return segment.start
        return segment.start + segment.time_of(m)

    def stage_arrivals(self, index: int) -> float:
        """Arrivals expected during stage `index`."""
        return self._segments[index].arrivals

    def peak_rate(self) -> float:
        """The highest rate anywhere in the schedule."""
        return max(max(s.rate_from, s.rate_to) for s in self._segments)

    def scaled(self, factor: float) -> Schedule:
        """The same schedule with every rate (target and start) multiplied by `factor` (>= 0)."""
        if factor < 0 or not math.isfinite(factor):
            raise ValueError(f"scale factor must be a finite number >= 0, got {factor}")
        stages = [
            replace(
                stage,
                target_rate=stage.target_rate * factor,
                start_rate=segment.rate_from * factor if stage.ramp == "linear" else None,
            )
            for stage, segment in zip(self.stages, self._segments, strict=True)
        ]
        return Schedule(stages)


@dataclass(frozen=True)
class Share:
    """One process's part of the global schedule.

    With fraction f the process expects  N(t) = f * A(t)  arrivals by t, and its arrival j happens
    when N(t) = j - 1 + phase. phase in (0, 1] staggers processes with equal fractions so they do
    not fire together: `equal_shares(n)` gives process p the phase (p + 1) / n, which hands it
    exactly the global arrivals p + 1, p + 1 + n, p + 1 + 2n, ...

    Re-basing (a worker joins or leaves at time t0): `share.rebased(schedule, t0, new_fraction)`
    keeps every arrival due up to t0 as it was (N(t0) under the old fraction, carried over as
    `count_before`) and counts later arrivals with the new fraction:

        N(t) = N_old(t0) + f_new * (A(t) - A(t0))     for t >= t0

    so nothing already due is lost and, when every process re-bases at the same t0 with fractions
    that add up to 1, the offered rates still add up to the global target.
    """

    fraction: float = 1.0
    phase: float = 1.0
    since_s: float = 0.0
    count_before: float = 0.0
    previous: Share | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not (0 <= self.fraction <= 1):
            raise ValueError(f"share fraction must be in [0, 1], got {self.fraction}")
        if not (0 < self.phase <= 1):
            raise ValueError(f"share phase must be in (0, 1], got {self.phase}")

    def expected_arrivals(self, schedule: Schedule, t: float) -> float:
        """N(t): this process's expected arrivals by t."""
        if self.previous is not None and t < self.since_s:
            return self.previous.expected_arrivals(schedule, t)
        return self.count_before + self.fraction * (
            schedule.expected_arrivals(t) - schedule.expected_arrivals(self.since_s)
        )

    def arrival_time(self, schedule: Schedule, j: int) -> float:
        """Time of this process's evenly spaced arrival j (j = 1, 2, ...), at N(t) = j - 1 + phase
        (the phase of the share that governed that arrival); math.inf when there is none."""
        target = j - 1 + self.phase
        if self.previous is not None and target <= self.count_before + EPS:
            return self.previous.arrival_time(schedule, j)
        return self.time_of_count(schedule, target)

    def time_of_count(self, schedule: Schedule, count: float) -> float:
        """The time t at which N(t) = count (the inverse of expected_arrivals); math.inf when the
        schedule ends before this process expects that many arrivals."""
        if self.previous is not None and count <= self.count_before + EPS:
            return self.previous.time_of_count(schedule, count)
        if self.fraction <= 0:
            return math.inf
        k = schedule.expected_arrivals(self.since_s) + (count - self.count_before) / self.fraction
        return schedule.arrival_time(k)

    def rebased(self, schedule: Schedule, t: float, fraction: float, phase: float | None = None) -> Share:
        """This share from time t on with a new fraction (and optionally phase); see the class doc."""
        return Share(
            fraction=fraction,
            phase=self.phase if phase is None else phase,
            since_s=t,
            count_before=self.expected_arrivals(schedule, t),
            previous=self,
        )


def equal_shares(n: int) -> list[Share]:
    """Shares for n processes with equal fractions 1/n and staggered phases (see Share)."""
    if n < 1:
        raise ValueError(f"need at least one process, got {n}")
    return [Share(fraction=1 / n, phase=(p + 1) / n) for p in range(n)]


# ------------------------------------------------------------------ arrival processes


class Uniform:
    """Evenly spaced arrivals: this process's arrival j at N(t) = j - 1 + phase (the share's phase).
    A constant rate r gives exactly one arrival every 1/r seconds."""

    name = UNIFORM

    def time_of(self, schedule: Schedule, share: Share, hits: int) -> float:
        """Seconds since the start at which this process's arrival hits+1 is due."""
        return share.arrival_time(schedule, hits + 1)


class Poisson:
    """Independent arrivals: a Poisson process whose intensity follows the schedule's rate.

    The gaps between this process's arrivals, measured in its own expected count N(t), are Exp(1)
    draws: arrival j happens at N(t) = S_j = E_1 + ... + E_j. N maps a unit-rate Poisson process
    onto time (the time-change theorem), so the number of arrivals in any interval (a, b] is
    Poisson with mean N(b) - N(a) = f * (A(b) - A(a)): a non-homogeneous Poisson process with
    intensity f * r(t), ramps included. Processes drawing from independent generators add up to a
    Poisson process at the global rate r(t); a re-based share keeps N continuous, so the stream
    goes on unchanged (memorylessness). It stays an open model: draws never depend on responses.

    The same seed (the same generator state) gives the same arrival times.
    """

    name = POISSON

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self._index = 0  # the arrival whose count is _count (1-based; 0 = none drawn yet)
        self._count = 0.0

    def count_of(self, hits: int) -> float:
        """S of this process's arrival hits+1 (hits only grows: earlier draws are not kept)."""
        while self._index <= hits:
            self._count += self.rng.expovariate(1.0)
            self._index += 1
        return self._count

    def time_of(self, schedule: Schedule, share: Share, hits: int) -> float:
        """Seconds since the start at which this process's arrival hits+1 is due."""
        return share.time_of_count(schedule, self.count_of(hits))


def spacing(process: str, seed: int | None, stream: str) -> Uniform | Poisson:
    """The arrival process named `process` for one process's stream (its worker name): Poisson
    streams with the same seed and different names are independent, and each is reproducible."""
    if process == POISSON:
        if seed is None:
            raise ValueError("a Poisson arrival process needs a seed (the run draws one when none is given)")
        return Poisson(random.Random(f"{seed}/{stream}"))
    if process == UNIFORM:
        return Uniform()
    raise ValueError(f"arrival process {process!r}: expected one of {', '.join(ARRIVAL_PROCESSES)}")


def wait(
    schedule: Schedule, elapsed: float, hits: int, share: float | Share = 1.0, process: Uniform | Poisson | None = None
) -> float:
    """Seconds from `elapsed` until this process's arrival hits+1 (Vegeta's Pacer.Pace).

    `hits` is the number of arrivals this process has already handled (started or dropped).
    Negative: the arrival is late by that much (start it now, or count it as dropped);
    math.inf: the schedule has no more arrivals for this process. A float share f is
    Share(fraction=f): evenly spaced arrival j at A(t) = j / f. `process` spaces the arrivals
    (default Uniform()).
    """
    if not isinstance(share, Share):
        share = Share(fraction=share)
    return (process or Uniform()).time_of(schedule, share, hits) - elapsed


# ------------------------------------------------------------------ dropped arrivals


@dataclass(frozen=True)
class ArrivalCounts:
    """Arrivals the pacer scheduled, how many a free user started, and how many were dropped."""

    scheduled: int = 0
    started: int = 0
    dropped: int = 0

    @property
    def dropped_share(self) -> float:
        """Dropped as a fraction of scheduled (0.0 when nothing was scheduled)."""
        return self.dropped / self.scheduled if self.scheduled else 0.0

    def add(self, started: bool) -> ArrivalCounts:
        return ArrivalCounts(
            self.scheduled + 1, self.started + (1 if started else 0), self.dropped + (0 if started else 1)
        )


# The validity rule: a run that dropped more than 1% of its arrivals did not offer its load.
MAX_DROPPED_SHARE = 0.01


class ArrivalLedger:
    """Counts scheduled / started / dropped arrivals per stage and per second of intended time.

    The runtime calls `record(t_intended, stage, started)` once per arrival the pacer produced:
    started=True when an idle user took it, False when none was free (dropped). Seconds are
    floor(t_intended) of whatever clock the caller uses (epoch seconds in chatload).
    """

    def __init__(self) -> None:
        self._by_stage: dict[str, ArrivalCounts] = {}
        self._by_second: dict[int, ArrivalCounts] = {}
        self._total = ArrivalCounts()

    def record(self, t_intended: float, stage: str, started: bool) -> None:
        second = math.floor(t_intended)
        self._by_stage[stage] = self._by_stage.get(stage, ArrivalCounts()).add(started)
        self._by_second[second] = self._by_second.get(second, ArrivalCounts()).add(started)
        self._total = self._total.add(started)

    def total(self) -> ArrivalCounts:
        return self._total

    def by_stage(self) -> dict[str, ArrivalCounts]:
        """Counts per stage name, in the order stages were first seen."""
        return dict(self._by_stage)

    def by_second(self) -> dict[int, ArrivalCounts]:
        """Counts per whole second of intended time, in ascending order."""
        return dict(sorted(self._by_second.items()))

    def invalid_reason(self, limit: float = MAX_DROPPED_SHARE) -> str | None:
        """Why the run is invalid under the dropped-arrivals rule, or None when it is valid."""
        total = self._total
        if total.dropped_share > limit:
            return (
                f"{total.dropped} of {total.scheduled} arrivals dropped ({total.dropped_share:.1%} > "
                f"{limit:.0%}): the load generator had no free user; raise `users` or lower the rate"
            )
        return None


def merge_counts(parts: Sequence[ArrivalCounts]) -> ArrivalCounts:
    """The sum of several processes' counts."""
    return ArrivalCounts(sum(p.scheduled for p in parts), sum(p.started for p in parts), sum(p.dropped for p in parts))
