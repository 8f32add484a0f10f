"""`chatload plan`: a scenario simulated offline, many times, against the quotas it would meet.

No network, no Locust: the arrivals are drawn as a run draws them (uniform, Poisson, or a replayed
day's stages), every StartChatContact attempt meets the account's token bucket (retries and their
backoff included), every accepted chat holds a concurrent-chats slot for its life (connect delay,
messages and a hold drawn from the scenario's distribution), and the chat's own calls meet their own
buckets. Repeated `runs` times with seeded generators, the plan gives per stage the offered and the
accepted rate, the TPS- and concurrency-throttled shares of StartChatContact calls (mean and 5–95%
interval), the peak active chats (p50, p95), and the smallest quotas that keep each throttle share
under `max_throttle` in 95% of the simulations.

`plan(scenario, ...)` returns the document `chatload plan --json` prints; `plan_for_meta(meta)` plans a
finished run from its meta.json (the report's "planned versus measured"); `format_plan(doc)` is the
text the command prints. The simulation itself is in plan_sim.py; docs/plan.md has the model.
"""

from __future__ import annotations

import ctypes
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chatload.analysis import plan_sim as sim
from chatload.contracts import (
    CREATE_CONNECTION,
    DEFAULT_CONCURRENT_CHATS,
    DEFAULT_CONNECT_RATES,
    DEFAULT_INSTANCE_ID,
    DEFAULT_PARTICIPANT_RATES,
    DISCONNECT,
    POISSON,
    SEND_MESSAGE,
    START_CHAT,
    STOP_CONTACT,
    UNIFORM,
)
from chatload.harness.scenario.model import (
    Arrivals,
    ChatLife,
    HoldTime,
    RetryPolicy,
    Safety,
    Scenario,
    Stage,
    Target,
)

DEFAULT_RUNS = 200
DEFAULT_MAX_THROTTLE = 0.001  # a share of calls (0.1%)
PASSING_SHARE = 0.95  # quotas needed: the throttle share stays under max_throttle in this share of simulations
RATE_STEP = 0.1  # the rate quota is searched in steps of 0.1/s
SEARCH_WIDTH = 8  # candidate quotas tried at once per simulation (one pass of the lockstep core)
EVENT_BUDGET = 40_000_000  # events x simulations held at once (one hour at 50/s x 200: about 1.6 GB at the peak)
UNCONNECTED_TIMEOUT_S = 300.0  # the emulator's default (Connect: 5 minutes to connect, else the chat ends)
DEFAULT_CHAT_MINUTES = 1500  # Connect's default ChatDurationInMinutes (25 h)
PROGRESS_AFTER_S = 2.0
CHAT_OPERATIONS = (CREATE_CONNECTION, SEND_MESSAGE, DISCONNECT, STOP_CONTACT)
AWS_DEFAULT = "AWS default"


# ---------------------------------------------------------------- quotas


@dataclass(frozen=True)
class Quotas:
    """The quotas a plan simulates: StartChatContact's bucket, the concurrent-chats quota and the
    buckets of the chat's own calls (operation -> (rate, burst)); `sources` says where each came from."""

    rate: float = DEFAULT_CONNECT_RATES[START_CHAT][0]
    burst: float = DEFAULT_CONNECT_RATES[START_CHAT][1]
    concurrent_chats: int = DEFAULT_CONCURRENT_CHATS
    operations: Mapping[str, tuple[float, float]] = field(
        default_factory=lambda: {
            CREATE_CONNECTION: DEFAULT_PARTICIPANT_RATES[CREATE_CONNECTION],
            SEND_MESSAGE: DEFAULT_PARTICIPANT_RATES[SEND_MESSAGE],
            DISCONNECT: DEFAULT_PARTICIPANT_RATES[DISCONNECT],
            STOP_CONTACT: DEFAULT_CONNECT_RATES[STOP_CONTACT],
        }
    )
    unconnected_timeout_s: float = UNCONNECTED_TIMEOUT_S
    sources: Mapping[str, str] = field(
        default_factory=lambda: {"rate": AWS_DEFAULT, "burst": AWS_DEFAULT, "concurrent_chats": AWS_DEFAULT}
    )

    def as_dict(self) -> dict[str, Any]:
        """quotas_used: rate, burst, concurrent_chats (stable keys), then the chat's own calls."""
        return {
            "rate": self.rate,
            "burst": self.burst,
            "concurrent_chats": self.concurrent_chats,
            "sources": dict(self.sources),
            "operations": {op: {"rate": r, "burst": b} for op, (r, b) in self.operations.items()},
            "unconnected_timeout_s": self.unconnected_timeout_s,
        }


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _rate_of(table: Any, operation: str, default: tuple[float, float]) -> tuple[float, float, bool]:
    """(rate, burst, overridden) of `operation` in an emulator rates table merged onto `default`."""
    spec = table.get(operation) if isinstance(table, Mapping) else None
    if not isinstance(spec, Mapping):
        return default[0], default[1], False
    rate, burst = _number(spec.get("rate")), _number(spec.get("burst"))
    return (default[0] if rate is None else rate), (default[1] if burst is None else burst), True


def scenario_quotas(
    scenario: Scenario, rate: float | None = None, burst: float | None = None, concurrent_chats: int | None = None
) -> Quotas:
    """Quotas for a plan: the flags given here, else the scenario's emulator overrides
    (target.emulator_config rates / participant_rates / instances), else AWS's defaults."""
    config = scenario.target.emulator_config if scenario.target.kind == "emulator" else {}
    rates = config.get("rates", {})
    participant = config.get("participant_rates", {})
    start_rate, start_burst, overridden = _rate_of(rates, START_CHAT, DEFAULT_CONNECT_RATES[START_CHAT])
    sources = {"rate": "scenario" if overridden else AWS_DEFAULT, "burst": "scenario" if overridden else AWS_DEFAULT}
    chats = DEFAULT_CONCURRENT_CHATS
    sources["concurrent_chats"] = AWS_DEFAULT
    for instance in config.get("instances", []) or []:
        if isinstance(instance, Mapping) and instance.get("id") == scenario.target.instance_id:
            value = _number(instance.get("concurrent_chats"))
            if value is not None:
                chats, sources["concurrent_chats"] = int(value), "scenario"
    if rate is not None:
        start_rate, sources["rate"] = float(rate), "flag"
    if burst is not None:
        start_burst, sources["burst"] = float(burst), "flag"
    if concurrent_chats is not None:
        chats, sources["concurrent_chats"] = int(concurrent_chats), "flag"
    operations = {}
    for op in CHAT_OPERATIONS:
        table, defaults = (
            (rates, DEFAULT_CONNECT_RATES) if op == STOP_CONTACT else (participant, DEFAULT_PARTICIPANT_RATES)
        )
        r, b, _ = _rate_of(table, op, defaults[op])
        operations[op] = (r, b)
    timeout = _number((config.get("emulator") or {}).get("unconnected_timeout_s"))
    return Quotas(
        rate=start_rate,
        burst=start_burst,
        concurrent_chats=chats,
        operations=operations,
        unconnected_timeout_s=UNCONNECTED_TIMEOUT_S if timeout is None else timeout,
        sources=sources,
    )


# ---------------------------------------------------------------- the model of one scenario


@dataclass(frozen=True)
class _Model:
    """What the simulation needs of a scenario, resolved once."""

    schedule: sim.ScheduleArrays
    stages: tuple[Stage, ...]
    process: str
    chat: ChatLife
    attempts: int
    retry_quota: bool
    max_chats: int | None
    quotas: Quotas

    @property
    def talk_s(self) -> float:
        chat = self.chat
        return chat.connect_delay_s + chat.messages * chat.message_interval_s if chat.connect else 0.0

    @property
    def life_cap_s(self) -> float:
        return 60.0 * (self.chat.chat_duration_minutes or DEFAULT_CHAT_MINUTES)


def _model(scenario: Scenario, quotas: Quotas) -> _Model:
    mode = scenario.retry.mode
    return _Model(
        schedule=sim.ScheduleArrays.of(scenario.stages),
        stages=tuple(scenario.stages),
        process=scenario.arrivals.process,
        chat=scenario.chat,
        attempts=1 if mode == "off" else max(1, scenario.retry.max_attempts),
        retry_quota=mode in ("standard", "adaptive"),
        max_chats=scenario.safety.max_chats,
        quotas=quotas,
    )


def _holds(hold: HoldTime, rng: np.random.Generator, size: int) -> np.ndarray:
    """Hold times as HoldTime.sample draws them (fixed, exponential, lognormal), capped at max_s."""
    if hold.distribution == "fixed" or hold.mean_s <= 0:
        values = np.full(size, float(hold.mean_s))
    elif hold.distribution == "exponential":
        values = rng.exponential(hold.mean_s, size)
    else:
        values = rng.lognormal(math.log(hold.mean_s) - hold.sigma**2 / 2, hold.sigma, size)
    return values if hold.max_s is None else np.minimum(values, hold.max_s)


def _generator(seed: int, simulation: int, stream: int) -> np.random.Generator:
    """Simulation n's own generator for one stream (0 arrivals, 1 holds, 2 retries, 3+ the chat's calls):
    the first 20 simulations of a 200-run plan are those of a 20-run plan, and a change to the holds
    leaves the arrivals as they were (common random numbers)."""
    return np.random.default_rng([seed, simulation, stream])


@dataclass
class _Draws:
    arrivals: list[np.ndarray]
    lives: list[np.ndarray]  # how long an accepted chat holds its slot (its hold = life - talk)
    backoff: list[np.ndarray] | None


def _draw(model: _Model, sims: range, seed: int) -> _Draws:
    schedule = model.schedule
    uniform = schedule.uniform() if model.process != POISSON else None

    def draw(i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        n = sims[i]
        times = uniform if uniform is not None else schedule.poisson(_generator(seed, n, 0))
        if model.max_chats is not None:
            times = times[: model.max_chats]
        life = _holds(model.chat.hold, _generator(seed, n, 1), len(times))
        life += model.talk_s
        if not model.chat.connect and model.quotas.unconnected_timeout_s > 0:
            np.minimum(life, model.quotas.unconnected_timeout_s, out=life)
        np.minimum(life, model.life_cap_s, out=life)
        backoff = None
        if model.attempts > 1:
            backoff = _generator(seed, n, 2).random((len(times), model.attempts - 1))
        return times, life, backoff

    drawn = sim.each(draw, len(sims))
    arrivals = [d[0] for d in drawn]
    lives = [d[1] for d in drawn]
    backoff = [d[2] for d in drawn]
    return _Draws(arrivals, lives, backoff if model.attempts > 1 else None)  # type: ignore[arg-type]


# ---------------------------------------------------------------- one batch of simulations


@dataclass
class _Batch:
    """Per simulation of a batch: counts per stage and the peak active chats per stage."""

    calls: np.ndarray  # (n, stages)
    ok: np.ndarray
    tps: np.ndarray
    concurrency: np.ndarray
    peak: np.ndarray  # (n, stages)
    run_peak: np.ndarray  # (n,)
    operations: dict[str, tuple[np.ndarray, np.ndarray]]  # op -> (calls, throttled) per simulation
    needed: dict[str, np.ndarray]  # rate (in RATE_STEPs), burst, concurrent_chats per simulation


def _simulate_batch(
    model: _Model, draws: _Draws, seed: int, first: int, max_throttle: float, search: bool, say: Callable[[str], None]
) -> _Batch:
    quotas = model.quotas
    schedule = model.schedule
    stages = len(model.stages)
    sims = len(draws.arrivals)
    events = sim.build_events(
        draws.arrivals, draws.lives, attempts=model.attempts, backoff_draws=draws.backoff, markers=schedule.start[1:]
    )
    refund = not (model.chat.connect and model.chat.end_by == "disconnect")
    result = sim.run_calls(
        events,
        quotas.rate,
        quotas.burst,
        quotas.concurrent_chats,
        retry_quota=model.retry_quota,
        refund_on_release=refund,
        record=True,
    )
    assert result.passed is not None and result.accepted is not None and result.final is not None
    assert result.peaks is not None
    counts = np.zeros((sims, stages, 3), dtype=np.int64)
    t_rows, call_rows = events.t.T, events.call.T
    passed_rows, accepted_rows, final_rows = result.passed.T, result.accepted.T, result.final.T

    def count(n: int) -> None:
        # final outcome of every call, counted in the stage of its arrival (as the report counts it)
        final = final_rows[n] & (call_rows[n] >= 0)
        code = passed_rows[n][final].astype(np.int64) + accepted_rows[n][final]
        stage = schedule.stage_of(draws.arrivals[n])[call_rows[n][final]]
        counts[n] = np.bincount(stage * 3 + code, minlength=stages * 3).reshape(stages, 3)

    sim.each(count, sims)
    # the most chats active at once per stage: a marker opens every stage after the first
    peak = result.peaks[:, :stages]

    def chats(n: int) -> tuple[np.ndarray, np.ndarray]:
        """Simulation n's chats started: accept times (in time order) and lives."""
        accepted = accepted_rows[n] & (call_rows[n] >= 0)
        return t_rows[n][accepted], draws.lives[n][call_rows[n][accepted]]

    operations = _chat_calls(model, sims, chats, seed, first)
    needed: dict[str, np.ndarray] = {}
    run_peak = peak.max(axis=1) if stages else np.zeros(sims, dtype=np.int64)
    if search:
        passed = []
        if model.attempts == 1:

            def got(n: int) -> tuple[np.ndarray, np.ndarray]:
                token = passed_rows[n] & (call_rows[n] >= 0)
                return t_rows[n][token], draws.lives[n][call_rows[n][token]]

            passed = sim.each(got, sims)
        needed = _search(model, events, draws, passed, max_throttle, say)
    return _Batch(
        calls=counts.sum(axis=2),
        ok=counts[:, :, sim.OK],
        tps=counts[:, :, sim.TPS],
        concurrency=counts[:, :, sim.CONCURRENCY],
        peak=peak,
        run_peak=run_peak,
        operations=operations,
        needed=needed,
    )


# ---------------------------------------------------------------- the chat's own calls


def _bucket_pass(
    model: _Model,
    sims: int,
    times_of: Callable[[int], np.ndarray],
    op: str,
    seed: int,
    first: int,
    stream: int,
    copies: int = 0,
) -> tuple[list[np.ndarray | None], np.ndarray, np.ndarray]:
    """One operation's bucket over the calls at `times_of(n)` (simulation n's, sorted): which calls were
    accepted (None: all of them), and calls and throttled calls per simulation. The times of a
    simulation whose first attempts the bucket can never refuse (sim.deficit_peak) are not kept: it
    needs no loop, and the rest run in lockstep batches within the memory budget.

    copies = m > 0: the calls are m time-shifted copies of chats that StartChatContact's bucket let
    through, which a bucket of m x its rate and m x its burst cannot refuse (in any window they number
    at most m x (burst + rate x length)), so then nothing is checked at all."""
    rate, burst = model.quotas.operations[op]
    quotas = model.quotas
    sure = copies > 0 and rate >= copies * quotas.rate and burst >= copies * quotas.burst
    calls = np.zeros(sims, dtype=np.int64)
    throttled = np.zeros(sims, dtype=np.int64)
    accepted: list[np.ndarray | None] = [None] * sims
    busy: dict[int, np.ndarray] = {}

    def check(n: int) -> None:
        times = times_of(n)
        calls[n] = len(times)
        if not sure and sim.deficit_peak(times, rate) > burst - 1 + sim.TOKEN_EPS:
            busy[n] = times

    sim.each(check, sims)
    busy = dict(sorted(busy.items()))
    order = list(busy)
    longest = max((len(t) for t in busy.values()), default=1)
    per_batch = max(1, int(EVENT_BUDGET // max(1, model.attempts * longest)))
    for low in range(0, len(order), per_batch):
        group = order[low : low + per_batch]
        draws = None
        if model.attempts > 1:
            draws = [_generator(seed, first + n, stream).random((len(busy[n]), model.attempts - 1)) for n in group]
        events = sim.build_events([busy[n] for n in group], attempts=model.attempts, backoff_draws=draws)
        result = sim.run_calls(events, rate, burst, retry_quota=model.retry_quota, record=True)
        assert result.accepted is not None
        for j, n in enumerate(group):
            row = result.accepted.T[j] & (events.call.T[j] >= 0)
            taken = np.zeros(len(busy[n]), dtype=bool)
            taken[events.call.T[j][row]] = True
            accepted[n] = taken
            throttled[n] = result.tps[j, 0]
        for n in group:
            del busy[n]
    return accepted, calls, throttled


def _chat_calls(
    model: _Model, sims: int, chats: Callable[[int], tuple[np.ndarray, np.ndarray]], seed: int, first: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The calls of the chats started (harness/customer.py), each operation against its own bucket:
    CreateParticipantConnection after the connect delay; when it succeeded, the messages one interval
    apart and DisconnectParticipant (end_by "disconnect"), else StopContact, at the end of the chat's
    life (sooner by the messages when it could not connect). Calls due after the schedule's end are
    not made (the run's clean-up ends those chats). `chats(n)`: simulation n's accept times and lives."""
    chat = model.chat
    end_s = model.schedule.duration_s
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    connected: list[np.ndarray | None] = [None] * sims  # None: every chat of the simulation connected
    if chat.connect:

        def connections(n: int) -> np.ndarray:
            at = chats(n)[0] + chat.connect_delay_s
            return at[: np.searchsorted(at, end_s, side="left")]

        ok, calls, throttled = _bucket_pass(model, sims, connections, CREATE_CONNECTION, seed, first, 3, copies=1)
        out[CREATE_CONNECTION] = (calls, throttled)
        for n in range(sims):
            started = len(chats(n)[0])
            if ok[n] is not None or calls[n] < started:
                made = np.zeros(started, dtype=bool)
                made[: calls[n]] = True if ok[n] is None else ok[n]
                connected[n] = made
        if chat.messages:
            offsets = chat.message_interval_s * np.arange(1, chat.messages + 1)

            def messages(n: int) -> np.ndarray:
                at = chats(n)[0] + chat.connect_delay_s
                if connected[n] is not None:
                    at = at[connected[n]]
                sends = np.sort(np.concatenate([at + o for o in offsets]), kind="stable")  # merges sorted runs
                return sends[: np.searchsorted(sends, end_s, side="left")]

            _, calls, throttled = _bucket_pass(
                model, sims, messages, SEND_MESSAGE, seed, first, 4, copies=chat.messages
            )
            out[SEND_MESSAGE] = (calls, throttled)
    by_disconnect = chat.connect and chat.end_by == "disconnect"
    waits = chat.messages * chat.message_interval_s if chat.connect else 0.0

    def ends(n: int, disconnect: bool) -> np.ndarray:
        start, life = chats(n)
        at = start + life
        linked = connected[n] if connected[n] is not None else np.ones(len(at), dtype=bool)
        if chat.connect:
            at[~linked] -= waits  # no connection: no messages, so the chat ends that much sooner
        which = linked if by_disconnect else np.zeros(len(at), dtype=bool)
        at = np.sort(at[which if disconnect else ~which])
        return at[: np.searchsorted(at, end_s, side="left")]

    for stream, op in ((5, DISCONNECT), (6, STOP_CONTACT)):
        disconnect = op == DISCONNECT
        _, calls, throttled = _bucket_pass(model, sims, lambda n, d=disconnect: ends(n, d), op, seed, first, stream)
        if calls.any() or disconnect == by_disconnect:
            out[op] = (calls, throttled)
    return out


# ---------------------------------------------------------------- quotas needed


@dataclass
class _Bracket:
    """One per-simulation search of `smallest_passing`: lo fails (or is assumed to), hi is a guess."""

    name: str
    lo: np.ndarray
    hi: np.ndarray
    width: int = SEARCH_WIDTH
    verified: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))

    def __post_init__(self) -> None:
        self.lo = np.asarray(self.lo, dtype=np.int64).copy()
        self.hi = np.maximum(np.asarray(self.hi, dtype=np.int64), self.lo + 1)
        self.verified = np.zeros(len(self.lo), dtype=bool)

    @property
    def open(self) -> np.ndarray:
        return ~self.verified | (self.hi - self.lo > 1)

    def candidates(self) -> np.ndarray:
        """(N, width) points spread over (lo, hi] (hi itself last); closed simulations repeat hi."""
        gap = (self.hi - self.lo)[:, None]
        points = self.lo[:, None] + np.maximum(1, np.ceil(gap * np.arange(1, self.width + 1) / self.width))
        points = np.minimum(points.astype(np.int64), self.hi[:, None])
        points[~self.open] = self.hi[~self.open, None]
        return points

    def update(self, candidates: np.ndarray, passed: np.ndarray) -> None:
        best = np.where(passed, candidates, np.iinfo(np.int64).max).min(axis=1)
        found = passed.any(axis=1)
        expand = ~found & ~self.verified
        self.hi = np.where(found, best, self.hi)
        self.verified |= found
        failed_below = np.where(~passed & (candidates < self.hi[:, None]), candidates, -1).max(axis=1)
        self.lo = np.maximum(self.lo, failed_below)
        self.lo = np.where(expand, self.hi, self.lo)  # hi failed: look above it
        self.hi = np.where(expand, 2 * self.hi + 1, self.hi)

    def result(self) -> np.ndarray:
        return np.where(self.verified, self.hi, -1)


def smallest_passing(
    evaluate: Callable[[list[tuple[str, np.ndarray]]], list[np.ndarray]], brackets: list[_Bracket], rounds: int = 64
) -> list[np.ndarray]:
    """Per simulation and bracket, the smallest whole g > lo for which the test passes (taken as monotone).

    Each round, `evaluate` gets every open bracket's (name, (N, width) candidates) and says which pass; all
    brackets share one pass of the lockstep core, and each shrinks (width + 1)-fold per round, with
    common random numbers (the same events every time). A hi that fails is doubled. -1: never passed.
    """
    for _ in range(rounds):
        live = [b for b in brackets if b.open.any()]
        if not live:
            break
        candidates = [b.candidates() for b in live]
        asked = [(b.name, c) for b, c in zip(live, candidates, strict=True)]
        for bracket, points, passed in zip(live, candidates, evaluate(asked), strict=True):
            bracket.update(points, np.asarray(passed, dtype=bool))
    return [b.result() for b in brackets]


def _smallest_exact(passes: Callable[[int], bool], lo: int, hi: int) -> int:
    """The smallest whole g in (lo, hi] for which passes(g), by bisection (hi passes, lo fails)."""
    while hi - lo > 1:
        middle = (lo + hi) // 2
        if passes(middle):
            hi = middle
        else:
            lo = middle
    return hi


def _search(
    model: _Model,
    events: sim.Events,
    draws: _Draws,
    passed: list[tuple[np.ndarray, np.ndarray]],
    max_throttle: float,
    say: Callable[[str], None],
) -> dict[str, np.ndarray]:
    """Per simulation: the smallest rate (in RATE_STEPs, at the current burst), burst (at the current
    rate) and concurrent-chats quota that keep its throttle share under max_throttle.

    Retries off, the bucket's outcomes do not depend on the concurrency quota (the token is spent
    first) and a refused call is refused for good, which gives exact brackets (sim.quota_bounds) and,
    for the concurrency quota, an exact count (sim.loss_refusals). With retries everything is
    searched with the lockstep core. `passed[n]`: simulation n's calls that got a token (retries off).
    """
    q = model.quotas
    calls = events.calls.astype(float)
    sims = len(calls)
    denominator = np.maximum(calls, 1.0)[:, None]
    allowed = np.ceil(max_throttle * calls).astype(np.int64) - 1  # refusals r with r < max_throttle x calls
    retries = model.attempts > 1
    refund = not (model.chat.connect and model.chat.end_by == "disconnect")
    concurrency = q.concurrent_chats if retries else None
    options = {"retry_quota": model.retry_quota, "refund_on_release": refund}

    # rate: a bucket accepts at most burst + rate x duration calls, so fewer than (1 - max_throttle) x
    # calls fails (retries off, where nothing else refuses); the first pass tries 1.3 x the peak rate
    duration = model.schedule.duration_s
    least = (1 - max_throttle) * calls - 1
    peak_rate = max(max(s.target_rate, s.start_rate or 0.0) for s in model.stages)
    lo = np.zeros(sims) if retries else np.maximum(np.floor((least - q.burst) / duration / RATE_STEP) - 1, 0)
    rate = _Bracket("rate", lo, np.maximum(lo + 1, math.ceil(1.3 * peak_rate / RATE_STEP) + 1))
    # burst: exact brackets from the bucket's deficits (sim.quota_bounds)
    if retries:
        never = [math.ceil(sim.deficit_peak(a, q.rate) + 1 - sim.TOKEN_EPS) for a in draws.arrivals]
        burst = _Bracket("burst", np.zeros(sims), np.maximum(np.array(never), 1))
    else:
        bounds = sim.each(lambda n: sim.quota_bounds(sim.deficits(draws.arrivals[n], q.rate), int(allowed[n])), sims)
        lo = np.maximum(np.array([b[0] for b in bounds]) - 1, 0)  # one below: float sums may differ by a hair
        burst = _Bracket("burst", lo, np.array([b[1] for b in bounds]))

    def tps_under(asked: list[tuple[str, np.ndarray]]) -> list[np.ndarray]:
        """Rate candidates at the current burst and burst candidates at the current rate, in one pass."""
        rates = [c * RATE_STEP if name == "rate" else np.full(c.shape, q.rate) for name, c in asked]
        bursts = [c if name == "burst" else np.full(c.shape, q.burst) for name, c in asked]
        result = sim.run_calls(events, np.hstack(rates), np.hstack(bursts), concurrency, **options)
        passed = result.tps / denominator < max_throttle
        return np.split(passed, np.cumsum([c.shape[1] for _, c in asked])[:-1], axis=1)

    say("searching the rate and burst needed")
    rate_needed, burst_needed = smallest_passing(tps_under, [rate, burst])

    say("searching the concurrent chats needed")
    if retries:

        def concurrency_under(asked: list[tuple[str, np.ndarray]]) -> list[np.ndarray]:
            result = sim.run_calls(events, q.rate, q.burst, asked[0][1], **options)
            return [result.concurrency / denominator < max_throttle]

        bracket = _Bracket("concurrent_chats", np.zeros(sims), np.full(sims, q.concurrent_chats))
        (chats,) = smallest_passing(concurrency_under, [bracket])
    else:
        chats = np.zeros(sims, dtype=np.int64)
        for n, (times, lives) in enumerate(passed):
            ends = times + lives
            active = sim.unconstrained_active(times, ends)
            low, high = sim.quota_bounds(active, int(allowed[n]))
            limit = max_throttle * calls[n]
            chats[n] = _smallest_exact(
                lambda c, t=times, e=ends, a=active, m=limit: sim.loss_refusals(t, e, a, c, m) < m, low, high
            )
    return {"rate": rate_needed, "burst": burst_needed, "concurrent_chats": chats}


# ---------------------------------------------------------------- the plan


_HEAP_TUNED = False


def _keep_freed_memory() -> None:
    """Let glibc keep freed blocks for reuse instead of giving every one over 128 KB back to the OS.

    A plan allocates and frees arrays of a few MB per simulation, thousands of times; returned to the
    OS each time, every page is faulted in again (on this project's VMs that cost more than the
    simulation itself). M_MMAP_THRESHOLD at 32 MB and M_TRIM_THRESHOLD at 256 MB keep them in the heap.
    Process-wide and harmless; a no-op where mallopt does not exist (not glibc)."""
    global _HEAP_TUNED
    if _HEAP_TUNED:
        return
    _HEAP_TUNED = True
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError, TypeError):
        return
    mallopt(-3, 32 * 1024 * 1024)  # M_MMAP_THRESHOLD
    mallopt(-1, 256 * 1024 * 1024)  # M_TRIM_THRESHOLD


def _interval(values: np.ndarray) -> dict[str, float]:
    """{mean, p5, p95} of per-simulation percentages (0.0 when there is none)."""
    if len(values) == 0:
        return {"mean": 0.0, "p5": 0.0, "p95": 0.0}
    p5, p95 = np.percentile(values, [5, 95])
    return {"mean": round(float(np.mean(values)), 4), "p5": round(float(p5), 4), "p95": round(float(p95), 4)}


def _pct(part: np.ndarray, whole: np.ndarray) -> np.ndarray:
    """Per-simulation percentages of simulations that made calls."""
    made = whole > 0
    return 100.0 * part[made] / whole[made]


def _peaks(values: np.ndarray) -> dict[str, float]:
    if len(values) == 0:
        return {"p50": 0.0, "p95": 0.0}
    p50, p95 = np.percentile(values, [50, 95])
    return {"p50": round(float(p50), 1), "p95": round(float(p95), 1)}


def _row(name: str, duration: float, target: float, calls, ok, tps, conc, peaks) -> dict[str, Any]:
    return {
        "name": name,
        "duration_s": duration,
        "target_rate": round(target, 6),
        "offered_rate": round(float(np.mean(calls)) / duration, 4) if duration > 0 else 0.0,
        "accepted_rate": round(float(np.mean(ok)) / duration, 4) if duration > 0 else 0.0,
        "calls": round(float(np.mean(calls)), 2),
        "tps_throttle_pct": _interval(_pct(tps, calls)),
        "concurrency_throttle_pct": _interval(_pct(conc, calls)),
        "peak_active_chats": _peaks(peaks),
    }


def _needed(values: np.ndarray, scale: float = 1.0) -> float | int | None:
    """The smallest quota that passes in PASSING_SHARE of the simulations (None if some never passed)."""
    if len(values) == 0:
        return None
    ranked = np.sort(np.where(values < 0, np.iinfo(np.int64).max, values))
    value = int(ranked[max(0, math.ceil(PASSING_SHARE * len(values)) - 1)])
    if value == np.iinfo(np.int64).max:
        return None
    return round(value * scale, 1) if scale != 1.0 else value


def _notes(model: _Model, mode: str, truncated: bool, operations: Mapping[str, Any]) -> list[str]:
    """What the model leaves out or assumes, for this scenario (docs/plan.md has the full list)."""
    notes = [
        "calls take no time: every attempt is made at its scheduled instant (no latency, no dropped arrivals)",
    ]
    if model.process == POISSON:
        notes.append("Poisson arrivals are drawn afresh per simulation; a run's own draws are one more sample")
    if model.attempts > 1:
        text = f"retries: up to {model.attempts} attempts, attempt n+1 rand x min(20, 2^(n-1)) s after attempt n"
        if model.retry_quota:
            text += "; botocore's retry quota (500, 5 a retry) per simulation, as one client"
        notes.append(text)
    if mode == "adaptive":
        notes.append("retry mode adaptive is simulated as standard: its client-side rate limiter is not modelled")
    ending = [op for op in (DISCONNECT, STOP_CONTACT) if operations.get(op, {}).get("mean", 0.0) > 0]
    if ending:
        notes.append(
            f"{' and '.join(ending)} throttled: the customer tries again, so those chats hold their slots a "
            "little longer than simulated (the plan ends them at the first call)"
        )
    if truncated:
        notes.append(f"safety.max_chats: arrivals stop after {model.max_chats} chats, as in a run")
    return notes


def plan(
    scenario: Scenario,
    quotas: Quotas | None = None,
    runs: int = DEFAULT_RUNS,
    seed: int | None = None,
    max_throttle: float = DEFAULT_MAX_THROTTLE,
    *,
    search: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The plan of `scenario` (the document `chatload plan --json` prints; see docs/plan.md).

    quotas: None = scenario_quotas(scenario). seed: None = the scenario's arrivals seed, else 0.
    progress: called with a short line per phase when the work is long (never on small plans).
    """
    if runs < 1:
        raise ValueError(f"runs must be at least 1, got {runs}")
    if not 0 < max_throttle < 1:
        raise ValueError(f"max_throttle must be a share between 0 and 1, got {max_throttle}")
    _keep_freed_memory()
    quotas = quotas or scenario_quotas(scenario)
    seed = seed if seed is not None else (scenario.arrivals.seed or 0)
    model = _model(scenario, quotas)
    stages = model.stages
    clock = time.monotonic()
    per_sim = (model.schedule.total + 6 * math.sqrt(model.schedule.total) + len(stages)) * model.attempts
    loud = per_sim * runs > 2_000_000

    def say(line: str) -> None:
        if progress is not None and (loud or time.monotonic() - clock > PROGRESS_AFTER_S):
            progress(line)

    batch = max(1, min(runs, int(EVENT_BUDGET // max(per_sim, 1.0))))
    parts: list[_Batch] = []
    truncated = False
    for first in range(0, runs, batch):
        sims = range(first, min(runs, first + batch))
        say(f"simulating runs {sims.start + 1}-{sims.stop} of {runs} (~{per_sim:,.0f} calls each)")
        draws = _draw(model, sims, seed)
        truncated |= model.max_chats is not None and any(len(a) >= model.max_chats for a in draws.arrivals)
        parts.append(_simulate_batch(model, draws, seed, sims.start, max_throttle, search, say))
    calls = np.concatenate([p.calls for p in parts])
    ok = np.concatenate([p.ok for p in parts])
    tps = np.concatenate([p.tps for p in parts])
    conc = np.concatenate([p.concurrency for p in parts])
    peak = np.concatenate([p.peak for p in parts])
    run_peak = np.concatenate([p.run_peak for p in parts])

    rows = [
        _row(
            st.name,
            st.duration_s,
            st.target_rate,
            calls[:, i],
            ok[:, i],
            tps[:, i],
            conc[:, i],
            peak[:, i],
        )
        for i, st in enumerate(stages)
    ]
    total = _row(
        "total",
        model.schedule.duration_s,
        model.schedule.total / model.schedule.duration_s,
        calls.sum(axis=1),
        ok.sum(axis=1),
        tps.sum(axis=1),
        conc.sum(axis=1),
        run_peak,
    )
    operations: dict[str, Any] = {}
    for op in CHAT_OPERATIONS:
        found = [p.operations[op] for p in parts if op in p.operations]
        if found:
            op_calls = np.concatenate([f[0] for f in found])
            throttled = np.concatenate([f[1] for f in found])
            operations[op] = {**_interval(_pct(throttled, op_calls)), "calls": round(float(np.mean(op_calls)), 2)}
    needed: dict[str, Any] = {"rate": None, "burst": None, "concurrent_chats": None}
    per_simulation: dict[str, Any] = {}
    if search:
        for key, scale in (("rate", RATE_STEP), ("burst", 1.0), ("concurrent_chats", 1.0)):
            values = np.concatenate([p.needed[key] for p in parts])
            needed[key] = _needed(values, scale)
            usable = values[values >= 0] * scale
            per_simulation[key] = _peaks(usable) if len(usable) else None
    retry = scenario.retry
    return {
        "scenario": scenario.name,
        "runs": runs,
        "seed": seed,
        "max_throttle": max_throttle,
        "arrivals": model.process,
        "retry": {"mode": retry.mode, "max_attempts": model.attempts},
        "duration_s": model.schedule.duration_s,
        "quotas_used": quotas.as_dict(),
        "stages": rows,
        "total": total,
        "participant_throttle_pct": operations,
        "quotas_needed": needed,
        "search": {
            "done": search,
            "criterion": f"throttle share < {max_throttle:g} in {PASSING_SHARE:.0%} of the simulations",
            "rate_step": RATE_STEP,
            "per_simulation": per_simulation,  # p50 / p95 of each simulation's own smallest quota
        },
        "notes": _notes(model, retry.mode, truncated, operations),
    }


# ---------------------------------------------------------------- a finished run (meta.json)


def scenario_from_dict(data: Mapping[str, Any]) -> Scenario:
    """The Scenario a meta.json "scenario" entry describes (scenario_to_dict's output), as far as a
    plan needs it: stages, chat, retry, arrivals, target, safety. Raises KeyError, TypeError or
    ValueError when the entry is not one."""
    stages = tuple(
        Stage(
            name=str(stage["name"]),
            duration_s=float(stage["duration_s"]),
            target_rate=float(stage["target_rate"]),
            ramp=stage.get("ramp") or "step",
            start_rate=None if stage.get("start_rate") is None else float(stage["start_rate"]),
        )
        for stage in data["stages"]
    )
    chat = data.get("chat") or {}
    hold = chat.get("hold") or {}
    retry = data.get("retry") or {}
    arrivals = data.get("arrivals") or {}
    target = data.get("target") or {}
    safety = data.get("safety") or {}
    return Scenario(
        name=str(data.get("name") or "run"),
        purpose=str(data.get("purpose") or ""),
        path=data.get("path"),
        stages=stages,
        chat=ChatLife(
            connect=bool(chat.get("connect", True)),
            connect_delay_s=float(chat.get("connect_delay_s") or 0.0),
            messages=int(chat.get("messages") or 0),
            message_interval_s=float(chat.get("message_interval_s") or 1.0),
            hold=HoldTime(
                distribution=hold.get("distribution") or "fixed",
                mean_s=float(hold.get("mean_s") or 0.0),
                sigma=float(hold.get("sigma") or 0.5),
                max_s=None if hold.get("max_s") is None else float(hold["max_s"]),
            ),
            end_by=chat.get("end_by") or "disconnect",
            chat_duration_minutes=chat.get("chat_duration_minutes"),
            # meta.json before it said so: most such runs held no socket (off by default then)
            websocket=bool(chat.get("websocket", False)),
            websocket_wait_s=float(chat.get("websocket_wait_s") or 10.0),
        ),
        retry=RetryPolicy(mode=str(retry.get("mode") or "off"), max_attempts=int(retry.get("max_attempts") or 1)),
        target=Target(
            kind=target.get("kind") or "emulator",
            instance_id=str(target.get("instance_id") or DEFAULT_INSTANCE_ID),
            emulator_config=dict(target.get("emulator_config") or {}),
        ),
        safety=Safety(max_chats=safety.get("max_chats")),
        arrivals=Arrivals(process=str(arrivals.get("process") or UNIFORM), seed=arrivals.get("seed")),
    )


def quotas_from_meta(quotas: Mapping[str, Any], scenario: Scenario) -> Quotas:
    """The quotas a run was held to (meta.json "quotas"): StartChatContact's rate and burst (a burst
    Service Quotas does not give is taken as AWS's default), the concurrent chats, and the chat's own
    calls from the emulator's rates when the run recorded them (else the scenario's, else AWS's)."""
    start = quotas.get(START_CHAT) or {}
    base = scenario_quotas(scenario)
    rate = _number(start.get("rate"))
    burst = _number(start.get("burst"))
    chats = _number(quotas.get("concurrent_chats"))
    source = str(quotas.get("source") or "meta.json")
    operations = dict(base.operations)
    for op in CHAT_OPERATIONS:
        table = quotas.get("rates") if op == STOP_CONTACT else quotas.get("participant_rates")
        r, b, found = _rate_of(table or {}, op, operations[op])
        if found:
            operations[op] = (r, b)
    return Quotas(
        rate=base.rate if rate is None else rate,
        burst=base.burst if burst is None else burst,
        concurrent_chats=base.concurrent_chats if chats is None else int(chats),
        operations=operations,
        unconnected_timeout_s=base.unconnected_timeout_s,
        sources={
            "rate": source if rate is not None else base.sources["rate"],
            "burst": source if burst is not None else base.sources["burst"],
            "concurrent_chats": source if chats is not None else base.sources["concurrent_chats"],
        },
    )


def plan_for_meta(meta: Mapping[str, Any], runs: int = DEFAULT_RUNS, *, search: bool = True) -> dict[str, Any] | None:
    """The plan of a finished run from its meta.json: its resolved scenario (meta["scenario"]) against
    the quotas it was held to (meta["quotas"]), with the run's arrivals seed. None when the meta does
    not describe a scenario that can be planned (the report then leaves "planned" out)."""
    try:
        scenario = scenario_from_dict(meta["scenario"])
        quotas = quotas_from_meta(meta.get("quotas") or {}, scenario)
        if quotas.burst < 1 or quotas.rate <= 0 or quotas.concurrent_chats < 1:
            return None
        return plan(scenario, quotas, runs=runs, search=search)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


# ---------------------------------------------------------------- text


def _pct_text(value: Mapping[str, float]) -> str:
    return f"{value['mean']:.2f} [{value['p5']:.2f}-{value['p95']:.2f}]"


def format_plan(doc: Mapping[str, Any]) -> str:
    """The plan as the command prints it: one line per stage, the chat's own calls, the quotas needed."""
    q = doc["quotas_used"]
    sources = q.get("sources", {})
    retry = doc["retry"]
    lines = [
        f"plan: {doc['scenario']}, {doc['runs']} simulations (seed {doc['seed']}), {doc['arrivals']} arrivals, "
        + ("retries off" if retry["mode"] == "off" else f"retries {retry['mode']} ({retry['max_attempts']} attempts)"),
        f"quotas: StartChatContact {q['rate']:g}/s burst {q['burst']:g} ({sources.get('rate', '?')}), "
        f"concurrent chats {q['concurrent_chats']:,} ({sources.get('concurrent_chats', '?')})",
        "",
    ]
    rows = [*doc["stages"], doc["total"]]
    width = max(len("stage"), *(len(str(r["name"])) for r in rows))
    header = (
        f"{'stage':<{width}}  {'offered/s':>9}  {'accepted/s':>10}  {'TPS throttled % [5-95%]':>25}  "
        f"{'concurrency % [5-95%]':>25}  {'peak active p50/p95':>19}"
    )
    lines += [header, "-" * len(header)]
    for r in rows:
        peak = r["peak_active_chats"]
        lines.append(
            f"{r['name']:<{width}}  {r['offered_rate']:>9.2f}  {r['accepted_rate']:>10.2f}  "
            f"{_pct_text(r['tps_throttle_pct']):>25}  {_pct_text(r['concurrency_throttle_pct']):>25}  "
            f"{peak['p50']:>9g}/{peak['p95']:<9g}"
        )
    operations = doc.get("participant_throttle_pct") or {}
    if operations:
        lines += ["", "the chat's own calls, throttled % [5-95%]:"]
        for op, value in operations.items():
            rate, burst = q["operations"][op]["rate"], q["operations"][op]["burst"]
            lines.append(
                f"  {op:<28} {_pct_text(value):>22}   ({value['calls']:,.0f} calls, quota {rate:g}/s burst {burst:g})"
            )
    needed = doc["quotas_needed"]
    if doc["search"]["done"]:
        lines += ["", f"quotas needed ({doc['search']['criterion']}):"]
        for label, value, unit in (
            ("StartChatContact rate", needed["rate"], f"/s at burst {q['burst']:g}"),
            ("StartChatContact burst", needed["burst"], f" at {q['rate']:g}/s"),
            ("concurrent chats", needed["concurrent_chats"], ""),
        ):
            shown = "more than the search reached" if value is None else f"{value:g}{unit}"
            lines.append(f"  {label:<24} {shown}")
    if doc.get("notes"):
        lines += ["", "model notes:", *(f"  - {note}" for note in doc["notes"])]
    return "\n".join(lines)
