"""The "Throttling" tab in Locust's web UI, and our JSON and CSV routes.

Locust's React UI (2.x) shows extra tabs declared in the page's template arguments
(`extended_tabs`, `extended_tables`); such a tab renders a table whose rows come from the
`extended_stats` list of the `/stats/requests` answer the UI polls every 2 s while a run is going on.
So the tab is a table that refreshes by itself: we add our rows to that answer.

Routes (under --web-base-path when one is set):
- ``GET /chatload/live``      the whole live snapshot as JSON (what the tab shows, plus the last 60 s
                              per second), for scripts and dashboards;
- ``GET /chatload/live.csv``  StartChatContact counts per second over the last 60 s (Download Data tab).

`tab_rows` and `series_csv` are pure; `register` is the Flask/Locust part.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from chatload.contracts import (
    CLIENT_ERROR,
    CONNECTION_ERROR,
    DROPPED,
    OK,
    OUTCOMES,
    SERVER_ERROR,
    START_CHAT,
    THROTTLED_CONCURRENCY,
    THROTTLED_TPS,
    THROTTLED_UNKNOWN,
    THROTTLES,
    TIMEOUT,
)
from chatload.harness.live.progress import clock_text, rate_text, stage_text
from chatload.harness.live.snapshot import LiveSnapshot
from chatload.harness.live.stats import LiveStats

logger = logging.getLogger(__name__)

TAB_KEY = "throttling"
TAB = {"title": "Throttling", "key": TAB_KEY}
COLUMNS = [
    {"key": "figure", "title": "Figure"},
    {"key": "now", "title": "Now (last seconds)"},
    {"key": "total", "title": "Total"},
    {"key": "share", "title": "Share of offered"},
    {"key": "note", "title": "Note"},
]
TABLE = {"key": TAB_KEY, "structure": COLUMNS}
LIVE_PATH = "/chatload/live"
CSV_PATH = "/chatload/live.csv"
CSV_LINK_TITLE = "Download StartChatContact outcomes per second, last 60 s (chatload CSV)"

OUTCOME_LABELS = {
    OK: "Accepted (ok)",
    THROTTLED_TPS: "Throttled: rate / TPS (TooManyRequestsException)",
    THROTTLED_CONCURRENCY: "Throttled: concurrent chats quota (LimitExceededException)",
    THROTTLED_UNKNOWN: "Throttled: other 429",
    CLIENT_ERROR: "Client errors (4xx)",
    SERVER_ERROR: "Server errors (5xx)",
    TIMEOUT: "Timeouts",
    CONNECTION_ERROR: "Connection errors",
    DROPPED: "Dropped arrivals (no customer free in time)",
}


def _row(figure: str, now: str = "", total: str = "", share: str = "", note: str = "") -> dict[str, str]:
    return {"figure": figure, "now": now, "total": total, "share": share, "note": note}


def _share(count: int, of: int) -> str:
    return f"{100.0 * count / of:.1f}%" if of else ""


def tab_rows(snap: LiveSnapshot) -> list[dict[str, str]]:
    """The Throttling tab's table: one row per figure, every cell a string."""
    window = f"last {snap.rate_window_s:.0f} s" if snap.rate_window_s else "no complete second yet"
    target = "" if snap.target_rate is None else f"target {snap.target_rate:.1f}/s"
    remaining = "" if snap.remaining_s is None else f"{clock_text(snap.remaining_s)} left"
    rows = [
        _row("Stage", stage_text(snap), clock_text(snap.elapsed_s) + " elapsed", note=remaining),
        _row(
            "Offered arrivals (StartChatContact)",
            rate_text(snap.offered_rate),
            str(snap.offered),
            _share(snap.offered, snap.offered),
            f"{target}, {window}" if target else window,
        ),
    ]
    start_totals = snap.totals.get(START_CHAT, {})
    outcomes = [*OUTCOMES, *sorted(o for o in start_totals if o not in OUTCOMES)]
    for outcome in outcomes:
        count = start_totals.get(outcome, 0)
        rate = None if snap.offered_rate is None else snap.rates.get(outcome, 0.0)
        note = ""
        if outcome == OK and snap.quota_start_chat_rate is not None:
            note = f"rate quota {snap.quota_start_chat_rate:g}/s"
        rows.append(
            _row(OUTCOME_LABELS.get(outcome, outcome), rate_text(rate), str(count), _share(count, snap.offered), note)
        )
    quota = snap.quota_concurrent_chats
    rows.append(
        _row(
            "Active chats",
            str(snap.active_chats),
            f"peak {snap.peak_active_chats}",
            "",
            "quota unknown" if quota is None else f"quota {quota} ({_share(snap.active_chats, quota)} used)",
        )
    )
    for op in sorted(op for op in snap.totals if op != START_CHAT):
        by_outcome = snap.totals[op]
        throttled = sum(n for o, n in by_outcome.items() if o in THROTTLES)
        errors = sum(n for o, n in by_outcome.items() if o not in (OK, DROPPED, *THROTTLES))
        rows.append(
            _row(
                f"{op} calls",
                "",
                str(sum(by_outcome.values())),
                "",
                f"ok {by_outcome.get(OK, 0)}, throttled {throttled}, errors {errors}",
            )
        )
    if snap.workers:
        rows.append(_row("Workers reporting", str(snap.workers)))
    return rows


def live_payload(snap: LiveSnapshot) -> dict[str, Any]:
    """What ``GET /chatload/live`` answers: the snapshot and the tab's rows."""
    return {**snap.to_dict(), "rows": tab_rows(snap)}


def series_csv(snap: LiveSnapshot) -> str:
    """StartChatContact counts per complete second (epoch second), oldest first."""
    columns = ["t", "offered", *OUTCOMES]
    lines = [",".join(columns)]
    for point in snap.series:
        lines.append(",".join(str(point.get(c, 0)) for c in columns))
    return "\n".join(lines) + "\n"


def _append_once(args: dict[str, Any], key: str, item: dict[str, Any]) -> None:
    items = list(args.get(key) or [])
    if item not in items:
        items.append(item)
    args[key] = items


def register(web_ui: Any, live: LiveStats) -> None:
    """Add the Throttling tab and our routes to Locust's web UI (once per web UI)."""
    from flask import Response, jsonify, request

    app = web_ui.app
    if app.extensions.get("chatload_live") is not None:
        return
    app.extensions["chatload_live"] = live
    options = web_ui.environment.parsed_options
    base = (getattr(options, "web_base_path", "") or "").rstrip("/")

    args = web_ui.template_args
    _append_once(args, "extended_tabs", TAB)
    _append_once(args, "extended_tables", TABLE)
    _append_once(args, "extended_csv_files", {"href": "." + CSV_PATH, "title": CSV_LINK_TITLE})

    def chatload_live() -> Response:
        return jsonify(live_payload(live.snapshot()))

    def chatload_live_csv() -> Response:
        response = Response(series_csv(live.snapshot()), mimetype="text/csv")
        response.headers["Content-Disposition"] = "attachment;filename=chatload_live.csv"
        return response

    def add_throttling_rows(response: Response) -> Response:
        if request.path != base + "/stats/requests" or response.status_code != 200:
            return response
        body = response.get_json(silent=True)
        if not isinstance(body, dict):
            return response
        extended = [e for e in body.get("extended_stats") or [] if e.get("key") != TAB_KEY]
        extended.append({"key": TAB_KEY, "data": tab_rows(live.snapshot())})
        body["extended_stats"] = extended
        response.set_data(json.dumps(body))
        return response

    try:
        app.add_url_rule(base + LIVE_PATH, "chatload_live", web_ui.auth_required_if_enabled(chatload_live))
        app.add_url_rule(base + CSV_PATH, "chatload_live_csv", web_ui.auth_required_if_enabled(chatload_live_csv))
        app.after_request(add_throttling_rows)
    except AssertionError as exc:  # Flask refuses new routes once it has served a request
        logger.warning("chatload: the Throttling tab could not be added (web UI already serving): %s", exc)
