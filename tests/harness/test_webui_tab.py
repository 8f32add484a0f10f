"""The Throttling tab's rows, the JSON payload and the Flask wiring (no Locust import: a Flask app
stands in for Locust's web UI, which would gevent-patch the test process)."""

from __future__ import annotations

import json
from types import SimpleNamespace

from flask import Flask, jsonify
from support import FakeClock

from chatload.harness.live.stats import LiveStats
from chatload.harness.live.webui import (
    CSV_PATH,
    LIVE_PATH,
    TAB,
    TAB_KEY,
    TABLE,
    live_payload,
    register,
    series_csv,
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
    lines = series_csv(snap).splitlines()
    assert lines[0].startswith("t,offered,ok,throttled_tps,throttled_concurrency")
    assert lines[1] == f"{3_000_000},9,5,2,1,0,0,0,0,0,1"


def fake_web_ui(base: str = "") -> SimpleNamespace:
    app = Flask("fake-locust")

    @app.route(base + "/stats/requests")
    def stats():
        return jsonify({"state": "running", "extended_stats": [{"key": "other", "data": []}]})

    return SimpleNamespace(
        app=app,
        template_args={"extended_tabs": [{"title": "Other", "key": "other"}]},
        environment=SimpleNamespace(parsed_options=SimpleNamespace(web_base_path=base)),
        auth_required_if_enabled=lambda view: view,
    )


def test_register_adds_the_tab_and_routes():
    live = busy_live(FakeClock(T0))
    web_ui = fake_web_ui()
    register(web_ui, live)
    register(web_ui, live)  # once only
    assert web_ui.template_args["extended_tabs"] == [{"title": "Other", "key": "other"}, TAB]
    assert web_ui.template_args["extended_tables"] == [TABLE]
    assert [f["href"] for f in web_ui.template_args["extended_csv_files"]] == ["." + CSV_PATH]
    client = web_ui.app.test_client()
    stats = client.get("/stats/requests").get_json()
    assert stats["state"] == "running"
    assert [e["key"] for e in stats["extended_stats"]] == ["other", TAB_KEY]
    assert stats["extended_stats"][1]["data"] == tab_rows(live.snapshot())
    assert client.get(LIVE_PATH).get_json()["offered"] == 36
    csv = client.get(CSV_PATH)
    assert csv.mimetype == "text/csv" and csv.data.decode().startswith("t,offered,")


def test_register_under_a_base_path():
    web_ui = fake_web_ui("/locust")
    register(web_ui, busy_live(FakeClock(T0)))
    client = web_ui.app.test_client()
    keys = [e["key"] for e in client.get("/locust/stats/requests").get_json()["extended_stats"]]
    assert keys == ["other", TAB_KEY]
    assert client.get("/locust" + LIVE_PATH).status_code == 200
