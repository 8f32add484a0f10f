"""Chats as the harness saw them: when each started and ended, and how many were active when.

A chat is active from the moment its ok StartChatContact returned (t_start + latency) until its first
ok DisconnectParticipant or StopContact was sent (its t_start), or the end of the run. The service
takes a slot somewhere inside the start call and frees it somewhere inside the end call; counting
from the start call's return to the end call's send never counts a chat the service no longer held,
so the peak never reads above what the concurrency quota let through.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from chatload.contracts import ENDING_OPERATIONS, OK, START_CHAT


def _returned_at(rows: pd.DataFrame) -> pd.Series:
    return rows["t_start"] + rows["latency_ms"].fillna(0.0) / 1000.0


def lifetimes(attempts: pd.DataFrame) -> pd.DataFrame:
    """One row per started chat: chat_key, t_started, t_ended (NaN if never ended), ended_by."""
    columns = ["operation", "t_start", "latency_ms", "chat_key"]
    ok = attempts.loc[(attempts["outcome"] == OK) & (attempts["chat_key"] >= 0), columns]
    starts = (
        ok[ok["operation"] == START_CHAT]
        .assign(t_started=_returned_at)
        .groupby("chat_key", sort=False)["t_started"]
        .min()
        .reset_index()
    )
    ends = ok[ok["operation"].isin(ENDING_OPERATIONS)].assign(t_ended=lambda rows: rows["t_start"])[
        ["chat_key", "t_ended", "operation"]
    ]
    first_end = (
        starts.merge(ends, on="chat_key", how="inner")
        .query("t_ended >= t_started")
        .sort_values("t_ended", kind="stable")
        .drop_duplicates("chat_key")[["chat_key", "t_ended", "operation"]]
        .rename(columns={"operation": "ended_by"})
    )
    result = starts.merge(first_end, on="chat_key", how="left")
    return result.assign(ended_by=result["ended_by"].astype("string").fillna("")).sort_values(
        "t_started", kind="stable", ignore_index=True
    )


def durations(chats: pd.DataFrame, t_end: float) -> pd.DataFrame:
    """Each chat's duration in seconds; chats never ended count until the run end (censored)."""
    return chats.assign(
        duration_s=chats["t_ended"].fillna(t_end) - chats["t_started"],
        censored=chats["t_ended"].isna(),
    )


def active_per_second(chats: pd.DataFrame, t0: float, n_seconds: int) -> pd.DataFrame:
    """Per second s (the interval [t0+s, t0+s+1)): chats active at its end and the peak within it.

    Events are +1 at a start and -1 at an end; at equal times an end counts before a start.
    """
    seconds = pd.RangeIndex(n_seconds, name="second")
    if n_seconds == 0:
        return pd.DataFrame({"active_chats": [], "active_chats_peak": []}, index=seconds, dtype="int64")
    events = (
        pd.concat(
            [
                pd.DataFrame({"t": chats["t_started"], "delta": 1}),
                pd.DataFrame({"t": chats["t_ended"].dropna(), "delta": -1}),
            ],
            ignore_index=True,
        )
        .sort_values(["t", "delta"], kind="stable")
        .assign(
            level=lambda e: e["delta"].cumsum(),
            second=lambda e: np.clip(np.floor(e["t"] - t0), 0, n_seconds - 1).astype(np.int64),
        )
    )
    delta = np.bincount(events["second"], weights=events["delta"], minlength=n_seconds)
    at_end = np.cumsum(delta).round().astype(np.int64)
    before = np.concatenate([[0], at_end[:-1]])
    within = events.groupby("second")["level"].max().reindex(seconds).to_numpy()
    peak = np.fmax(before, np.nan_to_num(within, nan=-1)).astype(np.int64)
    return pd.DataFrame({"active_chats": at_end, "active_chats_peak": peak}, index=seconds)


def peak_active(chats: pd.DataFrame) -> int:
    """Exact highest number of chats active at once (ends count before starts at equal times)."""
    if chats.empty:
        return 0
    events = pd.concat(
        [
            pd.DataFrame({"t": chats["t_started"], "delta": 1}),
            pd.DataFrame({"t": chats["t_ended"].dropna(), "delta": -1}),
        ],
        ignore_index=True,
    ).sort_values(["t", "delta"], kind="stable")
    return int(max(0, events["delta"].cumsum().max()))
