"""The planner's simulation core: arrivals, token buckets and the concurrency quota on numpy arrays.

Pure functions of arrays (no scenario files, no clock, no I/O); `chatload.analysis.plan` builds the
arrays from a scenario and turns the results into a plan. docs/plan.md explains the model.

Arrivals. The schedule's expected count A(t) is piecewise quadratic (harness/pacer.py has the
math); `ScheduleArrays.arrival_times(counts)` inverts it for a whole array of counts at once with
the pacer's own formula, u = 2m / (a + sqrt(a² + 4cm)). Uniform arrivals are the counts 1, 2, 3, ...;
Poisson arrivals are the running sums of Exp(1) draws (the time change the pacer uses).

Simulations in lockstep. One bucket is sequential in time, but N simulations are independent: the
core walks the event index s = 0, 1, 2, ... and updates arrays of shape (N, c), one row per
simulation and one column per candidate quota (the searches try c quotas at once). Each simulation
is a column of the event arrays, sorted by time and padded with +inf. Per step, for every
simulation at once:

    refill      tokens = min(burst, tokens + rate x (t_s - t_{s-1}))        (a full bucket at t = 0)
    releases    active -= slots whose chat ended at or before t_s           (timing wheel, below)
    take        ok_bucket = live and tokens >= 1;  tokens -= ok_bucket       (every attempt pays)
    quota       ok = ok_bucket and active < quota;  active += ok             (after the token: emulator order)
    schedule    wheel[release step of this event] += ok

The timing wheel is keyed by *event index*, not by time: when a chat is accepted at event s its end
time (accept time + chat life) is already known, and so is the first event at or after it
(`np.searchsorted` on the simulation's sorted event times, done once before the loop). So the wheel
is a ring of D rows, D = the longest chat life measured in events, and every step reads and clears
one row: exact (no time slots), O(1) per step. A chat that ends exactly when an attempt is made frees
its slot first.

Retries. With max_attempts A > 1 every call has A *potential* attempts whose times are known in
advance: attempt i + 1 comes rand(0, 1) x min(20, 2^(i-1)) s after attempt i (botocore's backoff; the
draws are an input, so tests inject them). All potential attempts are merged in time order; an
attempt is live only when its call's previous attempt was refused (a small per-call state array says
which attempt is next). Standard and adaptive modes also keep botocore's retry quota per simulation
(one client): 500 units, a retry takes 5, a success gives back 1 (5 after a retry).
"""

from __future__ import annotations

import heapq
import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from chatload.harness.pacer import EPS, Schedule
from chatload.harness.scenario.model import Stage, stage_rates
from chatload.tokenbucket import TokenBucket

# A token counts when at least 1 - TOKEN_EPS are left: float sums of refills (0.1 + 0.2 + ...) must not
# refuse an attempt that exact arithmetic accepts.
TOKEN_EPS = 1e-9
THRESHOLD = 1.0 - TOKEN_EPS
BACKOFF_CAP_S = 20.0  # botocore: at most 20 s between two attempts
RETRY_QUOTA = 500.0  # botocore standard mode: the retry quota of one client ...
RETRY_COST = 5.0  # ... a retry takes 5 units ...
NO_RETRY_REFUND = 1.0  # ... a success without retry gives 1 back (a retried success gives its 5 back)
DONE = 127  # per-call state: no attempt left
NOT_A_CALL = 126  # the state slot that markers and padding read: never live

# Final outcome codes of a call (one per StartChatContact call, after retries).
TPS, CONCURRENCY, OK, RETRYING = 0, 1, 2, 3


WORKERS = max(1, min(4, os.cpu_count() or 1))


def each(function: Callable[[int], Any], count: int) -> list[Any]:
    """[function(0), ..., function(count - 1)] on WORKERS threads: per-simulation work (draws, sorts,
    searches on arrays of 10^5 elements) runs in numpy without the GIL, so the cores share it. Each call
    must touch only its own simulation's data."""
    if WORKERS == 1 or count < 2:
        return [function(n) for n in range(count)]
    with ThreadPoolExecutor(WORKERS) as pool:
        return list(pool.map(function, range(count)))


# ---------------------------------------------------------------- arrivals


@dataclass(frozen=True)
class ScheduleArrays:
    """The segments of harness.pacer.Schedule as arrays, for vectorised arrival times."""

    start: np.ndarray  # T_i
    duration: np.ndarray  # d_i
    rate_from: np.ndarray  # a_i
    rate_to: np.ndarray  # b_i
    before: np.ndarray  # A(T_i)
    ends: np.ndarray  # T_i + d_i
    counts_at_end: np.ndarray  # A(T_i + d_i)
    total: float  # A(end)
    duration_s: float

    @classmethod
    def of(cls, stages: Sequence[Stage]) -> ScheduleArrays:
        """The same segments Schedule(stages) builds (it also validates the stages)."""
        Schedule(stages)  # raises ValueError on a bad stage
        pairs = stage_rates(tuple(stages))
        duration = np.array([s.duration_s for s in stages], dtype=float)
        rate_from = np.array([a for a, _ in pairs], dtype=float)
        rate_to = np.array([b for _, b in pairs], dtype=float)
        # running float sums in the pacer's order, so that totals agree with Schedule to the last bit
        ends, counts = [], []
        t = total = 0.0
        for d, a, b in zip(duration, rate_from, rate_to, strict=True):
            t += float(d)
            total += float((a + b) / 2 * d)
            ends.append(t)
            counts.append(total)
        start = np.array([0.0, *ends[:-1]])
        before = np.array([0.0, *counts[:-1]])
        return cls(
            start=start,
            duration=duration,
            rate_from=rate_from,
            rate_to=rate_to,
            before=before,
            ends=np.array(ends),
            counts_at_end=np.array(counts),
            total=total,
            duration_s=t,
        )

    def arrival_times(self, counts: np.ndarray) -> np.ndarray:
        """Times at which A(t) = counts (Schedule.arrival_time for every element, to the last bit): inf
        beyond the schedule's total, 0 for counts <= 0. Counts in ascending order take a faster path."""
        k = np.asarray(counts, dtype=float)
        if k.ndim == 1 and len(k) > 1 and bool(np.all(k[1:] >= k[:-1])):
            return self._times_sorted(k)
        index = np.minimum(np.searchsorted(self.counts_at_end, k - EPS, side="left"), len(self.ends) - 1)
        return self._times(
            k, self.start[index], self.duration[index], self.rate_from[index], self.rate_to[index], self.before[index]
        )

    def _times_sorted(self, k: np.ndarray) -> np.ndarray:
        # segment i takes the counts with bisect_left(counts_at_end, k - EPS) == i: a slice when k is sorted
        bounds = np.searchsorted(k - EPS, self.counts_at_end, side="right")
        bounds[-1] = len(k)
        out = np.empty(len(k))
        low = 0
        for i, high in enumerate(bounds):
            if high > low:
                part = slice(low, high)
                out[part] = self._times(
                    k[part], self.start[i], self.duration[i], self.rate_from[i], self.rate_to[i], self.before[i]
                )
                low = high
        return out

    def _times(self, k: np.ndarray, start: Any, d: Any, a: Any, b: Any, before: Any) -> np.ndarray:
        """Segment._time_of for counts k in the segment(s) given: u = 2m / (a + sqrt(a² + 4cm))."""
        if np.ndim(a) == 0 and a == b and a > 0:  # a flat stage: u = 2m / 2a = m / a, the same bits, faster
            m = np.minimum(k - before, a * d)
            t = start + np.where(m > 0, np.minimum(np.maximum(m / a, 0.0), d), 0.0)
            t = np.where(k > self.total + EPS, np.inf, t)
            return np.where(k <= 0, 0.0, t)
        c = (b - a) / (2 * d)
        m = np.minimum(k - before, (a + b) / 2 * d)
        root = np.sqrt(np.maximum(a * a + 4 * c * np.maximum(m, 0.0), 0.0))
        denominator = a + root
        with np.errstate(divide="ignore", invalid="ignore"):
            u = np.where(denominator > 0, np.minimum(np.maximum(2 * m / denominator, 0.0), d), d)
        t = start + np.where(m > 0, u, 0.0)
        t = np.where(k > self.total + EPS, np.inf, t)
        return np.where(k <= 0, 0.0, t)

    def stage_of(self, t: np.ndarray) -> np.ndarray:
        """Schedule.stage_at for every element: stage i owns (T_i, T_i + d_i], stage 0 also t <= 0."""
        return np.minimum(np.searchsorted(self.ends, t, side="left"), len(self.ends) - 1)

    def uniform(self) -> np.ndarray:
        """Evenly spaced arrivals: A^-1(1), A^-1(2), ... (the same in every simulation)."""
        n = math.floor(self.total + EPS)
        return self.arrival_times(np.arange(1, n + 1, dtype=float))

    def poisson(self, rng: np.random.Generator) -> np.ndarray:
        """One simulation's Poisson arrivals: A^-1(S_j) for the running sums S_j of Exp(1) draws."""
        total = self.total + EPS
        expected = int(total + 6 * math.sqrt(total) + 16)
        sums = np.cumsum(rng.standard_exponential(expected))
        while sums[-1] <= total:
            more = np.cumsum(rng.standard_exponential(expected)) + sums[-1]
            sums = np.concatenate([sums, more])
        return self.arrival_times(sums[: np.searchsorted(sums, total, side="right")])


# ---------------------------------------------------------------- events


@dataclass
class Events:
    """A batch of simulations' attempts in time order, one column per simulation.

    t (S, N): times, ascending per column, +inf padding. call (S, N): the call (0..K-1) each event is
    an attempt of, -1 for markers and padding. attempt (S, N): its attempt number (0 = first).
    release (S, N): the index of the event at or before which a slot taken at this event frees (the
    first event at or after accept time + the call's life; >= s + 1; S: after the last event).
    calls (N,): calls per simulation. ring: the longest chat life counted in events, + 1 (the timing
    wheel's length). attempts: potential attempts per call.
    """

    t: np.ndarray
    call: np.ndarray
    attempt: np.ndarray
    release: np.ndarray
    calls: np.ndarray
    ring: int = 1
    attempts: int = 1

    @property
    def steps(self) -> int:
        return self.t.shape[0]

    @property
    def sims(self) -> int:
        return self.t.shape[1]

    def wheel_slot(self) -> np.ndarray:
        """(S, N) int32: the row of the timing wheel each event's slot is released from (`ring`: never)."""
        release = self.release.T  # the rows build_events wrote: contiguous
        slot = np.remainder(release, self.ring)
        slot[release >= self.steps] = self.ring
        return slot.T


def attempt_times(arrivals: np.ndarray, backoff_draws: np.ndarray | None, attempts: int) -> np.ndarray:
    """(K, attempts) potential attempt times: the arrival, then botocore's backoff after each attempt,
    rand x min(20, 2^(i-1)) s after attempt i (i = 1, 2, ...); `backoff_draws` (K, attempts - 1) are the
    rands (None: the full backoff, rand = 1)."""
    arrivals = np.asarray(arrivals, dtype=float)
    if attempts <= 1:
        return arrivals[:, None]
    caps = np.minimum(BACKOFF_CAP_S, 2.0 ** np.arange(attempts - 1))
    draws = np.ones((len(arrivals), attempts - 1)) if backoff_draws is None else np.asarray(backoff_draws, float)
    waits = np.cumsum(draws * caps, axis=1)
    return arrivals[:, None] + np.concatenate([np.zeros((len(arrivals), 1)), waits], axis=1)


def _fill_row(
    rows: tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray],
    times: np.ndarray,
    life: np.ndarray | None,
    attempts: int,
    draws: np.ndarray | None,
    markers: np.ndarray,
) -> int:
    """Write one simulation's events into its rows (t, call, attempt, release); returns its ring need."""
    t_row, call_row, attempt_row, release_row = rows
    k = len(times)
    if attempts > 1:
        flat = attempt_times(times, draws, attempts).ravel()
        order = np.argsort(flat, kind="stable")
        t_calls = flat[order]
        call = order // attempts
        attempt = order % attempts
    else:
        t_calls = times
        call = np.arange(k)
        attempt = None
    size = len(t_calls) + len(markers)
    steps = len(t_row)
    if len(markers):  # markers go after calls at the same instant
        at = np.searchsorted(t_calls, markers, side="right") + np.arange(len(markers))
        keep = np.ones(size, dtype=bool)
        keep[at] = False
        t_row[:size][keep], t_row[at] = t_calls, markers
        call_row[:size][keep], call_row[at] = call, -1
        if attempt_row is not None:
            attempt_row[:size][keep], attempt_row[at] = attempt, 0
    else:
        t_row[:size], call_row[:size] = t_calls, call
        if attempt_row is not None:
            attempt_row[:size] = attempt
    t_row[size:], call_row[size:] = np.inf, -1
    release_row[:] = steps
    if life is None or k == 0:
        return 1
    calls = call_row[:size]
    if attempts == 1 and not len(markers):
        ends = times + np.asarray(life, dtype=float)  # event k is call k
    else:
        ends = t_row[:size] + np.where(calls >= 0, np.asarray(life, dtype=float)[np.maximum(calls, 0)], np.inf)
    order = np.argsort(ends)  # sorted keys make the search twice as fast
    release = np.empty(size, dtype=np.int64)
    release[order] = np.searchsorted(t_row[:size], ends[order], side="left")
    position = np.arange(size)
    release -= position  # events ahead (at least 1)
    np.maximum(release, 1, out=release)
    inside = release < size - position
    reach = int(release[inside].max()) + 1 if inside.any() else 1
    release += position
    np.copyto(release_row[:size], release, where=inside)
    return reach


def build_events(
    arrivals: Sequence[np.ndarray],
    lives: Sequence[np.ndarray] | None = None,
    *,
    attempts: int = 1,
    backoff_draws: Sequence[np.ndarray] | None = None,
    markers: np.ndarray | None = None,
) -> Events:
    """The event arrays of N simulations: simulation n calls at `arrivals[n]` (sorted); a call accepted
    holds a slot for `lives[n][k]` seconds from the accepted attempt (None: slots are not tracked); up to
    `attempts` attempts per call (`backoff_draws[n]`, shape (K, attempts - 1), the rands of the backoff);
    `markers`: times at which nothing is called (they split each simulation into segments, and
    run_calls reports the most slots held in each)."""
    sims = len(arrivals)
    attempts = max(1, attempts)
    markers = np.zeros(0) if markers is None else np.sort(np.asarray(markers, dtype=float))
    calls = np.array([len(a) for a in arrivals], dtype=np.int64)
    steps = int(calls.max()) * attempts + len(markers) if sims else 0
    # rows per simulation (N, S), filled one simulation at a time; the loop reads them as (S, N) views
    t = np.empty((sims, steps))
    call = np.empty((sims, steps), dtype=np.int32)
    attempt = np.zeros((sims, steps), dtype=np.int8)
    release = np.empty((sims, steps), dtype=np.int32)

    def fill(n: int) -> int:
        return _fill_row(
            (t[n], call[n], attempt[n] if attempts > 1 else None, release[n]),
            np.asarray(arrivals[n], dtype=float),
            None if lives is None else lives[n],
            attempts,
            None if backoff_draws is None else backoff_draws[n],
            markers,
        )

    ring = max(each(fill, sims), default=1)
    return Events(
        t=t.T,
        call=call.T,
        attempt=attempt.T,
        release=release.T,
        calls=calls,
        ring=min(ring, steps + 1),
        attempts=attempts,
    )


# ---------------------------------------------------------------- the lockstep core


@dataclass
class Outcomes:
    """What `run_calls` found: final outcomes counted per simulation and candidate, ok / tps /
    concurrency (N, c). With record=True (one candidate), per event (S, N): `passed` (the attempt got
    a token), `accepted` (it started a chat) and `final` (it was the last attempt of its call, not
    retried); they are transposed views of (N, S) rows, so `x.T[n]` is simulation n's own row. With
    the quota simulated, `peaks` (N, markers + 1): the most slots held at once in each segment of a
    simulation (the markers split it; a segment starts with the slots held at its marker)."""

    ok: np.ndarray
    tps: np.ndarray
    concurrency: np.ndarray
    passed: np.ndarray | None = None
    accepted: np.ndarray | None = None
    final: np.ndarray | None = None
    peaks: np.ndarray | None = None

    @property
    def code(self) -> np.ndarray:
        """(S, N) per event: TPS, CONCURRENCY or OK for the last attempt of a call; RETRYING for every
        other event (an attempt refused and retried, an attempt never made, a marker, padding)."""
        assert self.passed is not None and self.accepted is not None and self.final is not None
        code = self.passed.astype(np.int8) + self.accepted
        return np.where(self.final, code, np.int8(RETRYING)).astype(np.int8)


def _as_grid(value: float | np.ndarray, sims: int) -> np.ndarray:
    """A quota as (N, c): a scalar for all, (N,) one per simulation, (1, c) or (N, c) candidates."""
    array = np.asarray(value, dtype=float)
    if array.ndim == 0:
        return np.full((sims, 1), float(array))
    if array.ndim == 1:
        return array.reshape(sims, 1)
    return np.broadcast_to(array, (sims, array.shape[1]))


def _markers_by_step(events: Events) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """step -> (simulations with a marker at that step, the segment each marker opens (1, 2, ...))."""
    rows = (events.call.T < 0) & np.isfinite(events.t.T)
    sims, steps = np.nonzero(rows)  # by simulation, then step: the j-th marker of a simulation opens segment j
    if not len(sims):
        return {}
    firsts = np.searchsorted(sims, sims, side="left")
    segment = np.arange(len(sims)) - firsts + 1
    order = np.argsort(steps, kind="stable")
    steps, sims, segment = steps[order], sims[order], segment[order]
    bounds = np.flatnonzero(np.diff(steps)) + 1
    return {
        int(group_steps[0]): (group_sims, group_segment)
        for group_steps, group_sims, group_segment in zip(
            np.split(steps, bounds), np.split(sims, bounds), np.split(segment, bounds), strict=True
        )
    }


BLOCK = 2048  # steps whose per-step inputs are prepared at once (vectorised) before the loop walks them


def run_calls(
    events: Events,
    rate: float | np.ndarray,
    burst: float | np.ndarray,
    concurrency: float | np.ndarray | None = None,
    *,
    retry_quota: bool = False,
    refund_on_release: bool = False,
    record: bool = False,
) -> Outcomes:
    """Run one token bucket (and, with `concurrency`, the concurrent-chats quota) over `events`.

    rate, burst and concurrency are scalars, (N,) arrays or (N, c) arrays of candidates: column j of
    every simulation runs with quota j. An attempt is refused by the bucket when fewer than one token
    is left (TPS); otherwise it spends its token and, when the slots are all taken, is refused by the
    quota (CONCURRENCY). With events.attempts > 1 a refused attempt is retried at its next potential
    attempt (botocore's retry quota with `retry_quota`; `refund_on_release`: every chat end gives one
    unit back, the StopContact success of the same client). Counts are final outcomes per call.

    The loop walks the events one step at a time; what a step needs (the refill since the previous
    event, which simulations make an attempt, where an accepted chat's slot goes on the wheel) is
    prepared for BLOCK steps at once, so a step costs a dozen small numpy calls.
    """
    steps, sims = events.t.shape
    grids = [_as_grid(v, sims) for v in (rate, burst, concurrency) if v is not None]
    width = max(g.shape[1] for g in grids)
    shape = (sims, width)
    rate_g = np.ascontiguousarray(np.broadcast_to(grids[0], shape))
    burst_g = np.ascontiguousarray(np.broadcast_to(grids[1], shape))
    if record and width != 1:
        raise ValueError("record=True needs one candidate per simulation")
    attempts = events.attempts
    retries = attempts > 1
    lane = np.arange(width)
    tokens = burst_g.copy()
    okb = np.empty(shape, dtype=bool)
    n_okb = np.zeros(shape, dtype=np.int64)
    n_tps = np.zeros(shape, dtype=np.int64)
    n_conc = np.zeros(shape, dtype=np.int64)
    t_rows = events.t.T  # (N, S) rows as build_events wrote them

    quota = None
    peaks = None
    markers: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    if concurrency is not None:
        quota = np.ascontiguousarray(np.broadcast_to(np.floor(grids[2]), shape)).astype(np.int32)
        ok = np.empty(shape, dtype=bool)
        n_ok = np.zeros(shape, dtype=np.int64)
        ring = events.ring
        wheel = np.zeros((ring + 1) * sims * width, dtype=np.int32)  # row `ring`: chats still on at the end
        wheel_rows = wheel.reshape(ring + 1, sims, width)
        slot_rows = events.wheel_slot().T
        column = (np.arange(sims, dtype=np.intp) * width).reshape(1, sims, 1) + lane
        active = np.zeros(shape, dtype=np.int32)
        active_1 = active[:, 0]
        room = np.empty(shape, dtype=bool)
        if record:
            markers = _markers_by_step(events)
            segments = 1 + max((int(seg.max()) for _, seg in markers.values()), default=0)
            peaks = np.zeros((sims, segments), dtype=np.int64)
            peak_now = np.zeros(sims, dtype=np.int64)
            segment_now = np.zeros(sims, dtype=np.int64)
    else:
        ok, n_ok = okb, n_okb
    if record:
        passed_rows = np.zeros((sims, steps), dtype=bool)
        accepted_rows = passed_rows if quota is None else np.zeros((sims, steps), dtype=bool)
        final_rows = np.zeros((sims, steps), dtype=bool) if retries else None
        rec_passed = np.empty((BLOCK, sims, 1), dtype=bool)
        rec_accepted = rec_passed if quota is None else np.empty((BLOCK, sims, 1), dtype=bool)
        rec_final = np.empty((BLOCK, sims, 1), dtype=bool) if retries else None
    if retries:
        # per (call, simulation, candidate): the attempt that is next (DONE when none); markers and
        # padding read a tail of `width` entries that always holds NOT_A_CALL
        max_calls = int(events.calls.max()) if sims else 0
        state = np.zeros(max_calls * sims * width + width, dtype=np.int8)
        state[-width:] = NOT_A_CALL
        live = np.empty(shape, dtype=bool)
        more = np.empty(shape, dtype=bool)
        final = np.empty(shape, dtype=bool)
        units = np.full(shape, RETRY_QUOTA) if retry_quota else None
        refund = units is not None and refund_on_release and quota is not None
    previous = t_rows[:, :1].copy() if steps else None

    for b0 in range(0, steps, BLOCK):
        b1 = min(steps, b0 + BLOCK)
        # this block's per-step inputs, (steps, N, ...) and contiguous
        times = t_rows[:, b0:b1]
        with np.errstate(invalid="ignore"):  # inf - inf in the padding
            gaps = np.diff(times, axis=1, prepend=previous)
        previous = times[:, -1:].copy()
        gaps[~np.isfinite(gaps)] = 0.0  # padding (never an attempt)
        refill = gaps.T[:, :, None] * rate_g  # (steps, N, c)
        calls_blk = events.call.T[:, b0:b1]
        live_blk = np.ascontiguousarray((calls_blk >= 0).T)[:, :, None]
        if quota is not None:
            index_blk = slot_rows[:, b0:b1].T.astype(np.intp)[:, :, None] * (sims * width) + column
        if retries:
            attempt_blk = np.ascontiguousarray(events.attempt.T[:, b0:b1].T)[:, :, None]
            state_blk = (
                np.where(
                    calls_blk.T >= 0,
                    (calls_blk.T.astype(np.int64) * sims + np.arange(sims)) * width,
                    len(state) - width,
                )[:, :, None]
                + lane
            )
            can_retry = attempt_blk < attempts - 1
            give_back = np.where(attempt_blk > 0, RETRY_COST, NO_RETRY_REFUND)
        for i in range(b1 - b0):
            s = b0 + i
            np.add(tokens, refill[i], out=tokens)
            np.minimum(tokens, burst_g, out=tokens)
            if quota is not None:
                row = wheel_rows[s % ring]
                np.subtract(active, row, out=active)
                if retries and refund:
                    np.add(units, row, out=units)
                    np.minimum(units, RETRY_QUOTA, out=units)
                row.fill(0)
                if s in markers:
                    who, segment = markers[s]
                    peaks[who, segment_now[who]] = peak_now[who]
                    segment_now[who] = segment
                    peak_now[who] = active_1[who]
            if retries:
                index = state_blk[i]
                now = state[index]
                np.equal(now, attempt_blk[i], out=live)
            else:
                live = live_blk[i]
            np.greater_equal(tokens, THRESHOLD, out=okb)
            np.logical_and(okb, live, out=okb)
            np.subtract(tokens, okb, out=tokens)
            if quota is not None:
                np.less(active, quota, out=room)
                np.logical_and(room, okb, out=ok)
                np.add(active, ok, out=active)
                wheel[index_blk[i]] += ok
                if peaks is not None:
                    np.maximum(peak_now, active_1, out=peak_now)
            if retries:
                np.greater(live, ok, out=more)  # refused ...
                np.logical_and(more, can_retry[i], out=more)  # ... with an attempt left
                if units is not None:
                    np.logical_and(more, units >= RETRY_COST, out=more)
                    units -= RETRY_COST * more
                    units += ok * give_back[i]
                    np.minimum(units, RETRY_QUOTA, out=units)
                np.greater(live, more, out=final)
                state[index] = np.where(more, attempt_blk[i] + 1, np.where(live, DONE, now))
            if record:
                rec_passed[i] = okb
                if quota is not None:
                    rec_accepted[i] = ok
                if retries:
                    rec_final[i] = final
            elif retries:
                n_ok += ok
                n_tps += final & ~okb
                if quota is not None:
                    n_conc += final & okb & ~ok
            else:
                n_okb += okb
                if quota is not None:
                    n_ok += ok
        if record:
            passed_rows[:, b0:b1] = rec_passed[: b1 - b0, :, 0].T
            if quota is not None:
                accepted_rows[:, b0:b1] = rec_accepted[: b1 - b0, :, 0].T
            if retries:
                final_rows[:, b0:b1] = rec_final[: b1 - b0, :, 0].T
    if peaks is not None:
        everyone = np.arange(sims)
        peaks[everyone, segment_now] = np.maximum(peaks[everyone, segment_now], peak_now)
    if record:
        calls = events.call.T >= 0
        final_rows = calls if final_rows is None else final_rows
        ended = final_rows & calls
        return Outcomes(
            ok=(accepted_rows & ended).sum(axis=1).reshape(sims, 1),
            tps=(ended & ~passed_rows).sum(axis=1).reshape(sims, 1),
            concurrency=(ended & passed_rows & ~accepted_rows).sum(axis=1).reshape(sims, 1),
            passed=passed_rows.T,
            accepted=accepted_rows.T,
            final=final_rows.T,
            peaks=peaks,
        )
    if not retries:
        n_tps = events.calls.reshape(sims, 1) - n_okb
        n_conc = n_okb - n_ok if quota is not None else np.zeros(shape, dtype=np.int64)
    return Outcomes(ok=n_ok, tps=n_tps, concurrency=n_conc)


def bucket(times: np.ndarray, rate: float, burst: float) -> np.ndarray:
    """Accepted (True) or throttled, for one bucket of `rate` per second and `burst` over attempts at
    `times`: (K,) for one simulation, or (K, N) sorted per column with +inf padding."""
    t = np.asarray(times, dtype=float)
    t2 = t.reshape(len(t), -1)
    columns = [col[np.isfinite(col)] for col in t2.T]
    result = run_calls(build_events(columns), rate, burst, record=True)
    assert result.accepted is not None
    accepted = np.zeros(t2.shape, dtype=bool)
    accepted[: result.accepted.shape[0]] = result.accepted
    accepted &= np.isfinite(t2)
    return accepted[:, 0] if t.ndim == 1 else accepted


# ---------------------------------------------------------------- closed forms and bounds


def deficits(times: np.ndarray, rate: float) -> np.ndarray:
    """Token deficit before each attempt at `times` (one simulation, sorted) of a bucket of `rate` that
    accepts every attempt: Lindley's recursion Y_k = max(0, Y_{k-1} + 1 - rate x (t_k - t_{k-1})), Y_1 = 0,
    solved as Y_k = Z_k - min_{j <= k} Z_j with Z_k = (k - 1) - rate x (t_k - t_1): a running minimum, no
    loop. The burst does not enter (a full bucket has no deficit): with burst B an attempt is refused
    when its deficit exceeds B - 1."""
    t = np.asarray(times, dtype=float)
    if len(t) == 0:
        return np.zeros(0)
    z = np.arange(len(t), dtype=float)
    z -= rate * (t - t[0])
    return z - np.minimum.accumulate(z)


def deficit_peak(times: np.ndarray, rate: float) -> float:
    """The largest deficit of `deficits`: a bucket of `rate` refuses none of the attempts iff its burst
    - 1 is at least this (up to TOKEN_EPS)."""
    return float(np.max(deficits(times, rate))) if len(times) else 0.0


def unconstrained_active(times: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Slots held just before each chat starts (chats at `times`, sorted, each holding one until its end)
    when no quota refuses any; a chat that ends at or before another's start has freed its slot."""
    t = np.asarray(times, dtype=float)
    e = np.asarray(ends, dtype=float)
    ended = np.searchsorted(np.sort(e), t, side="right")
    return np.arange(len(t)) - ended + (e <= t)  # a chat of no life must not count its own end


def quota_bounds(values: np.ndarray, allowed: int) -> tuple[int, int]:
    """Bounds on the smallest whole quota Q that refuses at most `allowed` attempts, when an attempt
    is refused iff its own value (token deficit, or slots held) exceeds Q - 1 in the constrained system.

    With nothing refused the values are `values` (the unconstrained system); every refusal lowers the
    later values by at most one. So Q passes if at most `allowed` values exceed Q - 1 (upper bound
    hi), and Q fails if for every r <= allowed more than r values exceed Q - 1 + r (lower bound lo:
    with r refusals those attempts would all be refused). Returns (lo, hi): lo fails, hi passes.
    """
    v = np.sort(np.asarray(values, dtype=float))[::-1]
    if len(v) == 0 or allowed >= len(v):
        return 0, 1
    hi = max(1, math.ceil(v[allowed] + 1 - TOKEN_EPS))
    lo = math.ceil(float(np.min(v[: allowed + 1] - np.arange(allowed + 1))) + 1 - TOKEN_EPS) - 1
    return max(0, min(lo, hi - 1)), hi


def loss_refusals(times: np.ndarray, ends: np.ndarray, active: np.ndarray, quota: int, limit: float = math.inf) -> int:
    """Exact refusals of a concurrent-chats `quota` for chats at `times` (sorted) holding a slot until
    `ends`, from `active` = unconstrained_active(times, ends): a chat is refused iff the unconstrained
    count, less the refused chats that would still be on, reaches the quota. Only chats whose
    unconstrained count reaches the quota can be refused, so the loop visits those alone; it stops
    once `limit` refusals are reached."""
    t, e, a = (np.asarray(x) for x in (times, ends, active))
    candidates = np.flatnonzero(a >= quota)
    refused_ends: list[float] = []
    refused = 0
    for start, count, end in zip(t[candidates].tolist(), a[candidates].tolist(), e[candidates].tolist(), strict=True):
        while refused_ends and refused_ends[0] <= start:
            heapq.heappop(refused_ends)
        if count - len(refused_ends) >= quota:
            refused += 1
            if refused >= limit:
                break
            heapq.heappush(refused_ends, end)
    return refused


# ---------------------------------------------------------------- a plain loop (reference, benchmark)


def reference_calls(
    arrivals: Sequence[float], lives: Sequence[float] | None, rate: float, burst: float, concurrency: int | None
) -> list[int]:
    """The model of `run_calls` with retries off, as a plain loop over one simulation's arrivals: the
    reference bucket (chatload.tokenbucket.TokenBucket) and a heap of slot end times. TPS / CONCURRENCY
    / OK per arrival. (The reference bucket wants a whole token where the planner forgives
    TOKEN_EPS: they differ only on float knife edges.)"""
    tokens = TokenBucket.full(rate, burst, 0.0)
    ends: list[float] = []
    out = []
    for k, t in enumerate(arrivals):
        while ends and ends[0] <= t:
            heapq.heappop(ends)
        if not tokens.take(t):
            out.append(TPS)
        elif concurrency is not None and len(ends) >= concurrency:
            out.append(CONCURRENCY)
        else:
            out.append(OK)
            if concurrency is not None and lives is not None:
                heapq.heappush(ends, t + lives[k])
    return out
