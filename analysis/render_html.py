"""report.html: one self-contained file (PNG plots embedded as base64, inline CSS, no network)."""

from __future__ import annotations

import base64
import html
from pathlib import Path
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

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f0f3f7; } td:first-child, th:first-child { text-align: left; }
.status { padding: 0.6em 1em; border-radius: 4px; font-weight: bold; }
.valid { background: #e3f4ec; } .failed { background: #fdecea; } .invalid { background: #fff4d6; }
.warn { background: #fff4d6; padding: 0.4em 1em; }
li.highlight { background: #eaf2fb; }
img { max-width: 100%; border: 1px solid #eee; margin-bottom: 1em; }
"""


def embed_png(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'


def html_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "<p><em>none</em></p>"
    return frame.to_html(index=False, na_rep="–", border=0, escape=True, float_format=lambda x: f"{x:g}")


def finding_html(item: dict[str, Any]) -> str:
    """One finding as a list item; the ones to stress (item["highlight"]) in bold on a tint."""
    text = html.escape(item["text"])
    return f'<li class="highlight"><strong>{text}</strong></li>' if item.get("highlight") else f"<li>{text}</li>"


def status_class(summary: dict[str, Any]) -> str:
    return "invalid" if not summary["valid"] else ("valid" if summary["passed"] else "failed")


def page(title: str, body: list[str]) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def render(
    summary: dict[str, Any],
    meta: dict[str, Any],
    per_stage: pd.DataFrame,
    per_operation: pd.DataFrame,
    errors: pd.DataFrame,
    plots: dict[str, Path],
) -> str:
    findings = summary["findings"]
    e = html.escape
    body = [
        f"<h1>chatload report: {e(summary['run_id'])}</h1>",
        f'<p class="status {status_class(summary)}">{e(status_line(summary))}</p>',
        f"<p>{e(findings['headline'])}</p>",
    ]
    body += [f'<p class="warn">{e(note)}</p>' for note in summary["notes"]]
    body += [
        "<h2>Run</h2>",
        html_table(pd.DataFrame(run_facts(summary, meta), columns=["", "value"])),
        "<h2>Findings</h2>",
        "<ul>" + "".join(finding_html(item) for item in findings["items"]) + "</ul>",
        "<h3>Quotas: known before the run, and the interval the run's calls allow</h3>",
        html_table(quota_view(summary)),
        *(
            [
                "<h3>Planned versus measured (the plan of this scenario and quotas, beside the run)</h3>",
                html_table(planned_view(summary.get("planned"))),
            ]
            if summary.get("planned")
            else []
        ),
        "<h2>Thresholds</h2>",
        html_table(threshold_view(summary["thresholds"])),
        *(
            [
                "<h2>Chat experience (the customer's websocket)</h2>",
                html_table(experience_view(summary["chat_experience"])),
                html_table(experience_facts(summary["chat_experience"])),
            ]
            if summary.get("chat_experience")
            else []
        ),
        "<h2>Plots</h2>",
        *[embed_png(path) for path in plots.values()],
        "<h2>Stages (StartChatContact)</h2>",
        html_table(stage_view(per_stage)),
        "<h2>Operations</h2>",
        html_table(operation_view(per_operation)),
        "<h2>Errors (calls that did not succeed, by operation, outcome, HTTP status and error code)</h2>",
        html_table(error_view(errors)),
        "<p>Tables: tables/per_second.csv, tables/per_stage.csv, tables/per_operation.csv, tables/errors.csv "
        "(and .parquet), tables/chats.parquet (one row per chat). Machine-readable summary: summary.json.</p>",
    ]
    return page(f"chatload report {summary['run_id']}", body)
