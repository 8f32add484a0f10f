"""The scenario model: immutable dataclasses of a validated scenario and the figures derived from it.

Pure (no locust, gevent or boto3). `harness.scenario` is the public face; files are read by
`harness.scenario_load`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from statistics import NormalDist
from typing import Any, Literal

from chatload.contracts import DEFAULT_CONTACT_FLOW_ID, DEFAULT_INSTANCE_ID, DEFAULT_REGION, UNIFORM

RAMPS = ("step", "linear")
DISTRIBUTIONS = ("fixed", "exponential", "lognormal")
END_BY = ("disconnect", "stop_contact")
PERSISTENT = ("ENTIRE_PAST_SESSION", "FROM_SEGMENT")
TARGET_KINDS = ("emulator", "aws")
CONTENT_TYPES = ("text/plain", "text/markdown", "application/json")
EMULATOR_CONFIG_KEYS = ("emulator", "rates", "participant_rates", "instances")

# Connect ends a chat whose customer has not called CreateParticipantConnection within 5 minutes.
CONNECT_DEADLINE_S = 300.0
# Safety defaults for a real instance (issue 8): what a new account's quotas allow, and a kill switch.
AWS_DEFAULT_MAX_RATE = 5.0
AWS_DEFAULT_MAX_CHATS = 500
AWS_DEFAULT_MAX_ERROR_SHARE = 0.1
# Pool sizing (Little's law): users = peak rate x chat life x headroom.
CALL_ALLOWANCE_S = 0.5  # per HTTP attempt
RETRY_BACKOFF_CAP_S = 20.0  # botocore's maximum backoff between attempts
POOL_HEADROOM = 1.25
POOL_SPREAD_Z = 4.0  # standard deviations of the busy-customer count kept free


@dataclass(frozen=True)
class Stage:
    """A stretch of the run at one target arrival rate (chats/s).

    step: target_rate for the whole stage. linear: the rate moves from start_rate (default: the
    previous stage's target_rate, 0 for the first; load_scenario fills it in) to target_rate.
    """

    name: str
    duration_s: float
    target_rate: float
    ramp: Literal["step", "linear"] = "step"
    start_rate: float | None = None


@dataclass(frozen=True)
class HoldTime:
    """How long a customer keeps the chat open after its messages, before ending it.

    fixed: always mean_s. exponential: mean mean_s. lognormal: mean mean_s, sigma the standard
    deviation of the logarithm (mu = ln(mean_s) - sigma²/2). Every draw is capped at max_s.
    """

    distribution: Literal["fixed", "exponential", "lognormal"]
    mean_s: float
    sigma: float = 0.5
    max_s: float | None = None

    def quantile(self, q: float) -> float:
        """The q-quantile of the hold time (0 < q < 1), capped at max_s."""
        if self.distribution == "fixed" or self.mean_s <= 0:
            value = self.mean_s
        elif self.distribution == "exponential":
            value = -self.mean_s * math.log(1 - q)
        else:
            mu = math.log(self.mean_s) - self.sigma**2 / 2
            value = math.exp(mu + self.sigma * NormalDist().inv_cdf(q))
        return value if self.max_s is None else min(value, self.max_s)

    def expected(self) -> float:
        """The mean hold time after the cap at max_s (E[min(X, max_s)])."""
        mean, cap = self.mean_s, self.max_s
        if cap is None or self.distribution == "fixed" or mean <= 0:
            return mean if cap is None else min(mean, cap)
        if self.distribution == "exponential":
            return mean * (1 - math.exp(-cap / mean))
        mu = math.log(mean) - self.sigma**2 / 2
        normal = NormalDist()
        below = mean * normal.cdf((math.log(cap) - mu - self.sigma**2) / self.sigma)
        return below + cap * (1 - normal.cdf((math.log(cap) - mu) / self.sigma))

    def sample(self, rng: random.Random) -> float:
        """One hold time in seconds, drawn with `rng`."""
        if self.distribution == "fixed" or self.mean_s <= 0:
            value = self.mean_s
        elif self.distribution == "exponential":
            value = rng.expovariate(1 / self.mean_s)
        else:
            value = rng.lognormvariate(math.log(self.mean_s) - self.sigma**2 / 2, self.sigma)
        return value if self.max_s is None else min(value, self.max_s)


@dataclass(frozen=True)
class ChatLife:
    """What each simulated customer does after StartChatContact."""

    connect: bool = True
    connect_delay_s: float = 0.0
    messages: int = 0
    message_interval_s: float = 1.0
    message_content_type: str = "text/plain"
    hold: HoldTime = HoldTime("fixed", 0.0)
    end_by: Literal["disconnect", "stop_contact"] = "disconnect"
    persistent: Literal["ENTIRE_PAST_SESSION", "FROM_SEGMENT"] | None = None
    chat_duration_minutes: int | None = None
    # The Participant Service websocket (harness/websocket.py): connect, subscribe, heartbeat, read
    # every frame; websocket_wait_s is how long a frame may take before its row is a timeout. On by
    # default: every customer that connects holds its chat's socket (none without connect);
    # websocket = false keeps the HTTP-only chat.
    websocket: bool = True
    websocket_wait_s: float = 10.0


@dataclass(frozen=True)
class RetryPolicy:
    """The SDK's retries; "off" means mode standard with 1 attempt (every 429 seen raw)."""

    mode: str = "off"  # one of chatload.contracts.RETRY_MODES
    max_attempts: int = 1


@dataclass(frozen=True)
class Target:
    kind: Literal["emulator", "aws"] = "emulator"
    region: str = DEFAULT_REGION
    instance_id: str = DEFAULT_INSTANCE_ID
    contact_flow_id: str = DEFAULT_CONTACT_FLOW_ID
    endpoint_url: str | None = None
    emulator_config: dict[str, Any] = field(default_factory=dict)  # merged via PUT /_emulator/config
    confirm: bool = False


@dataclass(frozen=True)
class Thresholds:
    """Pass/fail limits on StartChatContact calls; shares are fractions 0..1 of those calls."""

    max_p95_ms: float | None = None
    max_p99_ms: float | None = None
    min_success_share: float | None = None
    max_dropped_share: float = 0.01
    max_outcome_share: dict[str, float] = field(default_factory=dict)
    regression: dict[str, float] = field(default_factory=dict)  # [thresholds.regression]: against a baseline run
    # chat experience (the customer's websocket rows): ok MessageDelivery p95, ok FirstResponse p95
    max_message_delivery_p95_ms: float | None = None
    max_first_response_p95_s: float | None = None


@dataclass(frozen=True)
class Safety:
    """Caps for real instances: chats per run, arrival rate, and the unexpected-error kill switch."""

    max_chats: int | None = None
    max_rate: float | None = None
    max_error_share: float | None = None


@dataclass(frozen=True)
class Replay:
    """A recorded day replayed as the scenario's stages (harness/scenario/replay.py)."""

    file: str  # as the scenario gives it (relative to the scenario file)
    path: str  # the file read
    scale: float = 1.0  # every recorded count is multiplied by this
    speed: float = 1.0  # recorded seconds per real second
    window: tuple[str, str] | None = None
    interval_s: float | None = None  # contact records: recorded seconds per interval
    shape: str = "intervals"  # "intervals" or "contacts"
    wall_clock: bool = True  # recorded times are dates and times (epoch seconds), not plain seconds
    intervals: tuple[tuple[float, float, float], ...] = ()  # (recorded start, length s, chats as recorded)


@dataclass(frozen=True)
class Arrivals:
    """How arrivals are spaced within each stage, and where the stages come from."""

    process: str = UNIFORM  # one of chatload.contracts.ARRIVAL_PROCESSES
    seed: int | None = None  # Poisson: None = a fresh seed, drawn when the run starts
    replay: Replay | None = None


@dataclass(frozen=True)
class Scenario:
    name: str
    purpose: str
    path: str | None
    stages: tuple[Stage, ...]
    chat: ChatLife = ChatLife()
    retry: RetryPolicy = RetryPolicy()
    target: Target = field(default_factory=Target)
    thresholds: Thresholds = field(default_factory=Thresholds)
    safety: Safety = Safety()
    users: int | None = None  # pool size; None = pool_size() computes it
    rate_multiplier: float = 1.0  # already applied to the stages' rates
    arrivals: Arrivals = Arrivals()

    @property
    def duration_s(self) -> float:
        return sum(stage.duration_s for stage in self.stages)


def plain_data(value: Any) -> Any:
    """A deep copy made of dicts, lists and scalars (TOML dates become ISO strings): JSON-able."""
    if isinstance(value, Mapping):
        return {str(k): plain_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_data(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


# ------------------------------------------------------------------ derived figures


def stage_rates(stages: tuple[Stage, ...]) -> list[tuple[float, float]]:
    """(start rate, end rate) of each stage, with a linear stage's default start filled in."""
    rates = []
    previous = 0.0
    for stage in stages:
        if stage.ramp == "linear":
            start = previous if stage.start_rate is None else stage.start_rate
        else:
            start = stage.target_rate
        rates.append((start, stage.target_rate))
        previous = stage.target_rate
    return rates


def peak_rate(s: Scenario) -> float:
    """The highest arrival rate (chats/s) of the scenario."""
    return max(max(pair) for pair in stage_rates(s.stages))


def planned_chats(s: Scenario) -> float:
    """Chats the schedule starts over the whole run (the integral of the rate)."""
    return sum((a + b) / 2 * stage.duration_s for (a, b), stage in zip(stage_rates(s.stages), s.stages, strict=True))


def _calls_per_chat(chat: ChatLife) -> int:
    return 1 + (1 if chat.connect else 0) + chat.messages + 1


def chat_life_s(s: Scenario) -> float:
    """Mean seconds one simulated customer is busy with a chat:

        connect delay + messages x message interval + mean hold (after the cap)
        + calls per chat x (CALL_ALLOWANCE_S per attempt + the SDK's backoff between attempts)

    Calls per chat: StartChatContact, CreateParticipantConnection (when connecting), one per
    message, and the ending call. Backoff: 1, 2, 4, ... s between attempts, at most 20 s each.
    """
    chat = s.chat
    attempts = s.retry.max_attempts
    backoff = sum(min(2.0**i, RETRY_BACKOFF_CAP_S) for i in range(attempts - 1))
    per_call = CALL_ALLOWANCE_S * attempts + backoff
    return _talk_s(chat) + chat.hold.expected() + _calls_per_chat(chat) * per_call


def _talk_s(chat: ChatLife) -> float:
    delay = chat.connect_delay_s if chat.connect else 0.0
    return delay + chat.messages * chat.message_interval_s


def expected_active_chats(s: Scenario) -> float:
    """Active chats at the peak rate in steady state: Little's law, peak rate x (connect delay +
    messages x interval + mean hold), without call latencies (an upper bound for slower stages)."""
    return peak_rate(s) * (_talk_s(s.chat) + s.chat.hold.expected())


def pool_size(s: Scenario) -> int:
    """Locust users needed so that every arrival finds a free user (no dropped arrivals).

    `users` when the scenario sets it. Otherwise, with m = peak rate x chat_life_s (Little's law:
    the mean number of busy customers at the peak), ceil(m x POOL_HEADROOM + POOL_SPREAD_Z x sqrt(m)),
    at least 1. The busy count of an infinite-server queue is Poisson with mean m whatever the hold
    distribution, so z = 4 standard deviations leave a free user almost always; the headroom covers
    a target that answers slower than the allowance.
    """
    if s.users is not None:
        return s.users
    busy = peak_rate(s) * chat_life_s(s)
    return max(1, math.ceil(busy * POOL_HEADROOM + POOL_SPREAD_Z * math.sqrt(busy)))


def scenario_to_dict(s: Scenario) -> dict[str, Any]:
    """The resolved scenario as JSON-able data (meta.json["scenario"])."""
    hold = s.chat.hold
    return {
        "name": s.name,
        "purpose": s.purpose,
        "path": s.path,
        "rate_multiplier": s.rate_multiplier,
        "duration_s": s.duration_s,
        "peak_rate": peak_rate(s),
        "planned_chats": planned_chats(s),
        "users": pool_size(s),
        "users_from": "scenario" if s.users is not None else "computed",
        "stages": [
            {
                "name": st.name,
                "duration_s": st.duration_s,
                "target_rate": st.target_rate,
                "ramp": st.ramp,
                "start_rate": st.start_rate,
            }
            for st in s.stages
        ],
        "chat": {
            "connect": s.chat.connect,
            "connect_delay_s": s.chat.connect_delay_s,
            "messages": s.chat.messages,
            "message_interval_s": s.chat.message_interval_s,
            "message_content_type": s.chat.message_content_type,
            "hold": {
                "distribution": hold.distribution,
                "mean_s": hold.mean_s,
                "sigma": hold.sigma,
                "max_s": hold.max_s,
            },
            "end_by": s.chat.end_by,
            "persistent": s.chat.persistent,
            "chat_duration_minutes": s.chat.chat_duration_minutes,
            "websocket": s.chat.connect and s.chat.websocket,  # held only by a customer that connects
            "websocket_wait_s": s.chat.websocket_wait_s,
        },
        "retry": {"mode": s.retry.mode, "max_attempts": s.retry.max_attempts},
        "target": {
            "kind": s.target.kind,
            "region": s.target.region,
            "instance_id": s.target.instance_id,
            "contact_flow_id": s.target.contact_flow_id,
            "endpoint_url": s.target.endpoint_url,
            "emulator_config": plain_data(s.target.emulator_config),
            "confirm": s.target.confirm,
        },
        "thresholds": {
            "max_p95_ms": s.thresholds.max_p95_ms,
            "max_p99_ms": s.thresholds.max_p99_ms,
            "min_success_share": s.thresholds.min_success_share,
            "max_dropped_share": s.thresholds.max_dropped_share,
            "max_outcome_share": dict(s.thresholds.max_outcome_share),
            "max_message_delivery_p95_ms": s.thresholds.max_message_delivery_p95_ms,
            "max_first_response_p95_s": s.thresholds.max_first_response_p95_s,
            "regression": dict(s.thresholds.regression),
        },
        "safety": {
            "max_chats": s.safety.max_chats,
            "max_rate": s.safety.max_rate,
            "max_error_share": s.safety.max_error_share,
        },
        "arrivals": arrivals_to_dict(s.arrivals),
    }


def arrivals_to_dict(arrivals: Arrivals) -> dict[str, Any]:
    """meta.json["scenario"]["arrivals"]: the process, the seed, and the replayed recording."""
    replay = arrivals.replay
    return {
        "process": arrivals.process,
        "seed": arrivals.seed if arrivals.process != UNIFORM else None,
        "replay": None
        if replay is None
        else {
            "file": replay.file,
            "shape": replay.shape,
            "scale": replay.scale,
            "speed": replay.speed,
            "window": None if replay.window is None else list(replay.window),
            "interval_s": replay.interval_s,
            "wall_clock": replay.wall_clock,
            "intervals": [list(interval) for interval in replay.intervals],
        },
    }


def with_rate_multiplier(s: Scenario, factor: float) -> Scenario:
    """`s` with every stage's rates multiplied by `factor` (on top of any multiplier already applied)."""
    if not (math.isfinite(factor) and factor > 0):
        raise ValueError(f"rate multiplier must be a number > 0, got {factor}")
    resolved = [
        replace(st, target_rate=b * factor, start_rate=a * factor if st.ramp == "linear" else None)
        for (a, b), st in zip(stage_rates(s.stages), s.stages, strict=True)
    ]
    return replace(s, stages=tuple(resolved), rate_multiplier=s.rate_multiplier * factor)
