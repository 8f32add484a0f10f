"""Metrics for dashboards (chatload.harness.live.metrics): the exposition of a LiveStats fed known rows,
its duration buckets, the master's merge of its workers' buckets, the endpoint and its last scrape,
the OpenTelemetry instruments, and the Grafana dashboard of docs/ (fake clock; no Locust)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import msgpack
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from support import FakeClock

from chatload.contracts import CALL_OUTCOMES
from chatload.harness.live.metrics import BUCKETS_S, LiveCollector, MetricsServer, otel_instruments, registry_for
from chatload.harness.live.stats import DURATION_BUCKETS_MS, LiveStats

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "docs" / "grafana-chatload.json"

# The metrics and their label names, exactly as the issue lists them.
LABELS = {
    "chatload_calls_total": {"operation", "outcome"},
    "chatload_arrivals_total": {"kind"},
    "chatload_active_chats": set(),
    "chatload_quota": {"name"},
    "chatload_call_duration_seconds_bucket": {"operation", "outcome", "le"},
    "chatload_call_duration_seconds_count": {"operation", "outcome"},
    "chatload_call_duration_seconds_sum": {"operation", "outcome"},
    "chatload_stage_info": {"stage"},
}


def row(operation: str, outcome: str, latency_ms: float) -> dict:
    return {"operation": operation, "outcome": outcome, "latency_ms": latency_ms, "stage": "s1"}


# StartChatContact: ok at 4, 30 and 120 ms; two TPS throttles at 5 ms (on the 5 ms bound: its bucket);
# one dropped arrival (no latency); SendMessage: a server error at 2.6 s; DisconnectParticipant: an
# ok call of 45 s (past the last bound: only +Inf).
ROWS = [
    row("StartChatContact", "ok", 4.0),
    row("StartChatContact", "ok", 30.0),
    row("StartChatContact", "ok", 120.0),
    row("StartChatContact", "throttled_tps", 5.0),
    row("StartChatContact", "throttled_tps", 5.0),
    row("StartChatContact", "dropped", math.nan),
    row("SendMessage", "server_error", 2600.0),
    row("DisconnectParticipant", "ok", 45000.0),
]


def samples(live: LiveStats) -> dict[tuple[str, frozenset], float]:
    """(sample name, its labels) -> value, parsed back from the exposition text."""
    registry, _ = registry_for(live)
    text = generate_latest(registry).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: dict, metric: str, **labels: str) -> float:
    return found[(metric, frozenset(labels.items()))]


def buckets(found: dict, operation: str, outcome: str) -> list[float]:
    """The cumulative bucket counts of one (operation, outcome), in `le` order, +Inf last."""
    return [
        value(found, "chatload_call_duration_seconds_bucket", operation=operation, outcome=outcome, le=le)
        for le in (*BUCKETS_S, "+Inf")
    ]


@pytest.fixture
def fed(clock: FakeClock) -> LiveStats:
    live = LiveStats(clock)
    live.start()
    live.set_stage("plateau", 6.0)
    live.set_quota(500, 5.0, 8.0)
    for r in ROWS:
        live.record(r)
    for _ in range(3):
        live.chat_started()
    live.chat_ended()
    return live


def test_buckets_are_the_documented_ones():
    assert DURATION_BUCKETS_MS == (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)
    assert BUCKETS_S == ("0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "10.0", "30.0")


def test_exposition_of_known_rows(fed):
    found = samples(fed)
    # calls: dropped arrivals are not calls; StartChatContact has every call outcome, zeros too
    calls = {dict(labels)["operation"] + "/" + dict(labels)["outcome"]: v
             for (name, labels), v in found.items() if name == "chatload_calls_total"}  # fmt: skip
    assert calls == {
        **{f"StartChatContact/{o}": 0.0 for o in CALL_OUTCOMES},
        "StartChatContact/ok": 3.0,
        "StartChatContact/throttled_tps": 2.0,
        "SendMessage/server_error": 1.0,
        "DisconnectParticipant/ok": 1.0,
    }
    assert value(found, "chatload_arrivals_total", kind="offered") == 6.0  # 5 calls + 1 dropped
    assert value(found, "chatload_arrivals_total", kind="dropped") == 1.0
    assert value(found, "chatload_active_chats") == 2.0
    assert value(found, "chatload_quota", name="concurrent_chats") == 500.0
    assert value(found, "chatload_quota", name="rate") == 5.0
    assert value(found, "chatload_quota", name="burst") == 8.0
    assert value(found, "chatload_stage_info", stage="plateau") == 1.0
    # durations, cumulative:   5ms 10ms 25ms 50ms 100ms 250ms 500ms 1s 2.5s 5s 10s 30s +Inf
    assert buckets(found, "StartChatContact", "ok") == [1, 1, 1, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3]
    assert buckets(found, "StartChatContact", "throttled_tps") == [2] * 13
    assert buckets(found, "SendMessage", "server_error") == [0] * 9 + [1] * 4
    assert buckets(found, "DisconnectParticipant", "ok") == [0] * 12 + [1]
    count = "chatload_call_duration_seconds_count"
    total = "chatload_call_duration_seconds_sum"
    assert value(found, count, operation="StartChatContact", outcome="ok") == 3.0
    assert value(found, total, operation="StartChatContact", outcome="ok") == pytest.approx(0.154)
    assert value(found, total, operation="StartChatContact", outcome="throttled_tps") == pytest.approx(0.010)
    assert value(found, total, operation="DisconnectParticipant", outcome="ok") == pytest.approx(45.0)
    assert not any(dict(labels).get("outcome") == "dropped" for _, labels in found)


def test_label_names_are_exactly_the_issues(fed):
    names: dict[str, set[str]] = {}
    for name, labels in samples(fed):
        names.setdefault(name, set()).update(dict(labels))
    assert names == LABELS


def test_exposition_text_lines(fed):
    registry, _ = registry_for(fed)
    text = generate_latest(registry).decode()
    assert "# TYPE chatload_calls_total counter" in text
    assert "# TYPE chatload_call_duration_seconds histogram" in text
    assert 'chatload_calls_total{operation="StartChatContact",outcome="throttled_tps"} 2.0' in text
    assert 'chatload_arrivals_total{kind="dropped"} 1.0' in text
    assert 'chatload_call_duration_seconds_bucket{le="0.05",operation="StartChatContact",outcome="ok"} 2.0' in text
    assert 'chatload_stage_info{stage="plateau"} 1.0' in text


def test_stage_before_and_after_the_run_and_unknown_quotas(clock):
    live = LiveStats(clock)
    found = samples(live)
    assert value(found, "chatload_stage_info", stage="waiting") == 1.0
    assert not [k for k in found if k[0] == "chatload_quota"]  # nothing known: no sample
    assert value(found, "chatload_arrivals_total", kind="offered") == 0.0
    live.start()
    live.set_quota(None, 5.0)
    live.stop()
    found = samples(live)
    assert value(found, "chatload_stage_info", stage="stopped") == 1.0
    assert [dict(k[1])["name"] for k in found if k[0] == "chatload_quota"] == ["rate"]


def test_a_new_run_starts_the_counters_from_zero(fed):
    fed.start()
    found = samples(fed)
    assert value(found, "chatload_calls_total", operation="StartChatContact", outcome="ok") == 0.0
    assert not [k for k in found if k[0] == "chatload_call_duration_seconds_count"]


def ship(report: dict) -> dict:
    """What Locust's rpc does to a report on its way (msgpack)."""
    return msgpack.loads(msgpack.dumps(report), raw=False, strict_map_key=True)


def test_master_merges_the_workers_duration_buckets(clock):
    master, w1, w2 = LiveStats(clock), LiveStats(clock), LiveStats(clock)
    for live in (master, w1, w2):
        live.start()
    for r in ROWS[:4]:
        w1.record(r)
    master.merge("w1", ship(w1.take_report()))
    for r in ROWS[4:]:
        w2.record(r)
    master.merge("w2", ship(w2.take_report()))
    w1.record(row("StartChatContact", "ok", 700.0))  # after w1's first report: only the delta is sent
    master.merge("w1", ship(w1.take_report()))
    master.merge("w1", ship(w1.take_report()))  # nothing new: nothing added
    found = samples(master)
    # w1: ok at 4, 30, 120 and 700 ms, one throttle; w2: one throttle, a dropped arrival, SendMessage, Disconnect
    assert buckets(found, "StartChatContact", "ok") == [1, 1, 1, 2, 2, 3, 3, 4, 4, 4, 4, 4, 4]
    assert buckets(found, "StartChatContact", "throttled_tps") == [2] * 13
    assert value(found, "chatload_call_duration_seconds_sum", operation="StartChatContact", outcome="ok") == (
        pytest.approx(0.854)
    )
    assert value(found, "chatload_calls_total", operation="StartChatContact", outcome="ok") == 4.0
    assert value(found, "chatload_arrivals_total", kind="offered") == 7.0
    assert value(found, "chatload_arrivals_total", kind="dropped") == 1.0
    assert buckets(found, "DisconnectParticipant", "ok") == [0] * 12 + [1]


def test_master_takes_the_quotas_from_a_report(clock):
    master, worker = LiveStats(clock), LiveStats(clock)
    worker.set_quota(100, 2.0, 3.0)
    master.merge("w1", ship(worker.take_report()))
    assert (master.quota_concurrent_chats, master.quota_start_chat_rate, master.quota_start_chat_burst) == (
        100,
        2.0,
        3.0,
    )


def test_collector_counts_scrapes():
    times = iter([10.0, 11.5, 12.5])
    collector = LiveCollector(LiveStats(FakeClock()), clock=lambda: next(times))
    for _ in range(3):
        list(collector.collect())
    assert collector.scrapes == 3 and collector.interval_s == pytest.approx(1.0) and collector.scraped_at == 12.5


def test_the_endpoint_serves_the_registry_and_waits_for_the_last_scrape(fed):
    gevent = pytest.importorskip("gevent")
    httpclient = pytest.importorskip("geventhttpclient")
    server = MetricsServer(fed, "127.0.0.1", 0)
    try:
        assert server.url.startswith("http://127.0.0.1:") and server.url.endswith("/metrics")
        assert server.wait_for_final_scrape(max_wait_s=5.0) is False  # nothing ever scraped: no wait
        client = httpclient.HTTPClient.from_url(server.url)

        def scrape() -> str:
            response = client.get("/metrics")
            return response.read().decode()

        assert 'chatload_arrivals_total{kind="offered"} 6.0' in scrape()
        assert server.wait_for_final_scrape(max_wait_s=5.0) is False  # one scrape: no scraper to wait for
        scrape()
        assert server.wait_for_final_scrape(max_wait_s=0.3) is False  # it does not come back within 0.3 s
        fed.record(row("StartChatContact", "ok", 1.0))
        later = gevent.spawn_later(0.2, scrape)
        assert server.wait_for_final_scrape(max_wait_s=5.0) is True
        assert 'chatload_arrivals_total{kind="offered"} 7.0' in later.get(timeout=5)
        client.close()
    finally:
        server.close()


def test_otel_instruments_report_the_same_figures(fed):
    pytest.importorskip("opentelemetry.sdk", reason="OpenTelemetry's SDK is not installed")
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])  # a provider of its own: the global one is untouched
    assert otel_instruments(fed, provider.get_meter("chatload")) is True
    found: dict[str, dict[tuple, float]] = {}
    for resource in reader.get_metrics_data().resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    found.setdefault(metric.name, {})[tuple(sorted(point.attributes.items()))] = point.value
    provider.shutdown()
    calls = found["chatload.calls"]
    assert calls[(("operation", "StartChatContact"), ("outcome", "ok"))] == 3
    assert calls[(("operation", "StartChatContact"), ("outcome", "throttled_tps"))] == 2
    assert calls[(("operation", "SendMessage"), ("outcome", "server_error"))] == 1
    assert found["chatload.arrivals"] == {(("kind", "offered"),): 6, (("kind", "dropped"),): 1}
    assert found["chatload.active_chats"] == {(): 2}
    assert found["chatload.quota"] == {(("name", "concurrent_chats"),): 500.0, (("name", "rate"),): 5.0,
                                       (("name", "burst"),): 8.0}  # fmt: skip
    assert found["chatload.stage.info"] == {(("stage", "plateau"),): 1}


def test_importing_the_metrics_loads_neither_locust_nor_gevent():
    code = "import sys, chatload.harness.live.metrics; print(sorted({'locust', 'gevent'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]", out.stderr


def test_grafana_dashboard_is_json_that_queries_every_metric():
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["title"] and dashboard["panels"]
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    text = "\n".join(exprs)
    for metric in ("chatload_calls_total", "chatload_arrivals_total", "chatload_active_chats", "chatload_quota",
                   "chatload_call_duration_seconds_bucket", "chatload_stage_info"):  # fmt: skip
        assert metric in text, metric
    assert all(panel.get("datasource", {}).get("uid") == "${datasource}" for panel in dashboard["panels"])
