"""The live view on a Locust environment: the counters (LiveStats) fed by every process and merged
on the master, the progress line of a headless run and the web UI's Throttling tab.

Locust is imported here, and only here in chatload.harness.live: the counters, the progress line
and the tab are plain code their tests drive without it.
"""

from __future__ import annotations

from typing import Any

from locust.runners import STATE_RUNNING, STATE_SPAWNING, MasterRunner, WorkerRunner

from chatload.harness.live import progress, webui
from chatload.harness.live.stats import REPORT_KEY, LiveStats


def install(environment: Any, live: LiveStats, *, total_duration_s: float | None) -> None:
    """Register `live` on a Locust environment, whatever its runner (local, master, worker, none yet).

    - every process: test_start starts the counts from zero, test_stop freezes the elapsed time;
    - worker: our report rides on Locust's stats message under ``data["chatload"]``;
    - master: each worker's report is merged, so the master's figures are global;
    - master or local with a web UI: the Throttling tab and ``/chatload/live`` (harness.webui);
    - headless master or local: the progress line (harness.progress).
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

    if environment.web_ui is not None:
        webui.register(environment.web_ui, live)
    else:

        def on_init(web_ui: Any = None, **_kwargs: Any) -> None:
            if web_ui is not None:
                webui.register(web_ui, live)

        events.init.add_listener(on_init)
        options = environment.parsed_options
        if options is not None and getattr(options, "headless", False):
            progress.attach(environment, live)
