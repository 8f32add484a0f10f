"""chatload's Locust command-line options, and the run settings they resolve to.

The options are plain `parser.add_argument` calls so that they show on the web UI's start form
(argument groups do not). Values from the form arrive as strings: everything is converted and
checked here, and a mistake is one line naming the option (or the scenario file and key).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from chatload.contracts import (
    ARRIVAL_PROCESSES,
    CONNECT_ENDPOINT_ENV,
    DEFAULT_EMULATOR_URL,
    PARTICIPANT_ENDPOINT_ENV,
    POISSON,
    RETRY_MODES,
    endpoint_from_env,
)
from chatload.harness.scenario.files import adhoc_scenario, find_scenario, load_scenario
from chatload.harness.scenario.model import Scenario, with_rate_multiplier
from chatload.harness.scenario.schema import ScenarioError

DEFAULT_SCENARIO = "ci-smoke"


class UsageError(Exception):
    """Bad input: str() is one line naming the option or file and key."""


def add_arguments(parser: Any) -> None:
    """Register chatload's options on Locust's parser (events.init_command_line_parser)."""
    add = parser.add_argument
    add(
        "--scenario",
        default=DEFAULT_SCENARIO,
        help="scenario file, or the name of a built-in one in scenarios/ (e.g. tps-ceiling)",
    )
    add("--rate-multiplier", type=float, default=1.0, help="multiply every stage's arrival rate by this")
    add("--target", default="", help="emulator or aws (default: the scenario's [target] kind)")
    add(
        "--endpoint-url",
        default="",
        help=f"Connect endpoint; emulator default {DEFAULT_EMULATOR_URL}, aws default: the standard chain",
    )
    add("--region", default="", help="AWS Region (default: the scenario's)")
    add("--instance-id", default="", help="Amazon Connect instance id (default: the scenario's)")
    add("--contact-flow-id", default="", help="contact flow id (default: the scenario's)")
    add("--out", default="reports", help="folder that receives the run folders")
    add("--run-id", default="", help="run id (default: generated when the test starts)")
    add("--rate", default="", help="ad-hoc run: one flat stage at this many chats/s (instead of --scenario)")
    add("--duration", default="", help="ad-hoc run: stage length, e.g. 30s, 5m or seconds")
    add("--hold", default="", help="ad-hoc run: how long each chat stays open, e.g. 10s")
    add("--retry-mode", default="", help=f"SDK retries: {', '.join(RETRY_MODES)} (default: the scenario's)")
    add("--max-attempts", default="", help="SDK attempts per call with retries on")
    add(
        "--confirm-real-instance",
        action="store_true",
        default=False,
        help="consent to load a real Amazon Connect instance (target aws)",
    )
    add("--max-chats", default="", help="cap: most chats this run may start")
    add("--max-rate", default="", help="cap: highest arrival rate (chats/s) this run may schedule")  # fmt: skip
    add("--arrivals", default="", help=f"arrival process: {' or '.join(ARRIVAL_PROCESSES)} (default: the scenario's)")
    add("--seed", default="", help="seed of Poisson arrivals (default: the scenario's, else a fresh one)")
    add(
        "--baseline", default="", help="a run folder of the same scenario to gate this run on ([thresholds.regression])"
    )
    # Served for the process's life, not per run: not on the web UI's start form.
    add("--metrics-port", type=int, default=None, env_var="CHATLOAD_METRICS_PORT", include_in_web_ui=False,
        help="serve Prometheus metrics on this port (master or local process; docs/live.md)")  # fmt: skip
    add("--metrics-host", default="127.0.0.1", env_var="CHATLOAD_METRICS_HOST", include_in_web_ui=False,
        help="address of the metrics endpoint (default 127.0.0.1)")  # fmt: skip


@dataclass(frozen=True)
class RunSettings:
    """Everything a run needs from the command line (or the web UI form), resolved."""

    scenario: Scenario
    endpoint_url: str | None  # Connect; None: the SDK's own chain (profile, region)
    out: Path
    run_id: str | None
    confirm: bool
    max_chats: int | None
    max_rate: float | None
    participant_endpoint_url: str | None = None  # None: the same as endpoint_url
    baseline: Path | None = None  # a run folder to gate the run on (chatload.analysis.gate)

    @property
    def target(self) -> str:
        return self.scenario.target.kind


def _text(options: Any, name: str) -> str:
    value = getattr(options, name, None)
    return "" if value is None else str(value).strip()


def _number(options: Any, name: str, kind: type, minimum: float) -> Any:
    text = _text(options, name)
    if not text:
        return None
    flag = "--" + name.replace("_", "-")
    try:
        value = kind(float(text)) if kind is int and float(text).is_integer() else kind(text)
    except ValueError:
        raise UsageError(f"{flag}: expected a number, got {text!r}") from None
    if value < minimum:
        raise UsageError(f"{flag}: must be at least {minimum:g}, got {text}")
    return value


def scenario_path(name: str) -> Path:
    """A scenario file: the path as given, else a built-in scenario of that name."""
    found = find_scenario(name)
    if found is None:
        raise UsageError(f"--scenario {name}: no such file or built-in scenario (list them with `chatload scenarios`)")
    return found


def endpoints(
    flag: str, scenario_url: str | None, kind: str, environ: Mapping[str, str]
) -> tuple[str | None, str | None]:
    """(Connect endpoint, Participant Service endpoint): --endpoint-url for both, else boto3's
    AWS_ENDPOINT_URL_CONNECT / AWS_ENDPOINT_URL_CONNECTPARTICIPANT / AWS_ENDPOINT_URL, else the
    scenario's endpoint_url, else the local emulator's default address (None for aws: the SDK's)."""
    if flag:
        return flag, flag
    env = dict(environ)
    connect = endpoint_from_env(CONNECT_ENDPOINT_ENV, env)
    participant = endpoint_from_env(PARTICIPANT_ENDPOINT_ENV, env)
    if connect or participant:
        return connect or scenario_url or participant, participant or connect
    url = scenario_url or (DEFAULT_EMULATOR_URL if kind == "emulator" else None)
    return url, url


def overrides(options: Any) -> dict[str, Any]:
    """Flags that override the scenario's keys (dotted keys of the file's layout)."""
    found: dict[str, Any] = {}
    target = _text(options, "target")
    if target:
        if target not in ("emulator", "aws"):
            raise UsageError(f"--target: expected emulator or aws, got {target!r}")
        found["target.kind"] = target
    for flag, key in (("region", "target.region"), ("instance_id", "target.instance_id"),
                      ("contact_flow_id", "target.contact_flow_id")):  # fmt: skip
        if _text(options, flag):
            found[key] = _text(options, flag)
    mode = _text(options, "retry_mode")
    if mode:
        if mode not in RETRY_MODES:
            raise UsageError(f"--retry-mode: expected one of {', '.join(RETRY_MODES)}, got {mode!r}")
        found["retry"] = {"mode": mode}
        if mode == "off":
            found["retry"]["max_attempts"] = 1
    attempts = _number(options, "max_attempts", int, 1)
    if attempts is not None:
        found.setdefault("retry", {})["max_attempts"] = attempts
    if getattr(options, "confirm_real_instance", False):
        found["target.confirm"] = True
    process = _text(options, "arrivals")
    if process:
        if process not in ARRIVAL_PROCESSES:
            raise UsageError(f"--arrivals: expected {' or '.join(ARRIVAL_PROCESSES)}, got {process!r}")
        found["arrivals.process"] = process
    seed = _number(options, "seed", int, 0)
    if seed is not None:
        found["arrivals.seed"] = seed
    return found


def resolve(options: Any) -> RunSettings:
    """The run's settings from Locust's parsed options; raises UsageError or ScenarioError."""
    from chatload.harness.scenario.duration import parse_duration

    multiplier = _number(options, "rate_multiplier", float, 0.0)
    if multiplier is not None and multiplier <= 0:
        raise UsageError(f"--rate-multiplier: must be > 0, got {multiplier:g}")
    found = overrides(options)
    rate = _number(options, "rate", float, 0.0)
    if rate is not None:
        try:
            duration = parse_duration(_text(options, "duration") or "")
            hold = parse_duration(_text(options, "hold") or "0")
        except ValueError as exc:
            raise UsageError(f"--duration/--hold: {exc}") from None
        if rate <= 0 or duration <= 0:
            raise UsageError("an ad-hoc run needs --rate > 0 and --duration > 0 (e.g. --rate 3 --duration 30s)")
        scenario = adhoc_scenario(rate, duration, hold, **found)
        if multiplier not in (None, 1.0):
            scenario = with_rate_multiplier(scenario, multiplier)
    else:
        path = scenario_path(_text(options, "scenario") or DEFAULT_SCENARIO)
        scenario = load_scenario(path, multiplier or 1.0, overrides=found)
    endpoint, participant_endpoint = endpoints(
        _text(options, "endpoint_url"), scenario.target.endpoint_url, scenario.target.kind, os.environ
    )
    return RunSettings(
        scenario=scenario,
        endpoint_url=endpoint,
        participant_endpoint_url=participant_endpoint,
        out=Path(_text(options, "out") or "reports"),
        run_id=_text(options, "run_id") or None,
        confirm=bool(getattr(options, "confirm_real_instance", False)),
        max_chats=_number(options, "max_chats", int, 1),
        max_rate=_number(options, "max_rate", float, 0.0),
        baseline=_baseline(_text(options, "baseline")),
    )


def _baseline(text: str) -> Path | None:
    if not text:
        return None
    folder = Path(text).expanduser()
    if not (folder / "meta.json").is_file():
        raise UsageError(f"--baseline {text}: not a run folder (no meta.json there)")
    return folder


def problem(options: Any) -> str | None:
    """One line saying what is wrong with the options, or None."""
    try:
        resolve(options)
    except (UsageError, ScenarioError) as exc:
        return str(exc)
    return None


def with_seed(settings: RunSettings, seed: int | None) -> RunSettings:
    """Settings whose Poisson arrivals have a seed: `seed`, else a fresh one (recorded in meta.json
    and sent to every worker, so that the run can be repeated with --seed)."""
    arrivals = settings.scenario.arrivals
    if arrivals.process != POISSON:
        return settings
    seed = secrets.randbits(32) if seed is None else int(seed)
    scenario = replace(settings.scenario, arrivals=replace(arrivals, seed=seed))
    return replace(settings, scenario=scenario)
