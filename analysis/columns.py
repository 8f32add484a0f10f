"""Names shared by the analysis: attempts columns, outcome classes, operations (no heavy imports)."""

from __future__ import annotations

START = "StartChatContact"
# Calls that end a chat as the harness sees it (the first ok one ends the chat).
ENDING_OPERATIONS = ("DisconnectParticipant", "StopContact")

OK = "ok"
DROPPED = "dropped"
THROTTLED_TPS = "throttled_tps"
THROTTLED_CONCURRENCY = "throttled_concurrency"
THROTTLED_UNKNOWN = "throttled_unknown"
# Outcome classes in the order tables and plots show them (architecture.md section 3).
CALL_OUTCOMES = (
    OK,
    THROTTLED_TPS,
    THROTTLED_CONCURRENCY,
    THROTTLED_UNKNOWN,
    "client_error",
    "server_error",
    "timeout",
    "connection_error",
)
OUTCOMES = (*CALL_OUTCOMES, DROPPED)
THROTTLED = (THROTTLED_TPS, THROTTLED_CONCURRENCY, THROTTLED_UNKNOWN)
OTHER_ERRORS = tuple(o for o in CALL_OUTCOMES if o not in (OK, THROTTLED_TPS, THROTTLED_CONCURRENCY))

# Attempts columns the analysis reads (contact_id is never loaded). String columns are read as
# dictionaries and become pandas categoricals, so 10 million rows stay small; http_status is int16.
FLOAT_COLUMNS = ("t_intended", "t_start", "latency_ms")
INT_COLUMNS = ("attempts", "http_status")
CATEGORY_COLUMNS = ("operation", "outcome", "stage", "worker", "first_outcome", "error_code")
STRING_COLUMNS = ("chat",)
REQUIRED_COLUMNS = ("t_start", "operation", "outcome")
READ_COLUMNS = (*FLOAT_COLUMNS, *INT_COLUMNS, *CATEGORY_COLUMNS, *STRING_COLUMNS)

# Rolling window (seconds) that defines a "sustained" rate.
SUSTAINED_WINDOW_S = 10
# TPS-throttle share of a stage's StartChatContact calls above which throttling has "started".
ONSET_SHARE = 0.01
# A run of connection errors (no call answered in between) this long or longer is an outage.
OUTAGE_MIN_S = 1.0
OUTAGE_MIN_CALLS = 2
