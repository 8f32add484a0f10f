"""Metrics for dashboards, end to end: a real Prometheus (Debian's package) scrapes `--metrics-port`
every second during a run against the emulator, and what it stored last equals summary.json; and
Locust's own `--otel` sends the calls' durations and chatload's counters to an OTLP/HTTP receiver.

Prometheus runs on loopback only, in its own process group, with its own storage in tmp_path, and
is always stopped. Run with `-s` to see the query results beside summary.json's figures.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from support import env_without, only_run, run_locust, scenario_file

from chatload.contracts import CALL_OUTCOMES, DROPPED, START_CHAT
from chatload.emulator_control import running_emulator
from chatload.processes import free_port, stop_process

pytestmark = pytest.mark.e2e

PROMETHEUS = shutil.which("prometheus")
NO_PROMETHEUS = "Debian's prometheus is not installed (`make setup` installs it with apt-get where it can)"

# 3/s, then 10/s against a StartChatContact quota of 2/s (burst 2) and the default 3/s of
# DisconnectParticipant: ok calls and TPS throttles of two operations; 5 users for chats of ~2.3 s:
# dropped arrivals too (the run is then invalid, exit code 2: its figures are what counts).
EMULATOR = {"rates": {"StartChatContact": {"rate": 2, "burst": 2}}}
SCENARIO = """\
    users = 5
    [[stages]]
    name = "warm"
    duration = "3s"
    target_rate = 3
    [[stages]]
    name = "over"
    duration = "4s"
    target_rate = 10
    [chat]
    connect = true
    messages = 1
    message_interval = "0.2s"
    [chat.hold]
    distribution = "fixed"
    mean = "2s"
"""


# ---------------------------------------------------------------------- Prometheus


@dataclass
class Prometheus:
    url: str
    log: Path

    def query(self, expr: str) -> list[dict]:
        """/api/v1/query now: the result vector."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=10) as response:
            answer = json.loads(response.read())
        assert answer["status"] == "success", answer
        return answer["data"]["result"]

    def values(self, expr: str, *labels: str) -> dict[tuple[str, ...], float]:
        """The query's samples keyed by the given labels' values."""
        return {tuple(r["metric"].get(name, "") for name in labels): float(r["value"][1]) for r in self.query(expr)}


@contextlib.contextmanager
def running_prometheus(folder: Path, target: str, startup_timeout_s: float = 30.0) -> Iterator[Prometheus]:
    """Debian's prometheus scraping `target` every second, listening on a free loopback port, storing
    in `folder`; stopped (its whole process group) on exit, whatever happens."""
    assert PROMETHEUS is not None
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        f"scrape_configs:\n  - job_name: chatload\n    static_configs:\n      - targets: ['{target}']\n"
    )
    port = free_port()
    log = folder / "prometheus.log"
    command = [
        PROMETHEUS,
        f"--config.file={config}",
        f"--storage.tsdb.path={folder / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            command, cwd=folder, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    prometheus = Prometheus(f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + startup_timeout_s
        while True:
            try:
                with urllib.request.urlopen(prometheus.url + "/-/ready", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"prometheus did not start:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)
        yield prometheus
    finally:
        stop_process(proc, 5.0)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


def wait_for_target_down(prometheus: Prometheus, timeout_s: float = 15.0) -> None:
    """Locust has quit after its last figures were scraped: once Prometheus has also failed a scrape
    since (up == 0), the last successful one is stored."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if prometheus.values('up{job="chatload"}') == {(): 0.0}:
            return
        time.sleep(0.2)
    raise AssertionError(f"prometheus still sees the target up: {prometheus.query('up')}")


def last(metric: str) -> str:
    """The last value stored (a target gone is marked stale, so a plain query would find nothing)."""
    return f"last_over_time({metric}[10m])"


def expected_calls(summary: dict) -> dict[tuple[str, str], float]:
    """(operation, outcome) -> calls from summary.json, the non-zero ones."""
    return {
        (op, outcome): float(by_outcome[outcome])
        for op, by_outcome in summary["calls"].items()
        for outcome in CALL_OUTCOMES
        if by_outcome.get(outcome)
    }


def show(label: str, prometheus: object, summary: object) -> None:
    print(f"  {label:<82} {prometheus!s:<11} {summary}")


def master_ports() -> list[str]:
    port = str(free_port())  # not Locust's fixed 5557: runs side by side must not share workers
    return [
        "--master-bind-host", "127.0.0.1", "--master-bind-port", port,
        "--master-host", "127.0.0.1", "--master-port", port,
    ]  # fmt: skip


@pytest.mark.skipif(PROMETHEUS is None, reason=NO_PROMETHEUS)
@pytest.mark.timeout(120)
@pytest.mark.parametrize("processes", [0, 2], ids=["local", "master-2-workers"])
def test_prometheus_stores_the_counts_of_summary_json(tmp_path, processes):
    metrics_port = free_port()
    out = tmp_path / "out"
    path = scenario_file(tmp_path, SCENARIO)
    args = ["--headless", "--only-summary", "--scenario", str(path), "--out", str(out)]
    args += ["--metrics-port", str(metrics_port)]
    if processes:
        args += ["--processes", str(processes), *master_ports()]
    with (
        running_emulator(EMULATOR) as emu,
        running_prometheus(tmp_path / "prometheus", f"127.0.0.1:{metrics_port}") as prom,
    ):
        done = run_locust([*args, "--endpoint-url", emu.url], timeout_s=90)
        assert done.returncode in (0, 1, 2), done.stdout[-3000:]
        assert f"Prometheus metrics on http://127.0.0.1:{metrics_port}/metrics" in done.stdout, done.stdout[-3000:]
        wait_for_target_down(prom)
        stored = {
            "calls": prom.values(last("chatload_calls_total"), "operation", "outcome"),
            "durations": prom.values(last("chatload_call_duration_seconds_count"), "operation", "outcome"),
            "arrivals": prom.values(last("chatload_arrivals_total"), "kind"),
            "active": prom.values(last("chatload_active_chats")),
            "quota": prom.values(last("chatload_quota"), "name"),
            "stage": prom.values(last("chatload_stage_info"), "stage"),
            "scrapes": prom.values('count_over_time(up{job="chatload"}[10m])'),
        }
    summary = json.loads((only_run(out) / "summary.json").read_text())
    start = summary["calls"][START_CHAT]
    offered = sum(start[o] for o in CALL_OUTCOMES) + start[DROPPED]

    print(f"\n[{'local runner' if not processes else f'master with {processes} workers'}]")
    show("the last values Prometheus stored", "prometheus", "summary.json")
    want = expected_calls(summary)
    for (op, outcome), value in sorted(stored["calls"].items()):
        show(f"chatload_calls_total{{operation={op!r},outcome={outcome!r}}}", value, want.get((op, outcome), 0))
    for kind, value in (("offered", offered), ("dropped", start[DROPPED])):
        show(f"chatload_arrivals_total{{kind={kind!r}}}", stored["arrivals"][(kind,)], value)
    show("chatload_active_chats", stored["active"][()], summary["clean_up"]["still_active"])
    for (name,), value in sorted(stored["quota"].items()):
        show(f"chatload_quota{{name={name!r}}}", value, "")
    show("chatload_stage_info (stages stored)", ", ".join(stage for (stage,) in sorted(stored["stage"])), "")
    show("scrapes stored", stored["scrapes"][()], "")

    nonzero = {key: value for key, value in stored["calls"].items() if value}
    assert nonzero == want
    assert {key: v for key, v in stored["durations"].items() if v} == want  # every call has its duration
    assert all(stored["calls"].get((START_CHAT, o)) is not None for o in CALL_OUTCOMES)  # zeros served too
    assert (DROPPED,) not in {(o,) for _, o in stored["calls"]}  # dropped arrivals are not calls
    assert stored["arrivals"] == {("offered",): float(offered), ("dropped",): float(start[DROPPED])}
    assert start["ok"] > 0 and start["throttled_tps"] > 0 and start[DROPPED] > 0, start  # what the scenario is for
    assert stored["active"] == {(): 0.0} and summary["clean_up"]["still_active"] == 0
    assert stored["quota"] == {("concurrent_chats",): 500.0, ("rate",): 2.0, ("burst",): 2.0}
    assert ("stopped",) in stored["stage"]
    assert stored["scrapes"][()] >= 5


# ---------------------------------------------------------------------- Locust's --otel


class OtlpReceiver:
    """A minimal OTLP/HTTP receiver on loopback: keeps every POSTed body by path, answers 200."""

    def __init__(self) -> None:
        received: list[tuple[str, bytes]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received.append((self.path, body))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.received = received
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> OtlpReceiver:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def attributes(point) -> dict[str, str]:
    return {kv.key: kv.value.string_value for kv in point.attributes}


def otlp_metrics(bodies: list[bytes]) -> dict[str, dict[tuple, float]]:
    """metric name -> attributes -> the last value exported (cumulative: the last is the total);
    histograms give their count."""
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    found: dict[str, dict[tuple, float]] = {}
    for body in bodies:
        request = ExportMetricsServiceRequest.FromString(body)
        for resource in request.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    kind = metric.WhichOneof("data")
                    points = getattr(metric, kind).data_points
                    for point in points:
                        key = tuple(sorted(attributes(point).items()))
                        if kind == "histogram":
                            value = float(point.count)
                        else:
                            value = float(point.as_int if point.WhichOneof("value") == "as_int" else point.as_double)
                        found.setdefault(metric.name, {})[key] = value
    return found


@pytest.mark.timeout(120)
def test_otel_sends_durations_and_chatload_counters_to_a_collector(tmp_path):
    pytest.importorskip("opentelemetry.sdk", reason="OpenTelemetry's SDK is not installed (pip install locust[otel])")
    pytest.importorskip(
        "opentelemetry.exporter.otlp.proto.http", reason="the OTLP/HTTP exporter is not installed (locust[otel])"
    )
    out = tmp_path / "out"
    path = scenario_file(tmp_path, SCENARIO)
    with running_emulator(EMULATOR) as emu, OtlpReceiver() as receiver:
        env = {
            **env_without("AWS_", "OTEL_"),
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_METRIC_EXPORT_INTERVAL": "1000",
            "OTEL_TRACES_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
            "OTEL_SERVICE_NAME": "chatload-test",
        }
        args = ["--headless", "--only-summary", "--otel", "--scenario", str(path), "--out", str(out)]
        done = run_locust([*args, "--endpoint-url", emu.url], timeout_s=90, env=env)
        assert done.returncode in (0, 1, 2), done.stdout[-3000:]
        assert "OpenTelemetry enabled" in done.stdout, done.stdout[-3000:]
        bodies = [body for path_, body in receiver.received if path_ == "/v1/metrics"]
    assert bodies, f"nothing exported: {[p for p, _ in receiver.received]}\n{done.stdout[-3000:]}"
    found = otlp_metrics(bodies)
    summary = json.loads((only_run(out) / "summary.json").read_text())
    want = expected_calls(summary)
    calls = {(dict(k)["operation"], dict(k)["outcome"]): v for k, v in found["chatload.calls"].items() if v}
    durations: dict[str, float] = {}
    for key, count in found["locust.client.duration"].items():  # Locust's request event: name = operation
        durations[dict(key)["name"]] = durations.get(dict(key)["name"], 0.0) + count
    calls_by_op: dict[str, float] = {}
    for (op, _), n in want.items():
        calls_by_op[op] = calls_by_op.get(op, 0.0) + n
    start = summary["calls"][START_CHAT]
    arrivals = {dict(k)["kind"]: v for k, v in found["chatload.arrivals"].items()}
    print(f"\n[--otel] {len(bodies)} OTLP metric exports; metrics: {sorted(found)}")
    print(f"  locust.client.duration counts per operation: {durations}  summary.json calls: {calls_by_op}")
    print(f"  chatload.calls: {dict(sorted(calls.items()))}")
    print(f"  chatload.arrivals: {arrivals}")
    assert calls == want
    assert durations == calls_by_op
    assert arrivals == {"offered": float(sum(start[o] for o in CALL_OUTCOMES) + start[DROPPED]),
                        "dropped": float(start[DROPPED])}  # fmt: skip
    assert {"chatload.active_chats", "chatload.quota", "chatload.stage.info"} <= set(found)
