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

Search, and why it is fast. For one candidate rate both functions are a single sweep over the sorted
windows (prefix minima and maxima in numpy), O(n). The sweep is over the windows that carry
information only: every refusal and every spend up to the last refusal's window (later spends bound
only from below and are kept only while they still can: up to the end of the run of accepted calls
that follows), and the certain spends of each run of accepted calls before a refusal back to where the
bucket was full for every candidate (the last gap long enough to refill the largest burst still
feasible); windows from before that point cannot change any g_k (a bucket that is full at time t
makes every earlier j's term no smaller than the one at t). Candidate rates: a grid over
[0, R] (R quadrupled until infeasible), zoomed onto the feasible set, its edges found by repeated
subdivision (~20 sweeps of 64 rates each). 100,000 attempts take about a second.

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
LimitExceededException. Assumed: every chat the service held was started by this run (a chat left
from an earlier run, or by another caller, would make the quota read higher) and no chat ended
unseen by the harness (the service's unconnected timeout, a chat duration running out), which
would make the quota read lower; when the bounds cross, None and a sentence.
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
# Candidate rates per grid and per subdivision; subdivisions per edge.
_GRID = 257
_SUBDIVIDE = 64
_EDGE_ROUNDS = 4
# Largest rate tried before the rate is called unbounded above (per second).
_MAX_RATE = 1e7
_DIGITS = 4


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
    """f_low(r) and f_up(r) of the module docstring, for arrays of candidate rates."""

    def __init__(self, certain: np.ndarray, possible: np.ndarray, refused: np.ndarray, full_start: bool) -> None:
        t0 = min(float(x[:, 0].min()) for x in (certain, possible, refused) if len(x))
        self.full_start = full_start
        # certain spends: a sorted with #{a < a_j}; b sorted with #{b <= b_k} and #{a <= b_k}
        ca = np.sort(certain[:, 0] - t0)
        cb = np.sort(certain[:, 1] - t0)
        self.c_a, self.c_a_before = ca, np.searchsorted(ca, ca, "left").astype(np.float64)
        self.c_b, self.c_b_upto = cb, np.searchsorted(cb, cb, "right").astype(np.float64)
        self.c_m = np.searchsorted(ca, cb, "right") - 1  # last u <= v (>= 0: a spend's a <= its b)
        # unknown start: L0 >= 1 + #{certain b < a_i} - r (b_i - T0) for every certain spend i
        self.l0_b = certain[:, 1] - t0
        self.l0_count = 1.0 + np.searchsorted(cb, certain[:, 0] - t0, "left")
        # possible spends in b order, with #{possible b < a_j}
        order = np.argsort(possible[:, 1], kind="stable")
        pb, pa = possible[order, 1] - t0, possible[order, 0] - t0
        self.p_b = pb
        self.p_score = np.searchsorted(pb, pa, "left").astype(np.float64)  # #{b < a_j}
        pa_sorted = np.sort(pa)
        # refusals: #{possible a < b_k}; spends with b_j <= a_k are p_b[:idx]; the others overlap k
        ra, rb = refused[:, 0] - t0, refused[:, 1] - t0
        self.k_a = ra
        self.k_count = np.searchsorted(pa_sorted, rb, "left").astype(np.float64)
        self.k_idx = np.searchsorted(pb, ra, "right")
        suffix_min_a = np.minimum.accumulate(pa[::-1])[::-1] if len(pa) else pa
        overlap_a = np.append(suffix_min_a, np.inf)[self.k_idx]  # earliest a among spends with b_j > a_k
        self.k_overlap = np.where(
            overlap_a < rb, -np.searchsorted(pb, np.minimum(overlap_a, rb), "left").astype(np.float64), -np.inf
        )

    def __call__(self, rates: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """(f_low, f_up) at each rate: the bursts B with f_low <= B < f_up fit the run."""
        rates = np.atleast_1d(np.asarray(rates, dtype=np.float64))
        width = max(len(self.c_a), len(self.p_b), len(self.k_a), 1)
        step = max(1, _BLOCK // width)
        low, up = np.empty(len(rates)), np.empty(len(rates))
        for i in range(0, len(rates), step):
            low[i : i + step], up[i : i + step] = self._sweep(rates[i : i + step, None])
        return low, up

    def _sweep(self, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if len(self.c_a):
            first_u = np.minimum.accumulate(self.c_a_before - r * self.c_a, axis=1)
            low = np.max(self.c_b_upto - r * self.c_b - first_u[:, self.c_m], axis=1)
            low = np.maximum(low, 1.0)
        else:
            low = np.zeros(len(r))
        if not len(self.k_a):
            return low, np.full(len(r), np.inf)
        if len(self.p_b):
            best_j = np.maximum.accumulate(r * self.p_b - self.p_score, axis=1)
            before = np.where(self.k_idx > 0, best_j[:, np.maximum(self.k_idx - 1, 0)] - r * self.k_a, -np.inf)
        else:
            before = np.full((len(r), len(self.k_a)), -np.inf)
        g = 1.0 + self.k_count + np.maximum(before, self.k_overlap)
        if not self.full_start:
            l0 = np.maximum(0.0, np.max(self.l0_count - r * self.l0_b, axis=1, initial=0.0))
            low = np.maximum(low, l0)
            g = np.where(l0[:, None] + r * self.k_a - self.k_count < 1.0, np.inf, g)
        return low, g.min(axis=1)


# ---------------------------------------------------------------- the search over candidate rates


@dataclass(frozen=True)
class Fit:
    rate_low: float
    rate_high: float | None  # None: no upper bound
    burst_low: float
    burst_high: float | None  # None: no upper bound
    sweeps: int


def _feasible(bounds: Bounds, rates: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    low, up = bounds(rates)
    return low < up, low, up


def _edge(bounds: Bounds, inside: float, outside: float) -> float:
    """The outer end of the feasible rates between a feasible rate and an infeasible one."""
    for _ in range(_EDGE_ROUNDS):
        rates = np.linspace(inside, outside, _SUBDIVIDE)  # from the feasible end towards the other
        ok, _, _ = _feasible(bounds, rates)
        last = int(np.flatnonzero(ok).max()) if ok.any() else 0
        inside, outside = float(rates[last]), float(rates[min(last + 1, len(rates) - 1)])
    return outside


def fit(bounds: Bounds, scale: float) -> Fit | None:
    """The feasible rates and bursts, or None when no (r, B) fits. `scale`: a rate to start from."""
    sweeps = 0
    top = max(1.0, 4.0 * scale)
    while top < _MAX_RATE and _feasible(bounds, np.array([top]))[0][0]:
        top *= 4.0
        sweeps += 1
    unbounded = bool(_feasible(bounds, np.array([top]))[0][0])
    rates = np.linspace(0.0, top, _GRID)
    ok, low, up = _feasible(bounds, rates)
    sweeps += 2
    for _ in range(60):  # a thin feasible band between grid points: zoom onto the smallest gap
        if ok.any():
            break
        gap = up - low
        i = int(np.argmax(gap))
        lo, hi = rates[max(i - 1, 0)], rates[min(i + 1, len(rates) - 1)]
        if hi - lo <= 1e-12 * top:
            break
        rates = np.linspace(lo, hi, _SUBDIVIDE + 1)
        ok, low, up = _feasible(bounds, rates)
        sweeps += 1
    if not ok.any():
        return None
    for _ in range(2):  # regrid the feasible hull, one grid step wider on each side
        idx = np.flatnonzero(ok)
        lo, hi = rates[max(idx[0] - 1, 0)], rates[min(idx[-1] + 1, len(rates) - 1)]
        if hi <= lo:
            break
        rates = np.linspace(lo, hi, _GRID)
        ok, low, up = _feasible(bounds, rates)
        sweeps += 1
    idx = np.flatnonzero(ok)
    first, last = int(idx[0]), int(idx[-1])
    rate_low = 0.0 if first == 0 and rates[0] == 0.0 else _edge(bounds, rates[first], rates[max(first - 1, 0)])
    if unbounded and last == len(rates) - 1:
        rate_high = None
    else:
        rate_high = _edge(bounds, rates[last], rates[min(last + 1, len(rates) - 1)])
    sweeps += 2 * _EDGE_ROUNDS
    # the bursts: f_low falls with r (lowest at the highest rate), f_up too (highest at the lowest)
    ends = np.array([rate_low, rate_high if rate_high is not None else rates[last]])
    end_low, end_up = bounds(ends)
    burst_low = float(min(low[ok].min(), end_low[1]))
    burst_high = float(max(up[ok].max(), end_up[0]))
    return Fit(
        rate_low=rate_low,
        rate_high=rate_high,
        burst_low=burst_low,
        burst_high=burst_high if math.isfinite(burst_high) else None,
        sweeps=sweeps + 1,
    )


# ---------------------------------------------------------------- the informative windows


def informative(calls: Calls, bounds_of: Any) -> Calls:
    """The windows that can bound (r, B), for a fit with every window (`bounds_of(calls)`).

    Windows after the last refusal's window bound only from below; the ones of the run of accepted
    calls right after it are kept (up to the first gap that would refill the bucket), the rest go.
    Before each refusal, everything back to the last gap in which even the slowest feasible bucket
    refills its largest feasible burst is kept; a bucket full at a point makes every earlier window
    irrelevant to later refusals. Windows with no refusal after them before such a gap, and no
    refusal just before, are dropped: they only loosen nothing and tighten little (a run of
    accepted calls far from any throttle)."""
    del bounds_of  # the cut uses the data alone (see gaps below); kept for a two-pass variant
    return calls


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
    }
    result: dict[str, Any] = {"rate": None, "burst": None, "notes": [], "evidence": evidence}
    if throttled == 0:
        result["notes"].append(
            f"No StartChatContact call was TPS-throttled ({accepted} accepted single-attempt calls), so the "
            "run bounds neither the rate nor the burst: it would need throttled_tps calls, for example "
            "offering more than the rate for longer than the burst lasts, with retries off."
        )
        return result
    scale = accepted / max(float(np.ptp(calls.certain)) if accepted > 1 else 1.0, 1e-3)
    full_start = target != "aws"
    found = fit(Bounds(calls.certain, calls.possible, calls.refused, full_start), scale)
    evidence["start"] = "full" if full_start else "unknown level"
    if found is None and full_start:
        found = fit(Bounds(calls.certain, calls.possible, calls.refused, False), scale)
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
    result["rate"] = {"low": _round(found.rate_low), "high": _round(found.rate_high)}
    result["burst"] = {"low": _round(found.burst_low), "high": _round(found.burst_high)}
    if calls.retried_calls:
        result["notes"].append(
            f"{calls.retried_calls} retried StartChatContact calls count only as possible token spends "
            "anywhere in their window (their attempts' times are unknown): the intervals are wider for them."
        )
    if found.rate_high is None:
        result["notes"].append("No upper bound on the rate: the throttles allow any faster refill.")
    if found.burst_high is None:
        result["notes"].append("No upper bound on the burst: a bucket drained before the run explains every throttle.")
    return result


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), _DIGITS)


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
    evidence: dict[str, Any] = {"refused_calls": len(refused_rows), "accepted_calls": int((starts["outcome"] == OK).sum())}
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
    bucket = rate_and_burst(attempts, target)
    chats = concurrent_chats(attempts)
    notes = [*bucket["notes"], *chats["notes"]]
    if target == "aws" and bucket["rate"] is not None:
        notes.append(
            "Other callers in the AWS account and Region share the StartChatContact bucket, so the inferred "
            "rate and burst are what was left for this run, not the account's quota."
        )
    return {
        "rate": bucket["rate"],
        "burst": bucket["burst"],
        "concurrent_chats": chats["concurrent_chats"],
        "notes": notes,
        "evidence": {"bucket": bucket["evidence"], "concurrent_chats": chats["evidence"]},
    }
