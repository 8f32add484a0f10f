"""The report's tables: per second, per stage and per operation (tidy: one row per observation).

Time buckets: second s of the run is [t0 + s, t0 + s + 1) where t0 is the schedule's start (whole
seconds earlier when rows are earlier, so buckets stay aligned with the stages). Arrivals (offered,
dropped) count in the second of t_intended (t_start when not paced), beside the arrivals the
schedule expects in that second; calls (started, accepted, outcome classes, latencies) in the second
of t_start.
Latency percentiles interpolate linearly between ranks (numpy's default) within each bucket.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from chatload.analysis.arrivals import expected_per_second
from chatload.analysis.chats import active_per_second
from chatload.analysis.columns import OTHER_ERRORS
from chatload.analysis.stages import stage_order
from chatload.contracts import CALL_OUTCOMES, DROPPED, OK, START_CHAT, THROTTLED_CONCURRENCY, THROTTLED_TPS, THROTTLES

QUANTILES = {"p50": 0.50, "p95": 0.95, "p99": 0.99}


def seconds_of(times: pd.Series, t0: float) -> np.ndarray:
    return np.maximum(np.floor(times.to_numpy() - t0), 0).astype(np.int64)


def start_calls(attempts: pd.DataFrame) -> pd.DataFrame:
    """StartChatContact rows (calls and dropped arrivals), with arrival time."""
    columns = ["t_intended", "t_start", "latency_ms", "outcome", "stage", "attempts"]
    rows = attempts.loc[attempts["operation"] == START_CHAT, columns]
    return rows.assign(t_arrival=rows["t_intended"].fillna(rows["t_start"]))


def latency_quantiles(keys: pd.Series | np.ndarray, latency: pd.Series, prefix: str) -> pd.DataFrame:
    """p50/p95/p99 of `latency` per key; columns <prefix>_p50_ms ..."""
    keys = keys.to_numpy() if isinstance(keys, pd.Series) and keys.dtype != "category" else keys
    frame = pd.DataFrame({"key": keys, "latency": latency.to_numpy()}).dropna()
    columns = [f"{prefix}_{q}_ms" for q in QUANTILES]
    if frame.empty:
        return pd.DataFrame(columns=columns, dtype="float64")
    table = frame.groupby("key", observed=True)["latency"].quantile(list(QUANTILES.values())).unstack()
    table.columns = columns
    if isinstance(table.index, pd.CategoricalIndex):
        table.index = table.index.astype(str)
    return table


def n_seconds(run_t0: float, run_t_end: float, starts: pd.DataFrame) -> int:
    last = max(run_t_end, float(starts["t_arrival"].max()) if len(starts) else run_t0)
    return math.ceil(last - run_t0) if last > run_t0 else 0


def _counts(seconds: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(seconds, minlength=n)[:n] if n else np.zeros(0, np.int64)


def per_second(
    attempts: pd.DataFrame, chats: pd.DataFrame, t0: float, t_end: float, stages: pd.DataFrame
) -> pd.DataFrame:
    """One row per second of the run, StartChatContact only (plus chats active).

    `expected` is the arrivals the schedule expects in the second (its rate r(t) averaged over it).
    """
    starts = start_calls(attempts)
    n = n_seconds(t0, t_end, starts)
    n_secs = max(n, int(seconds_of(starts["t_start"], t0).max()) + 1 if len(starts) else 0)
    arrival_s = seconds_of(starts["t_arrival"], t0)
    calls = starts[starts["outcome"] != DROPPED]
    call_s = seconds_of(calls["t_start"], t0)
    outcome_s = {o: _counts(call_s[(calls["outcome"] == o).to_numpy()], n_secs) for o in CALL_OUTCOMES}
    dropped_s = _counts(arrival_s[(starts["outcome"] == DROPPED).to_numpy()], n_secs)
    ok = (calls["outcome"] == OK).to_numpy()
    throttled = calls["outcome"].isin(THROTTLES).to_numpy()
    latency = pd.concat(
        [
            latency_quantiles(call_s[ok], calls["latency_ms"][ok], "ok"),
            latency_quantiles(call_s[throttled], calls["latency_ms"][throttled], "throttled"),
        ],
        axis=1,
    )
    t = t0 + np.arange(n_secs, dtype=np.float64)
    frame = pd.DataFrame(
        {
            "t": t,
            "stage": _stage_per_second(starts, arrival_s, n_secs, stages),
            "offered": _counts(arrival_s, n_secs),
            "expected": expected_per_second(t, stages),
            "started": _counts(call_s, n_secs),
            "accepted": outcome_s[OK],
            **outcome_s,
            DROPPED: dropped_s,
        },
        index=pd.RangeIndex(n_secs, name="second"),
    )
    return frame.join(latency.reindex(frame.index)).join(active_per_second(chats, t0, n_secs)).reset_index()


def _stage_per_second(starts: pd.DataFrame, arrival_s: np.ndarray, n: int, stages: pd.DataFrame) -> pd.Series:
    """The stage most arrivals of each second belong to; seconds without arrivals keep the previous one."""
    if n == 0 or starts.empty:
        return pd.Series([""] * n, dtype="string")
    names = starts["stage"].astype(str).to_numpy()
    order = pd.Index(stages["stage"]) if len(stages) else pd.Index(pd.unique(names))
    codes = order.get_indexer(names)
    keep = codes >= 0
    grid = np.bincount(arrival_s[keep] * len(order) + codes[keep], minlength=n * len(order))
    grid = grid[: n * len(order)].reshape(n, len(order))
    best = pd.Series(np.where(grid.sum(axis=1) > 0, grid.argmax(axis=1), -1)).replace(-1, np.nan)
    best = best.ffill().bfill()
    return pd.Series([order[int(i)] if i == i else "" for i in best.to_numpy()], dtype="string")


def _shares(frame: pd.DataFrame) -> pd.DataFrame:
    calls = frame["calls"].where(frame["calls"] > 0)
    arrivals = frame["arrivals"].where(frame["arrivals"] > 0)
    return frame.assign(
        success_share=frame[OK] / calls,
        tps_throttle_share=frame[THROTTLED_TPS] / calls,
        concurrency_throttle_share=frame[THROTTLED_CONCURRENCY] / calls,
        other_error_share=frame["other_error"] / calls,
        dropped_share=frame[DROPPED] / arrivals,
    )


def stage_durations(
    all_stages: pd.DataFrame, span: pd.DataFrame, arrivals: pd.Series, arrivals_end: float
) -> pd.DataFrame:
    """window_start (epoch) and duration_s of each stage.

    A configured stage spans its window on the schedule's clock (stages.with_windows); a stage not in
    meta.json spans its first to its last arrival (at least 1 s). The window ends at `arrivals_end` at
    the latest (the last arrival, when the run ended early or was cut short); a stage with arrivals
    then lasts at least 1 s, one without lasts 0 s (its rates are empty).
    """
    frame = all_stages.set_index("stage")
    known = frame.get("window_start", pd.Series(np.nan, index=frame.index)).notna()
    start = frame.get("window_start", pd.Series(np.nan, index=frame.index)).where(known, span["min"])
    observed_end = np.maximum(span["max"], span["min"] + 1.0)
    end = frame.get("window_end", pd.Series(np.nan, index=frame.index)).where(known, observed_end)
    duration = (np.minimum(end, arrivals_end) - start).clip(lower=0.0)
    duration = duration.where(~((arrivals > 0) & (end > arrivals_end)), np.maximum(duration, 1.0))
    return pd.DataFrame({"window_start": start, "duration_s": duration})


def per_stage(attempts: pd.DataFrame, stages: pd.DataFrame, arrivals_end: float = math.inf) -> pd.DataFrame:
    """One row per stage (StartChatContact): rates over the stage's window, shares, latencies.

    `stages` are the configured stages with their windows (stages.with_windows); rates are arrivals
    (offered) and ok calls (accepted) per second of the window (see stage_durations).
    """
    starts = start_calls(attempts)
    span = starts.groupby("stage", observed=True)["t_arrival"].agg(["min", "max"])
    span.index = span.index.astype(str)
    all_stages = stage_order(stages, span["min"])
    counts = _outcome_counts(starts, "stage").reindex(all_stages["stage"], fill_value=0)
    span = span.reindex(all_stages["stage"])
    calls = starts[starts["outcome"] != DROPPED]
    ok = calls[calls["outcome"] == OK]
    throttled = calls[calls["outcome"].isin(THROTTLES)]
    latency = pd.concat(
        [
            latency_quantiles(ok["stage"], ok["latency_ms"], "ok"),
            latency_quantiles(throttled["stage"], throttled["latency_ms"], "throttled"),
        ],
        axis=1,
    ).reindex(all_stages["stage"])
    windows = stage_durations(all_stages, span, counts.sum(axis=1), arrivals_end)
    per_s = windows["duration_s"].where(windows["duration_s"] > 0)
    frame = (
        all_stages.drop(columns=["window_start", "window_end"], errors="ignore")
        .set_index("stage")
        .join(counts)
        .assign(
            mean_target_rate=lambda f: np.where(
                f["ramp"] == "linear", (f["start_rate"] + f["target_rate"]) / 2, f["target_rate"]
            ),
            start_s=windows["window_start"],
            first_arrival=span["min"],
            duration_s=windows["duration_s"],
            arrivals=counts.sum(axis=1),
            calls=counts[list(CALL_OUTCOMES)].sum(axis=1),
            other_error=counts[list(OTHER_ERRORS)].sum(axis=1),
        )
        .assign(
            offered_rate=lambda f: f["arrivals"] / per_s,
            accepted_rate=lambda f: f[OK] / per_s,
        )
        .pipe(_shares)
        .join(latency)
    )
    return frame.reset_index().rename(columns={"index": "stage"})


def _outcome_counts(frame: pd.DataFrame, by: str) -> pd.DataFrame:
    """Rows per (by, outcome) as a wide table: one column per outcome class (categorical groupby)."""
    counts = frame.groupby([by, "outcome"], observed=True).size().unstack("outcome", fill_value=0)
    counts.index = counts.index.astype(str)
    counts.columns = counts.columns.astype(str)
    extra = sorted(set(counts.columns) - {*CALL_OUTCOMES, DROPPED})
    return counts.reindex(columns=[*CALL_OUTCOMES, *extra, DROPPED], fill_value=0)


def _sum_by(frame: pd.DataFrame, by: str, column: str | None = None) -> pd.Series:
    grouped = frame.groupby(by, observed=True)
    result = grouped.size() if column is None else grouped[column].sum()
    result.index = result.index.astype(str)
    return result


def per_operation(attempts: pd.DataFrame) -> pd.DataFrame:
    """One row per operation: calls, outcome counts and shares, HTTP attempts, latencies."""
    counts = _outcome_counts(attempts, "operation")
    columns = ["operation", "outcome", "first_outcome", "attempts", "latency_ms"]
    calls = attempts.loc[attempts["outcome"] != DROPPED, columns]
    ok = calls[calls["outcome"] == OK]
    throttled = calls[calls["outcome"].isin(THROTTLES)]
    frame = (
        counts.assign(
            calls=counts.drop(columns=[DROPPED]).sum(axis=1),
            http_attempts=_sum_by(calls, "operation", "attempts"),
            retried_calls=_sum_by(calls[calls["attempts"] > 1], "operation"),
            throttles_hidden_by_retries=_sum_by(ok[ok["first_outcome"].isin(THROTTLES)], "operation"),
        )
        .fillna({"http_attempts": 0, "retried_calls": 0, "throttles_hidden_by_retries": 0})
        .astype({"http_attempts": "int64", "retried_calls": "int64", "throttles_hidden_by_retries": "int64"})
        .assign(
            retry_amplification=lambda f: f["http_attempts"] / f["calls"].where(f["calls"] > 0),
            success_share=lambda f: f[OK] / f["calls"].where(f["calls"] > 0),
            throttle_share=lambda f: f[list(THROTTLES)].sum(axis=1) / f["calls"].where(f["calls"] > 0),
        )
        .join(latency_quantiles(ok["operation"], ok["latency_ms"], "ok"))
        .join(latency_quantiles(throttled["operation"], throttled["latency_ms"], "throttled"))
    )
    frame.index.name = "operation"
    return (
        frame.reset_index()
        .assign(first=lambda f: f["operation"] != START_CHAT)
        .sort_values(["first", "operation"], ignore_index=True)
        .drop(columns=["first"])
    )
