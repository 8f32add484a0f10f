"""The error-code breakdown: failed calls by operation, outcome, HTTP status and error code."""

from __future__ import annotations

import pandas as pd

from chatload.contracts import DROPPED, OK, START_CHAT

ERROR_COLUMNS = ["operation", "outcome", "http_status", "error_code", "calls", "share_of_operation"]


def errors(attempts: pd.DataFrame) -> pd.DataFrame:
    """One row per (operation, outcome, http_status, error_code) of calls that did not succeed
    (ok calls and dropped arrivals left out): the count and its share of the operation's calls.
    StartChatContact first, then operations by name; within one, the most frequent first."""
    calls = attempts.loc[attempts["outcome"] != DROPPED, ["operation", "outcome", "http_status", "error_code"]]
    per_operation = calls.groupby("operation", observed=True).size()
    per_operation.index = per_operation.index.astype(str)
    failed = calls[calls["outcome"] != OK]
    if failed.empty:
        return pd.DataFrame(columns=ERROR_COLUMNS).astype({"calls": "int64", "share_of_operation": "float64"})
    keys = ["operation", "outcome", "http_status", "error_code"]
    table = failed.groupby(keys, observed=True).size().rename("calls").reset_index()
    table = table[table["calls"] > 0].astype(
        {"operation": str, "outcome": str, "error_code": str, "http_status": "int64"}
    )
    return (
        table.assign(
            share_of_operation=table["calls"] / table["operation"].map(per_operation),
            first=table["operation"] != START_CHAT,
        )
        .sort_values(["first", "operation", "calls", "outcome"], ascending=[True, True, False, True], ignore_index=True)
        .drop(columns=["first"])[ERROR_COLUMNS]
    )
