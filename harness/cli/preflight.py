"""Pre-flight: consent to load a real instance, the run plan, the quotas a run is held to, warnings.

Pure (imports nothing heavy): it runs in the `chatload` process before any child starts, and in the
Locust coordinator when a run is prepared. Reading applied quotas from AWS is
chatload.harness.service_quotas' (boto3, in a child process of the command line).

Plan math, for a schedule of stages with arrival rate r(t) over [0, D] (r and A are harness.pacer.Schedule's
rate_at and expected_arrivals, the mean hold is HoldTime.expected()):
  A(t)             = integral of r from 0 to t (expected arrivals by time t)
  planned chats    = floor(A(D))
  mean chat life L = connect delay + messages x message interval + mean hold time
  steady concurrency (Little's law) = peak rate x L
  peak concurrency = max over t of A(t) - A(t - L), the chats started during the last L seconds;
                     it equals Little's law once a stage holds its rate for at least L seconds and
                     never exceeds the planned chats when the stages are shorter than a chat's life.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

from chatload.contracts import (
    CONNECT_OPERATIONS,
    CREATE_CONNECTION,
    DEFAULT_CONCURRENT_CHATS,
    DEFAULT_CONNECT_RATES,
    DEFAULT_CONTACT_FLOW_ID,
    DEFAULT_INSTANCE_ID,
    DEFAULT_PARTICIPANT_RATES,
    DEFAULT_START_CHAT_BURST,
    DEFAULT_START_CHAT_RATE,
    DISCONNECT,
    SEND_MESSAGE,
    START_CHAT,
    STOP_CONTACT,
)
from chatload.harness.pacer import Schedule
from chatload.harness.scenario import model as scenario_model
from chatload.harness.scenario.model import ChatLife, HoldTime, Scenario

CONFIRM_FLAG = "--confirm-real-instance"
CONFIRM_KEY = "confirm = true under [target]"

# ---------------------------------------------------------------- consent


def consent_error(scenario: Any, confirm_flag: bool) -> str | None:
    """One line saying what is missing before a real instance may be loaded, or None if all is set."""
    target = scenario.target
    if target.kind != "aws":
        return None
    missing = [
        f"{flag} (or {key} under [target])"
        for flag, key, value in (
            ("--region", "region", target.region),
            ("--instance-id", "instance_id", target.instance_id),
            ("--contact-flow-id", "contact_flow_id", target.contact_flow_id),
        )
        if not value
    ]
    if missing:
        return "--target aws needs " + ", ".join(missing)
    if target.instance_id == DEFAULT_INSTANCE_ID or target.contact_flow_id == DEFAULT_CONTACT_FLOW_ID:
        return (
            "--target aws: the instance id or contact flow id is the emulator's default; "
            "give your instance's ids with --instance-id and --contact-flow-id"
        )
    if confirm_flag or target.confirm:
        return None
    return (
        f"--target aws starts real chats on Amazon Connect instance {target.instance_id} in {target.region} "
        f"(real contacts that hold quota until ended); to go ahead add {CONFIRM_FLAG} "
        f"or set {CONFIRM_KEY} in the scenario"
    )


# ---------------------------------------------------------------- plan


@dataclass(frozen=True)
class RunPlan:
    """What a scenario will ask of the target, computed before the first call."""

    scenario: str
    target: str
    region: str
    instance: str
    contact_flow: str
    stages: int
    duration_s: float
    expected_arrivals: float  # integral of the rate over the schedule
    planned_chats: int  # floor(expected_arrivals)
    peak_rate: float  # chats/s
    mean_chat_life_s: float
    steady_concurrency: float  # Little's law: peak_rate x mean_chat_life_s
    peak_concurrency: float  # max chats started within one mean chat life
    messages: int  # SendMessage calls
    calls: dict[str, int] = field(default_factory=dict)  # operation -> expected calls
    peak_call_rates: dict[str, float] = field(default_factory=dict)  # operation -> calls/s at peak


def _peak_window(schedule: Schedule, life: float) -> float:
    """max over t of A(t) - A(t - life), exactly: f is quadratic between breakpoints."""
    if life <= 0:
        return 0.0
    edges = {0.0, *itertools.accumulate(stage.duration_s for stage in schedule.stages)}
    points = sorted(edges | {e + life for e in edges})
    candidates = list(points)
    for a, b in itertools.pairwise(points):
        # f'(t) = r(t) - r(t - life) is linear on (a, b); its zero (read from two inner points, where no
        # stage edge decides which stage owns the instant) is the vertex of f
        p, q = a + (b - a) / 4, b - (b - a) / 4
        g1 = schedule.rate_at(p) - schedule.rate_at(p - life)
        g2 = schedule.rate_at(q) - schedule.rate_at(q - life)
        if g1 != g2:
            vertex = p - g1 * (q - p) / (g2 - g1)
            if a < vertex < b:
                candidates.append(vertex)
    return max(schedule.expected_arrivals(t) - schedule.expected_arrivals(t - life) for t in candidates)


def mean_hold_s(hold: HoldTime) -> float:
    """Mean of the hold time; a max_s clips draws (min(draw, max_s)), so the mean is the clipped one."""
    if hold.distribution == "lognormal" and hold.sigma <= 0 and hold.max_s is not None:
        return min(hold.mean_s, hold.max_s)  # a point mass; HoldTime.expected() would divide by sigma
    return hold.expected()


def mean_chat_life_s(chat: ChatLife) -> float:
    """Connect delay + messages x message interval (when connecting) + mean hold, cut at the chat duration.

    Unlike scenario_model.chat_life_s (pool sizing) there are no call allowances: this is the time a
    chat holds quota. Two differences are kept here on purpose: without connect nothing but the hold
    counts (harness/customer.py waits the connect delay and sends messages only when connecting; the
    shared _talk_s would still count messages), and the chat duration (chat_duration_minutes) cuts it.
    """
    life = mean_hold_s(chat.hold) + (scenario_model._talk_s(chat) if chat.connect else 0.0)
    minutes = chat.chat_duration_minutes
    return min(life, minutes * 60.0) if minutes else life


def plan(scenario: Scenario) -> RunPlan:
    """The run's expected load: chats, peak rate, peak concurrency, messages, calls per operation."""
    schedule = Schedule(scenario.stages)
    expected = schedule.total_arrivals
    chats = math.floor(expected + 1e-9)
    peak = schedule.peak_rate()
    chat = scenario.chat
    life = mean_chat_life_s(chat)
    per_chat = {START_CHAT: 1.0}
    if chat.connect:
        per_chat[CREATE_CONNECTION] = 1.0
        if chat.messages:
            per_chat[SEND_MESSAGE] = float(chat.messages)
    if chat.connect and chat.end_by == "disconnect":
        per_chat[DISCONNECT] = 1.0
    else:
        per_chat[STOP_CONTACT] = 1.0
    target = scenario.target
    return RunPlan(
        scenario=scenario.name,
        target=target.kind,
        region=target.region or "",
        instance=target.instance_id or "",
        contact_flow=target.contact_flow_id or "",
        stages=len(schedule.stages),
        duration_s=schedule.duration_s,
        expected_arrivals=expected,
        planned_chats=chats,
        peak_rate=peak,
        mean_chat_life_s=life,
        steady_concurrency=peak * life,
        peak_concurrency=min(_peak_window(schedule, life), peak * life),
        messages=int(chats * per_chat.get(SEND_MESSAGE, 0)),
        calls={op: int(chats * n) for op, n in per_chat.items()},
        peak_call_rates={op: peak * n for op, n in per_chat.items()},
    )


def _duration_text(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def format_plan(p: RunPlan) -> str:
    """A short pre-flight summary block, printed before the first call."""
    where = (
        f"Amazon Connect instance {p.instance} in {p.region}, contact flow {p.contact_flow}"
        if p.target == "aws"
        else "the emulator"
    )
    concurrency = (
        f"peak concurrency  ~{p.peak_concurrency:,.0f} active chats "
        f"(Little's law: {p.peak_rate:g}/s x {p.mean_chat_life_s:.1f} s mean chat life"
    )
    if p.peak_concurrency + 0.5 < p.steady_concurrency:
        concurrency += f"; the stages are too short to reach the steady {p.steady_concurrency:,.0f}"
    calls = ", ".join(f"{op} {n:,}" for op, n in p.calls.items())
    return "\n".join(
        [
            f"pre-flight: scenario {p.scenario} against {where}",
            f"  planned chats     {p.planned_chats:,} over {_duration_text(p.duration_s)} "
            f"({p.stages} stage{'s' if p.stages != 1 else ''}), peak arrival rate {p.peak_rate:g} chats/s",
            "  " + concurrency + ")",
            f"  messages to send  {p.messages:,}",
            f"  calls expected    {calls}",
        ]
    )


# ---------------------------------------------------------------- quotas


class PreflightError(Exception):
    """A pre-flight problem the user must fix (one line); the caller prints it and exits 2."""


NO_CREDENTIALS = (
    "no AWS credentials: set AWS_PROFILE (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), "
    "run `aws sso login` for an SSO profile, or run where an instance role is attached"
)


@dataclass(frozen=True)
class QuotaReading:
    """Applied quotas of the account and instance; `sources` says where each figure came from."""

    source: str  # "service-quotas" if any figure was read from Service Quotas, else "defaults"
    start_chat_rate: float
    start_chat_burst: float | None  # Service Quotas has no burst figure: known only for the default rate
    concurrent_chats: int
    sources: dict[str, str] = field(default_factory=dict)  # "StartChatContact"/"concurrent_chats" -> ...
    notes: tuple[str, ...] = ()  # why a figure is a default (missing permission, ...)


def default_quotas() -> dict[str, Any]:
    """meta.json "quotas" with AWS's documented defaults for new accounts (what a real instance has
    unless raised)."""
    return {
        "source": "defaults",
        START_CHAT: {"rate": DEFAULT_START_CHAT_RATE, "burst": DEFAULT_START_CHAT_BURST},
        "concurrent_chats": DEFAULT_CONCURRENT_CHATS,
    }


def emulator_quotas(config: dict[str, Any], state: dict[str, Any], instance_id: str) -> dict[str, Any]:
    """meta.json "quotas" from the emulator's live configuration and state (its admin API)."""
    rates = config.get("rates", {})
    start = rates.get(START_CHAT) or rates.get("default") or {}
    instance = state.get("instances", {}).get(instance_id, {})
    return {
        "source": "emulator",
        START_CHAT: {"rate": start.get("rate"), "burst": start.get("burst")},
        "concurrent_chats": instance.get("concurrent_chats"),
        "rates": rates,
        "participant_rates": config.get("participant_rates", {}),
        "time_scale": state.get("time_scale"),
    }


def reading_of(meta: dict[str, Any]) -> QuotaReading:
    """The QuotaReading a meta.json "quotas" entry (meta_quotas) describes."""
    start = meta.get(START_CHAT) or {}
    return QuotaReading(
        source=str(meta.get("source", "defaults")),
        start_chat_rate=float(start.get("rate") or DEFAULT_START_CHAT_RATE),
        start_chat_burst=start.get("burst"),
        concurrent_chats=int(meta.get("concurrent_chats") or DEFAULT_CONCURRENT_CHATS),
        sources=dict(meta.get("sources") or {}),
        notes=tuple(meta.get("notes") or ()),
    )


def quota_warnings(p: RunPlan, quotas: QuotaReading) -> list[str]:
    """Where the plan goes past a quota: by how much, and which throttling to expect."""
    warnings = []
    if p.peak_rate > quotas.start_chat_rate:
        warnings.append(
            f"peak arrival rate {p.peak_rate:g}/s exceeds the StartChatContact rate quota "
            f"{quotas.start_chat_rate:g}/s ({quotas.sources.get('StartChatContact', quotas.source)}) by "
            f"{p.peak_rate - quotas.start_chat_rate:g}/s ({p.peak_rate / quotas.start_chat_rate:.1f}x): "
            "TPS throttling (TooManyRequestsException) is expected, which may be the point of the test; "
            "the quota is shared by every caller in the account and Region"
        )
    if p.peak_concurrency > quotas.concurrent_chats:
        warnings.append(
            f"expected peak concurrency ~{p.peak_concurrency:,.0f} active chats exceeds the concurrent "
            f"active chats quota {quotas.concurrent_chats:,} "
            f"({quotas.sources.get('concurrent_chats', quotas.source)}) by "
            f"{p.peak_concurrency - quotas.concurrent_chats:,.0f}: concurrency throttling "
            "(LimitExceededException) is expected, which may be the point of the test; chats already open "
            "on the instance count too"
        )
    for op, rate in p.peak_call_rates.items():
        if op == START_CHAT:
            continue
        limits = DEFAULT_CONNECT_RATES if op in CONNECT_OPERATIONS else DEFAULT_PARTICIPANT_RATES
        limit = limits[op][0] if op in limits else None
        if limit is not None and rate > limit:
            warnings.append(
                f"{op} at ~{rate:g}/s exceeds AWS's default rate {limit:g}/s: expect ThrottlingException "
                f"on {op} (not read from Service Quotas; your account may differ)"
            )
    return warnings


def meta_quotas(reading: QuotaReading) -> dict[str, Any]:
    """The meta.json "quotas" entry (docs/internals.md), extended with per-figure sources and notes."""
    return {
        "source": reading.source,
        START_CHAT: {"rate": reading.start_chat_rate, "burst": reading.start_chat_burst},
        "concurrent_chats": reading.concurrent_chats,
        "sources": dict(reading.sources),
        "notes": list(reading.notes),
    }
