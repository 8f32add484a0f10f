"""Outages: stretches of time in which the target could not be reached (pure: attempts in, list out).

An outage is a maximal run of connection_error calls (every operation, ordered by t_start) with no
call in between that got an answer (any outcome but connection_error and timeout), lasting at least
OUTAGE_MIN_S from the first failing call's start to the last one's return, with at least
OUTAGE_MIN_CALLS failed calls.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from chatload.analysis.columns import OUTAGE_MIN_CALLS, OUTAGE_MIN_S
from chatload.contracts import DROPPED

FAILED = "connection_error"
NO_ANSWER = (FAILED, "timeout", DROPPED)


def outages(
    attempts: pd.DataFrame, t0: float, min_s: float = OUTAGE_MIN_S, min_calls: int = OUTAGE_MIN_CALLS
) -> list[dict[str, Any]]:
    """[{from, to (epoch), from_s, to_s (since t0), seconds, failed_calls}] in time order."""
    outcome = attempts["outcome"]
    failed = attempts.loc[outcome == FAILED, ["t_start", "latency_ms"]].sort_values("t_start", kind="stable")
    if len(failed) < min_calls:
        return []
    answered = np.sort(attempts.loc[~outcome.isin(NO_ANSWER), "t_start"].to_numpy())
    starts = failed["t_start"].to_numpy()
    returns = starts + np.nan_to_num(failed["latency_ms"].to_numpy(), nan=0.0) / 1000.0
    # answered calls started before each failed call: a change between neighbours breaks the run
    seen = np.searchsorted(answered, starts, side="left")
    new_run = np.concatenate([[True], seen[1:] != seen[:-1]])
    run_id = np.cumsum(new_run) - 1
    found = []
    for r in range(int(run_id[-1]) + 1):
        members = run_id == r
        begin, end = float(starts[members][0]), float(returns[members].max())
        count = int(members.sum())
        if count >= min_calls and end - begin >= min_s:
            found.append(
                {
                    "from": begin,
                    "to": end,
                    "from_s": begin - t0,
                    "to_s": end - t0,
                    "seconds": end - begin,
                    "failed_calls": count,
                }
            )
    return found
