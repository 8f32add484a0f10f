"""Chat experience (issue 14 point 4): the websocket rows become summary.json chat_experience, a
report section, plots/delivery.png and two thresholds; runs without such rows are unaffected.

Percentiles are numpy's linear interpolation: p at rank (n - 1) * p between the sorted values."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from chatload.analysis.experience import LATE_FRAME_MS, chat_experience
from chatload.analysis.pipeline import analyze
from chatload.analysis.report import build_report, main
from chatload.analysis.thresholds import NO_EXPERIENCE_NOTE
from chatload.contracts import CHAT_EXPERIENCE_OPERATIONS
from chatload.harness.scenario.files import load_scenario
from chatload.harness.scenario.model import scenario_to_dict
from chatload.harness.scenario.schema import ScenarioError

STAGES = [{"name": "only", "duration_s": 10, "target_rate": 1}]


def scenario(**thresholds: float) -> dict:
    return {"name": "test", "stages": STAGES, "thresholds": {"max_dropped_share": 0.01, **thresholds}}


def http_rows(row) -> list[dict]:
    """Four ok chats, one a second, with their StopContact: what every run so far looks like."""
    rows = []
    for i in range(4):
        rows.append(row(i + 0.0, "StartChatContact", "ok", 100.0, t_intended=i + 0.0, stage="only", chat=f"c{i}"))
        rows.append(row(i + 5.0, "StopContact", "ok", 50.0, stage="only", chat=f"c{i}"))
    return rows


def websocket_rows(row) -> list[dict]:
    def ws(t: float, operation: str, outcome: str, latency: float, chat: str = "c0") -> dict:
        return row(t, operation, outcome, latency, stage="only", chat=chat)

    return [
        # WebSocketConnect ok 50, 70, 90, 110; one upgrade refused with 403 (client_error: "other")
        ws(0.2, "WebSocketConnect", "ok", 50.0, "c0"),
        ws(1.2, "WebSocketConnect", "ok", 70.0, "c1"),
        ws(2.2, "WebSocketConnect", "ok", 90.0, "c2"),
        ws(3.2, "WebSocketConnect", "ok", 110.0, "c3"),
        ws(3.3, "WebSocketConnect", "client_error", 20.0, "c3"),
        # Subscribe ok 10, 20
        ws(0.3, "Subscribe", "ok", 10.0, "c0"),
        ws(1.3, "Subscribe", "ok", 20.0, "c1"),
        # MessageDelivery: second 1 -> 100, 200; second 2 -> 300, 400, 1500 (late); second 3 a timeout (lost)
        ws(1.1, "MessageDelivery", "ok", 100.0),
        ws(1.2, "MessageDelivery", "ok", 200.0),
        ws(2.1, "MessageDelivery", "ok", 300.0),
        ws(2.2, "MessageDelivery", "ok", 400.0),
        ws(2.3, "MessageDelivery", "ok", 1500.0),
        ws(3.1, "MessageDelivery", "timeout", 5000.0),
        # FirstResponse ok 2000, 4000 ms
        ws(0.5, "FirstResponse", "ok", 2000.0, "c0"),
        ws(1.5, "FirstResponse", "ok", 4000.0, "c1"),
        # ChatEndedDelivery: one ok but late (1200), one timeout (lost)
        ws(5.1, "ChatEndedDelivery", "ok", 1200.0, "c0"),
        ws(6.1, "ChatEndedDelivery", "timeout", 5000.0, "c1"),
        # heartbeats: two answered, one missed; one unexpected close
        ws(4.0, "Heartbeat", "ok", 5.0, "c2"),
        ws(4.5, "Heartbeat", "ok", 5.0, "c2"),
        ws(5.0, "Heartbeat", "timeout", 5000.0, "c2"),
        ws(5.5, "WebSocketClose", "connection_error", math.nan, "c2"),
    ]


def test_contract_names() -> None:
    assert CHAT_EXPERIENCE_OPERATIONS == (
        "WebSocketConnect",
        "Subscribe",
        "MessageDelivery",
        "FirstResponse",
        "ChatEndedDelivery",
        "Heartbeat",
        "WebSocketClose",
    )
    assert LATE_FRAME_MS == 1000.0


def test_figures_by_hand(make_run, attempt_row) -> None:
    run_dir = make_run({"w1": http_rows(attempt_row) + websocket_rows(attempt_row)})
    summary = build_report(run_dir)
    ce = summary["chat_experience"]
    assert ce["websocket_connect"] == {
        "count": 5,
        "ok": 4,
        "timeout": 0,
        "connection_error": 0,
        "other": 1,
        "p50_ms": pytest.approx(80.0),  # (70 + 90) / 2
        "p95_ms": pytest.approx(107.0),  # rank 2.85: 90 + 0.85 * 20
        "p99_ms": pytest.approx(109.4),  # rank 2.97: 90 + 0.97 * 20
    }
    assert ce["subscribe"]["count"] == 2
    assert (ce["subscribe"]["p50_ms"], ce["subscribe"]["p95_ms"]) == pytest.approx((15.0, 19.5))
    delivery = ce["message_delivery"]
    assert (delivery["count"], delivery["ok"], delivery["timeout"]) == (6, 5, 1)
    # ok 100, 200, 300, 400, 1500 (the timeout's 5000 is not a latency): p95 rank 3.8 -> 400 + 0.8 * 1100
    assert (delivery["p50_ms"], delivery["p95_ms"], delivery["p99_ms"]) == pytest.approx((300.0, 1280.0, 1456.0))
    first = ce["first_response"]
    assert (first["p50_ms"], first["p95_ms"], first["p99_ms"]) == pytest.approx((3000.0, 3900.0, 3980.0))
    assert (first["p50_s"], first["p95_s"], first["p99_s"]) == pytest.approx((3.0, 3.9, 3.98))
    ended = ce["chat_ended_delivery"]
    assert (ended["count"], ended["ok"], ended["timeout"], ended["p50_ms"]) == (2, 1, 1, 1200.0)
    assert ce["lost_frames"] == 2  # the MessageDelivery and the ChatEndedDelivery timeouts
    assert ce["late_frames"] == 2  # 1500 and 1200 ms, both > 1 s
    assert ce["late_frame_ms"] == 1000.0
    assert ce["unexpected_closes"] == 1
    assert (ce["heartbeats"], ce["missed_heartbeats"]) == (3, 1)
    # what summary.json holds is the same, and plain JSON
    assert json.loads((run_dir / "summary.json").read_text())["chat_experience"] == ce
    # the StartChatContact figures are untouched by the websocket rows
    assert summary["calls"]["StartChatContact"]["ok"] == 4
    assert summary["valid"] and summary["passed"]


def test_report_section_plot_and_finding(make_run, attempt_row) -> None:
    run_dir = make_run({"w1": http_rows(attempt_row) + websocket_rows(attempt_row)})
    summary = build_report(run_dir)
    md = (run_dir / "report.md").read_text()
    html = (run_dir / "report.html").read_text()
    assert "## Chat experience" in md and "<h2>Chat experience" in html
    assert "MessageDelivery (echo of a sent message)" in md
    assert "| lost frames (MessageDelivery, ChatEndedDelivery timeouts) | 2 |" in md
    assert "| unexpected closes (WebSocketClose) | 1 |" in md
    assert "| missed heartbeats (of heartbeats sent) | 1 of 3 |" in md
    assert "| first response p50/p95/p99 (s) | 3/3.9/3.98 |" in md
    assert (run_dir / "plots" / "delivery.png").stat().st_size > 0
    assert "plots/delivery.png" in md
    item = next(i for i in summary["findings"]["items"] if i["name"] == "chat_experience")
    assert item["highlight"]  # frames were lost
    assert "message delivery p50/p95/p99 300 ms/1280 ms/1456 ms" in item["text"]


def test_delivery_per_second(make_run, attempt_row) -> None:
    run_dir = make_run({"w1": http_rows(attempt_row) + websocket_rows(attempt_row)})
    result = analyze(run_dir)
    table = result.delivery.set_index("second")
    assert list(table.loc[[0, 1, 2, 3], "offered"]) == [1, 1, 1, 1]
    assert list(table.loc[[0, 1, 2, 3], "deliveries"]) == [0, 2, 3, 1]
    assert table.loc[1, "delivery_p50_ms"] == pytest.approx(150.0)
    assert table.loc[1, "delivery_p95_ms"] == pytest.approx(195.0)  # 100 + 0.95 * 100
    assert table.loc[2, "delivery_p50_ms"] == pytest.approx(400.0)
    assert table.loc[2, "delivery_p95_ms"] == pytest.approx(1390.0)  # rank 1.9: 400 + 0.9 * 1100
    assert math.isnan(table.loc[3, "delivery_p95_ms"])  # only a timeout that second
    assert "delivery_per_second" in result.tables()


def test_thresholds_judged_on_the_websocket(make_run, attempt_row) -> None:
    rows = http_rows(attempt_row) + websocket_rows(attempt_row)
    run_dir = make_run({"w1": rows}, scenario=scenario(max_message_delivery_p95_ms=1000, max_first_response_p95_s=5))
    assert main([str(run_dir)]) == 1  # delivery p95 1280 ms > 1000
    summary = json.loads((run_dir / "summary.json").read_text())
    judged = {t["name"]: t for t in summary["thresholds"]}
    assert judged["max_message_delivery_p95_ms"]["observed"] == pytest.approx(1280.0)
    assert not judged["max_message_delivery_p95_ms"]["passed"]
    assert judged["max_first_response_p95_s"]["observed"] == pytest.approx(3.9)
    assert judged["max_first_response_p95_s"]["passed"]
    run_dir = make_run({"w1": rows}, scenario=scenario(max_message_delivery_p95_ms=1300, max_first_response_p95_s=3.9))
    assert main([str(run_dir)]) == 0


def test_retry_amplification_counts_api_calls_only(make_run, attempt_row) -> None:
    # one StopContact took 3 HTTP attempts: 10 attempts for 8 API calls; the socket's 21 rows
    # (1 "attempt" each) are no HTTP calls and must not water that down to 31 / 29
    rows = http_rows(attempt_row) + websocket_rows(attempt_row)
    rows[1] = attempt_row(5.0, "StopContact", "ok", 50.0, stage="only", chat="c0", attempts=3)
    summary = build_report(make_run({"w1": rows}))
    item = next(i for i in summary["findings"]["items"] if i["name"] == "retry_amplification")
    assert "4 HTTP attempts for 4 StartChatContact calls (1.00x); all operations 1.25x." in item["text"]


def test_existing_runs_unaffected(make_run, attempt_row) -> None:
    run_dir = make_run({"w1": http_rows(attempt_row)})
    summary = build_report(run_dir)
    assert summary["chat_experience"] is None
    assert json.loads((run_dir / "summary.json").read_text())["chat_experience"] is None
    assert "Chat experience" not in (run_dir / "report.md").read_text()
    assert "Chat experience" not in (run_dir / "report.html").read_text()
    assert not (run_dir / "plots" / "delivery.png").exists()
    assert not (run_dir / "tables" / "delivery_per_second.csv").exists()
    assert all(item["name"] != "chat_experience" for item in summary["findings"]["items"])
    assert summary["passed"]


def test_threshold_without_websocket_rows_fails_with_a_note(make_run, attempt_row) -> None:
    run_dir = make_run({"w1": http_rows(attempt_row)}, scenario=scenario(max_first_response_p95_s=5))
    assert main([str(run_dir)]) == 1
    summary = json.loads((run_dir / "summary.json").read_text())
    judged = {t["name"]: t for t in summary["thresholds"]}["max_first_response_p95_s"]
    assert (judged["passed"], judged["observed"], judged["note"]) == (False, None, NO_EXPERIENCE_NOTE)
    assert "[chat] websocket = false or connect = false?" in (run_dir / "report.md").read_text()


def test_no_ok_delivery_is_nothing_to_measure(attempt_row, make_run) -> None:
    rows = [*http_rows(attempt_row), attempt_row(1.0, "MessageDelivery", "timeout", 5000.0, chat="c0")]
    run_dir = make_run({"w1": rows}, scenario=scenario(max_message_delivery_p95_ms=500))
    summary = build_report(run_dir)
    judged = {t["name"]: t for t in summary["thresholds"]}["max_message_delivery_p95_ms"]
    assert (judged["passed"], judged["note"]) == (False, "nothing to measure")
    assert summary["chat_experience"]["lost_frames"] == 1
    assert summary["chat_experience"]["message_delivery"]["p95_ms"] is None


def test_chat_experience_of_no_rows_is_none(make_run, attempt_row) -> None:
    run = analyze(make_run({"w1": http_rows(attempt_row)})).run
    assert chat_experience(run.attempts) is None


STAGE = '[[stages]]\nname = "s"\nduration = "10s"\ntarget_rate = 2\n'


def test_scenario_threshold_keys(tmp_path: Path) -> None:
    path = tmp_path / "ws.toml"
    path.write_text(STAGE + "[thresholds]\nmax_message_delivery_p95_ms = 800\nmax_first_response_p95_s = 4.5\n")
    loaded = load_scenario(path)
    assert loaded.thresholds.max_message_delivery_p95_ms == 800
    assert loaded.thresholds.max_first_response_p95_s == 4.5
    thresholds = scenario_to_dict(loaded)["thresholds"]
    assert (thresholds["max_message_delivery_p95_ms"], thresholds["max_first_response_p95_s"]) == (800, 4.5)
    path.write_text(STAGE)
    plain = scenario_to_dict(load_scenario(path))["thresholds"]
    assert plain["max_message_delivery_p95_ms"] is None and plain["max_first_response_p95_s"] is None


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("max_message_delivery_p95_ms = 0\n", "thresholds.max_message_delivery_p95_ms"),
        ("max_first_response_p95_s = -1\n", "thresholds.max_first_response_p95_s"),
        ('max_first_response_p95_s = "5s"\n', "thresholds.max_first_response_p95_s"),
    ],
)
def test_scenario_threshold_keys_checked(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(STAGE + "[thresholds]\n" + text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert f": {key}: " in str(info.value)
