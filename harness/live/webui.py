"""chatload's additions to Locust's web UI: the start form, the "Throttling" tab and its live charts,
and our JSON and CSV routes.

Locust's React UI (2.x) shows extra tabs declared in the page's template arguments
(`extended_tabs`, `extended_tables`); such a tab renders a table whose rows come from the
`extended_stats` list of the `/stats/requests` answer the UI polls every 2 s while a run is going on.
So the tab is a table that refreshes by itself: we add our rows to that answer.

Locust's page can show nothing else by template arguments alone, so the page also loads our own
script and style sheet (web/chatload-live.js and .css, served from this package with the uPlot
library they use: no build step, nothing from a CDN). The script draws the live charts above the
Throttling table and puts the start form in terms of arrival rates (docs/live.md says what exactly).

Routes (under --web-base-path when one is set):
- ``GET /chatload/live``      the whole live snapshot as JSON (what the tab shows, the last 60 s
                              per second, and the charts' columns), for scripts and dashboards;
- ``GET /chatload/live.csv``  StartChatContact counts per second over the last 60 s (Download Data tab);
- ``GET /chatload/static/<file>``  the script, the style sheet and uPlot (web/).

`tab_rows`, `chart_data`, `start_form_args` and `series_csv` are pure; `register` is the Flask/Locust part.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
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
from chatload.harness.live.stats import WINDOW_S, LiveStats

logger = logging.getLogger(__name__)

TAB_KEY = "throttling"
TAB = {"key": TAB_KEY, "title": "Throttling"}
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
STATIC_PATH = "/chatload/static"
CSV_LINK_TITLE = "Download StartChatContact outcomes per second, last 60 s (chatload CSV)"
WEB_DIR = Path(__file__).with_name("web")  # our script and style sheet, and uPlot (package data)
# What the page loads besides Locust's bundle (relative to the page: works under --web-base-path).
PAGE_TAGS = "".join(
    (
        f'<link rel="stylesheet" href=".{STATIC_PATH}/uPlot.min.css">',
        f'<link rel="stylesheet" href=".{STATIC_PATH}/chatload-live.css">',
        f'<script defer src=".{STATIC_PATH}/uPlot.iife.min.js"></script>',
        f'<script defer src=".{STATIC_PATH}/chatload-live.js"></script>',
    )
)
SAMPLE_EVERY_S = 1.0  # the web UI samples the gauges (active chats, stage) this often
MASTER_MARGIN_S = 15  # a lagging or lost worker (10 s) holds the master's complete seconds back this long

# The start form: these options first, in this order; these never (set on the command line only:
# the run folders' location, a run id that every run from the form would reuse, the consent to load a
# real instance); every other chatload option follows in the parser's order.
FORM_FIRST = ("scenario", "rate_multiplier", "arrivals", "target")
FORM_HIDDEN = frozenset({"out", "run_id", "confirm_real_instance"})

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


class GaugeHistory:
    """Active chats, stage and target rate per second, as the web UI sampled them (LiveStats keeps
    counts per second but only the current value of these): the last sample taken in each second,
    the last `window_s` seconds. A new run (another `started_at`) starts an empty history."""

    def __init__(self, window_s: int = WINDOW_S) -> None:
        self.window_s = window_s
        self._started_at: float | None = None
        self._samples: dict[int, tuple[int, str | None, float | None]] = {}

    def sample(self, snap: LiveSnapshot) -> None:
        if snap.started_at != self._started_at:
            self._started_at = snap.started_at
            self._samples = {}
        if snap.started_at is None:
            return
        second = math.floor(snap.now)
        self._samples[second] = (snap.active_chats, snap.stage, snap.target_rate)
        oldest = second - self.window_s
        for s in [s for s in self._samples if s < oldest]:
            del self._samples[s]

    def between(self, first: int, end: int) -> list[tuple[int | None, str | None, float | None]]:
        """For each second of [first, end): the last sample taken in or before it (Nones before the first)."""
        samples = sorted(self._samples.items())
        out, i, value = [], 0, (None, None, None)
        for second in range(first, end):
            while i < len(samples) and samples[i][0] <= second:
                value = samples[i][1]
                i += 1
            out.append(value)
        return out


# The charts' series of StartChatContact outcomes per second (columns of the `chart` JSON key).
CHART_OUTCOMES = {"accepted": OK, "throttled_tps": THROTTLED_TPS,
                  "throttled_concurrency": THROTTLED_CONCURRENCY, "dropped": DROPPED}  # fmt: skip


def chart_data(snap: LiveSnapshot, history: GaugeHistory | None = None, window_s: int = WINDOW_S) -> dict[str, Any]:
    """The live charts' data, one column per series, one entry per complete second still in the
    ring of `window_s` seconds (oldest first, seconds without a call included as zeros): ``t`` (epoch
    second), ``offered``, ``accepted``, ``throttled_tps``, ``throttled_concurrency``, ``dropped``,
    ``other`` (every other StartChatContact outcome: other 429s and errors), ``active_chats``,
    ``stage``, ``target_rate`` (from `history`; null before its first sample), and the quotas.
    The figures of a second never change once it is in the chart."""
    counts = {p["t"]: p for p in snap.series}
    # A local runner: every second before now is complete. The master: the series ends at the last
    # second every worker has reported. A run that stopped: up to the second it stopped in.
    end = math.floor(snap.now) if snap.workers == 0 else max(counts, default=math.floor(snap.now) - 1) + 1
    if snap.started_at is not None and not snap.running:
        end = min(end, math.floor(snap.started_at + snap.elapsed_s) + 1)
    # The ring holds the `window_s - 1` seconds before its newest; on a master that newest second (a
    # worker's) may be up to MASTER_MARGIN_S ahead of `end`.
    first = end - window_s + 1 + (MASTER_MARGIN_S if snap.workers else 0)
    if snap.started_at is not None:
        first = max(first, math.floor(snap.started_at))
    elif counts:
        first = max(first, min(counts))
    else:
        first = end
    columns: dict[str, list[Any]] = {
        k: [] for k in ("t", "offered", *CHART_OUTCOMES, "other", "active_chats", "stage", "target_rate")
    }
    gauges = history.between(first, end) if history is not None else [(None, None, None)] * max(0, end - first)
    for second, (active, stage, target) in zip(range(first, end), gauges, strict=True):
        point = counts.get(second, {})
        offered = point.get("offered", 0)
        columns["t"].append(second)
        columns["offered"].append(offered)
        for key, outcome in CHART_OUTCOMES.items():
            columns[key].append(point.get(outcome, 0))
        columns["other"].append(offered - sum(point.get(o, 0) for o in CHART_OUTCOMES.values()))
        columns["active_chats"].append(active)
        columns["stage"].append(stage)
        columns["target_rate"].append(target)
    return {
        **columns,
        "quota_concurrent_chats": snap.quota_concurrent_chats,
        "quota_start_chat_rate": snap.quota_start_chat_rate,
    }


def live_payload(snap: LiveSnapshot, history: GaugeHistory | None = None, window_s: int = WINDOW_S) -> dict[str, Any]:
    """What ``GET /chatload/live`` answers: the snapshot, the tab's rows and the charts' columns."""
    return {**snap.to_dict(), "rows": tab_rows(snap), "chart": chart_data(snap, history, window_s)}


def start_form_args(template_args: dict[str, Any]) -> dict[str, Any]:
    """What chatload changes in Locust's template arguments for the start form: its options
    ("Custom parameters") in FORM_FIRST order first, without FORM_HIDDEN, and no "no host attribute"
    hint (chatload's users need no host: the endpoint is --endpoint-url)."""
    extra = dict(template_args.get("extra_options") or {})
    ordered = {name: extra[name] for name in FORM_FIRST if name in extra}
    ordered.update((name, v) for name, v in extra.items() if name not in ordered and name not in FORM_HIDDEN)
    return {"extra_options": ordered, "missing_host_warning": False}


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


def register(web_ui: Any, live: LiveStats, *, sample_every_s: float | None = SAMPLE_EVERY_S) -> None:
    """Add the start form's changes, the Throttling tab, its charts and our routes to Locust's web UI
    (once per web UI). A greenlet samples the gauges for the charts every `sample_every_s` (None: only
    when a page asks, as in tests without gevent)."""
    from flask import Response, jsonify, request, send_from_directory

    app = web_ui.app
    if app.extensions.get("chatload_live") is not None:
        return
    app.extensions["chatload_live"] = live
    history = GaugeHistory(live.window_s)
    options = web_ui.environment.parsed_options
    base = (getattr(options, "web_base_path", "") or "").rstrip("/")

    args = web_ui.template_args
    _append_once(args, "extended_tabs", TAB)
    _append_once(args, "extended_tables", TABLE)
    _append_once(args, "extended_csv_files", {"href": "." + CSV_PATH, "title": CSV_LINK_TITLE})

    # Locust computes the form's arguments again for every page (update_template_args): ours are
    # applied after it, and the page keeps their order (Jinja's tojson would sort the options by name).
    locust_update_template_args = web_ui.update_template_args

    def update_template_args() -> None:
        locust_update_template_args()
        web_ui.template_args.update(start_form_args(web_ui.template_args))

    web_ui.update_template_args = update_template_args
    args.update(start_form_args(args))
    app.jinja_env.policies["json.dumps_kwargs"] = {"sort_keys": False}

    def snapshot() -> LiveSnapshot:
        snap = live.snapshot()
        history.sample(snap)
        return snap

    def chatload_live() -> Response:
        return jsonify(live_payload(snapshot(), history, live.window_s))

    def chatload_live_csv() -> Response:
        response = Response(series_csv(snapshot()), mimetype="text/csv")
        response.headers["Content-Disposition"] = "attachment;filename=chatload_live.csv"
        return response

    def chatload_static(name: str) -> Response:
        return send_from_directory(WEB_DIR, name)

    def add_throttling_rows(response: Response) -> Response:
        body = response.get_json(silent=True)
        if not isinstance(body, dict):
            return response
        extended = [e for e in body.get("extended_stats") or [] if e.get("key") != TAB_KEY]
        extended.append({"key": TAB_KEY, "data": tab_rows(snapshot())})
        body["extended_stats"] = extended
        response.set_data(json.dumps(body))
        return response

    def add_page_tags(response: Response) -> Response:
        if response.direct_passthrough or response.mimetype != "text/html":
            return response
        page = response.get_data(as_text=True)
        if "</head>" in page and STATIC_PATH not in page:
            response.set_data(page.replace("</head>", PAGE_TAGS + "</head>", 1))
        return response

    def after_request(response: Response) -> Response:
        if response.status_code != 200:
            return response
        if request.path == base + "/stats/requests":
            return add_throttling_rows(response)
        if request.path == base + "/":  # Locust's page
            return add_page_tags(response)
        return response

    try:
        app.add_url_rule(base + LIVE_PATH, "chatload_live", web_ui.auth_required_if_enabled(chatload_live))
        app.add_url_rule(base + CSV_PATH, "chatload_live_csv", web_ui.auth_required_if_enabled(chatload_live_csv))
        app.add_url_rule(base + STATIC_PATH + "/<path:name>", "chatload_static", chatload_static)
        app.after_request(after_request)
    except AssertionError as exc:  # Flask refuses new routes once it has served a request
        logger.warning("chatload: the Throttling tab could not be added (web UI already serving): %s", exc)
        return
    if sample_every_s is not None:
        import gevent

        def sample_forever() -> None:
            while web_ui.greenlet is None or not web_ui.greenlet.dead:  # until the web UI stops
                snapshot()
                gevent.sleep(sample_every_s)

        gevent.spawn(sample_forever)
