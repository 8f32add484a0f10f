"""Chat experience: what a customer holding the Participant Service websocket saw (issue 14).

The harness writes one attempts row per websocket event, with the standard columns:

| operation | latency_ms |
|---|---|
| WebSocketConnect | until the upgrade completed |
| Subscribe | until the success frame |
| MessageDelivery | from sending a message until its echo arrived on the socket |
| FirstResponse | from StartChatContact to the first frame from another participant (SYSTEM, AGENT, bot) |
| ChatEndedDelivery | from the ending call until the chat.ended frame |
| Heartbeat | a heartbeat's round trip; outcome timeout when its answer never came |
| WebSocketClose | a socket closed unexpectedly (outcome connection_error) |

Outcomes: ok, timeout (nothing within the configured wait), connection_error (refused or dropped),
or a call's class by HTTP status for an upgrade refused with one (client_error for 403 ...).

Figures (summary.json `chat_experience`, null when the run has no such rows):
- per measured operation: count, ok, timeout, connection_error, other (any other outcome), and
  p50/p95/p99 latency of the ok rows (linear interpolation, as the other tables); first_response
  also in seconds;
- lost_frames: MessageDelivery and ChatEndedDelivery rows with outcome timeout (the frame never came);
- late_frames: MessageDelivery and ChatEndedDelivery rows with outcome ok slower than LATE_FRAME_MS;
- unexpected_closes: WebSocketClose rows; missed_heartbeats: Heartbeat rows with outcome timeout.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from chatload.analysis.tables import QUANTILES, seconds_of
from chatload.contracts import (
    CHAT_ENDED_DELIVERY,
    CHAT_EXPERIENCE_OPERATIONS,
    CONNECTION_ERROR,
    FIRST_RESPONSE,
    HEARTBEAT,
    MESSAGE_DELIVERY,
    OK,
    SUBSCRIBE,
    TIMEOUT,
    WEBSOCKET_CLOSE,
    WEBSOCKET_CONNECT,
)

# A frame delivered (outcome ok) but later than this counts as late (ms).
LATE_FRAME_MS = 1000.0

# summary.json key -> operation, in the order the report shows them.
MEASURED = {
    "websocket_connect": WEBSOCKET_CONNECT,
    "subscribe": SUBSCRIBE,
    "message_delivery": MESSAGE_DELIVERY,
    "first_response": FIRST_RESPONSE,
    "chat_ended_delivery": CHAT_ENDED_DELIVERY,
    "heartbeat": HEARTBEAT,
}
DELIVERIES = (MESSAGE_DELIVERY, CHAT_ENDED_DELIVERY)


def _rows(attempts: pd.DataFrame) -> pd.DataFrame:
    """The chat-experience rows: operation and outcome as plain strings, t_start, latency_ms."""
    operation = attempts["operation"].astype(str)
    mine = operation.isin(CHAT_EXPERIENCE_OPERATIONS).to_numpy()
    return pd.DataFrame(
        {
            "operation": operation[mine].to_numpy(),
            "outcome": attempts["outcome"].astype(str)[mine].to_numpy(),
            "t_start": attempts["t_start"][mine].to_numpy(dtype="float64"),
            "latency_ms": attempts["latency_ms"][mine].to_numpy(dtype="float64"),
        }
    )


def _quantiles(latency: pd.Series) -> dict[str, float | None]:
    values = latency.dropna().to_numpy()
    if not len(values):
        return {f"{q}_ms": None for q in QUANTILES}
    return {f"{q}_ms": float(np.quantile(values, p)) for q, p in QUANTILES.items()}


def _operation(rows: pd.DataFrame, operation: str) -> dict[str, Any]:
    mine = rows[rows["operation"] == operation]
    counts = mine["outcome"].value_counts()
    entry: dict[str, Any] = {
        "count": len(mine),
        OK: int(counts.get(OK, 0)),
        TIMEOUT: int(counts.get(TIMEOUT, 0)),
        CONNECTION_ERROR: int(counts.get(CONNECTION_ERROR, 0)),
    }
    entry["other"] = entry["count"] - entry[OK] - entry[TIMEOUT] - entry[CONNECTION_ERROR]
    entry.update(_quantiles(mine.loc[mine["outcome"] == OK, "latency_ms"]))
    return entry


def chat_experience(attempts: pd.DataFrame) -> dict[str, Any] | None:
    """summary.json's `chat_experience` (see the module doc); None without chat-experience rows."""
    rows = _rows(attempts)
    if rows.empty:
        return None
    result: dict[str, Any] = {key: _operation(rows, operation) for key, operation in MEASURED.items()}
    first = result["first_response"]
    for q in QUANTILES:
        ms = first[f"{q}_ms"]
        first[f"{q}_s"] = None if ms is None else ms / 1000.0
    deliveries = rows[rows["operation"].isin(DELIVERIES)]
    result["late_frame_ms"] = LATE_FRAME_MS
    result["lost_frames"] = int((deliveries["outcome"] == TIMEOUT).sum())
    result["late_frames"] = int(((deliveries["outcome"] == OK) & (deliveries["latency_ms"] > LATE_FRAME_MS)).sum())
    result["unexpected_closes"] = int((rows["operation"] == WEBSOCKET_CLOSE).sum())
    heartbeats = rows[rows["operation"] == HEARTBEAT]
    result["heartbeats"] = len(heartbeats)
    result["missed_heartbeats"] = int((heartbeats["outcome"] == TIMEOUT).sum())
    return result


def delivery_per_second(attempts: pd.DataFrame, per_second: pd.DataFrame, t0: float) -> pd.DataFrame | None:
    """Per second of the run (per_second's seconds): ok MessageDelivery latency p50/p95 (ms, in the
    second the message was sent), deliveries, and the offered StartChatContact arrivals beside them.
    None when the run has no MessageDelivery rows."""
    rows = _rows(attempts)
    rows = rows[rows["operation"] == MESSAGE_DELIVERY]
    if rows.empty:
        return None
    ok = rows[(rows["outcome"] == OK) & rows["latency_ms"].notna()]
    n = int(per_second["second"].max()) + 1 if len(per_second) else 0
    n = max(n, int(seconds_of(rows["t_start"], t0).max()) + 1)
    frame = pd.DataFrame({"second": np.arange(n, dtype=np.int64)})
    offered = per_second.set_index("second")["offered"] if len(per_second) else pd.Series(dtype="int64")
    frame["offered"] = frame["second"].map(offered).fillna(0).astype("int64")
    frame["deliveries"] = np.bincount(seconds_of(rows["t_start"], t0), minlength=n)[:n]
    if len(ok):
        grouped = pd.Series(ok["latency_ms"].to_numpy()).groupby(seconds_of(ok["t_start"], t0))
        frame["delivery_p50_ms"] = frame["second"].map(grouped.quantile(0.50))
        frame["delivery_p95_ms"] = frame["second"].map(grouped.quantile(0.95))
    else:
        frame["delivery_p50_ms"] = math.nan
        frame["delivery_p95_ms"] = math.nan
    return frame


def sentence(experience: dict[str, Any]) -> str:
    """The findings' one-line account of the chat experience."""

    def ms(value: Any) -> str:
        return "–" if value is None else f"{value:.0f} ms"

    delivery, first = experience["message_delivery"], experience["first_response"]
    first_p95 = "–" if first["p95_s"] is None else f"{first['p95_s']:.2f} s"
    return (
        f"Chat experience (websocket): connect p95 {ms(experience['websocket_connect']['p95_ms'])}, "
        f"subscribe p95 {ms(experience['subscribe']['p95_ms'])}, message delivery p50/p95/p99 "
        f"{ms(delivery['p50_ms'])}/{ms(delivery['p95_ms'])}/{ms(delivery['p99_ms'])}, "
        f"first response p95 {first_p95}; {experience['lost_frames']} lost and {experience['late_frames']} "
        f"late (> {experience['late_frame_ms'] / 1000:g} s) frames, {experience['unexpected_closes']} unexpected "
        f"closes, {experience['missed_heartbeats']} missed heartbeats."
    )


def troubled(experience: dict[str, Any]) -> bool:
    """Whether the finding deserves a highlight: frames lost or sockets closed unexpectedly."""
    return bool(experience["lost_frames"] or experience["unexpected_closes"] or experience["missed_heartbeats"])
