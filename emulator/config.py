"""Emulator configuration: the TOML file of architecture.md section 2, its defaults and live merges.

Every key is optional; the defaults are AWS's documented defaults (connect-facts.md) plus one
instance (DEFAULT_INSTANCE_ID) with one contact flow (DEFAULT_CONTACT_FLOW_ID).

    [emulator]  time_scale, unconnected_timeout_s, retention_s, throttle_message,
                participant_throttle_message, quota_message
    [rates]              Connect APIs, per (account, region, operation): {rate, burst}; "default" for others
    [participant_rates]  Participant Service, per (instance, operation): {rate, burst}
    [[instances]]        id, concurrent_chats, contact_flows

`merge_config(config, patch, source)` applies a JSON object of the same shape (PUT /_emulator/config):
tables merge key by key, instances merge by id (a new id adds an instance).
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from chatload import contracts
from chatload.contracts import DEFAULT_CONTACT_FLOW_ID, DEFAULT_INSTANCE_ID


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
_TOP_KEYS = ("emulator", "rates", "participant_rates", "instances")


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
    return replace(config, **changes)


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
    }
