"""What the analysis reads of the attempts rows, and the constants of its findings (no heavy imports).

The names themselves (outcome classes, operations, the attempts columns and their types) are
chatload.contracts'.
"""

from __future__ import annotations

from chatload.contracts import ATTEMPTS_TYPES, CALL_OUTCOMES, OK, THROTTLED_CONCURRENCY, THROTTLED_TPS

# Outcomes that are neither a success nor a classified throttle (the errors columns of the tables).
OTHER_ERRORS = tuple(o for o in CALL_OUTCOMES if o not in (OK, THROTTLED_TPS, THROTTLED_CONCURRENCY))

# Attempts columns the analysis reads (contact_id is never loaded, start_lag_ms and client_token not used). String
# columns are read as dictionaries and become pandas categoricals, so 10 million rows stay small.
NOT_READ = ("contact_id", "start_lag_ms", "client_token")
STRING_COLUMNS = ("chat",)
FLOAT_COLUMNS = tuple(c for c, kind in ATTEMPTS_TYPES.items() if kind == "float64" and c not in NOT_READ)
INT_COLUMNS = tuple(c for c, kind in ATTEMPTS_TYPES.items() if kind == "int" and c not in NOT_READ)
CATEGORY_COLUMNS = tuple(
    c for c, kind in ATTEMPTS_TYPES.items() if kind == "string" and c not in (*NOT_READ, *STRING_COLUMNS)
)
REQUIRED_COLUMNS = ("t_start", "operation", "outcome")
READ_COLUMNS = (*FLOAT_COLUMNS, *INT_COLUMNS, *CATEGORY_COLUMNS, *STRING_COLUMNS)

# Rolling window (seconds) that defines a "sustained" rate.
SUSTAINED_WINDOW_S = 10
# TPS-throttle share of a stage's StartChatContact calls above which throttling has "started".
ONSET_SHARE = 0.01
# A run of connection errors (no call answered in between) this long or longer is an outage.
OUTAGE_MIN_S = 1.0
OUTAGE_MIN_CALLS = 2
