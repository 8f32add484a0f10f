"""PNG plots: matplotlib Figure objects saved by Agg (pyplot's global state is never used).

Each plot function only consumes computed tables and returns a Figure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from chatload.analysis import arrivals as arrival_stats
from chatload.contracts import CALL_OUTCOMES, DROPPED

COLORS = {
    "ok": "#2a9d8f",
    "throttled_tps": "#e76f51",
    "throttled_concurrency": "#8e44ad",
    "throttled_unknown": "#f4a261",
    "client_error": "#e9c46a",
    "server_error": "#c0392b",
    "timeout": "#7f8c8d",
    "connection_error": "#34495e",
    "dropped": "#bdc3c7",
}


def new_figure(title: str) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(10, 4), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    return fig, ax


def empty_note(ax: Axes) -> None:
    ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="gray")


def stage_spans(per_second: pd.DataFrame) -> pd.DataFrame:
    """Contiguous runs of seconds with the same stage: stage, start, end (seconds since start)."""
    if per_second.empty:
        return pd.DataFrame(columns=["stage", "start", "end"])
    stage = per_second["stage"].astype(str)
    run_id = stage.ne(stage.shift()).cumsum()
    return (
        per_second.assign(stage=stage, run_id=run_id)
        .groupby("run_id")
        .agg(stage=("stage", "first"), start=("second", "min"), end=("second", "max"))
        .assign(end=lambda f: f["end"] + 1)
        .reset_index(drop=True)
    )


def _stage_bands(ax: Axes, per_second: pd.DataFrame) -> None:
    for i, span in enumerate(stage_spans(per_second).itertuples()):
        ax.axvspan(span.start, span.end, color="#457b9d", alpha=0.06 if i % 2 else 0.14, lw=0)
        ax.text(
            (span.start + span.end) / 2,
            0.98,
            span.stage,
            transform=ax.get_xaxis_transform(),
            ha="center",
            va="top",
            fontsize=8,
            color="#1d3557",
            clip_on=True,
        )


def _outage_bands(ax: Axes, outages: list[dict[str, Any]]) -> None:
    """Each outage (findings' outages: from_s, to_s) as a hatched red band labelled at the bottom."""
    for i, gap in enumerate(outages):
        ax.axvspan(
            gap["from_s"],
            gap["to_s"],
            facecolor=(0.75, 0.22, 0.17, 0.12),
            hatch="//",
            edgecolor=(0.75, 0.22, 0.17, 0.7),
            lw=1.2,
            zorder=3,
            label="target unreachable" if i == 0 else None,
        )
        ax.text(
            (gap["from_s"] + gap["to_s"]) / 2,
            0.5,
            f"unreachable\n{gap['seconds']:.1f} s",
            transform=ax.get_xaxis_transform(),
            ha="center",
            va="center",
            fontsize=8,
            color="#c0392b",
            zorder=4,
            clip_on=True,
            bbox={"facecolor": "white", "edgecolor": "#c0392b", "alpha": 0.9},
        )


def offered_vs_accepted(per_second: pd.DataFrame, outages: list[dict[str, Any]] | None = None) -> Figure:
    fig, ax = new_figure("StartChatContact: offered vs accepted per second")
    if per_second.empty:
        empty_note(ax)
        return fig
    _stage_bands(ax, per_second)
    _outage_bands(ax, outages or [])
    ax.plot(per_second["second"], per_second["offered"], label="offered", color="#1d3557", lw=1, drawstyle="steps-post")
    ax.plot(
        per_second["second"],
        per_second["accepted"],
        label="accepted (ok)",
        color=COLORS["ok"],
        lw=1,
        drawstyle="steps-post",
    )
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("calls / s")
    ax.legend(loc="upper left", bbox_to_anchor=(0, 0.93))
    return fig


def outcomes_stacked(per_second: pd.DataFrame, outages: list[dict[str, Any]] | None = None) -> Figure:
    fig, ax = new_figure("StartChatContact outcomes per second (stacked)")
    columns = [c for c in (*CALL_OUTCOMES, DROPPED) if c in per_second and per_second[c].sum() > 0]
    if per_second.empty or not columns:
        empty_note(ax)
        return fig
    _stage_bands(ax, per_second)
    _outage_bands(ax, outages or [])
    ax.stackplot(
        per_second["second"],
        *[per_second[c] for c in columns],
        labels=columns,
        colors=[COLORS[c] for c in columns],
        step="post",
    )
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("calls / s")
    ax.legend(loc="upper left", fontsize=8, bbox_to_anchor=(0, 0.93))
    return fig


def latency_over_time(per_second: pd.DataFrame) -> Figure:
    fig, ax = new_figure("StartChatContact latency per second (ok calls; throttled dashed)")
    lines = [
        ("ok_p50_ms", "ok p50", "-"),
        ("ok_p95_ms", "ok p95", "-"),
        ("ok_p99_ms", "ok p99", "-"),
        ("throttled_p95_ms", "throttled p95", "--"),
    ]
    drawn = False
    for column, label, style in lines:
        if column in per_second and per_second[column].notna().any():
            ax.plot(per_second["second"], per_second[column], style, label=label, lw=1, marker=".", ms=2)
            drawn = True
    if not drawn:
        empty_note(ax)
        return fig
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("ms")
    ax.legend(loc="upper left", fontsize=8)
    return fig


def active_chats(per_second: pd.DataFrame, quota: float | None) -> Figure:
    fig, ax = new_figure("Chats active (as the harness saw them) against the concurrency quota")
    if per_second.empty:
        empty_note(ax)
        return fig
    _stage_bands(ax, per_second)
    ax.plot(
        per_second["second"],
        per_second["active_chats_peak"],
        color="#8e44ad",
        lw=1,
        label="peak in second",
        drawstyle="steps-post",
    )
    if quota is not None:
        ax.axhline(quota, color="#c0392b", ls="--", lw=1, label=f"quota {quota:g}")
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("active chats")
    ax.legend(loc="upper left", bbox_to_anchor=(0, 0.93))
    return fig


def saturation_curve(per_stage: pd.DataFrame, rate_quota: float | None) -> Figure:
    fig, ax = new_figure("Saturation: accepted vs offered StartChatContact rate per stage")
    stages = per_stage[per_stage["arrivals"] > 0].sort_values("offered_rate")
    if stages.empty:
        empty_note(ax)
        return fig
    ax.plot(stages["offered_rate"], stages["accepted_rate"], "o-", color=COLORS["ok"], label="accepted")
    for row in stages.itertuples():
        ax.annotate(
            str(row.stage), (row.offered_rate, row.accepted_rate), fontsize=8, xytext=(4, 4), textcoords="offset points"
        )
    top = float(max(stages["offered_rate"].max(), stages["accepted_rate"].max())) * 1.1 or 1.0
    ax.plot([0, top], [0, top], ":", color="gray", label="accepted = offered")
    if rate_quota is not None:
        ax.axhline(rate_quota, color="#c0392b", ls="--", lw=1, label=f"rate quota {rate_quota:g}/s")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("offered rate (arrivals / s)")
    ax.set_ylabel("accepted rate (ok / s)")
    ax.legend(loc="upper left")
    return fig


def arrivals(per_second: pd.DataFrame, label: str = "", dispersion: float | None = None) -> Figure:
    """Offered arrivals per second (points) against the schedule's expected arrivals per second (line),
    with the spread a Poisson process would have around it (expected ± 2 sqrt(expected))."""
    index = "n/a" if dispersion is None else f"{dispersion:.2f}"
    fig, ax = new_figure(f"Offered arrivals per second vs the schedule ({label}; dispersion index {index})")
    if per_second.empty:
        empty_note(ax)
        return fig
    _stage_bands(ax, per_second)
    # the expected arrivals of each second as a step line over it (the last step drawn to its end)
    edges = np.append(per_second["second"].to_numpy(dtype=np.float64), per_second["second"].iloc[-1] + 1.0)
    expected = per_second["expected"] if "expected" in per_second else pd.Series(0.0, index=per_second.index)
    expected = np.append(expected.to_numpy(dtype=np.float64), expected.iloc[-1])
    spread = 2 * np.sqrt(np.clip(expected, 0, None))
    ax.fill_between(
        edges,
        np.clip(expected - spread, 0, None),
        expected + spread,
        step="post",
        color="#e76f51",
        alpha=0.12,
        lw=0,
        label="Poisson spread (± 2 sqrt(expected))",
    )
    ax.plot(edges, expected, color="#e76f51", lw=1.5, drawstyle="steps-post", label="expected r(t)")
    ax.plot(
        per_second["second"] + 0.5,
        per_second["offered"],
        "o",
        color="#1d3557",
        ms=3,
        label="offered (arrivals in the second)",
    )
    ax.set_ylim(bottom=0)
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("arrivals / s")
    ax.legend(loc="upper left", fontsize=8, bbox_to_anchor=(0, 0.93))
    return fig


def replay(per_second: pd.DataFrame, replay_meta: dict[str, Any], schedule_t0: float) -> Figure:
    """A replayed day on its recorded clock: the recorded curve in the run's units (each interval's
    chats x scale / (length / speed) per second, as a step line) beside the offered and accepted
    StartChatContact per second; the right axis gives the recorded day's own chats per minute."""
    speed = float(replay_meta.get("speed") or 1.0)
    scale = float(replay_meta.get("scale") or 1.0)
    wall_clock = replay_meta.get("wall_clock") is not False
    fig, ax = new_figure(
        f"Replay of {replay_meta.get('file')} on the recorded clock (scale {scale:g}, speed {speed:g}x)"
    )
    curve = arrival_stats.recorded_rate(replay_meta)
    if curve.empty and per_second.empty:
        empty_note(ax)
        return fig

    def clock(seconds: np.ndarray) -> np.ndarray:
        seconds = np.asarray(seconds, dtype=np.float64)
        return (np.round(seconds * 1000)).astype("datetime64[ms]") if wall_clock else seconds

    if len(curve):
        x = np.append(curve["start"].to_numpy(), curve["end"].iloc[-1])
        y = np.append(curve["rate"].to_numpy(), curve["rate"].iloc[-1])
        ax.plot(clock(x), y, color="#e76f51", lw=1.8, drawstyle="steps-post", label="recorded (run units)")
    if len(per_second):
        at = clock(arrival_stats.recorded_clock(per_second["t"], replay_meta, schedule_t0))
        ax.plot(at, per_second["offered"], color="#1d3557", lw=0.8, drawstyle="steps-post", label="offered")
        ax.plot(at, per_second["accepted"], color=COLORS["ok"], lw=0.8, drawstyle="steps-post", label="accepted (ok)")
    if wall_clock:
        locator = mdates.AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        ax.set_xlabel("recorded time of day (UTC)")
    else:
        ax.set_xlabel("recorded time (s)")
    ax.set_ylabel("chats / s in the run")
    per_minute = 60.0 / (scale * speed)
    right = ax.secondary_yaxis("right", functions=(lambda v: v * per_minute, lambda v: v / per_minute))
    right.set_ylabel("recorded chats / min")
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper left", fontsize=8)
    return fig


def delivery(frame: pd.DataFrame) -> Figure:
    """Websocket message delivery latency (ok MessageDelivery p50/p95 per second of sending) above
    the offered StartChatContact arrivals per second (experience.delivery_per_second())."""
    fig = Figure(figsize=(10, 5), dpi=100, layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    top.set_title("Message delivery latency (websocket echo, ok) beside offered load")
    for ax in (top, bottom):
        ax.grid(True, alpha=0.3)
    drawn = False
    for column, label in (("delivery_p50_ms", "delivery p50"), ("delivery_p95_ms", "delivery p95")):
        if frame[column].notna().any():
            top.plot(frame["second"], frame[column], label=label, lw=1, marker=".", ms=2)
            drawn = True
    if drawn:
        top.legend(loc="upper left", fontsize=8)
    else:
        empty_note(top)
    top.set_ylabel("ms")
    bottom.plot(frame["second"], frame["offered"], color="#1d3557", lw=1, drawstyle="steps-post", label="offered")
    bottom.set_ylabel("StartChatContact / s")
    bottom.set_xlabel("seconds since start")
    return fig


def render_all(
    per_second: pd.DataFrame,
    per_stage: pd.DataFrame,
    quota_chats: float | None,
    quota_rate: float | None,
    outages: list[dict[str, Any]] | None = None,
    traffic: dict[str, Any] | None = None,
    schedule_t0: float = 0.0,
    delivery_per_second: pd.DataFrame | None = None,
) -> dict[str, Figure]:
    """Every plot of the report; `traffic` is arrivals.traffic() (replay.png only for a replay);
    delivery.png only with `delivery_per_second` (experience.delivery_per_second(), websocket rows)."""
    traffic = traffic or {}
    figures = {
        "offered_vs_accepted": offered_vs_accepted(per_second, outages),
        "arrivals": arrivals(
            per_second,
            traffic.get("label", "evenly spaced arrivals"),
            (traffic.get("dispersion") or {}).get("dispersion_index"),
        ),
        "outcomes": outcomes_stacked(per_second, outages),
        "latency": latency_over_time(per_second),
        "active_chats": active_chats(per_second, quota_chats),
        "saturation": saturation_curve(per_stage, quota_rate),
    }
    if traffic.get("replay_meta"):
        figures["replay"] = replay(per_second, traffic["replay_meta"], schedule_t0)
    if delivery_per_second is not None:
        figures["delivery"] = delivery(delivery_per_second)
    return figures


def save(figures: dict[str, Figure], folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, fig in figures.items():
        paths[name] = folder / f"{name}.png"
        fig.savefig(paths[name])
    return paths
