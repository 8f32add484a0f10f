"""The Throttling tab's rows, the charts' columns, the start form's arguments, the JSON payload and
the Flask wiring (no Locust import: a Flask app stands in for Locust's web UI, which would gevent-patch
the test process). tests/harness/test_webui_browser.py drives the real page in Chromium."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

from flask import Flask, jsonify, render_template_string
from support import FakeClock

from chatload.harness.live.stats import LiveStats
from chatload.harness.live.webui import (
    COLUMNS,
    CSV_PATH,
    FORM_FIRST,
    FORM_HIDDEN,
    LIVE_PATH,
    STATIC_PATH,
    TAB,
    TAB_KEY,
    TABLE,
    WEB_DIR,
    GaugeHistory,
    chart_data,
    live_payload,
    register,
    series_csv,
    start_form_args,
    tab_rows,
)

T0 = 3_000_000.0  # the fake clock's start


def busy_live(clock: FakeClock) -> LiveStats:
    live = LiveStats(clock, rate_window_s=4, total_duration_s=60)
    live.set_stage("plateau", 8)
    live.set_quota(100, 5)
    live.start()
    for _ in range(4):
        for outcome, n in {"ok": 5, "throttled_tps": 2, "throttled_concurrency": 1, "dropped": 1}.items():
            for _ in range(n):
                live.record({"operation": "StartChatContact", "outcome": outcome})
        live.record({"operation": "CreateParticipantConnection", "outcome": "ok"})
        live.record({"operation": "CreateParticipantConnection", "outcome": "throttled_tps"})
        clock.t += 1
    for _ in range(20):
        live.chat_started()
    return live


def by_figure(rows: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    return {r["figure"]: r for r in rows}


def test_rows_show_every_figure():
    rows = tab_rows(busy_live(FakeClock(T0)).snapshot())
    assert all(set(r) == {c["key"] for c in TABLE["structure"]} for r in rows)
    assert all(isinstance(v, str) for r in rows for v in r.values())
    table = by_figure(rows)
    assert table["Stage"]["now"] == "plateau" and table["Stage"]["note"] == "0:56 left"
    offered = table["Offered arrivals (StartChatContact)"]
    assert (offered["now"], offered["total"], offered["share"]) == ("9.0/s", "36", "100.0%")
    assert offered["note"].startswith("target 8.0/s")
    ok = table["Accepted (ok)"]
    assert (ok["now"], ok["total"], ok["share"], ok["note"]) == ("5.0/s", "20", "55.6%", "rate quota 5/s")
    tps = table["Throttled: rate / TPS (TooManyRequestsException)"]
    assert (tps["now"], tps["total"]) == ("2.0/s", "8")
    conc = table["Throttled: concurrent chats quota (LimitExceededException)"]
    assert (conc["now"], conc["total"], conc["share"]) == ("1.0/s", "4", "11.1%")
    assert table["Throttled: other 429"]["total"] == "0"
    assert table["Dropped arrivals (no customer free in time)"]["total"] == "4"
    active = table["Active chats"]
    assert (active["now"], active["total"], active["note"]) == ("20", "peak 20", "quota 100 (20.0% used)")
    assert table["CreateParticipantConnection calls"]["note"] == "ok 4, throttled 4, errors 0"
    assert "Workers reporting" not in table


def test_rows_before_any_call():
    table = by_figure(tab_rows(LiveStats(FakeClock(T0)).snapshot()))
    assert table["Offered arrivals (StartChatContact)"]["total"] == "0"
    assert table["Active chats"]["note"] == "quota unknown"


def test_payload_and_csv():
    snap = busy_live(FakeClock(T0)).snapshot()
    payload = json.loads(json.dumps(live_payload(snap)))
    assert payload["offered"] == 36 and payload["accepted"] == 20 and payload["dropped"] == 4
    assert payload["rates"]["throttled_tps"] == 2.0
    assert payload["active_chats"] == 20 and payload["quota"]["concurrent_chats"] == 100
    assert payload["rows"] == tab_rows(snap)
    assert len(payload["series"]) == 4
    assert payload["chart"] == json.loads(json.dumps(chart_data(snap)))
    lines = series_csv(snap).splitlines()
    assert lines[0].startswith("t,offered,ok,throttled_tps,throttled_concurrency")
    assert lines[1] == f"{3_000_000},9,5,2,1,0,0,0,0,0,1"


def test_chart_columns_per_second():
    clock = FakeClock(T0)
    chart = chart_data(busy_live(clock).snapshot())
    assert chart["t"] == [3_000_000, 3_000_001, 3_000_002, 3_000_003]  # the complete seconds of the run
    assert chart["offered"] == [9] * 4 and chart["accepted"] == [5] * 4
    assert chart["throttled_tps"] == [2] * 4 and chart["throttled_concurrency"] == [1] * 4
    assert chart["dropped"] == [1] * 4 and chart["other"] == [0] * 4
    assert chart["active_chats"] == [None] * 4  # no gauge history given
    assert (chart["quota_concurrent_chats"], chart["quota_start_chat_rate"]) == (100, 5.0)


def test_chart_fills_silent_seconds_and_counts_other_outcomes():
    clock = FakeClock(T0)
    live = LiveStats(clock)
    live.start()
    live.record({"operation": "StartChatContact", "outcome": "server_error"})
    live.record({"operation": "StartChatContact", "outcome": "throttled_unknown"})
    live.record({"operation": "StartChatContact", "outcome": "ok"})
    clock.advance(3)  # two silent seconds
    live.record({"operation": "StartChatContact", "outcome": "ok"})
    clock.advance(1.5)
    chart = chart_data(live.snapshot())
    assert chart["t"] == [T0 + i for i in range(4)]
    assert chart["offered"] == [3, 0, 0, 1]
    assert chart["accepted"] == [1, 0, 0, 1]
    assert chart["other"] == [2, 0, 0, 0]


def test_chart_shows_only_seconds_the_ring_still_holds():
    clock = FakeClock(T0)
    live = LiveStats(clock, window_s=10)
    live.start()
    for _ in range(30):  # one call a second, the ring keeps 10 s
        live.record({"operation": "StartChatContact", "outcome": "ok"})
        clock.advance(1)
        chart = chart_data(live.snapshot(), window_s=10)
        assert chart["offered"] == [1] * len(chart["t"])  # never a forgotten second shown as zero
    assert chart["t"] == [T0 + 30 - 9 + i for i in range(9)]


def test_chart_of_a_stopped_run_ends_when_it_stopped():
    clock = FakeClock(T0)
    live = busy_live(clock)  # the clock is at T0 + 4
    clock.advance(0.5)
    live.record({"operation": "StartChatContact", "outcome": "ok"})
    live.stop()
    clock.advance(30)
    chart = chart_data(live.snapshot())
    assert chart["t"] == [T0 + i for i in range(5)]  # the second it stopped in, and no silence after it
    assert chart["offered"] == [9, 9, 9, 9, 1]


def test_chart_before_a_run_is_empty():
    chart = chart_data(LiveStats(FakeClock(T0)).snapshot(), GaugeHistory())
    assert chart["t"] == [] and chart["offered"] == [] and chart["active_chats"] == []


def test_gauges_per_second_from_the_history():
    clock = FakeClock(T0 + 0.5)
    live = LiveStats(clock)
    live.set_stage("ramp", 2)
    live.start()
    history = GaugeHistory()
    history.sample(live.snapshot())  # second T0: 0 chats, ramp
    for _ in range(3):
        live.chat_started()
    clock.advance(2)
    history.sample(live.snapshot())  # second T0 + 2: 3 chats; T0 + 1 has no sample
    live.set_stage("plateau", 4)
    live.chat_ended()
    clock.advance(1)
    history.sample(live.snapshot())  # second T0 + 3: 2 chats, plateau
    clock.advance(1)
    chart = chart_data(live.snapshot(), history)
    assert chart["t"] == [T0, T0 + 1, T0 + 2, T0 + 3]
    assert chart["active_chats"] == [0, 0, 3, 2]  # a second without a sample shows the one before
    assert chart["stage"] == ["ramp", "ramp", "ramp", "plateau"]
    assert chart["target_rate"] == [2.0, 2.0, 2.0, 4.0]
    live.start()  # a new run: a new history
    history.sample(live.snapshot())
    assert history.between(int(T0), int(T0) + 4) == [(None, None, None)] * 4


def test_history_keeps_the_window():
    clock = FakeClock(T0)
    live = LiveStats(clock)
    live.start()
    history = GaugeHistory(window_s=10)
    for _ in range(30):
        history.sample(live.snapshot())
        clock.advance(1)
    assert len(history._samples) == 11


def extra_option(default: object = "") -> dict[str, object]:
    return {"default_value": default, "help_text": "", "choices": None}


def test_start_form_puts_our_options_first_and_hides_the_command_line_ones():
    names = ["arrivals", "confirm_real_instance", "endpoint_url", "out", "rate", "rate_multiplier"]
    names += ["run_id", "scenario", "seed", "target"]
    args = {"extra_options": {n: extra_option() for n in names}, "missing_host_warning": True, "host": ""}
    changed = start_form_args(args)
    assert list(changed["extra_options"]) == [*FORM_FIRST, "endpoint_url", "rate", "seed"]
    assert not FORM_HIDDEN & set(changed["extra_options"])
    assert changed["missing_host_warning"] is False
    assert start_form_args({})["extra_options"] == {}


def test_the_script_knows_the_table_and_the_form():
    script = (WEB_DIR / "chatload-live.js").read_text()
    assert re.search(r'TABLE_MARK = "([^"]+)"', script)[1] in [c["title"] for c in COLUMNS]
    camel = [re.sub(r"_(\w)", lambda m: m[1].upper(), name) for name in FORM_FIRST]
    assert json.loads(re.search(r"const FIRST = (\[[^\]]*\])", script)[1]) == camel
    for name in ("uPlot.iife.min.js", "uPlot.min.css", "uPlot.LICENSE", "chatload-live.css"):
        assert (WEB_DIR / name).is_file(), name
    assert "MIT License" in (WEB_DIR / "uPlot.LICENSE").read_text()


PAGE = "<html><head><title>Locust</title></head><body><script>window.templateArgs = {{ args|tojson }}</script></body>"


def fake_web_ui(base: str = "") -> SimpleNamespace:
    app = Flask("fake-locust")
    web_ui = SimpleNamespace(
        app=app,
        template_args={"extended_tabs": [{"title": "Other", "key": "other"}]},
        environment=SimpleNamespace(parsed_options=SimpleNamespace(web_base_path=base)),
        auth_required_if_enabled=lambda view: view,
    )

    def update_template_args():  # as Locust's: every page computes the form's arguments again
        options = {n: extra_option() for n in ("out", "rate", "scenario", "target")}
        web_ui.template_args.update({"extra_options": options, "missing_host_warning": True})

    web_ui.update_template_args = update_template_args

    @app.route(base + "/")
    def index():
        web_ui.update_template_args()
        return render_template_string(PAGE, args=web_ui.template_args)

    @app.route(base + "/stats/requests")
    def stats():
        return jsonify({"state": "running", "extended_stats": [{"key": "other", "data": []}]})

    return web_ui


def test_register_adds_the_tab_and_routes():
    live = busy_live(FakeClock(T0))
    web_ui = fake_web_ui()
    register(web_ui, live, sample_every_s=None)
    register(web_ui, live, sample_every_s=None)  # once only
    assert web_ui.template_args["extended_tabs"] == [{"title": "Other", "key": "other"}, TAB]
    assert web_ui.template_args["extended_tables"] == [TABLE]
    assert [f["href"] for f in web_ui.template_args["extended_csv_files"]] == ["." + CSV_PATH]
    client = web_ui.app.test_client()
    stats = client.get("/stats/requests").get_json()
    assert stats["state"] == "running"
    assert [e["key"] for e in stats["extended_stats"]] == ["other", TAB_KEY]
    assert stats["extended_stats"][1]["data"] == tab_rows(live.snapshot())
    payload = client.get(LIVE_PATH).get_json()
    assert payload["offered"] == 36
    assert payload["chart"]["offered"] == [9] * 4
    assert payload["chart"]["active_chats"] == [None] * 4  # sampled from now on: T0 + 4
    csv = client.get(CSV_PATH)
    assert csv.mimetype == "text/csv" and csv.data.decode().startswith("t,offered,")


def test_register_changes_the_page_and_serves_the_script():
    web_ui = fake_web_ui()
    register(web_ui, busy_live(FakeClock(T0)), sample_every_s=None)
    client = web_ui.app.test_client()
    page = client.get("/").get_data(as_text=True)
    head = page[: page.index("</head>")]
    for name in ("uPlot.min.css", "chatload-live.css", "uPlot.iife.min.js", "chatload-live.js"):
        assert f'".{STATIC_PATH}/{name}"' in head, name
    assert page.count("chatload-live.js") == 1
    # the form's arguments: ours, after Locust computed its own, in our order (not sorted by name)
    args = json.loads(re.search(r"window.templateArgs = (.*)</script>", page)[1])
    assert list(args["extra_options"]) == ["scenario", "target", "rate"]
    assert args["missing_host_warning"] is False
    script = client.get(f"{STATIC_PATH}/chatload-live.js")
    assert script.status_code == 200 and "window.chatloadChart" in script.get_data(as_text=True)
    assert client.get(f"{STATIC_PATH}/uPlot.iife.min.js").status_code == 200
    assert client.get(f"{STATIC_PATH}/../webui.py").status_code == 404
    assert client.get(f"{STATIC_PATH}/nothing.js").status_code == 404


def test_register_under_a_base_path():
    web_ui = fake_web_ui("/locust")
    register(web_ui, busy_live(FakeClock(T0)), sample_every_s=None)
    client = web_ui.app.test_client()
    keys = [e["key"] for e in client.get("/locust/stats/requests").get_json()["extended_stats"]]
    assert keys == ["other", TAB_KEY]
    assert client.get("/locust" + LIVE_PATH).status_code == 200
    assert "chatload-live.js" in client.get("/locust/").get_data(as_text=True)
    assert client.get(f"/locust{STATIC_PATH}/chatload-live.css").status_code == 200
