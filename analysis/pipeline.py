"""load -> tables -> findings -> summary, in memory (no files written): what report and compare share."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from analysis import chats as chats_mod
from analysis.findings import findings, quotas_of
from analysis.load import Run, load_run
from analysis.stages import configured_stages
from analysis.summary import summary
from analysis.tables import per_operation, per_second, per_stage


@dataclass
class Analysis:
    run: Run
    per_second: pd.DataFrame
    per_stage: pd.DataFrame
    per_operation: pd.DataFrame
    chats: pd.DataFrame
    findings: dict[str, Any]
    summary: dict[str, Any]

    def tables(self) -> dict[str, pd.DataFrame]:
        return {
            "per_second": self.per_second,
            "per_stage": self.per_stage,
            "per_operation": self.per_operation,
            "chats": self.chats,
        }


def analyze(run_dir: Path | str, target_peak_rate: float | None = None) -> Analysis:
    run = load_run(run_dir)
    stages = configured_stages(run.meta)
    chats = chats_mod.durations(chats_mod.lifetimes(run.attempts), run.t_end)
    if (run.attempts["chat_key"] < 0).any():
        run.notes.append("some rows have no chat id: they are left out of the active chats")
    seconds = per_second(run.attempts, chats, run.t0, run.t_end, stages)
    stage_table = per_stage(run.attempts, stages, run.t_end)
    operations = per_operation(run.attempts)
    quotas = quotas_of(run.meta)
    found = findings(
        seconds,
        stage_table,
        operations,
        run.attempts,
        chats,
        chats_mod.peak_active(chats),
        quotas,
        target_peak_rate,
    )
    chat_table = chats.assign(
        started_s=chats["t_started"] - run.t0, ended_s=chats["t_ended"] - run.t0
    ).drop(columns=["chat_key"])
    result = Analysis(run, seconds, stage_table, operations, chat_table, found, {})
    result.summary = summary(run, stage_table, operations, found)
    return result
