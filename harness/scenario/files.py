"""Reading scenario files: TOML → validated `Scenario`, with one-line errors (`FILE: KEY: problem`).

Pure (no locust, gevent or boto3). Every key of the format is documented in docs/scenarios.md.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

from chatload.contracts import (
    ARRIVAL_PROCESSES,
    DEFAULT_ATTEMPTS,
    DEFAULT_CONTACT_FLOW_ID,
    DEFAULT_INSTANCE_ID,
    DEFAULT_REGION,
    OUTCOMES,
    POISSON,
    REGRESSION_KEYS,
    RETRY_MODES,
    UNIFORM,
)
from chatload.harness.scenario.duration import format_duration, parse_duration
from chatload.harness.scenario.model import (
    AWS_DEFAULT_MAX_CHATS,
    AWS_DEFAULT_MAX_ERROR_SHARE,
    AWS_DEFAULT_MAX_RATE,
    CONNECT_DEADLINE_S,
    CONTENT_TYPES,
    DISTRIBUTIONS,
    EMULATOR_CONFIG_KEYS,
    END_BY,
    PERSISTENT,
    RAMPS,
    TARGET_KINDS,
    Arrivals,
    ChatLife,
    HoldTime,
    Replay,
    RetryPolicy,
    Safety,
    Scenario,
    Stage,
    Target,
    Thresholds,
    plain_data,
)
from chatload.harness.scenario.replay import ReplayError, read_recording, replay_stages
from chatload.harness.scenario.schema import Table, scenario_error, show, suggestion

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d+")

# ------------------------------------------------------------------ loading


def load_scenario(
    path: str | Path, rate_multiplier: float = 1.0, overrides: Mapping[str, Any] | None = None
) -> Scenario:
    """Read and validate a scenario file; every rate is multiplied by `rate_multiplier`.

    `overrides` maps dotted keys of the file's layout to values applied before validation, e.g.
    {"target.kind": "aws", "retry.mode": "standard"} (tables merge, other values replace).
    Raises ScenarioError (one line: file, key, problem) for any mistake, TOML syntax included.
    """
    label = str(path)
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as exc:
        raise scenario_error(label, "", f"cannot read the file: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise scenario_error(label, "", "not UTF-8 text; save the file as UTF-8") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise scenario_error(label, "", _syntax_problem(str(exc))) from None
    raw = _with_overrides(raw, overrides or {})
    return _build(raw, label, Path(path).stem, _first_comment(text), label, rate_multiplier)


def adhoc_scenario(rate: float, duration_s: float, hold_s: float = 0.0, **overrides: Any) -> Scenario:
    """The scenario of `chatload run --rate R --duration D --hold H`: one step stage named "flat".

    Keyword overrides use the file's layout: top-level keys (`chat={"messages": 2}`, `users=20`,
    `target={"kind": "aws", ...}`) or dotted keys (`**{"retry.mode": "standard"}`).
    """
    raw: dict[str, Any] = {
        "name": "adhoc",
        "purpose": f"ad-hoc run: {rate:g} chats/s for {_fmt(duration_s)}, hold {_fmt(hold_s)}",
        "stages": [{"name": "flat", "duration": duration_s, "target_rate": rate}],
        "chat": {"hold": {"distribution": "fixed", "mean": hold_s}},
    }
    raw = _with_overrides(raw, overrides)
    return _build(raw, "command line", "adhoc", "", None, 1.0)


def _fmt(seconds: Any) -> str:
    try:
        return format_duration(parse_duration(seconds))
    except ValueError:
        return show(seconds)


def _syntax_problem(message: str) -> str:
    found = re.search(r"\(at line (\d+), column (\d+)\)", message)
    if found:
        detail = message[: found.start()].strip()
        return f"line {found.group(1)}, column {found.group(2)}: TOML syntax error: {detail}"
    return f"TOML syntax error: {message}"


def _first_comment(text: str) -> str:
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            return stripped.lstrip("#").strip()
    return ""


def _with_overrides(raw: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    result = dict(raw)
    for dotted, value in overrides.items():
        *parents, last = dotted.split(".")
        table = result
        for part in parents:
            inner = table.get(part)
            inner = dict(inner) if isinstance(inner, Mapping) else {}
            table[part] = inner
            table = inner
        if isinstance(value, Mapping) and isinstance(table.get(last), Mapping):
            table[last] = _deep_merge(table[last], value)
        else:
            table[last] = value
    return result


def _deep_merge(base: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in patch.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _build(
    raw: Mapping[str, Any], label: str, stem: str, comment: str, path: str | None, rate_multiplier: float
) -> Scenario:
    if isinstance(rate_multiplier, bool) or not (
        isinstance(rate_multiplier, int | float) and math.isfinite(rate_multiplier) and rate_multiplier > 0
    ):
        raise scenario_error(label, "rate multiplier", f"must be a number > 0, got {show(rate_multiplier)}")
    top = Table(label, "", raw)
    top.check_keys(
        ("name", "purpose", "users", "stages", "arrivals", "chat", "retry", "target", "thresholds", "safety")
    )
    default_name = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-._") or "scenario"
    name = top.string("name", default_name)
    if not _NAME.fullmatch(name):
        top.fail("name", f"use letters, digits, '.', '_' and '-' (up to 64, it names run folders), got {show(name)}")
    purpose = top.string("purpose", comment or "", max_length=300)
    if top.has("stages") and top.table("arrivals").has("replay"):
        top.fail("stages", "give either [[stages]] or [arrivals] replay, not both (a replay makes the stages)")
    arrivals, replayed = _arrivals(top, path)
    if replayed is None:
        stages = _stages(top, rate_multiplier)
    else:
        stages = tuple(replace(stage, target_rate=stage.target_rate * rate_multiplier) for stage in replayed)
    chat = _chat(top.table("chat"))
    retry = _retry(top.table("retry"))
    target = _target(top.table("target"))
    return Scenario(
        name=name,
        purpose=purpose,
        path=path,
        stages=stages,
        chat=chat,
        retry=retry,
        target=target,
        thresholds=_thresholds(top.table("thresholds")),
        safety=_safety(top.table("safety"), target.kind),
        users=top.integer("users", None, minimum=1, maximum=100_000),
        rate_multiplier=float(rate_multiplier),
        arrivals=arrivals,
    )


def _arrivals(top: Table, path: str | None) -> tuple[Arrivals, tuple[Stage, ...] | None]:
    """[arrivals]: the process and its seed, or a recorded day (replay) that makes the stages."""
    table = top.table("arrivals")
    table.check_keys(("process", "seed", "replay", "scale", "speed", "window", "interval"))
    file = table.string("replay", None, max_length=1000)
    process = table.string("process", POISSON if file is not None else UNIFORM, choices=ARRIVAL_PROCESSES)
    seed = table.integer("seed", None, minimum=0, maximum=2**63 - 1)
    assert process is not None
    if file is None:
        for key in ("scale", "speed", "window", "interval"):
            if table.has(key):
                table.fail(key, 'only with replay = "FILE.csv" (a recorded day to replay)')
        return Arrivals(process, seed), None
    scale = table.number("scale", 1.0, above=0, maximum=1e6)
    speed = table.number("speed", 1.0, above=0, maximum=1e7)
    interval = table.duration("interval", None, above=0)
    window = None
    if table.has("window"):
        value = table.data["window"]
        if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str | int | float) for v in value)):
            table.fail(
                "window",
                f'must be [START, END], e.g. ["2025-11-28T08:00:00Z", "2025-11-28T20:00:00Z"], got {show(value)}',
            )
        window = (str(plain_data(value[0])), str(plain_data(value[1])))
    where = Path(path).parent if path is not None else Path.cwd()
    csv_path = Path(file).expanduser()
    csv_path = csv_path if csv_path.is_absolute() else where / csv_path
    assert scale is not None and speed is not None
    try:
        recording = read_recording(csv_path, window=window, interval_s=interval, shown=file)
        stages = replay_stages(recording, scale=scale, speed=speed)
    except ReplayError as exc:
        table.fail("replay", str(exc))
    replay = Replay(
        file=file,
        path=str(csv_path),
        scale=scale,
        speed=speed,
        window=window,
        interval_s=interval,
        shape=recording.shape,
        wall_clock=recording.wall_clock,
        intervals=tuple((i.start, i.length_s, i.chats) for i in recording.intervals),
    )
    return Arrivals(process, seed, replay), stages


def _stages(top: Table, multiplier: float) -> tuple[Stage, ...]:
    stages: list[Stage] = []
    seen: dict[str, int] = {}
    previous_rate = 0.0
    for index, table in enumerate(top.tables("stages")):
        table.check_keys(("name", "duration", "target_rate", "ramp", "start_rate"))
        name = table.string("name", f"stage-{index + 1}", max_length=100)
        if name in seen:
            table.fail("name", f"{show(name)} is already the name of stages[{seen[name]}]; names must differ")
        seen[name] = index
        table.required("duration", 'duration = "30s"')
        table.required("target_rate", "target_rate = 2, in chats per second")
        duration = table.duration("duration", above=0)
        rate = table.number("target_rate", minimum=0, maximum=100_000, unit=" (chats/s)")
        ramp = table.string("ramp", "step", choices=RAMPS)
        start = table.number("start_rate", None, minimum=0, maximum=100_000, unit=" (chats/s)")
        if start is not None and ramp != "linear":
            table.fail("start_rate", 'only for ramp = "linear" (a step stage runs at target_rate throughout)')
        if ramp == "linear" and start is None:
            start = previous_rate
        assert duration is not None and rate is not None
        stages.append(Stage(name, duration, rate * multiplier, ramp, None if start is None else start * multiplier))
        previous_rate = rate
    if all(s.target_rate == 0 and not s.start_rate for s in stages):
        top.fail("stages", "every stage has target_rate 0; at least one must start chats")
    return tuple(stages)


def _hold(chat: Table) -> HoldTime:
    value = chat.data.get("hold")
    if value is None:
        return HoldTime("fixed", 0.0)
    if not isinstance(value, Mapping):  # shorthand: hold = "10s" is a fixed hold
        seconds = chat.duration("hold")
        assert seconds is not None
        return HoldTime("fixed", seconds)
    hold = chat.table("hold")
    hold.check_keys(("distribution", "mean", "sigma", "max"))
    distribution = hold.string("distribution", "fixed", choices=DISTRIBUTIONS)
    hold.required("mean", 'mean = "10s"')
    mean = hold.duration("mean") if distribution == "fixed" else hold.duration("mean", above=0)
    if hold.has("sigma") and distribution != "lognormal":
        hold.fail("sigma", 'only for distribution = "lognormal"')
    sigma = hold.number("sigma", 0.5, above=0, maximum=3)
    maximum = hold.duration("max", None, above=0)
    assert mean is not None and sigma is not None
    if maximum is not None and maximum < mean:
        hold.fail("max", f"must be at least the mean ({mean:g} s), got {show(hold.data['max'])}")
    return HoldTime(distribution, mean, sigma, maximum)  # type: ignore[arg-type]


def _chat(chat: Table) -> ChatLife:
    chat.check_keys(
        (
            "connect",
            "connect_delay",
            "messages",
            "message_interval",
            "message_content_type",
            "hold",
            "end_by",
            "persistent",
            "chat_duration_minutes",
            "websocket",
            "websocket_wait",
        )
    )
    connect = chat.boolean("connect", True)
    delay = chat.duration(
        "connect_delay",
        0.0,
        below=CONNECT_DEADLINE_S,
        why=" (Connect requires CreateParticipantConnection within 5 minutes of StartChatContact,"
        " or the chat ends unconnected)",
    )
    messages = chat.integer("messages", 0, minimum=0, maximum=1000)
    if messages and not connect:
        chat.fail("messages", "needs connect = true (messages are sent over the participant connection)")
    interval = chat.duration("message_interval", 1.0)
    content_type = chat.string("message_content_type", "text/plain", choices=CONTENT_TYPES)
    end_by = chat.string("end_by", "disconnect" if connect else "stop_contact", choices=END_BY)
    if end_by == "disconnect" and not connect:
        chat.fail("end_by", '"disconnect" needs connect = true (it uses the connection token); use "stop_contact"')
    persistent = chat.string("persistent", None, choices=PERSISTENT)
    minutes = chat.integer("chat_duration_minutes", None, minimum=60, maximum=10080)
    # On by default for a customer that connects; without connect there is no socket, and only an
    # explicit websocket = true asks for one.
    websocket = chat.boolean("websocket", connect)
    if websocket and not connect:
        chat.fail("websocket", "needs connect = true (CreateParticipantConnection hands out the socket's URL)")
    websocket_wait = chat.duration("websocket_wait", 10.0, above=0.0, below=CONNECT_DEADLINE_S)
    assert delay is not None and messages is not None and interval is not None and websocket_wait is not None
    return ChatLife(
        connect=connect,
        connect_delay_s=delay,
        messages=messages,
        message_interval_s=interval,
        message_content_type=content_type or "text/plain",
        hold=_hold(chat),
        end_by=end_by,  # type: ignore[arg-type]
        persistent=persistent,  # type: ignore[arg-type]
        chat_duration_minutes=minutes,
        websocket=websocket,
        websocket_wait_s=websocket_wait,
    )


def _retry(retry: Table) -> RetryPolicy:
    retry.check_keys(("mode", "max_attempts"))
    mode = retry.string("mode", "off", choices=RETRY_MODES)
    assert mode is not None
    attempts = retry.integer("max_attempts", DEFAULT_ATTEMPTS[mode], minimum=1, maximum=10)
    if mode == "off" and attempts != 1:
        retry.fail("max_attempts", 'must be 1 when mode = "off"; set mode = "standard" to retry')
    return RetryPolicy(mode, attempts or 1)  # type: ignore[arg-type]


def _target(target: Table) -> Target:
    target.check_keys(
        ("kind", "region", "instance_id", "contact_flow_id", "endpoint_url", "confirm", "emulator_config")
    )
    kind = target.string("kind", "emulator", choices=TARGET_KINDS)
    if kind == "aws":
        target.required("region", 'region = "eu-west-2"')
        target.required("instance_id", 'instance_id = "<your instance id>"')
        target.required("contact_flow_id", 'contact_flow_id = "<a contact flow id>"')
        if target.has("emulator_config"):
            target.fail("emulator_config", 'only for kind = "emulator" (a real instance\'s quotas are set by AWS)')
    region = target.string("region", DEFAULT_REGION, max_length=50)
    if not _REGION.fullmatch(region or ""):
        target.fail("region", f'must be an AWS Region such as "us-east-1", got {show(region)}')
    instance = target.string("instance_id", DEFAULT_INSTANCE_ID, max_length=100)
    flow = target.string("contact_flow_id", DEFAULT_CONTACT_FLOW_ID, max_length=500)
    endpoint = target.string("endpoint_url", None, max_length=2000)
    if endpoint is not None and not re.match(r"https?://[^/\s]+", endpoint):
        target.fail("endpoint_url", f"must be an http:// or https:// URL, got {show(endpoint)}")
    confirm = target.boolean("confirm", False)
    config = target.table("emulator_config")
    for key, value in config.data.items():
        if key not in EMULATOR_CONFIG_KEYS:
            config.fail(
                key,
                f"not an emulator configuration section{suggestion(key, EMULATOR_CONFIG_KEYS)}"
                f" (sections: {', '.join(EMULATOR_CONFIG_KEYS)})",
            )
        if key == "instances" and not (isinstance(value, list) and all(isinstance(v, Mapping) for v in value)):
            config.fail(key, f"must be an array of tables ([[{config.key(key)}]]), got {show(value)}")
        if key != "instances" and not isinstance(value, Mapping):
            config.fail(key, f"must be a table ([{config.key(key)}]), got {show(value)}")
    return Target(
        kind=kind,  # type: ignore[arg-type]
        region=region or DEFAULT_REGION,
        instance_id=instance or DEFAULT_INSTANCE_ID,
        contact_flow_id=flow or DEFAULT_CONTACT_FLOW_ID,
        endpoint_url=endpoint,
        emulator_config=plain_data(config.data),
        confirm=confirm,
    )


def _thresholds(table: Table) -> Thresholds:
    table.check_keys(
        (
            "max_p95_ms",
            "max_p99_ms",
            "min_success_share",
            "max_dropped_share",
            "max_outcome_share",
            "max_message_delivery_p95_ms",
            "max_first_response_p95_s",
            "regression",
        )
    )
    regression = table.table("regression")
    regression.check_keys(REGRESSION_KEYS)
    regression_limits = {key: regression.number(key, minimum=0) for key in REGRESSION_KEYS if regression.has(key)}
    shares = table.table("max_outcome_share")
    outcome_limits: dict[str, float] = {}
    for outcome in shares.data:
        if outcome not in OUTCOMES:
            hint = suggestion(outcome, OUTCOMES) or f" (outcomes: {', '.join(OUTCOMES)})"
            shares.fail(outcome, f"not an outcome class{hint}")
        limit = shares.number(outcome, minimum=0, maximum=1)
        assert limit is not None
        outcome_limits[outcome] = limit
    return Thresholds(
        max_p95_ms=table.number("max_p95_ms", None, above=0),
        max_p99_ms=table.number("max_p99_ms", None, above=0),
        min_success_share=table.number("min_success_share", None, minimum=0, maximum=1),
        max_dropped_share=table.number("max_dropped_share", 0.01, minimum=0, maximum=1) or 0.0,
        max_outcome_share=outcome_limits,
        max_message_delivery_p95_ms=table.number("max_message_delivery_p95_ms", None, above=0),
        max_first_response_p95_s=table.number("max_first_response_p95_s", None, above=0),
        regression={k: v for k, v in regression_limits.items() if v is not None},
    )


def _safety(table: Table, kind: str | None) -> Safety:
    table.check_keys(("max_chats", "max_rate", "max_error_share"))
    real = kind == "aws"
    return Safety(
        max_chats=table.integer("max_chats", AWS_DEFAULT_MAX_CHATS if real else None, minimum=1),
        max_rate=table.number("max_rate", AWS_DEFAULT_MAX_RATE if real else None, above=0, unit=" (chats/s)"),
        max_error_share=table.number(
            "max_error_share", AWS_DEFAULT_MAX_ERROR_SHARE if real else None, minimum=0, maximum=1
        ),
    )


def builtin_scenarios() -> Path:
    """The folder of the built-in scenarios, shipped inside the package (chatload/scenarios)."""
    return Path(str(resources.files("chatload") / "scenarios"))


def find_scenario(name: str) -> Path | None:
    """A scenario file: `name` as a path (relative to the working directory), else the built-in
    scenario of that name (with or without .toml); None when neither exists."""
    path = Path(name).expanduser()
    if path.is_file():
        return path
    if len(path.parts) == 1:
        for candidate in (builtin_scenarios() / name, builtin_scenarios() / f"{name}.toml"):
            if candidate.is_file():
                return candidate
    return None


def list_scenarios(directory: str | Path | None = None) -> list[tuple[str, str, Path]]:
    """(name, purpose line, path) of every *.toml in `directory`, sorted by name.

    Reads only the name and purpose (a broken file is listed with its problem as the purpose).
    """
    found = []
    for path in sorted(Path(directory or builtin_scenarios()).glob("*.toml")):
        try:
            text = path.read_text(encoding="utf-8")
            raw = tomllib.loads(text)
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            found.append((path.stem, f"(cannot be read: {' '.join(str(exc).split())})", path))
            continue
        name = raw.get("name") if isinstance(raw.get("name"), str) else path.stem
        purpose = raw.get("purpose") if isinstance(raw.get("purpose"), str) else _first_comment(text)
        found.append((name, purpose, path))
    return sorted(found, key=lambda item: item[0])
