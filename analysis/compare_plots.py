"""Overlay plots of two runs (A and B); each consumes only computed tables and returns a Figure."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from chatload.analysis.plots import empty_note, new_figure

STYLE = {"A": {"color": "#457b9d"}, "B": {"color": "#e76f51"}}


def _over_time(
    runs: dict[str, pd.DataFrame], column: str, title: str, ylabel: str, dashed: str | None = None
) -> Figure:
    fig, ax = new_figure(title)
    drawn = False
    for label, per_second in runs.items():
        if per_second.empty or per_second[column].isna().all():
            continue
        ax.plot(
            per_second["second"],
            per_second[column],
            lw=1,
            drawstyle="steps-post",
            label=f"{label} {column}",
            **STYLE[label],
        )
        if dashed:
            ax.plot(
                per_second["second"],
                per_second[dashed],
                lw=0.8,
                ls="--",
                drawstyle="steps-post",
                label=f"{label} {dashed}",
                **STYLE[label],
            )
        drawn = True
    if not drawn:
        empty_note(ax)
        return fig
    ax.set_xlabel("seconds since start")
    ax.set_ylabel(ylabel)
    ax.legend(loc="upper left", fontsize=8)
    return fig


def saturation(stages: dict[str, pd.DataFrame]) -> Figure:
    fig, ax = new_figure("Saturation curves: accepted vs offered rate per stage")
    top = 0.0
    for label, per_stage in stages.items():
        rows = per_stage[per_stage["arrivals"] > 0].sort_values("offered_rate")
        if rows.empty:
            continue
        ax.plot(rows["offered_rate"], rows["accepted_rate"], "o-", label=label, **STYLE[label])
        top = max(top, float(rows["offered_rate"].max()), float(rows["accepted_rate"].max()))
    if top == 0:
        empty_note(ax)
        return fig
    ax.plot([0, top * 1.1], [0, top * 1.1], ":", color="gray", label="accepted = offered")
    ax.set_xlabel("offered rate (arrivals / s)")
    ax.set_ylabel("accepted rate (ok / s)")
    ax.legend(loc="upper left")
    return fig


def render_all(seconds: dict[str, pd.DataFrame], stages: dict[str, pd.DataFrame]) -> dict[str, Figure]:
    return {
        "accepted": _over_time(
            seconds, "accepted", "Accepted StartChatContact per second (offered dashed)", "calls / s", dashed="offered"
        ),
        "saturation": saturation(stages),
        "active_chats": _over_time(seconds, "active_chats_peak", "Chats active (peak in each second)", "chats"),
        "latency_p95": _over_time(seconds, "ok_p95_ms", "StartChatContact p95 latency of ok calls", "ms"),
    }
