"""Emulator configuration: the TOML file of architecture.md section 2, its defaults and live merges.

Every key is optional; the defaults are AWS's documented defaults (connect-facts.md) plus one
instance (DEFAULT_INSTANCE_ID) with one contact flow (DEFAULT_CONTACT_FLOW_ID).

    [emulator]  time_scale, unconnected_timeout_s, retention_s, throttle_message,
                participant_throttle_message, quota_message
    [rates]              Connect APIs, per (account, region, operation): {rate, burst}; "default" for others
    [participant_rates]  Participant Service, per (instance, operation): {rate, burst}
    [[instances]]        id, concurrent_chats, contact_flows
    [faults]             seed, no_answer_max_real_s; and a table per operation (or "default"):
                         latency, server_error_share, service_unavailable_share, reset_share,
                         no_answer_share, window (docs/emulator.md, "Fault injection")

`merge_config(config, patch, source)` applies a JSON object of the same shape (PUT /_emulator/config):
tables merge key by key, instances merge by id (a new id adds an instance). In `faults` (JSON only)
null removes: `"faults": null` every fault, `"faults": {"<op>": null}` one operation's table,
`"latency": null` / `"window": null` one key.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from chatload import contracts
from chatload.contracts import (
    CREATE_CONNECTION,
    DEFAULT_CONTACT_FLOW_ID,
    DEFAULT_INSTANCE_ID,
    DESCRIBE_CONTACT,
    DISCONNECT,
    GET_TRANSCRIPT,
    SEND_EVENT,
    SEND_MESSAGE,
    START_CHAT,
    STOP_CONTACT,
)

DEFAULT_GREETING = "Thanks for contacting us."
JOIN_DISTRIBUTIONS = ("fixed", "exponential")


class ConfigError(ValueError):
    """A bad configuration; the message is one line naming source, key and problem."""


@dataclass(frozen=True)
class Rate:
    rate: float
    burst: float


# AWS's documented defaults (chatload.contracts), as the emulator's rate records.
DEFAULT_RATES: dict[str, Rate] = {op: Rate(*limits) for op, limits in contracts.DEFAULT_CONNECT_RATES.items()}
DEFAULT_PARTICIPANT_RATES: dict[str, Rate] = {
    op: Rate(*limits) for op, limits in contracts.DEFAULT_PARTICIPANT_RATES.items()
}
DEFAULT_CONCURRENT_CHATS = contracts.DEFAULT_CONCURRENT_CHATS


@dataclass(frozen=True)
class Instance:
    id: str
    concurrent_chats: int = DEFAULT_CONCURRENT_CHATS
    contact_flows: tuple[str, ...] = (DEFAULT_CONTACT_FLOW_ID,)


# ---- fault injection ([faults]) -----------------------------------------------------------------

# The operations the emulator serves (faults can be set for each, or for "default").
FAULT_OPERATIONS = (
    START_CHAT,
    STOP_CONTACT,
    DESCRIBE_CONTACT,
    CREATE_CONNECTION,
    SEND_MESSAGE,
    SEND_EVENT,
    DISCONNECT,
    GET_TRANSCRIPT,
)
# share key -> the injected failure it draws (exclusive: at most one per request, drawn in this order)
FAULT_SHARES = {
    "server_error_share": "server_error",
    "service_unavailable_share": "service_unavailable",
    "reset_share": "reset",
    "no_answer_share": "no_answer",
}
LATENCY_DISTRIBUTIONS = ("fixed", "uniform", "lognormal")
_LATENCY_KEYS = {
    "fixed": ("distribution", "mean_ms", "max_ms"),
    "uniform": ("distribution", "mean_ms", "spread_ms", "max_ms"),
    "lognormal": ("distribution", "mean_ms", "sigma", "max_ms"),
}
_FAULT_KEYS = ("latency", *FAULT_SHARES, "window")
_FAULT_SETTINGS = ("seed", "no_answer_max_real_s")
DEFAULT_NO_ANSWER_MAX_REAL_S = 600.0
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


@dataclass(frozen=True)
class Latency:
    """Added latency in emulated milliseconds: fixed (mean_ms), uniform (mean_ms ± spread_ms) or
    lognormal (arithmetic mean mean_ms, log-space standard deviation sigma); capped at max_ms if set."""

    distribution: str = "fixed"
    mean_ms: float = 0.0
    spread_ms: float = 0.0
    sigma: float = 0.0
    max_ms: float | None = None


@dataclass(frozen=True)
class OperationFaults:
    """One [faults.<operation>] table. window = (start, end) in emulated seconds since the emulator
    started or was last reset; end may be math.inf; None = always."""

    latency: Latency | None = None
    server_error_share: float = 0.0
    service_unavailable_share: float = 0.0
    reset_share: float = 0.0
    no_answer_share: float = 0.0
    window: tuple[float, float] | None = None


@dataclass(frozen=True)
class Faults:
    """The [faults] table: RNG seed (None = random), the cap of a never-answered request (real
    seconds) and the tables by operation ("default" for every operation without its own)."""

    seed: int | None = None
    no_answer_max_real_s: float = DEFAULT_NO_ANSWER_MAX_REAL_S
    operations: Mapping[str, OperationFaults] = field(default_factory=dict)

    def for_operation(self, operation: str) -> OperationFaults | None:
        own = self.operations.get(operation)
        return own if own is not None else self.operations.get("default")


@dataclass(frozen=True)
class EmulatorConfig:
    time_scale: float = 1.0
    unconnected_timeout_s: float = 300.0
    retention_s: float = 3600.0
    throttle_message: str = "Rate exceeded"
    participant_throttle_message: str = "Rate exceeded"
    quota_message: str = "The limit of concurrent active chats for this instance has been exceeded."
    rates: Mapping[str, Rate] = field(default_factory=lambda: dict(DEFAULT_RATES))
    participant_rates: Mapping[str, Rate] = field(default_factory=lambda: dict(DEFAULT_PARTICIPANT_RATES))
    instances: Mapping[str, Instance] = field(
        default_factory=lambda: {DEFAULT_INSTANCE_ID: Instance(DEFAULT_INSTANCE_ID)}
    )
    faults: Faults = field(default_factory=Faults)
    # [flow]: the simulated contact flow's greeting (a SYSTEM message); "" = none
    flow_greeting: str = DEFAULT_GREETING
    flow_greeting_delay_s: float = 1.0
    # [agents]: a simulated agent (off unless agent_join is set): join delay (distribution, mean in
    # emulated seconds), think time before each reply (None = never replies), and the number of
    # exchanges after which the agent disconnects and the chat ends (0 = never)
    agent_join: tuple[str, float] | None = None
    agent_reply_think_s: float | None = None
    agent_end_after_exchanges: int = 0
    # [websocket]
    max_sockets_per_participant: int = 5

    def connect_rate(self, operation: str) -> Rate:
        return self.rates.get(operation) or self.rates.get("default") or DEFAULT_RATES["default"]

    def participant_rate(self, operation: str) -> Rate:
        return (
            self.participant_rates.get(operation)
            or self.participant_rates.get("default")
            or DEFAULT_PARTICIPANT_RATES["default"]
        )


_EMULATOR_NUMBERS = {
    "time_scale": (False, True),
    "unconnected_timeout_s": (True, False),
    "retention_s": (True, False),
}  # key -> (zero allowed, must be > 0)
_EMULATOR_STRINGS = ("throttle_message", "participant_throttle_message", "quota_message")
_TOP_KEYS = ("emulator", "rates", "participant_rates", "instances", "faults", "flow", "agents", "websocket")


def _fail(source: str, key: str, problem: str) -> ConfigError:
    return ConfigError(f"{source}: {key}: {problem}")


def _number(value: Any, source: str, key: str, *, zero_ok: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(source, key, f"must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
        raise _fail(source, key, f"must be {'>= 0' if zero_ok else '> 0'}, got {value}")
    return float(value)


def _table(value: Any, source: str, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(source, key, f"must be a table/object, got {type(value).__name__}")
    return value


def _rates(current: Mapping[str, Rate], patch: Any, source: str, section: str) -> dict[str, Rate]:
    out = dict(current)
    for op, spec in _table(patch, source, section).items():
        key = f"{section}.{op}"
        spec = _table(spec, source, key)
        unknown = set(spec) - {"rate", "burst"}
        if unknown:
            raise _fail(source, f"{key}.{sorted(unknown)[0]}", "unknown key (expected rate, burst)")
        old = out.get(op)
        rate = _number(spec["rate"], source, f"{key}.rate", zero_ok=True) if "rate" in spec else None
        burst = _number(spec["burst"], source, f"{key}.burst", zero_ok=True) if "burst" in spec else None
        if old is None and (rate is None or burst is None):
            raise _fail(source, key, "a new operation needs both rate and burst")
        out[op] = Rate(rate if rate is not None else old.rate, burst if burst is not None else old.burst)
    return out


def _instances(current: Mapping[str, Instance], patch: Any, source: str) -> dict[str, Instance]:
    if not isinstance(patch, list):
        raise _fail(source, "instances", f"must be a list of tables, got {type(patch).__name__}")
    out = dict(current)
    for i, item in enumerate(patch):
        where = f"instances[{i}]"
        item = _table(item, source, where)
        unknown = set(item) - {"id", "concurrent_chats", "contact_flows"}
        if unknown:
            raise _fail(
                source, f"{where}.{sorted(unknown)[0]}", "unknown key (expected id, concurrent_chats, contact_flows)"
            )
        ident = item.get("id")
        if not isinstance(ident, str) or not 1 <= len(ident) <= 100:
            raise _fail(source, f"{where}.id", "required, a string of 1..100 characters")
        inst = out.get(ident) or Instance(ident)
        if "concurrent_chats" in item:
            n = item["concurrent_chats"]
            if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                raise _fail(source, f"{where}.concurrent_chats", f"must be an integer >= 0, got {n!r}")
            inst = replace(inst, concurrent_chats=n)
        if "contact_flows" in item:
            flows = item["contact_flows"]
            if not isinstance(flows, list) or not all(isinstance(f, str) and 0 < len(f) <= 500 for f in flows):
                raise _fail(source, f"{where}.contact_flows", "must be a list of flow id strings (1..500 chars)")
            inst = replace(inst, contact_flows=tuple(flows))
        out[ident] = inst
    return out


def _share(value: Any, source: str, key: str) -> float:
    share = _number(value, source, key, zero_ok=True)
    if share > 1:
        raise _fail(source, key, f"must be a share between 0 and 1, got {value}")
    return share


def _duration(value: Any, source: str, key: str) -> float:
    """Seconds from a number or a string like "60s", "1.5m", "500ms", "2h"."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise _fail(source, key, f'must be a duration like 60, "60s", "1.5m", "500ms", got {value!r}')
        return float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(source, key, f'must be a duration (seconds, or a string like "60s"), got {type(value).__name__}')
    return _number(value, source, key, zero_ok=True)


def _window(value: Any, source: str, key: str) -> tuple[float, float]:
    if not isinstance(value, list | tuple) or not 1 <= len(value) <= 2:
        raise _fail(source, key, 'must be a list [start, end] or [start] of durations, e.g. ["60s", "90s"]')
    start = _duration(value[0], source, f"{key}[0]")
    end = _duration(value[1], source, f"{key}[1]") if len(value) == 2 else math.inf
    if end <= start:
        raise _fail(source, key, f"the end ({end:g} s) must be after the start ({start:g} s)")
    return start, end


def _latency(value: Any, source: str, key: str) -> Latency:
    spec = _table(value, source, key)
    distribution = spec.get("distribution", "fixed")
    if distribution not in LATENCY_DISTRIBUTIONS:
        raise _fail(
            source, f"{key}.distribution", f"must be one of {', '.join(LATENCY_DISTRIBUTIONS)}, got {distribution!r}"
        )
    allowed = _LATENCY_KEYS[distribution]
    for name in spec:
        if name not in allowed:
            everywhere = {k for keys in _LATENCY_KEYS.values() for k in keys}
            problem = f"not used by a {distribution} latency" if name in everywhere else "unknown key"
            raise _fail(source, f"{key}.{name}", f"{problem} (expected {', '.join(allowed)})")
    if "mean_ms" not in spec:
        raise _fail(source, f"{key}.mean_ms", "required (the latency's mean in emulated milliseconds)")
    mean = _number(spec["mean_ms"], source, f"{key}.mean_ms", zero_ok=distribution != "lognormal")
    spread = _number(spec.get("spread_ms", 0), source, f"{key}.spread_ms", zero_ok=True)
    if spread > mean:
        raise _fail(source, f"{key}.spread_ms", f"must be <= mean_ms ({mean:g}): a latency is never negative")
    sigma = _number(spec.get("sigma", 0), source, f"{key}.sigma", zero_ok=True)
    if distribution == "lognormal" and "sigma" not in spec:
        raise _fail(source, f"{key}.sigma", "required for a lognormal latency (log-space standard deviation)")
    if sigma > 5:
        raise _fail(source, f"{key}.sigma", f"must be <= 5, got {sigma:g}")
    max_ms = _number(spec["max_ms"], source, f"{key}.max_ms", zero_ok=True) if "max_ms" in spec else None
    return Latency(distribution, mean, spread, sigma, max_ms)


def _operation_faults(current: OperationFaults, patch: Any, source: str, key: str) -> OperationFaults:
    spec = _table(patch, source, key)
    changes: dict[str, Any] = {}
    for name, value in spec.items():
        where = f"{key}.{name}"
        if name not in _FAULT_KEYS:
            raise _fail(source, where, f"unknown key (expected one of {', '.join(_FAULT_KEYS)})")
        if value is None:  # JSON null (PUT): back to the default
            changes[name] = getattr(OperationFaults(), name)
        elif name == "latency":
            changes[name] = _latency(value, source, where)
        elif name == "window":
            changes[name] = _window(value, source, where)
        else:
            changes[name] = _share(value, source, where)
    merged = replace(current, **changes)
    total = sum(getattr(merged, share) for share in FAULT_SHARES)
    if total > 1 + 1e-9:
        raise _fail(source, key, f"the shares add up to {total:g}, more than 1")
    return merged


def _faults(current: Faults, patch: Any, source: str) -> Faults:
    if patch is None:  # JSON null (PUT): no faults at all
        return Faults()
    table = _table(patch, source, "faults")
    changes: dict[str, Any] = {}
    operations = dict(current.operations)
    for name, value in table.items():
        key = f"faults.{name}"
        if name == "seed":
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise _fail(source, key, f"must be an integer, got {value!r}")
            changes["seed"] = value
        elif name == "no_answer_max_real_s":
            changes[name] = _number(value, source, key, zero_ok=False)
        elif name in FAULT_OPERATIONS or name == "default":
            if value is None:
                operations.pop(name, None)
            else:
                operations[name] = _operation_faults(operations.get(name, OperationFaults()), value, source, key)
        else:
            operations_list = ", ".join(["default", *FAULT_OPERATIONS])
            raise _fail(
                source, key, f"unknown key (expected {', '.join(_FAULT_SETTINGS)} or an operation: {operations_list})"
            )
    return replace(current, operations=operations, **changes)


def _faults_to_dict(faults: Faults) -> dict[str, Any]:
    out: dict[str, Any] = {"no_answer_max_real_s": faults.no_answer_max_real_s}
    if faults.seed is not None:
        out["seed"] = faults.seed
    for op, spec in faults.operations.items():
        table: dict[str, Any] = {}
        if spec.latency is not None:
            lat = spec.latency
            latency: dict[str, Any] = {"distribution": lat.distribution, "mean_ms": lat.mean_ms}
            if lat.distribution == "uniform":
                latency["spread_ms"] = lat.spread_ms
            if lat.distribution == "lognormal":
                latency["sigma"] = lat.sigma
            if lat.max_ms is not None:
                latency["max_ms"] = lat.max_ms
            table["latency"] = latency
        for share in FAULT_SHARES:
            table[share] = getattr(spec, share)
        if spec.window is not None:
            start, end = spec.window
            table["window"] = [start] if math.isinf(end) else [start, end]
        out[op] = table
    return out


def merge_config(config: EmulatorConfig, patch: Any, source: str = "config") -> EmulatorConfig:
    """Return `config` with `patch` (the TOML file's shape, as a dict) merged in; raises ConfigError."""
    patch = _table(patch, source, "(top level)")
    unknown = set(patch) - set(_TOP_KEYS)
    if unknown:
        raise _fail(source, sorted(unknown)[0], f"unknown key (expected one of {', '.join(_TOP_KEYS)})")
    changes: dict[str, Any] = {}
    if "emulator" in patch:
        emu = _table(patch["emulator"], source, "emulator")
        for key, value in emu.items():
            if key in _EMULATOR_NUMBERS:
                zero_ok, _ = _EMULATOR_NUMBERS[key]
                changes[key] = _number(value, source, f"emulator.{key}", zero_ok=zero_ok)
            elif key in _EMULATOR_STRINGS:
                if not isinstance(value, str) or not value:
                    raise _fail(source, f"emulator.{key}", "must be a non-empty string")
                changes[key] = value
            else:
                known = ", ".join([*_EMULATOR_NUMBERS, *_EMULATOR_STRINGS])
                raise _fail(source, f"emulator.{key}", f"unknown key (expected one of {known})")
    if "rates" in patch:
        changes["rates"] = _rates(config.rates, patch["rates"], source, "rates")
    if "participant_rates" in patch:
        changes["participant_rates"] = _rates(
            config.participant_rates, patch["participant_rates"], source, "participant_rates"
        )
    if "instances" in patch:
        changes["instances"] = _instances(config.instances, patch["instances"], source)
    if "flow" in patch:
        changes.update(_flow(patch["flow"], source))
    if "agents" in patch:
        changes.update(_agents(patch["agents"], source))
    if "websocket" in patch:
        for key, value in _table(patch["websocket"], source, "websocket").items():
            if key != "max_sockets_per_participant":
                raise _fail(source, f"websocket.{key}", "unknown key (expected max_sockets_per_participant)")
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise _fail(source, f"websocket.{key}", f"must be an integer >= 1, got {value!r}")
            changes[key] = value
    if "faults" in patch:  # a new Faults object (even an equal one) tells the store to re-seed its RNG
        changes["faults"] = _faults(config.faults, patch["faults"], source)
    return replace(config, **changes)


def _flow(patch: Any, source: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in _table(patch, source, "flow").items():
        if key == "greeting":
            if not isinstance(value, str):
                raise _fail(source, "flow.greeting", 'must be a string ("" = no greeting)')
            out["flow_greeting"] = value
        elif key == "greeting_delay":
            out["flow_greeting_delay_s"] = _duration(value, source, "flow.greeting_delay")
        else:
            raise _fail(source, f"flow.{key}", "unknown key (expected greeting, greeting_delay)")
    return out


def _agents(patch: Any, source: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in _table(patch, source, "agents").items():
        if key == "join":
            if value is None or value is False:
                out["agent_join"] = None
                continue
            spec = _table(value, source, "agents.join")
            unknown = set(spec) - {"distribution", "mean"}
            if unknown:
                raise _fail(source, f"agents.join.{sorted(unknown)[0]}", "unknown key (expected distribution, mean)")
            distribution = spec.get("distribution", "fixed")
            if distribution not in JOIN_DISTRIBUTIONS:
                raise _fail(source, "agents.join.distribution", f"must be one of {', '.join(JOIN_DISTRIBUTIONS)}")
            out["agent_join"] = (distribution, _duration(spec.get("mean", 0), source, "agents.join.mean"))
        elif key == "reply_think":
            out["agent_reply_think_s"] = (
                None if value is None or value is False else _duration(value, source, "agents.reply_think")
            )
        elif key == "end_after_exchanges":
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise _fail(source, "agents.end_after_exchanges", f"must be an integer >= 0, got {value!r}")
            out["agent_end_after_exchanges"] = value
        else:
            raise _fail(source, f"agents.{key}", "unknown key (expected join, reply_think, end_after_exchanges)")
    return out


def config_from_dict(data: Any, source: str = "config") -> EmulatorConfig:
    """The built-in default with `data` merged in. A file that lists instances replaces the default one."""
    base = EmulatorConfig()
    if isinstance(data, Mapping) and "instances" in data:
        base = replace(base, instances={})
    return merge_config(base, data, source)


def load_config(path: Path | str | None) -> EmulatorConfig:
    """Read a TOML config file (None = the built-in default). Raises ConfigError, one line."""
    if path is None:
        return EmulatorConfig()
    source = str(path)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{source}: file not found") from None
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML ({exc})") from None
    return config_from_dict(data, source)


def _agents_to_dict(config: EmulatorConfig) -> dict[str, Any]:
    """[agents] as a dict; keys that are off (None) are left out (TOML has no null)."""
    out: dict[str, Any] = {"end_after_exchanges": config.agent_end_after_exchanges}
    if config.agent_join is not None:
        out["join"] = {"distribution": config.agent_join[0], "mean": config.agent_join[1]}
    if config.agent_reply_think_s is not None:
        out["reply_think"] = config.agent_reply_think_s
    return out


def config_to_dict(config: EmulatorConfig) -> dict[str, Any]:
    """The configuration in the TOML file's shape (JSON-able)."""
    return {
        "emulator": {
            "time_scale": config.time_scale,
            "unconnected_timeout_s": config.unconnected_timeout_s,
            "retention_s": config.retention_s,
            "throttle_message": config.throttle_message,
            "participant_throttle_message": config.participant_throttle_message,
            "quota_message": config.quota_message,
        },
        "rates": {op: {"rate": r.rate, "burst": r.burst} for op, r in config.rates.items()},
        "participant_rates": {op: {"rate": r.rate, "burst": r.burst} for op, r in config.participant_rates.items()},
        "instances": [
            {"id": i.id, "concurrent_chats": i.concurrent_chats, "contact_flows": list(i.contact_flows)}
            for i in config.instances.values()
        ],
        "faults": _faults_to_dict(config.faults),
        "flow": {"greeting": config.flow_greeting, "greeting_delay": config.flow_greeting_delay_s},
        "agents": _agents_to_dict(config),
        "websocket": {"max_sockets_per_participant": config.max_sockets_per_participant},
    }
