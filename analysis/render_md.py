"""report.md: the same content as report.html, as Markdown (plots linked from plots/)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from chatload.analysis.display import (
    error_view,
    experience_facts,
    experience_view,
    operation_view,
    planned_view,
    quota_view,
    run_facts,
    stage_view,
    status_line,
    threshold_view,
)


def cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)) or value is pd.NA:
        return "–"
    if isinstance(value, float):
        return f"{value:g}" if abs(value) < 1e6 else f"{value:.0f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def md_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "_none_\n"
    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *rows]) + "\n"


def render(
    summary: dict[str, Any],
    meta: dict[str, Any],
    per_stage: pd.DataFrame,
    per_operation: pd.DataFrame,
    errors: pd.DataFrame,
    plots: dict[str, str],
) -> str:
    """`plots` maps plot name -> relative path of its PNG."""
    findings = summary["findings"]
    parts = [
        f"# chatload report: {summary['run_id']}",
        "",
        f"**{status_line(summary)}**",
        "",
        f"{findings['headline']}",
        "",
        "## Run",
        "",
        md_table(pd.DataFrame(run_facts(summary, meta), columns=["", "value"])),
        "## Findings",
        "",
        *[f"- **{item['text']}**" if item.get("highlight") else f"- {item['text']}" for item in findings["items"]],
        "",
        "### Quotas: known before the run, and the interval the run's calls allow",
        "",
        md_table(quota_view(summary)),
        *(
            [
                "### Planned versus measured (the plan of this scenario and quotas, beside the run)",
                "",
                md_table(planned_view(summary.get("planned"))),
            ]
            if summary.get("planned")
            else []
        ),
        "## Thresholds",
        "",
        md_table(threshold_view(summary["thresholds"])),
        *(
            [
                "## Chat experience (the customer's websocket)",
                "",
                md_table(experience_view(summary["chat_experience"])),
                md_table(experience_facts(summary["chat_experience"])),
            ]
            if summary.get("chat_experience")
            else []
        ),
        "## Plots",
        "",
        *[f"![{name}]({path})\n" for name, path in plots.items()],
        "## Stages (StartChatContact)",
        "",
        md_table(stage_view(per_stage)),
        "## Operations",
        "",
        md_table(operation_view(per_operation)),
        "## Errors (calls that did not succeed, by operation, outcome, HTTP status and error code)",
        "",
        md_table(error_view(errors)),
    ]
    if summary["notes"]:
        parts += ["## Notes", "", *[f"- {note}" for note in summary["notes"]], ""]
    parts += [
        "Tables: `tables/per_second.csv`, `tables/per_stage.csv`, `tables/per_operation.csv`, `tables/errors.csv` "
        "(and `.parquet`), `tables/chats.parquet` (one row per chat). Machine-readable summary: `summary.json`.",
        "",
    ]
    return "\n".join(parts)
