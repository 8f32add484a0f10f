"""Traffic as it arrived: the arrival process, the schedule's expected rate, the burstiness of the
offered arrivals (dispersion index) and, for a replayed day, how the run relates to the recording.

Pure: tables and meta.json in, numbers out (the findings turn them into sentences).

meta.json["scenario"]["arrivals"] = {"process": "uniform" | "poisson", "seed": int | null,
"replay": null | {"file", "shape", "scale", "speed", "window", "interval_s", "wall_clock",
"intervals": [[recorded_start, length_s, chats], ...]}}; a run written before arrival processes
existed has no such key and was uniform.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np
import pandas as pd

from chatload.contracts import POISSON, UNIFORM

# Fewer full seconds than this inside step stages with a rate: no dispersion index (null).
MIN_DISPERSION_SECONDS = 10
# Tolerance when asking whether a one-second bucket lies inside a stage's window (float epochs).
_EPS = 1e-6


def _num(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


# ---------------------------------------------------------------- the process meta.json records


def arrival_process(meta: dict[str, Any]) -> dict[str, Any]:
    """{"process", "seed", "replay"} from meta.json; a missing key reads as uniform, no seed, no replay."""
    scenario = meta.get("scenario") if isinstance(meta.get("scenario"), dict) else {}
    arrivals = scenario.get("arrivals") if isinstance(scenario.get("arrivals"), dict) else {}
    seed = arrivals.get("seed")
    replay = arrivals.get("replay")
    return {
        "process": str(arrivals.get("process") or UNIFORM),
        "seed": seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
        "replay": replay if isinstance(replay, dict) else None,
    }


def process_label(process: str, seed: int | None) -> str:
    """How a sentence names the arrival process: "Poisson arrivals, seed 7", "evenly spaced arrivals"."""
    if process == POISSON:
        return f"Poisson arrivals, seed {seed}" if seed is not None else "Poisson arrivals, seed not recorded"
    if process == UNIFORM:
        return "evenly spaced arrivals"
    return f"{process} arrivals" + (f", seed {seed}" if seed is not None else "")


# ---------------------------------------------------------------- the schedule's expected arrivals


def expected_arrivals(times: np.ndarray, stages: pd.DataFrame) -> np.ndarray:
    """A(t): arrivals the schedule expects from its start to each epoch time t.

    `stages` are the configured stages with their windows (stages.with_windows), which follow each
    other. Within stage k's window [w_k, w_k + d_k] the rate is r(t) = r0 + (r1 - r0) (t - w_k) / d_k
    (r0 = r1 for a step), so by t it has added r0 x + (r1 - r0) x^2 / (2 d_k) arrivals,
    x = clip(t - w_k, 0, d_k), on top of the (r0 + r1) / 2 x d of each stage before it. Stages without
    a finite window add nothing; a rate that is not a number counts as 0.
    """
    times = np.asarray(times, dtype=np.float64)
    windows = _stage_windows(stages)
    if windows.empty or not len(times):
        return np.zeros(len(times))
    start, length = windows["start"].to_numpy(), windows["length"].to_numpy()
    r0, r1 = windows["r0"].to_numpy(), windows["r1"].to_numpy()
    before = np.concatenate([[0.0], np.cumsum((r0 + r1) / 2 * length)[:-1]])
    k = np.searchsorted(start, times, side="right") - 1
    inside = k >= 0
    k = np.clip(k, 0, None)
    x = np.clip(times - start[k], 0.0, length[k])
    partial = r0[k] * x + (r1[k] - r0[k]) * x * x / (2.0 * length[k])
    return np.where(inside, before[k] + partial, 0.0)


def _stage_windows(stages: pd.DataFrame) -> pd.DataFrame:
    """stage, ramp, start, length, r0, r1 of the stages with a finite window longer than 0, by start."""
    rows = []
    for stage in stages.itertuples(index=False):
        start, end = _num(getattr(stage, "window_start", None)), _num(getattr(stage, "window_end", None))
        if start is None or end is None or not end > start:
            continue
        r1 = _num(stage.target_rate)
        r0 = _num(stage.start_rate) if stage.ramp == "linear" else r1
        rows.append(
            {
                "stage": str(stage.stage),
                "ramp": str(stage.ramp),
                "start": start,
                "length": end - start,
                "r0": (r1 if r0 is None else r0) or 0.0,
                "r1": r1 or 0.0,
                "rate_known": r1 is not None,
            }
        )
    columns = ["stage", "ramp", "start", "length", "r0", "r1", "rate_known"]
    return pd.DataFrame(rows, columns=columns).sort_values("start", kind="stable", ignore_index=True)


def expected_per_second(t: np.ndarray, stages: pd.DataFrame) -> np.ndarray:
    """Arrivals the schedule expects in each one-second bucket [t, t + 1): A(t + 1) - A(t), which is
    the mean of r(t) over the bucket (the expected rate, comparable with the offered count)."""
    t = np.asarray(t, dtype=np.float64)
    return expected_arrivals(t + 1.0, stages) - expected_arrivals(t, stages)


# ---------------------------------------------------------------- dispersion of the offered arrivals


def dispersion_index(per_second: pd.DataFrame, stages: pd.DataFrame, arrivals_end: float = math.inf) -> dict[str, Any]:
    """Variance over mean of the offered arrivals per second: about 1 for Poisson arrivals, about 0
    for evenly spaced ones at a rate of 1/s or more (below 1/s a second holds 0 or 1 arrivals and an
    even spacing at rate m reads about 1 - m: per-second counts tell the two apart poorly).

    Only seconds wholly inside a step stage with a rate > 0 count (a ramp's mean moves; a stage's
    first and last partial seconds mix two rates), and only up to `arrivals_end` (the last arrival,
    when the run did not run its whole schedule). Stage s has n_s such seconds with counts x_si and
    mean m_s. Pooled estimator:

        D = sum_s sum_i (x_si - m_s)^2  /  sum_s (n_s - 1) m_s

    Why: deviations are taken from each stage's own mean, so different stage rates add no spread.
    For Poisson counts, E[sum_i (x_si - m_s)^2] = (n_s - 1) lambda_s and E[(n_s - 1) m_s] =
    (n_s - 1) lambda_s: numerator and denominator estimate the same number, so D is near 1 whatever
    the stages' rates and lengths. Equivalently D = sum_s w_s D_s, the stages' own indices
    D_s = var_s / m_s (var with n_s - 1) weighted by w_s proportional to (n_s - 1) m_s, about the
    stage's arrivals: an arrivals-weighted mean. A stage with one full second adds nothing to either
    sum, so only stages with at least 2 full seconds count; D is None when they hold fewer than
    MIN_DISPERSION_SECONDS seconds or no arrivals.
    """
    rows: list[dict[str, Any]] = []
    t = per_second["t"].to_numpy(dtype=np.float64) if len(per_second) else np.zeros(0)
    offered = per_second["offered"].to_numpy(dtype=np.float64) if len(per_second) else np.zeros(0)
    windows = _stage_windows(stages)
    steps = windows[(windows["ramp"] == "step") & windows["rate_known"] & (windows["r1"] > 0)]
    for stage in steps.itertuples(index=False):
        end = min(stage.start + stage.length, arrivals_end)
        # seconds [t, t + 1) with t >= start and t + 1 <= end (t is sorted)
        first = np.searchsorted(t, stage.start - _EPS, side="left")
        last = np.searchsorted(t, end - 1.0 + _EPS, side="right")
        counts = offered[first:last]
        if len(counts) < 2:
            continue
        mean = float(counts.mean())
        squares = float(((counts - mean) ** 2).sum())
        rows.append(
            {
                "stage": stage.stage,
                "seconds": len(counts),
                "mean": mean,
                "variance": squares / (len(counts) - 1),
                "dispersion_index": squares / ((len(counts) - 1) * mean) if mean > 0 else None,
                "squares": squares,
            }
        )
    seconds = sum(r["seconds"] for r in rows)
    denominator = sum((r["seconds"] - 1) * r["mean"] for r in rows)
    index = (
        sum(r["squares"] for r in rows) / denominator if seconds >= MIN_DISPERSION_SECONDS and denominator > 0 else None
    )
    return {
        "dispersion_index": index,
        "seconds": seconds,
        "mean_per_second": sum(r["seconds"] * r["mean"] for r in rows) / seconds if seconds else None,
        "min_seconds": MIN_DISPERSION_SECONDS,
        "stages": [{k: v for k, v in r.items() if k != "squares"} for r in rows],
    }


# ---------------------------------------------------------------- a replayed day


def recorded_intervals(replay: dict[str, Any]) -> np.ndarray:
    """The replay's intervals as an (n, 3) float array: recorded start, length s, chats as recorded
    (rows that are not three finite numbers are left out)."""
    rows = []
    for item in replay.get("intervals") or []:
        if isinstance(item, list | tuple) and len(item) >= 3:
            values = [_num(v) for v in item[:3]]
            if all(v is not None for v in values):
                rows.append(values)
    return np.array(rows, dtype=np.float64).reshape(-1, 3)


def recorded_time(seconds: float, wall_clock: bool) -> str | float:
    """A recorded time as summary.json gives it: ISO 8601 UTC text for wall-clock files, else seconds."""
    if not wall_clock:
        return seconds
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def recorded_clock(t: np.ndarray | pd.Series, replay: dict[str, Any], schedule_t0: float) -> np.ndarray:
    """Run time (epoch seconds) on the recording's clock: recorded_start + (t - schedule start) x speed.

    Exact for recordings without gaps (the harness's intervals follow each other: an interval table's
    row lasts until the next row, contact records are counted in consecutive intervals)."""
    intervals = recorded_intervals(replay)
    start = float(intervals[0, 0]) if len(intervals) else 0.0
    speed = _num(replay.get("speed")) or 1.0
    return start + (np.asarray(t, dtype=np.float64) - schedule_t0) * speed


def recorded_rate(replay: dict[str, Any]) -> pd.DataFrame:
    """The recorded curve in the run's units, one row per interval: recorded start and end, and the
    rate its stage offers, chats x scale / (length / speed) per second."""
    intervals = recorded_intervals(replay)
    scale = _num(replay.get("scale")) or 1.0
    speed = _num(replay.get("speed")) or 1.0
    lengths = intervals[:, 1]
    rate = np.divide(intervals[:, 2] * scale * speed, lengths, out=np.zeros(len(lengths)), where=lengths > 0)
    return pd.DataFrame({"start": intervals[:, 0], "end": intervals[:, 0] + lengths, "rate": rate})


def replay_summary(replay: dict[str, Any] | None, offered_chats: int, peak_active: int) -> dict[str, Any] | None:
    """summary.json["replay"]: what was replayed, how it compares with the run, and why the run's
    concurrency is `speed` times the recorded day's.

    Arrivals are compressed by `speed` but hold times are not, so by Little's law (concurrency =
    arrival rate x mean chat life) the run holds speed x the concurrency the recorded day (at the
    replay's scale) held with the same chat lives: concurrency_factor = speed, and the recorded
    day's equivalent of the run's peak is peak / speed (peak / (speed x scale) as recorded).
    """
    if replay is None:
        return None
    intervals = recorded_intervals(replay)
    scale = _num(replay.get("scale")) or 1.0
    speed = _num(replay.get("speed")) or 1.0
    wall_clock = replay.get("wall_clock") is not False
    start = float(intervals[0, 0]) if len(intervals) else None
    end = float(intervals[-1, 0] + intervals[-1, 1]) if len(intervals) else None
    equivalent = peak_active / speed
    if speed == 1:
        note = (
            f"Replayed at the recorded speed: the run's concurrency is the recorded day's "
            f"(peak {peak_active} active chats)."
        )
    else:
        at_scale = f" at scale {scale:g}" if scale != 1 else ""
        as_recorded = f"; {equivalent / scale:.1f} as recorded, before the scale of {scale:g}" if scale != 1 else ""
        note = (
            f"Replayed at {speed:g}x the recorded speed with chat lives as they are: by Little's law "
            f"(concurrency = arrival rate x mean chat life) the run held {speed:g}x the concurrency of the "
            f"recorded day{at_scale}: peak {peak_active} active chats in the run, about {equivalent:.1f} on the "
            f"recorded day{as_recorded}."
        )
    return {
        "file": replay.get("file"),
        "shape": replay.get("shape"),
        "scale": scale,
        "speed": speed,
        "window": replay.get("window"),
        "wall_clock": wall_clock,
        "intervals": len(intervals),
        "recorded_start": None if start is None else recorded_time(start, wall_clock),
        "recorded_end": None if end is None else recorded_time(end, wall_clock),
        "recorded_chats": float(intervals[:, 2].sum() * scale),
        "offered_chats": int(offered_chats),
        "concurrency_factor": speed,
        "peak_active_chats": int(peak_active),
        "recorded_peak_active_chats": equivalent,
        "note": note,
    }


# ---------------------------------------------------------------- everything the report needs


def traffic(
    meta: dict[str, Any],
    per_second: pd.DataFrame,
    stages: pd.DataFrame,
    arrivals_end: float,
    offered_chats: int,
    peak_active: int,
) -> dict[str, Any]:
    """The arrival process, its label, the dispersion of the offered arrivals and the replay facts."""
    process = arrival_process(meta)
    return {
        "process": process["process"],
        "seed": process["seed"],
        "label": process_label(process["process"], process["seed"]),
        "dispersion": dispersion_index(per_second, stages, arrivals_end),
        "replay_meta": process["replay"],
        "replay": replay_summary(process["replay"], offered_chats, peak_active),
    }
