"""The scenario's stages as meta.json describes them, as a small tidy table."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

STAGE_COLUMNS = ["stage", "order", "configured_duration_s", "target_rate", "start_rate", "ramp"]


def _float(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number if math.isfinite(number) else math.nan


def configured_stages(meta: dict[str, Any]) -> pd.DataFrame:
    """One row per configured stage: name, order, duration, target rate, ramp and start rate.

    A linear stage's start rate defaults to the previous stage's target rate (0 for the first one);
    a step stage's start rate is its target rate.
    """
    scenario = meta.get("scenario")
    stages = scenario.get("stages") if isinstance(scenario, dict) else None
    rows: list[dict[str, Any]] = []
    previous = 0.0
    for i, stage in enumerate(stages if isinstance(stages, list) else []):
        if not isinstance(stage, dict):
            continue
        target = _float(stage.get("target_rate"))
        ramp = str(stage.get("ramp") or "step")
        start = _float(stage.get("start_rate")) if stage.get("start_rate") is not None else previous
        rows.append(
            {
                "stage": str(stage.get("name") or f"stage-{i + 1}"),
                "order": i,
                "configured_duration_s": _float(stage.get("duration_s")),
                "target_rate": target,
                "start_rate": start if ramp == "linear" else target,
                "ramp": ramp,
            }
        )
        previous = target if math.isfinite(target) else previous
    return pd.DataFrame(rows, columns=STAGE_COLUMNS).drop_duplicates("stage")


def stage_order(configured: pd.DataFrame, observed: pd.Series) -> pd.DataFrame:
    """Configured stages, then stages only seen in the attempts (in order of first appearance).

    `observed` maps stage name -> first time seen.
    """
    extra = [s for s in observed.sort_values().index if s not in set(configured["stage"])]
    extra_rows = pd.DataFrame(
        {
            "stage": extra,
            "order": range(len(configured), len(configured) + len(extra)),
            "configured_duration_s": math.nan,
            "target_rate": math.nan,
            "start_rate": math.nan,
            "ramp": "",
        },
        columns=STAGE_COLUMNS,
    )
    frames = [f for f in (configured, extra_rows) if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else configured.iloc[0:0]


def with_windows(stages: pd.DataFrame, schedule_t0: float) -> pd.DataFrame:
    """Each configured stage's window on the schedule's clock (epoch seconds): stage k spans
    [schedule_t0 + the durations of the stages before it, + its own duration]. NaN from the first
    stage without a duration on."""
    ends = schedule_t0 + stages["configured_duration_s"].cumsum()
    return stages.assign(window_start=ends - stages["configured_duration_s"], window_end=ends)
