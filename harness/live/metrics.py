"""Metrics for dashboards: a run's live counters as Prometheus metrics (and OpenTelemetry instruments).

`--metrics-port PORT` on the master or local process serves Prometheus' text exposition on
``http://HOST:PORT/metrics`` (HOST is `--metrics-host`, 127.0.0.1 by default); workers serve nothing:
the master's LiveStats holds the workers' figures merged, so its metrics are the run's global ones.

| metric | type | labels |
|---|---|---|
| ``chatload_calls_total`` | counter | ``operation``, ``outcome`` (calls only, dropped arrivals are not calls) |
| ``chatload_arrivals_total`` | counter | ``kind``: ``offered`` (StartChatContact arrivals, dropped too), ``dropped`` |
| ``chatload_active_chats`` | gauge | |
| ``chatload_quota`` | gauge | ``name``: ``concurrent_chats``, ``rate`` and ``burst`` (StartChatContact's), when known |
| ``chatload_call_duration_seconds`` | histogram | ``operation``, ``outcome`` |
| ``chatload_stage_info`` | gauge (1) | ``stage``: as the progress line shows it (``waiting``, a stage, ``stopped``) |

The figures are read from the process's `LiveStats` at scrape time by a `LiveCollector` in a
registry of its own (never prometheus_client's global one). The counters start from zero when a run
starts (a web UI's next run too), which Prometheus' `rate()` and `increase()` take as a reset.

At quit the last figures are final (the local clean-up is recorded, every worker's last report is
merged): if something scrapes the endpoint regularly, the process waits for its next scrape (at most
two of its intervals plus a second, and `FINAL_SCRAPE_MAX_S`), so what Prometheus stores last equals
the run's summary.json.

With Locust's own `--otel`, `otel_instruments` registers the same counters and gauges as
OpenTelemetry observable instruments (``chatload.calls``, ``chatload.arrivals``,
``chatload.active_chats``, ``chatload.quota``, ``chatload.stage.info``) on the meter provider Locust set
up, beside Locust's ``locust.client.duration`` (every call's duration, by operation).

prometheus_client is imported at import time; gevent and OpenTelemetry only when serving.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from chatload.contracts import CALL_OUTCOMES, DROPPED, OUTCOMES, START_CHAT
from chatload.harness.live.progress import stage_text
from chatload.harness.live.snapshot import LiveSnapshot
from chatload.harness.live.stats import DURATION_BUCKETS_MS, Durations, LiveStats

log = logging.getLogger("chatload")

DEFAULT_HOST = "127.0.0.1"
FINAL_SCRAPE_MAX_S = 30.0  # the longest a quitting process waits for the scrape of its last figures
BUCKETS_S = tuple(floatToGoString(ms / 1000.0) for ms in DURATION_BUCKETS_MS)  # the histogram's `le`


# ---------------------------------------------------------------------- the figures, by label


def _outcome_order(outcome: str) -> tuple[int, str]:
    return (OUTCOMES.index(outcome) if outcome in OUTCOMES else len(OUTCOMES), outcome)


def _operation_order(operation: str) -> tuple[bool, str]:
    return (operation != START_CHAT, operation)


def calls(snap: LiveSnapshot) -> list[tuple[str, str, int]]:
    """(operation, outcome, calls): StartChatContact with every call outcome (0 when none yet, so a
    dashboard's increase() sees the first one), every other (operation, outcome) once it appeared."""
    totals = {op: dict(by_outcome) for op, by_outcome in snap.totals.items()}
    start = totals.setdefault(START_CHAT, {})
    for outcome in CALL_OUTCOMES:
        start.setdefault(outcome, 0)
    return [
        (op, outcome, totals[op][outcome])
        for op in sorted(totals, key=_operation_order)
        for outcome in sorted(totals[op], key=_outcome_order)
        if outcome != DROPPED
    ]


def arrivals(snap: LiveSnapshot) -> dict[str, int]:
    """kind -> arrivals: offered (every StartChatContact row, dropped included) and dropped."""
    return {"offered": snap.offered, "dropped": snap.dropped}


def quotas(live: LiveStats) -> dict[str, float]:
    """name -> value of the quotas known: concurrent_chats, and StartChatContact's rate and burst."""
    known = {
        "concurrent_chats": live.quota_concurrent_chats,
        "rate": live.quota_start_chat_rate,
        "burst": live.quota_start_chat_burst,
    }
    return {name: float(value) for name, value in known.items() if value is not None}


def histogram(counts: list[float]) -> tuple[list[tuple[str, float]], float]:
    """One (operation, outcome)'s duration counts (LiveStats.durations) as Prometheus buckets
    (cumulative, `le` in seconds, "+Inf" last) and the sum in seconds."""
    buckets, running = [], 0.0
    for le, n in zip((*BUCKETS_S, "+Inf"), counts[:-1], strict=True):
        running += n
        buckets.append((le, running))
    return buckets, counts[-1] / 1000.0


# ---------------------------------------------------------------------- Prometheus


class LiveCollector(Collector):
    """The metrics of one LiveStats, read at each scrape (see the module doc)."""

    def __init__(self, live: LiveStats, clock: Callable[[], float] = time.monotonic) -> None:
        self.live = live
        self._clock = clock
        self.scrapes = 0  # collections so far
        self.scraped_at: float | None = None  # clock of the latest one
        self.interval_s: float | None = None  # between the latest two

    def collect(self) -> Iterator[Metric]:
        now = self._clock()
        if self.scraped_at is not None:
            self.interval_s = now - self.scraped_at
        self.scrapes += 1
        self.scraped_at = now
        snap = self.live.snapshot()
        yield from families(snap, quotas(self.live), self.live.durations())


def families(snap: LiveSnapshot, known_quotas: dict[str, float], durations: Durations) -> Iterable[Metric]:
    family = CounterMetricFamily(
        "chatload_calls", "API calls by operation and outcome class (dropped arrivals are not calls)",
        labels=("operation", "outcome"),
    )  # fmt: skip
    for op, outcome, n in calls(snap):
        family.add_metric((op, outcome), n)
    yield family
    family = CounterMetricFamily(
        "chatload_arrivals", "StartChatContact arrivals: offered (dropped included) and dropped", labels=("kind",)
    )
    for kind, n in arrivals(snap).items():
        family.add_metric((kind,), n)
    yield family
    yield GaugeMetricFamily("chatload_active_chats", "Chats started and not yet ended", value=snap.active_chats)
    family = GaugeMetricFamily(
        "chatload_quota", "Quotas known: concurrent_chats, StartChatContact rate (per s) and burst", labels=("name",)
    )
    for name, value in known_quotas.items():
        family.add_metric((name,), value)
    yield family
    family = HistogramMetricFamily(
        "chatload_call_duration_seconds", "Duration of API calls (SDK retries included)",
        labels=("operation", "outcome"),
    )  # fmt: skip
    for op in sorted(durations, key=_operation_order):
        for outcome in sorted(durations[op], key=_outcome_order):
            buckets, total = histogram(durations[op][outcome])
            family.add_metric((op, outcome), buckets, total)
    yield family
    yield InfoMetricFamily("chatload_stage", "The run's current stage", value={"stage": stage_text(snap)})


def registry_for(live: LiveStats) -> tuple[CollectorRegistry, LiveCollector]:
    """A registry of its own holding only `live`'s collector."""
    registry = CollectorRegistry(auto_describe=False)
    collector = LiveCollector(live)
    registry.register(collector)
    return registry, collector


class MetricsServer:
    """`make_wsgi_app` on gevent's WSGI server (Locust's processes run on gevent): started at once,
    stopped by `close()`."""

    def __init__(self, live: LiveStats, host: str = DEFAULT_HOST, port: int = 0) -> None:
        from gevent.pool import Pool
        from gevent.pywsgi import WSGIServer

        self.registry, self.collector = registry_for(live)
        self._server = WSGIServer((host, port), make_wsgi_app(self.registry), spawn=Pool(16), log=None)
        self._server.start()  # OSError when the address is taken

    @property
    def url(self) -> str:
        host, port = self._server.address[:2]
        return f"http://{host}:{port}/metrics"

    def wait_for_final_scrape(self, max_wait_s: float = FINAL_SCRAPE_MAX_S) -> bool:
        """The figures are final: if something scrapes regularly (two scrapes at least), wait for its
        next scrape (at most two of its intervals plus a second, and `max_wait_s`). True if it came;
        False at once when nothing scraped twice."""
        import gevent

        collector = self.collector
        if collector.interval_s is None:
            return False
        seen = collector.scrapes
        wait_s = min(max_wait_s, 2 * collector.interval_s + 1.0)
        log.info("chatload: waiting up to %.0f s for the metrics' last scrape", wait_s)
        deadline = time.monotonic() + wait_s
        while collector.scrapes == seen:
            if time.monotonic() >= deadline:
                return False
            gevent.sleep(0.05)
        return True

    def close(self) -> None:
        """Stop listening; a scrape being answered gets a second to finish."""
        self._server.stop(timeout=1.0)


def serve(live: LiveStats, host: str, port: int) -> MetricsServer:
    server = MetricsServer(live, host or DEFAULT_HOST, port)
    log.info("chatload: Prometheus metrics on %s", server.url)
    return server


# ---------------------------------------------------------------------- OpenTelemetry (Locust's --otel)


def otel_instruments(live: LiveStats, meter: Any = None) -> bool:
    """chatload's counters and gauges as observable instruments on `meter`, by default the "chatload"
    meter of OpenTelemetry's global meter provider (the one Locust's --otel set up); False if the
    OpenTelemetry API is not installed."""
    try:
        from opentelemetry import metrics as otel
    except ImportError:
        return False
    if meter is None:
        meter = otel.get_meter("chatload")

    def observe_calls(_options: Any) -> Iterator[Any]:
        for op, outcome, n in calls(live.snapshot()):
            yield otel.Observation(n, {"operation": op, "outcome": outcome})

    def observe_arrivals(_options: Any) -> Iterator[Any]:
        for kind, n in arrivals(live.snapshot()).items():
            yield otel.Observation(n, {"kind": kind})

    def observe_active(_options: Any) -> Iterator[Any]:
        yield otel.Observation(live.active_chats())

    def observe_quotas(_options: Any) -> Iterator[Any]:
        for name, value in quotas(live).items():
            yield otel.Observation(value, {"name": name})

    def observe_stage(_options: Any) -> Iterator[Any]:
        yield otel.Observation(1, {"stage": stage_text(live.snapshot())})

    meter.create_observable_counter(
        "chatload.calls", [observe_calls], unit="{call}", description="API calls by operation and outcome class"
    )
    meter.create_observable_counter(
        "chatload.arrivals", [observe_arrivals], unit="{arrival}", description="StartChatContact arrivals"
    )
    meter.create_observable_gauge("chatload.active_chats", [observe_active], unit="{chat}", description="Active chats")
    meter.create_observable_gauge("chatload.quota", [observe_quotas], description="Quotas known")
    meter.create_observable_gauge("chatload.stage.info", [observe_stage], description="The run's current stage")
    return True
