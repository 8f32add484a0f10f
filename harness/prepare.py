"""Before a run starts (master or local runner): whether it may start at all, and the first
meta.json (quotas read from the emulator or AWS, the scenario's emulator config applied)."""

from __future__ import annotations

from typing import Any

from harness import options as run_options
from harness import runfolder
from harness.preflight import consent_error, plan
from harness.run import Run
from harness.safety import check_caps, effective_caps
from harness.scenario import scenario_to_dict


def refusal(settings: run_options.RunSettings) -> str | None:
    """Why this run must not start (consent, caps, no emulator), or None."""
    scenario = settings.scenario
    problem = consent_error(scenario, settings.confirm)
    if problem:
        return problem
    caps = effective_caps(scenario, settings.max_chats, settings.max_rate)
    problem = check_caps(plan(scenario), caps)
    if problem:
        return problem
    if scenario.target.kind == "emulator" and settings.endpoint_url:
        return runfolder.emulator_problem(settings.endpoint_url)
    return None


def initial_meta(run: Run) -> dict[str, Any]:
    """meta.json as written when the run is prepared (applies the scenario's emulator config first)."""
    settings, scenario = run.settings, run.settings.scenario
    target = scenario.target
    quotas = runfolder.default_quotas()
    if target.kind == "aws":
        quotas = runfolder.aws_quotas(target.region, target.instance_id)
    if target.kind == "emulator" and settings.endpoint_url:
        if target.emulator_config:
            runfolder.admin(settings.endpoint_url, "PUT", "/_emulator/config", target.emulator_config)
        quotas = runfolder.emulator_quotas(settings.endpoint_url, target.instance_id)
    return {
        "run_id": run.run_id,
        "started_at": run.prepared_at,
        "ended_at": None,
        "scenario": scenario_to_dict(scenario),
        "target": target.kind,
        "endpoint": settings.endpoint_url,
        "region": target.region,
        "instance": target.instance_id,
        "contact_flow": target.contact_flow_id,
        "retry": {"mode": scenario.retry.mode, "max_attempts": scenario.retry.max_attempts},
        "quotas": quotas,
        "versions": runfolder.versions(),
        "workers": [],
        "lost_workers": [],
        "users": run.users,
        "clean_up": None,
        "arrivals": None,
        "interrupted": False,
        "ended_early": None,
    }
