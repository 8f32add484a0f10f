"""load -> tables -> findings -> summary, in memory (no files written): what report and compare share."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from chatload.analysis import chats as chats_mod
from chatload.analysis import experience as experience_mod
from chatload.analysis.arrivals import traffic as traffic_of
from chatload.analysis.errors import errors
from chatload.analysis.findings import findings, quotas_of
from chatload.analysis.load import Run, load_run
from chatload.analysis.outages import outages
from chatload.analysis.planned import AS_PREDICTED, planned_vs_measured, sentence
from chatload.analysis.stages import configured_stages, with_windows
from chatload.analysis.summary import summary
from chatload.analysis.tables import per_operation, per_second, per_stage
from chatload.contracts import START_CHAT


@dataclass
class Analysis:
    run: Run
    per_second: pd.DataFrame
    per_stage: pd.DataFrame
    per_operation: pd.DataFrame
    errors: pd.DataFrame
    chats: pd.DataFrame
    findings: dict[str, Any]
    summary: dict[str, Any]
    # arrivals.traffic(): process, seed, label, dispersion, replay_meta (meta.json's), replay (summary's)
    traffic: dict[str, Any] = field(default_factory=dict)
    # experience.delivery_per_second(): None when the run has no MessageDelivery rows
    delivery: pd.DataFrame | None = None

    def tables(self) -> dict[str, pd.DataFrame]:
        tables = {
            "per_second": self.per_second,
            "per_stage": self.per_stage,
            "per_operation": self.per_operation,
            "errors": self.errors,
            "chats": self.chats,
        }
        if self.delivery is not None:
            tables["delivery_per_second"] = self.delivery
        return tables


def arrivals_end(run: Run) -> float:
    """Where stage windows stop: the last arrival when the run did not run its whole schedule (cut
    short, interrupted, ended early), else never (inf)."""
    meta = run.meta
    if not (run.cut_short or meta.get("interrupted") is True or meta.get("ended_early")):
        return math.inf
    starts = run.attempts.loc[run.attempts["operation"] == START_CHAT, ["t_intended", "t_start"]]
    last = starts["t_intended"].fillna(starts["t_start"]).max() if len(starts) else math.nan
    return float(last) if last == last else run.t_end


def analyze(run_dir: Path | str, target_peak_rate: float | None = None) -> Analysis:
    run = load_run(run_dir)
    stages = with_windows(configured_stages(run.meta), run.schedule_t0)
    chats = chats_mod.durations(chats_mod.lifetimes(run.attempts), run.t_end)
    if (run.attempts["chat_key"] < 0).any():
        run.notes.append("some rows have no chat id: they are left out of the active chats")
    seconds = per_second(run.attempts, chats, run.t0, run.t_end, stages)
    stage_table = per_stage(run.attempts, stages, arrivals_end(run))
    operations = per_operation(run.attempts)
    gaps = outages(run.attempts, run.t0)
    quotas = quotas_of(run.meta)
    peak = chats_mod.peak_active(chats)
    traffic = traffic_of(run.meta, seconds, stages, arrivals_end(run), int(seconds["offered"].sum()), peak)
    found = findings(
        seconds,
        stage_table,
        operations,
        run.attempts,
        chats,
        peak,
        quotas,
        target_peak_rate,
        gaps,
        traffic,
        str(run.meta.get("target") or "emulator"),
    )
    chat_table = chats.assign(started_s=chats["t_started"] - run.t0, ended_s=chats["t_ended"] - run.t0).drop(
        columns=["chat_key"]
    )
    result = Analysis(run, seconds, stage_table, operations, errors(run.attempts), chat_table, found, {}, traffic)
    experience = experience_mod.chat_experience(run.attempts)
    if experience:
        found["items"].append(
            {
                "name": "chat_experience",
                "text": experience_mod.sentence(experience),
                "highlight": experience_mod.troubled(experience),
            }
        )
    result.summary = summary(run, stage_table, operations, found, traffic, experience)
    result.delivery = experience_mod.delivery_per_second(run.attempts, seconds, run.t0)
    planned = planned_vs_measured(run.meta, result.summary)
    result.summary["planned"] = planned
    line = sentence(planned, str(run.meta.get("target") or "emulator"))
    if line:
        found["items"].append(
            {"name": "planned_vs_measured", "text": line, "highlight": planned["verdict"] != AS_PREDICTED}
        )
    return result
