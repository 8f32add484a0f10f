"""Quota inference: the StartChatContact token buckets (rate, burst) and the concurrent chats quotas
that a run's calls are consistent with (pure: attempts rows in, intervals out).

`inferred_quotas(attempts, target)` gives summary.json["findings"]["inferred_quotas"]:
{"rate": {"low", "high"} | None, "burst": {"low", "high"} | None, "concurrent_chats": {"low", "high"}
| None, "notes": [sentences], "evidence": {...}}. A key is None when the run holds no evidence for it
(no throttle of that kind) or when no quota fits the data; a note then says why.

Rate and burst
==============
The model (connect-facts.md, chatload.tokenbucket): a bucket of capacity B (the burst) refills at r
tokens per second; an HTTP attempt that reaches it takes a token when at least one is there, else it
is throttled (429 TooManyRequestsException, outcome throttled_tps) and takes nothing. The concurrent
chats check comes after the bucket, so a LimitExceededException (throttled_concurrency) spent a token
like an accepted call.

Timing. The service handles an attempt at an unknown server time s inside the call's window
[a, b] = [t_start, t_start + latency]: the request reaches it after the call starts and the answer
leaves it before the call returns. Every bound below holds for any server times inside the windows,
so it keeps every bucket the exact times would keep (it may keep a few more: a relaxation of at most
r x the window widths, about 0.05 tokens at 5/s and 5 ms calls).

Which calls count:
  certain spends   single-attempt (attempts = 1) ok and throttled_concurrency calls
  refusals         single-attempt throttled_tps calls
  possible spends  the certain spends, and every other attempt that may have reached the bucket:
                   single-attempt calls of any other outcome (client_error, server_error, timeout,
                   connection_error, throttled_unknown) and all `attempts` HTTP attempts of a retried
                   call, each anywhere inside its call's window
A retried call's intermediate attempts have unknown times and outcomes: retried calls bound nothing
themselves; they only count as possible spends, which can only widen the intervals. Dropped arrivals
are not attempts.

The level just before server time t (spends at s_j; N[x, t) = spends in [x, t); level L0 at T0, the
first window's start) is, by the min-plus form of an accumulator capped at B,
    L(t) = min( B,  L0 + r (t - T0) - N[T0, t),  min over spends j before t of B + r (t - s_j) - N[s_j, t) ).
Two families of linear constraints on (r, B) follow:
  lower  no interval [u, v] holds more spends than B + r (v - u). With u the window start of one
         certain spend and v the window end of another, at least #{a_i >= u} - #{b_i > v} certain
         spends lie inside, so
             B >= f_low(r) = max over u <= v of  #{a_i >= u} - #{b_i > v} - r (v - u).
  upper  a refusal k (window [a_k, b_k]) found less than one token, so some spend j (the last time the
         bucket was full) has B + r (s_k - s_j) - N[s_j, s_k) < 1. At most
         P_jk = #{possible spends with a_i < b_k} - #{with b_i < a_j} lie in [s_j, s_k), and
         s_k - s_j >= max(0, a_k - b_j), so
             B < g_k(r) = 1 + max over possible spends j of  P_jk - r max(0, a_k - b_j).
Every (r, B) with f_low(r) <= B < f_up(r) = min over refusals of g_k(r) fits the run. The rate interval
is where f_low < f_up; the burst interval is the B those rates allow (both functions fall as r grows:
the lowest burst goes with the highest rate and the other way round).

Start of the bucket. The emulator's bucket is full when the emulator starts (a fresh emulator per
run): with L0 = B the T0 term never lies below the term of the first spend, and drops out. A real
account's bucket may be partly drained when the run starts (by other callers, or by an earlier run):
for target "aws" L0 is unknown in [0, B]. The certain spends before a refusal still bound it from
below: L0 >= L0_min(r) = max(0, max over certain spends i of 1 + #{b_l < a_i} - r (b_i - T0)); a
refusal that so low a start explains (L0_min(r) + r (a_k - T0) - #{a_i < b_k} < 1, early in the run)
bounds nothing, and B >= L0_min(r). An emulator run that no full-start bucket fits (an emulator that
served an earlier run just before) is fitted again that way, with a note.

Search. f_low and f_up both fall (never rise) as r grows (with an unknown start, f_up over a cell
[r1, r2] is bounded by the refusals no rate of the cell lets the start explain), so on a cell of
candidate rates every r has f_low(r) >= f_low(r2) and f_up(r) <= f_up(r1): a cell with
f_low(r2) >= f_up(r1) holds no fitting rate and goes (branch and bound, `_Search`). A grid of 64
cells over [0, R] (R quadrupled until no rate above it fits) is cut down, 16 sub-cells at a time,
at the lowest and highest kept rates and where the burst bounds are reached, to 1e-5 of R. The kept
cells always hold every fitting (r, B): the intervals are outer bounds, never a guess.

Speed: for one candidate rate both functions are a single sweep over the sorted windows (prefix
minima and maxima in numpy), O(n), and ~10 sweeps of 16 to 64 rates do. The sweeps after the first
coarse ones run over the windows that carry information only (`informative`): once the lowest
fitting rate r_min is known to 1e-3, the points where a bucket of any rate >= r_min is surely full
are found in one pass (a bucket full at f makes every spend before f irrelevant to later refusals);
each refusal keeps the windows since the last such point before it (the run of accepted calls that
drained the bucket, and the throttles), and stretches without a refusal go (they could only add
lower bounds). 100,000 attempts take about 0.4 s (tests/analysis/test_inference.py times it).

A run that no bucket fits at all (a bucket shared with other callers that spent tokens unseen, a
quota changed during the run, skewed clocks between processes) gives None and says so.

Concurrent chats
================
The service holds a slot for a chat from somewhere inside its ok StartChatContact call until
somewhere inside its first ok ending call (DisconnectParticipant or StopContact). The harness counts
a chat active from the start call's return to the end call's send (chats.py): H(t), never more than
the service held. Chats whose start or end call was in flight at t may be held too: U(t) counts each
chat from its start call's send to its end call's return. So the service's count A(t) lies in
[H(t), U(t)].
  upper  a LimitExceededException (a single-attempt throttled_concurrency call, or a retried call whose
         first or last attempt was one) at server time s in [a, b] found A(s) >= quota:
             quota <= max over t in [a, b] of U(t)
  lower  an accepted start at s in [a, b) found A(s) < quota: quota >= min over t in [a, b) of H(t) + 1
The interval is [max lower, min upper]; the report also gives H and U at the first and the last
LimitExceededException. Assumed: every chat the service held was started by this run (chats left
from an earlier run or held by other callers make the quota read lower: what was left for the run)
and no chat ended unseen by the harness (the service's unconnected timeout, a chat duration running
out), which would make it read higher; when the bounds cross, None and a sentence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from chatload.contracts import DROPPED, ENDING_OPERATIONS, OK, START_CHAT, THROTTLED_CONCURRENCY, THROTTLED_TPS

# Elements per numpy block when many candidate rates are swept at once (memory ~ 8 bytes each).
_BLOCK = 2_000_000
# Edges of the first grid of candidate rates, and sub-cells per cut.
_GRID = 65
_SUBDIVIDE = 16
# Rate cells are cut down to this fraction of their rate (of 1/s below 1/s): the lowest rate first to
# the coarser one, before the informative windows are chosen. At most this many sweeps in all.
_TOLERANCE = 1e-5
_COARSE_TOLERANCE = 1e-3
_MAX_SWEEPS = 400
# Largest rate tried before the rate is called unbounded above (per second); "infinity" in sweeps.
_MAX_RATE = 1e7
_HUGE_RATE = 1e12
_DIGITS = 4
SHARED_BUCKET = (
    "Other callers in the AWS account and Region share the StartChatContact bucket, so the inferred rate "
    "and burst are what was left for this run, not the account's quota."
)
SHARED_INSTANCE = (
    "Chats of other callers on the instance hold concurrency slots too, so the inferred concurrent chats "
    "are what was left for this run."
)


# ---------------------------------------------------------------- the calls as windows


@dataclass(frozen=True)
class Calls:
    """StartChatContact HTTP attempts as windows (epoch seconds): what the bucket saw."""

    certain: np.ndarray  # (n, 2) a, b of certain spends
    possible: np.ndarray  # (m, 2) a, b of possible spends (certain ones included; multiplicity)
    refused: np.ndarray  # (k, 2) a, b of refusals
    retried_calls: int
    other_attempts: int  # possible spends that are not certain (other outcomes, retried attempts)


def _windows(rows: pd.DataFrame) -> np.ndarray:
    a = rows["t_start"].to_numpy(dtype=np.float64)
    return np.column_stack([a, a + rows["latency_ms"].to_numpy(dtype=np.float64) / 1000.0])


def start_calls(attempts: pd.DataFrame) -> Calls:
    """The StartChatContact calls sorted into certain spends, possible spends and refusals."""
    calls = attempts.loc[
        (attempts["operation"] == START_CHAT) & (attempts["outcome"] != DROPPED),
        ["t_start", "latency_ms", "outcome", "attempts"],
    ]
    calls = calls[calls["t_start"].notna()]
    widest = float(calls["latency_ms"].max()) if calls["latency_ms"].notna().any() else 0.0
    timed = calls["latency_ms"].notna()
    calls = calls.assign(latency_ms=calls["latency_ms"].fillna(widest))
    tries = calls["attempts"].fillna(1).astype("int64").clip(lower=1).to_numpy()
    single = (tries == 1) & timed.to_numpy()
    outcome = calls["outcome"].astype("string").to_numpy()
    spent = single & np.isin(outcome, [OK, THROTTLED_CONCURRENCY])
    refused = single & (outcome == THROTTLED_TPS)
    others = ~spent & ~refused
    windows = _windows(calls)
    possible = np.concatenate([windows[spent], np.repeat(windows[others], tries[others], axis=0)])
    return Calls(
        certain=windows[spent],
        possible=possible,
        refused=windows[refused],
        retried_calls=int((tries > 1).sum()),
        other_attempts=int(tries[others].sum()),
    )


# ---------------------------------------------------------------- the two bound functions


class Bounds:
    """f_low and f_up of the module docstring over cells of candidate rates [r1, r2].

    Both fall (never rise) as r grows, so for every r in a cell f_low(r) >= f_low(r2) and
    f_up(r) <= f_up(r1): `cells(r1, r2)` gives those two bounds (at r1 = r2, the values at r).
    With an unknown starting level a refusal counts in f_up over the cell only if no rate of the
    cell lets the start explain it: L0_min falls with r and r (a_k - T0) rises, so
    L0_min(r2) + r1 (a_k - T0) - #{a_i < b_k} >= 1 says so for the whole cell."""

    def __init__(self, certain: np.ndarray, possible: np.ndarray, refused: np.ndarray, full_start: bool) -> None:
        t0 = min(float(x[:, 0].min()) for x in (certain, possible, refused) if len(x))
        self.full_start = full_start
        self.floor = 1.0 if len(certain) else 0.0  # f_low never reads less: a spend needs a token
        # certain spends: a sorted with #{a < a_j}; b sorted with #{b <= b_k}; the last a <= each b
        ca = np.sort(certain[:, 0] - t0)
        cb = np.sort(certain[:, 1] - t0)
        self.c_a, self.c_a_before = ca, np.searchsorted(ca, ca, "left").astype(np.float64)
        self.c_b, self.c_b_upto = cb, np.searchsorted(cb, cb, "right").astype(np.float64)
        self.c_m = np.searchsorted(ca, cb, "right") - 1  # >= 0: a spend's a <= its b
        # unknown start: L0 >= 1 + #{certain b < a_i} - r (b_i - T0) for every certain spend i
        self.l0_b = certain[:, 1] - t0
        self.l0_count = 1.0 + np.searchsorted(cb, certain[:, 0] - t0, "left")
        # possible spends in b order, with #{possible b < a_j}
        order = np.argsort(possible[:, 1], kind="stable")
        pb, pa = possible[order, 1] - t0, possible[order, 0] - t0
        self.p_b = pb
        self.p_score = np.searchsorted(pb, pa, "left").astype(np.float64)
        # refusals: #{possible a < b_k}; the spends with b_j <= a_k are p_b[:k_idx], the others overlap k
        ra, rb = refused[:, 0] - t0, refused[:, 1] - t0
        self.k_a = ra
        self.k_count = np.searchsorted(np.sort(pa), rb, "left").astype(np.float64)
        self.k_idx = np.searchsorted(pb, ra, "right")
        suffix_min_a = np.minimum.accumulate(pa[::-1])[::-1] if len(pa) else pa
        overlap_a = np.append(suffix_min_a, np.inf)[self.k_idx]  # earliest a of a spend with b_j > a_k
        self.k_overlap = np.where(
            overlap_a < rb, -np.searchsorted(pb, np.minimum(overlap_a, rb), "left").astype(np.float64), -np.inf
        )

    def cells(self, r1: np.ndarray, r2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(f_low(r2), a bound >= f_up(r) for every r in [r1, r2]) for each cell; r2 may be inf."""
        r1 = np.asarray(r1, dtype=np.float64)
        r2 = np.minimum(np.asarray(r2, dtype=np.float64), _HUGE_RATE)
        width = max(len(self.c_a), len(self.p_b), len(self.k_a), 1)
        step = max(1, _BLOCK // width)
        low, up = np.empty(len(r1)), np.empty(len(r1))
        for i in range(0, len(r1), step):
            part = slice(i, i + step)
            low[part], l0 = self._low(r2[part, None])
            up[part] = self._up(r1[part, None], l0)
        return low, up

    def __call__(self, rates: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """(f_low, f_up) at each rate: the bursts B with f_low <= B < f_up fit the run."""
        rates = np.atleast_1d(np.asarray(rates, dtype=np.float64))
        return self.cells(rates, rates)

    def _low(self, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """f_low at each rate of the column r, and L0_min (zeros for a full start)."""
        low = np.full(len(r), self.floor)
        if len(self.c_a):
            first_u = np.minimum.accumulate(self.c_a_before - r * self.c_a, axis=1)
            low = np.maximum(low, np.max(self.c_b_upto - r * self.c_b - first_u[:, self.c_m], axis=1))
        l0 = np.zeros(len(r))
        if not self.full_start and len(self.l0_b):
            l0 = np.maximum(0.0, np.max(self.l0_count - r * self.l0_b, axis=1))
        return np.maximum(low, l0), l0

    def _up(self, r: np.ndarray, l0: np.ndarray) -> np.ndarray:
        """min over refusals of g_k at each rate of the column r; with an unknown start, refusals a
        start level as low as l0 (one per rate) explains bound nothing."""
        if not len(self.k_a):
            return np.full(len(r), np.inf)
        if len(self.p_b):
            best_j = np.maximum.accumulate(r * self.p_b - self.p_score, axis=1)
            before = np.where(self.k_idx > 0, best_j[:, np.maximum(self.k_idx - 1, 0)] - r * self.k_a, -np.inf)
        else:
            before = np.full((len(r), len(self.k_a)), -np.inf)
        g = 1.0 + self.k_count + np.maximum(before, self.k_overlap)
        if not self.full_start:
            g = np.where(l0[:, None] + r * self.k_a - self.k_count < 1.0, np.inf, g)
        return g.min(axis=1)


# ---------------------------------------------------------------- the search over candidate rates


@dataclass(frozen=True)
class Fit:
    rate_low: float
    rate_high: float | None  # None: no upper bound
    burst_low: float
    burst_high: float | None  # None: no upper bound
    sweeps: int


Cell = tuple[float, float, float, float]  # r1, r2, f_low(r2), a bound on f_up over [r1, r2]


class _Search:
    """Branch and bound over candidate rates: a cell [r1, r2] whose f_low(r2) is not below its bound
    on f_up holds no feasible rate and goes. The kept cells always hold every feasible (r, B), B
    between the cell's two bounds; cutting a cell into smaller ones tightens both."""

    def __init__(self, bounds: Bounds, sweeps: int = 0) -> None:
        self.bounds = bounds
        self.sweeps = sweeps

    def cells(self, edges: np.ndarray) -> list[Cell]:
        """The kept cells between consecutive edges."""
        self.sweeps += 1
        low, up = self.bounds.cells(edges[:-1], edges[1:])
        return [(edges[i], edges[i + 1], low[i], up[i]) for i in np.flatnonzero(low < up)]

    def split(self, cell: Cell) -> list[Cell]:
        left, right = cell[0], cell[1]
        if math.isfinite(right):
            return self.cells(np.linspace(left, right, _SUBDIVIDE + 1))
        # [left, inf): [left, 4 left] in pieces, then [4 left, inf)
        return self.cells(np.append(np.linspace(left, 4 * left, _SUBDIVIDE + 1), math.inf))

    def refine(self, cells: list[Cell], pick: Any, tolerance: float) -> list[Cell]:
        """Cut the cell `pick(cells)` (an index) until it is narrower than `tolerance` x its upper
        end (at least 1/s), or the sweep budget is spent: the cells are then still a sound, wider
        answer."""
        while cells and self.sweeps < _MAX_SWEEPS:
            i = pick(cells)
            left, right = cells[i][:2]
            if right - left <= tolerance * max(right, 1.0) or left >= _MAX_RATE:  # narrow, or [R, inf)
                break
            cells = cells[:i] + self.split(cells[i]) + cells[i + 1 :]
        return cells


def _grid(search: _Search, scale: float) -> list[Cell]:
    """The kept cells of a coarse grid over every rate (R quadrupled until no rate above it fits)."""
    top = max(1.0, 4.0 * scale)
    while top < _MAX_RATE and search.cells(np.array([top, math.inf])):
        top *= 4.0
    return search.cells(np.append(np.linspace(0.0, top, _GRID), math.inf))


def _recheck(search: _Search, cells: list[Cell]) -> list[Cell]:
    """The cells again under `search`'s bounds, each keeping the tighter of its old and new bounds."""
    search.sweeps += 1
    low, up = search.bounds.cells(np.array([c[0] for c in cells]), np.array([c[1] for c in cells]))
    merged = [(c[0], c[1], max(c[2], lo), min(c[3], hi)) for c, lo, hi in zip(cells, low, up, strict=True)]
    return [c for c in merged if c[2] < c[3]]


def _refine(search: _Search, cells: list[Cell]) -> Fit | None:
    """The rates and bursts the cells leave, once the outermost cells (the rate interval) and the
    cells with the lowest f_low and the highest f_up (the burst interval) are cut down to the
    tolerance. For a full start the last two are the outermost cells too (both bounds fall as r
    grows); with an unknown start f_up need not."""
    cells = search.refine(cells, lambda cs: 0, _TOLERANCE)
    cells = search.refine(cells, lambda cs: len(cs) - 1, _TOLERANCE)
    cells = search.refine(cells, lambda cs: int(np.argmax([c[3] for c in cs])), _TOLERANCE)
    cells = search.refine(cells, lambda cs: int(np.argmin([c[2] for c in cs])), _TOLERANCE)
    if not cells:
        return None
    burst_low = min(cell[2] for cell in cells)
    burst_high = max(cell[3] for cell in cells)
    return Fit(
        rate_low=float(cells[0][0]),
        rate_high=float(cells[-1][1]) if math.isfinite(cells[-1][1]) else None,
        burst_low=float(burst_low),
        burst_high=float(burst_high) if math.isfinite(burst_high) else None,
        sweeps=search.sweeps,
    )


def fit(calls: Calls, full_start: bool) -> tuple[Fit | None, int]:
    """The rates and bursts that fit the calls (None when none does), and how many windows the
    refinement swept (the informative ones, see `informative`)."""
    search = _Search(Bounds(calls.certain, calls.possible, calls.refused, full_start))
    span = float(np.ptp(calls.certain)) if len(calls.certain) > 1 else 1.0
    cells = _grid(search, len(calls.certain) / max(span, 1e-3))
    # the lowest feasible rate to a few digits first: the higher it is, the more of the run is
    # surely a full bucket, and the fewer windows the remaining sweeps need
    cells = search.refine(cells, lambda cs: 0, _COARSE_TOLERANCE)
    if not cells:
        return None, 0
    kept, kept_full = informative(calls, cells[0][0], max(c[3] for c in cells), full_start)
    if kept is not calls:
        search = _Search(Bounds(kept.certain, kept.possible, kept.refused, kept_full), search.sweeps)
        cells = _recheck(search, cells)
    return _refine(search, cells) if cells else None, len(kept.possible) + len(kept.refused)


# ---------------------------------------------------------------- the informative windows


def full_points(calls: Calls, rate: float, burst: float, full_start: bool) -> np.ndarray:
    """Times at which the bucket is surely full for every rate >= `rate` and burst <= `burst`.

    At t the bucket is full when no spend j before t left a backlog: N[s_j, t) <= r (t - s_j) for
    every j (and, for a full start, since T0). With at most #{possible a < t} - #{possible b < a_j}
    spends in [s_j, t) and t - s_j >= t - b_j, that holds when
        Q(t) = #{a < t} - r t + max(0, max over j with a_j < t of r b_j - #{b < a_j}) <= 0,
    which only gets easier as r grows. An unknown start also needs the start's term at least B:
    r (t - T0) - #{a < t} >= burst. Candidate times: every window's start."""
    if rate <= 0 or (not full_start and not math.isfinite(burst)):
        return np.empty(0)
    t0 = min(float(x[:, 0].min()) for x in (calls.certain, calls.possible, calls.refused) if len(x))
    pa, pb = calls.possible[:, 0] - t0, calls.possible[:, 1] - t0
    order = np.argsort(pa, kind="stable")
    score = rate * pb[order] - np.searchsorted(np.sort(pb), pa[order], "left")
    best = np.maximum(0.0, np.maximum.accumulate(score)) if len(score) else score
    times = np.unique(np.concatenate([pa, calls.refused[:, 0] - t0]))
    before = np.searchsorted(pa[order], times, "left")  # spends with a < t
    backlog = before - rate * times + np.where(before > 0, best[np.maximum(before - 1, 0)], 0.0)
    full = backlog <= 0.0
    if not full_start:
        full &= rate * times - before >= burst
    return times[full] + t0


def informative(calls: Calls, rate: float, burst: float, full_start: bool) -> tuple[Calls, bool]:
    """The windows that can still bound a bucket of rate >= `rate` and burst <= `burst` (every one
    that fits the run: the coarse grid's bounds), and whether the bucket is surely full before the
    first of them.

    A bucket full at time f makes every spend before f irrelevant to the refusals after it (its term
    is never below the one of the first spend after f). So each refusal needs only the windows since
    the last point before it where the bucket was surely full: the run of accepted calls that drained
    it, and the refusals themselves. Windows of stretches without a refusal, and after a stretch's
    last refusal, could only add lower bounds (dropping them is sound) and go. `calls` itself when
    nothing goes."""
    points = full_points(calls, rate, burst, full_start)
    if not len(points) or not len(calls.refused):
        return calls, full_start
    refused = calls.refused[np.argsort(calls.refused[:, 0], kind="stable")]
    at = np.searchsorted(points, refused[:, 0], "right") - 1  # the last full point at or before each a_k
    starts = np.where(at >= 0, points[np.maximum(at, 0)], -np.inf)
    group_start, first = np.unique(starts, return_index=True)
    last = np.append(first[1:], len(refused)) - 1
    group_end = np.maximum.accumulate(refused[:, 1])[last]  # the latest b_k of each stretch

    def inside(windows: np.ndarray, whole: bool) -> np.ndarray:
        # stretch g is [group_start[g], group_end[g]]: certain spends wholly inside it (a subset
        # bounds soundly); possible spends that may fall inside it (every one must count)
        g = np.searchsorted(group_start, windows[:, 0] if whole else windows[:, 1], "right") - 1
        end = group_end[np.maximum(g, 0)]
        return (g >= 0) & ((windows[:, 1] <= end) if whole else (windows[:, 0] < end))

    kept = Calls(
        certain=calls.certain[inside(calls.certain, True)],
        possible=calls.possible[inside(calls.possible, False)],
        refused=calls.refused,
        retried_calls=calls.retried_calls,
        other_attempts=calls.other_attempts,
    )
    if len(kept.possible) + len(kept.certain) == len(calls.possible) + len(calls.certain):
        return calls, full_start
    return kept, full_start or bool(np.isfinite(group_start[0]))


# ---------------------------------------------------------------- rate and burst


def rate_and_burst(attempts: pd.DataFrame, target: str) -> dict[str, Any]:
    """{"rate", "burst", "notes", "evidence"} for StartChatContact (module docstring)."""
    calls = start_calls(attempts)
    accepted, throttled = len(calls.certain), len(calls.refused)
    evidence = {
        "accepted_attempts": accepted,
        "throttled_attempts": throttled,
        "retried_calls": calls.retried_calls,
        "other_attempts": calls.other_attempts,
        "start": None,
        "rate_sweeps": 0,
        "windows_swept": 0,
    }
    result: dict[str, Any] = {"rate": None, "burst": None, "notes": [], "evidence": evidence}
    if throttled == 0:
        result["notes"].append(
            f"No StartChatContact call was TPS-throttled ({accepted} single-attempt calls took a token), so "
            "the run bounds neither the rate nor the burst: it would need throttled_tps calls, for example "
            "offering more than the rate for longer than the burst lasts, with retries off."
        )
        return result
    full_start = target != "aws"
    found, evidence["windows_swept"] = fit(calls, full_start)
    evidence["start"] = "full" if full_start else "unknown level"
    if found is None and full_start:
        found, evidence["windows_swept"] = fit(calls, False)
        if found is not None:
            evidence["start"] = "unknown level"
            result["notes"].append(
                "No bucket that was full at the first call fits the run (the emulator served calls just "
                "before it?): the intervals assume nothing about the bucket's level at the start."
            )
    if found is None:
        result["notes"].append(
            f"No token bucket fits the StartChatContact calls ({accepted} accepted, {throttled} throttled): "
            "some throttled call came when every bucket that let the accepted ones through still had a "
            "token. Likely causes: other callers spending the same account's tokens, a quota changed "
            "during the run, or clocks that disagree between load processes."
        )
        return result
    evidence["rate_sweeps"] = found.sweeps
    result["rate"] = _interval(found.rate_low, found.rate_high)
    result["burst"] = _interval(found.burst_low, found.burst_high)
    if calls.retried_calls:
        result["notes"].append(
            f"{_calls_text(calls.retried_calls, 'retried StartChatContact call')} only as possible token "
            "spends anywhere in their window (their attempts' times are unknown): the intervals are wider for them."
        )
    if found.rate_high is None:
        result["notes"].append("No upper bound on the rate: the throttles allow any faster refill.")
    if found.burst_high is None:
        result["notes"].append("No upper bound on the burst: a bucket drained before the run explains every throttle.")
    return result


def _calls_text(n: int, what: str) -> str:
    return f"{n} {what} counts" if n == 1 else f"{n} {what}s count"


def _interval(low: float, high: float | None) -> dict[str, float | None]:
    """{"low", "high"} rounded outwards (never narrower than what the search kept): 4 decimals,
    more below 1 so that small figures keep 4 significant digits."""

    def digits(x: float) -> int:
        return _DIGITS if abs(x) >= 1 or x == 0 else min(12, _DIGITS - math.floor(math.log10(abs(x))))

    def down(x: float) -> float:
        return math.floor(x * 10 ** digits(x)) / 10 ** digits(x)

    def up(x: float) -> float:
        return math.ceil(x * 10 ** digits(x)) / 10 ** digits(x)

    return {"low": down(float(low)), "high": None if high is None else up(float(high))}


# ---------------------------------------------------------------- concurrent chats


def _chat_windows(attempts: pd.DataFrame) -> pd.DataFrame:
    """One row per chat the harness started: a_s, b_s (its ok start call), a_e, b_e (its first ok
    ending call; NaN when never ended)."""
    rows = attempts.loc[(attempts["outcome"] == OK) & (attempts["chat_key"] >= 0)]
    latency = rows["latency_ms"].fillna(0.0) / 1000.0
    rows = rows.assign(t_end=rows["t_start"] + latency)[["operation", "t_start", "t_end", "chat_key"]]
    starts = (
        rows[rows["operation"] == START_CHAT]
        .sort_values("t_start", kind="stable")
        .drop_duplicates("chat_key")
        .rename(columns={"t_start": "a_s", "t_end": "b_s"})[["chat_key", "a_s", "b_s"]]
    )
    ends = rows[rows["operation"].isin(ENDING_OPERATIONS)].rename(columns={"t_start": "a_e", "t_end": "b_e"})
    first_end = (
        starts.merge(ends[["chat_key", "a_e", "b_e"]], on="chat_key", how="inner")
        .query("a_e >= b_s")
        .sort_values("a_e", kind="stable")
        .drop_duplicates("chat_key")[["chat_key", "a_e", "b_e"]]
    )
    return starts.merge(first_end, on="chat_key", how="left")


class _Steps:
    """A count that steps +1 at `ups` and -1 at `downs`; its extremes over windows of time."""

    def __init__(self, ups: np.ndarray, downs: np.ndarray, downs_first: bool) -> None:
        downs = downs[np.isfinite(downs)]
        times = np.concatenate([ups, downs])
        delta = np.concatenate([np.ones(len(ups)), -np.ones(len(downs))])
        # at equal times the order that errs on the safe side: ends first for a minimum, starts first for a maximum
        order = np.lexsort((delta if downs_first else -delta, times))
        self.times = times[order]
        self.levels = np.concatenate([[0.0], np.cumsum(delta[order])])  # levels[i]: after i events

    def _table(self, op: Any) -> list[np.ndarray]:
        table = [self.levels]
        while 2 ** len(table) <= len(self.levels):
            prev, half = table[-1], 2 ** (len(table) - 1)
            table.append(op(prev[:-half], prev[half:]))
        return table

    def extreme(self, lo: np.ndarray, hi: np.ndarray, op: Any) -> np.ndarray:
        """op (np.maximum / np.minimum) of levels[lo..hi] (inclusive) for each pair (sparse table)."""
        table = self._table(op)
        span = np.maximum(hi - lo + 1, 1)
        k = np.floor(np.log2(span)).astype(np.int64)
        out = np.empty(len(lo))
        for level in np.unique(k):
            sel = k == level
            row = table[level]
            out[sel] = op(row[lo[sel]], row[hi[sel] - 2**level + 1])
        return out

    def max_over(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Highest count at any time in [a, b]."""
        lo = np.searchsorted(self.times, a, "right")
        hi = np.searchsorted(self.times, b, "right")
        return self.extreme(lo, np.maximum(hi, lo), np.maximum)

    def min_over(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Lowest count at any time in [a, b)."""
        lo = np.searchsorted(self.times, a, "right")
        hi = np.searchsorted(self.times, b, "left")
        return self.extreme(lo, np.maximum(hi, lo), np.minimum)

    def at(self, t: np.ndarray) -> np.ndarray:
        return self.levels[np.searchsorted(self.times, t, "right")]


def concurrent_chats(attempts: pd.DataFrame) -> dict[str, Any]:
    """{"concurrent_chats", "notes", "evidence"} (module docstring)."""
    starts = attempts.loc[(attempts["operation"] == START_CHAT) & (attempts["outcome"] != DROPPED)]
    first = starts["first_outcome"] if "first_outcome" in starts else starts["outcome"]
    refused_rows = starts[
        (starts["outcome"] == THROTTLED_CONCURRENCY) | ((starts["attempts"] > 1) & (first == THROTTLED_CONCURRENCY))
    ]
    evidence: dict[str, Any] = {
        "refused_calls": len(refused_rows),
        "accepted_calls": int((starts["outcome"] == OK).sum()),
    }
    if refused_rows.empty:
        return {
            "concurrent_chats": None,
            "notes": [
                "No LimitExceededException: the run does not bound the concurrent chats quota; it would "
                "need more chats active at once than the quota (a higher rate or longer chats)."
            ],
            "evidence": evidence,
        }
    chats = _chat_windows(attempts)
    held = _Steps(chats["b_s"].to_numpy(), chats["a_e"].to_numpy(), downs_first=True)  # H: surely held
    maybe = _Steps(chats["a_s"].to_numpy(), chats["b_e"].to_numpy(), downs_first=False)  # U: maybe held
    refused = _windows(refused_rows.sort_values("t_start", kind="stable"))
    upper_each = maybe.max_over(refused[:, 0], refused[:, 1])
    ok_starts = _windows(starts[starts["outcome"] == OK])
    lower_each = held.min_over(ok_starts[:, 0], ok_starts[:, 1]) + 1.0 if len(ok_starts) else np.zeros(1)
    low, high = float(lower_each.max()), float(upper_each.min())
    at = refused[[0, -1], 0]
    counted, in_flight = held.at(at), maybe.at(at) - held.at(at)
    evidence.update(
        {
            "harness_active_at_first": int(counted[0]),
            "in_flight_at_first": int(in_flight[0]),
            "harness_active_at_last": int(counted[1]),
            "in_flight_at_last": int(in_flight[1]),
            "highest_accepted_at": int(low - 1),
            "lowest_refused_at": int(high),
        }
    )
    if low > high:
        return {
            "concurrent_chats": None,
            "notes": [
                f"No single concurrent chats quota fits the run: a start was accepted with {low - 1:.0f} chats "
                f"surely active, yet one was refused with at most {high:.0f}. Likely causes: a quota changed "
                "during the run, chats that ended without the harness seeing it (the service's unconnected "
                "timeout), or chats held by other callers."
            ],
            "evidence": evidence,
        }
    return {"concurrent_chats": {"low": low, "high": high}, "notes": [], "evidence": evidence}


# ---------------------------------------------------------------- both


def inferred_quotas(attempts: pd.DataFrame, target: str | None = None) -> dict[str, Any]:
    """summary.json["findings"]["inferred_quotas"] (module docstring). `target`: meta.json's target."""
    target = str(target or "emulator")
    return combine(rate_and_burst(attempts, target), concurrent_chats(attempts), target)


def combine(bucket: dict[str, Any], chats: dict[str, Any], target: str) -> dict[str, Any]:
    """The two parts as summary.json holds them: intervals, every note, and the evidence."""
    notes = [*bucket["notes"], *chats["notes"]]
    if target == "aws" and bucket["rate"] is not None:
        notes.append(SHARED_BUCKET)
    if target == "aws" and chats["concurrent_chats"] is not None:
        notes.append(SHARED_INSTANCE)
    return {
        "rate": bucket["rate"],
        "burst": bucket["burst"],
        "concurrent_chats": chats["concurrent_chats"],
        "notes": notes,
        "evidence": {"bucket": bucket["evidence"], "concurrent_chats": chats["evidence"]},
    }
