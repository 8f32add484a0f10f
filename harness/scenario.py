"""Scenarios: the public face of the scenario model (pure: imports no locust, gevent or boto3).

A scenario file (TOML, documented key by key in docs/scenarios.md) becomes an immutable `Scenario`:

    load_scenario(path, rate_multiplier=1.0) -> Scenario      # raises ScenarioError, one line
    adhoc_scenario(rate, duration_s, hold_s=0.0) -> Scenario  # chatload run --rate --duration --hold
    parse_duration("1h30m") -> 5400.0
    scenario_to_dict(s) -> dict                               # meta.json["scenario"]
    pool_size(s) -> int                                       # Locust users needed
    list_scenarios(directory) -> [(name, purpose, path)]      # chatload scenarios

The code lives in scenario_model (dataclasses, derived figures), scenario_load (reading and
validation), scenario_schema (typed TOML reads, ScenarioError) and duration.
"""

from harness.duration import format_duration, parse_duration
from harness.scenario_load import adhoc_scenario, list_scenarios, load_scenario
from harness.scenario_model import (
    AWS_DEFAULT_MAX_CHATS,
    AWS_DEFAULT_MAX_ERROR_SHARE,
    AWS_DEFAULT_MAX_RATE,
    CONNECT_DEADLINE_S,
    OUTCOMES,
    ChatLife,
    HoldTime,
    RetryPolicy,
    Safety,
    Scenario,
    Stage,
    Target,
    Thresholds,
    chat_life_s,
    expected_active_chats,
    peak_rate,
    planned_chats,
    pool_size,
    scenario_to_dict,
    stage_rates,
    with_rate_multiplier,
)
from harness.scenario_schema import ScenarioError

__all__ = [
    "AWS_DEFAULT_MAX_CHATS",
    "AWS_DEFAULT_MAX_ERROR_SHARE",
    "AWS_DEFAULT_MAX_RATE",
    "CONNECT_DEADLINE_S",
    "OUTCOMES",
    "ChatLife",
    "HoldTime",
    "RetryPolicy",
    "Safety",
    "Scenario",
    "ScenarioError",
    "Stage",
    "Target",
    "Thresholds",
    "adhoc_scenario",
    "chat_life_s",
    "expected_active_chats",
    "format_duration",
    "list_scenarios",
    "load_scenario",
    "parse_duration",
    "peak_rate",
    "planned_chats",
    "pool_size",
    "scenario_to_dict",
    "stage_rates",
    "with_rate_multiplier",
]
