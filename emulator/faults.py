"""Fault injection: which requests the emulator answers badly on purpose, and the count of each.

Pure (no sockets, no event loop): `FaultInjector.decide(operation)` draws, for one request, the
injected failure (server_error, service_unavailable, reset, no_answer, or none) and the added latency
in emulated seconds; the wire layer (app.py) carries them out. Nothing is drawn, and nothing costs
anything, for an operation without faults: `plans` holds only operations whose table has an effect,
and the wire layer looks no further when it is empty.

Randomness comes from one `random.Random(seed)`, re-seeded at start, at every reset and whenever the
configuration's `faults` table is set again (PUT), so a run with a seed and the same sequence of
requests draws the same faults. Windows are emulated seconds since the emulator started or was last
reset, on the store's clock.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chatload.emulator.config import FAULT_OPERATIONS, FAULT_SHARES, Faults, Latency, OperationFaults

SERVER_ERROR = "server_error"  # 500 InternalServiceException / InternalServerException
SERVICE_UNAVAILABLE = "service_unavailable"  # 503 ServiceUnavailableException
RESET = "reset"  # the connection is reset (TCP RST), no answer
NO_ANSWER = "no_answer"  # held without an answer until the client hangs up (or the cap)
DELAYED = "delayed"  # an answer (or reset) held back for an added latency
ABANDONED = "abandoned"  # the client hung up while its delayed answer was held back
NO_ANSWER_CLOSED = "no_answer_closed"  # a never-answered request reached no_answer_max_real_s
# GET /_emulator/state's "faults": these counters for every operation.
FAULT_COUNTERS = (DELAYED, SERVER_ERROR, SERVICE_UNAVAILABLE, RESET, NO_ANSWER, NO_ANSWER_CLOSED, ABANDONED)


@dataclass(frozen=True)
class Fault:
    """What happens to one request: an injected failure (None = the service answers) and the added
    latency in emulated seconds (0 = none)."""

    kind: str | None
    delay_s: float


def _sampler(latency: Latency) -> Callable[[random.Random], float]:
    """A function drawing one latency in emulated seconds."""
    mean = latency.mean_ms / 1000.0
    cap = math.inf if latency.max_ms is None else latency.max_ms / 1000.0
    if latency.distribution == "uniform":
        low, high = mean - latency.spread_ms / 1000.0, mean + latency.spread_ms / 1000.0
        return lambda rng: min(rng.uniform(low, high), cap)
    if latency.distribution == "lognormal":
        sigma = latency.sigma
        mu = math.log(mean) - sigma * sigma / 2  # so that the arithmetic mean is mean_ms
        return lambda rng: min(rng.lognormvariate(mu, sigma), cap)
    fixed = min(mean, cap)
    return lambda rng: fixed


@dataclass(frozen=True)
class Plan:
    """One operation's faults, ready to draw: cumulative shares, latency sampler, window."""

    thresholds: tuple[tuple[float, str], ...]  # (cumulative share, kind), in FAULT_SHARES order
    latency: Callable[[random.Random], float] | None
    start: float
    end: float

    @classmethod
    def of(cls, spec: OperationFaults) -> Plan | None:
        """The plan of a table, or None when it has no effect (no share, no latency)."""
        thresholds = []
        total = 0.0
        for key, kind in FAULT_SHARES.items():
            share = getattr(spec, key)
            if share > 0:
                total += share
                thresholds.append((total, kind))
        latency = spec.latency
        has_latency = latency is not None and latency.mean_ms > 0 and (latency.max_ms is None or latency.max_ms > 0)
        if not thresholds and not has_latency:
            return None
        start, end = spec.window if spec.window is not None else (-math.inf, math.inf)
        return cls(tuple(thresholds), _sampler(latency) if has_latency and latency else None, start, end)


class FaultInjector:
    """The live fault configuration, its RNG and its counters (one per ChatStore)."""

    def __init__(self, config: Faults, clock: Any) -> None:
        self.clock = clock
        self.held = 0  # never-answered requests being held right now (a gauge: reset keeps it)
        self.configure(config)
        self.restart()

    def configure(self, config: Faults) -> None:
        """Switch to `config` and re-seed the RNG."""
        self.config = config
        plans = {}
        for operation in FAULT_OPERATIONS:
            spec = config.for_operation(operation)
            plan = Plan.of(spec) if spec is not None else None
            if plan is not None:
                plans[operation] = plan
        self.plans: dict[str, Plan] = plans
        self.rng = random.Random(config.seed)

    def restart(self) -> None:
        """Counters to zero, windows start again from now, RNG re-seeded (POST /_emulator/reset)."""
        self.started = self.clock.now()
        self.rng = random.Random(self.config.seed)
        self.counters: dict[str, dict[str, int]] = {op: dict.fromkeys(FAULT_COUNTERS, 0) for op in FAULT_OPERATIONS}

    def elapsed(self) -> float:
        """Emulated seconds since start or the last reset: the time fault windows are measured in."""
        return self.clock.now() - self.started

    def decide(self, operation: str) -> Fault | None:
        """The fault of one request of `operation`, counted; None when it is left alone."""
        plan = self.plans.get(operation)
        if plan is None:
            return None
        if plan.start > -math.inf or plan.end < math.inf:
            elapsed = self.clock.now() - self.started
            if not plan.start <= elapsed < plan.end:
                return None
        kind = None
        if plan.thresholds:
            draw = self.rng.random()
            for threshold, candidate in plan.thresholds:
                if draw < threshold:
                    kind = candidate
                    break
        delay = plan.latency(self.rng) if plan.latency is not None and kind != NO_ANSWER else 0.0
        if kind is None and delay <= 0:
            return None
        counters = self.counters[operation]
        if kind is not None:
            counters[kind] += 1
        if delay > 0:
            counters[DELAYED] += 1
        return Fault(kind, delay)

    def count(self, operation: str, counter: str) -> None:
        self.counters[operation][counter] += 1

    def state(self) -> dict[str, dict[str, int]]:
        return {op: dict(c) for op, c in self.counters.items()}
