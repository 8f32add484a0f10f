"""The live view on a Locust environment: the counters (LiveStats) fed by every process and merged
on the master, the progress line of a headless run, the web UI's Throttling tab and the metrics
endpoint (`--metrics-port`).

Locust is imported here, and only here in chatload.harness.live: the counters, the progress line,
the tab and the metrics are plain code their tests drive without it.
"""

from __future__ import annotations

import sys
from typing import Any

from locust.runners import STATE_RUNNING, STATE_SPAWNING, MasterRunner, WorkerRunner

from chatload.contracts import EXIT_INVALID
from chatload.harness.live import metrics, progress, webui
from chatload.harness.live.stats import REPORT_KEY, LiveStats

MSG_LIVE = "chatload_live"  # a worker's last report, sent at once when its run stops (report_now)


def install(environment: Any, live: LiveStats, *, total_duration_s: float | None) -> None:
    """Register `live` on a Locust environment, whatever its runner (local, master, worker, none yet).

    - every process: test_start starts the counts from zero, test_stop freezes the elapsed time;
    - worker: our report rides on Locust's stats message under ``data["chatload"]``;
    - master: each worker's report is merged, so the master's figures are global;
    - master or local with a web UI: the Throttling tab and ``/chatload/live`` (harness.webui);
    - headless master or local: the progress line (harness.progress);
    - master or local with ``--metrics-port``: the Prometheus endpoint, and with Locust's ``--otel``
      the same figures as OpenTelemetry instruments (harness.live.metrics).
    Calling it again with the same LiveStats does nothing; before the runner exists it waits for init.
    """
    if total_duration_s is not None:
        live.set_duration(total_duration_s)
    installed = getattr(environment, "chatload_live", None)
    if installed is live:
        return
    environment.chatload_live = live
    if environment.runner is None:

        def on_init(environment: Any, **_kwargs: Any) -> None:
            _wire(environment, live)

        environment.events.init.add_listener(on_init)
    else:
        _wire(environment, live)


def _wire(environment: Any, live: LiveStats) -> None:
    events = environment.events
    runner = environment.runner
    is_worker = isinstance(runner, WorkerRunner)

    events.test_start.add_listener(lambda **_kwargs: live.start())
    events.test_stop.add_listener(lambda **_kwargs: live.stop())
    if runner is not None and runner.state in (STATE_SPAWNING, STATE_RUNNING) and live.started_at is None:
        live.start()  # installed in the middle of a run

    if is_worker:

        def on_report_to_master(client_id: str, data: dict, **_kwargs: Any) -> None:
            data[REPORT_KEY] = live.take_report()

        events.report_to_master.add_listener(on_report_to_master)
        return

    if isinstance(runner, MasterRunner):

        def on_worker_report(client_id: str, data: dict, **_kwargs: Any) -> None:
            report = data.get(REPORT_KEY)
            if report is not None:
                live.merge(client_id, report)

        events.worker_report.add_listener(on_worker_report)
        runner.register_message(MSG_LIVE, lambda msg, **_kwargs: live.merge(msg.node_id, msg.data))

    options = environment.parsed_options
    if options is not None and getattr(options, "metrics_port", None) is not None:
        _serve_metrics(environment, live, getattr(options, "metrics_host", None) or metrics.DEFAULT_HOST,
                       int(options.metrics_port))  # fmt: skip
    if options is not None and getattr(options, "otel", False):
        metrics.otel_instruments(live)

    if environment.web_ui is not None:
        webui.register(environment.web_ui, live)
    else:

        def on_init(web_ui: Any = None, **_kwargs: Any) -> None:
            if web_ui is not None:
                webui.register(web_ui, live)

        events.init.add_listener(on_init)
        if options is not None and getattr(options, "headless", False):
            progress.attach(environment, live)


def report_now(environment: Any) -> None:
    """On a worker whose run has stopped and whose clean-up is recorded: send what changed since its
    last report to the master now, instead of within 3 s (Locust's messages keep their order, so it
    is merged before anything the worker sends after it): the master's figures at the end are the run's."""
    live, runner = getattr(environment, "chatload_live", None), environment.runner
    if isinstance(live, LiveStats) and isinstance(runner, WorkerRunner):
        runner.send_message(MSG_LIVE, live.take_report())


def _serve_metrics(environment: Any, live: LiveStats, host: str, port: int) -> None:
    """The Prometheus endpoint for this process's life; at quit (after every other quitting
    listener: Locust fires them in reverse) the last figures are scraped once more, then it stops."""
    try:
        server = metrics.serve(live, host, port)
    except (OSError, OverflowError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        sys.stderr.write(f"chatload: --metrics-port {port}: cannot listen on {host}:{port}: {reason}\n")
        sys.stderr.flush()
        raise SystemExit(EXIT_INVALID) from None
    environment.chatload_metrics = server

    def on_quitting(**_kwargs: Any) -> None:
        server.wait_for_final_scrape()
        server.close()

    environment.events.quitting.add_listener(on_quitting)
