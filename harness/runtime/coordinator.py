"""The coordinator role (Locust's local runner, or the master): a run from its preparation to its report.

- prepares the run at the shape's first tick: settings, refusal (consent, caps, no emulator), run
  folder, the scenario's emulator config, quotas, the first meta.json;
- tells the load processes the run and, once the user pool has spawned, when the schedule starts
  (its `Downstream`: the local load process itself, or the workers through Locust's messages);
- at test stop collects every load process's clean-up summary, writes the final meta.json and
  Locust's own outputs, and builds the report in a child process whose exit code is the run's.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import gevent

from chatload.contracts import EXIT_INVALID, START_CHAT
from chatload.emulator_control import EmulatorAdmin
from chatload.harness import service_quotas
from chatload.harness.cli.preflight import consent_error, default_quotas, emulator_quotas, plan
from chatload.harness.live.stats import LiveStats
from chatload.harness.pacer import Schedule
from chatload.harness.runid import new_run_id
from chatload.harness.runtime import options as run_options
from chatload.harness.runtime import runfolder
from chatload.harness.safety import check_caps, effective_caps
from chatload.harness.scenario.model import pool_size, scenario_to_dict
from chatload.harness.scenario.schema import ScenarioError

log = logging.getLogger("chatload")

STAGE_FOLLOW_S = 0.5  # how often the live view's stage and target rate follow the schedule


@dataclass
class Run:
    """One test run as the master or local runner sees it."""

    settings: run_options.RunSettings
    run_id: str
    folder: Path
    users: int
    prepared_at: float
    schedule: Schedule
    t0: float | None = None  # epoch seconds the schedule started
    ended_early: str | None = None
    stopped: bool = False
    outputs: Any = None
    meta: dict[str, Any] = field(default_factory=dict)
    done: dict[str, dict] = field(default_factory=dict)  # worker -> its end-of-run summary
    workers: list[str] = field(default_factory=list)  # the master's workers with a share now
    lost_workers: list[dict] = field(default_factory=list)  # [{"worker": "w1", "at": epoch seconds}]
    token: str | None = None  # master: the run folder's token (harness.shipping)
    inbox: Any = None  # master: a chatload.harness.runtime.shipping.Inbox for the rows workers ship
    orphans: dict[str, dict] = field(default_factory=dict)  # lost worker -> clean-up of the chats it left

    def lost(self) -> set[str]:
        return {entry["worker"] for entry in self.lost_workers}

    def lose(self, worker: str, at: float) -> bool:
        """Note a worker lost at `at` (once); True if it was not known lost yet."""
        if worker in self.lost():
            return False
        self.lost_workers.append({"worker": worker, "at": at})
        return True

    @property
    def duration_s(self) -> float:
        return self.schedule.duration_s

    def schedule_ends_at(self) -> float | None:
        return None if self.t0 is None else self.t0 + self.schedule.duration_s


class Downstream(Protocol):
    """Where a coordinator's run is loaded: the local load process, or the workers."""

    lead_s: float  # the schedule starts this long after the pool has spawned

    def begin(self, run: Run) -> None:
        """A run starts: each load process begins it (run id, folder)."""

    def start(self, run: Run) -> None:
        """The pool has spawned: the schedule starts at run.t0."""

    def collect(self, run: Run) -> None:
        """The test stops: every load process's clean-up summary into run.done."""


def refusal(settings: run_options.RunSettings) -> str | None:
    """Why this run must not start (consent, caps, no emulator), or None."""
    scenario = settings.scenario
    problem = consent_error(scenario, settings.confirm)
    if problem:
        return problem
    caps = effective_caps(scenario, settings.max_chats, settings.max_rate)
    problem = check_caps(plan(scenario), caps)
    if problem:
        return problem
    if scenario.target.kind == "emulator" and settings.endpoint_url:
        return EmulatorAdmin(settings.endpoint_url, timeout_s=3.0).problem()
    return None


def initial_meta(run: Run) -> dict[str, Any]:
    """meta.json as written when the run is prepared (applies the scenario's emulator config first)."""
    settings, scenario = run.settings, run.settings.scenario
    target = scenario.target
    quotas = default_quotas()
    if target.kind == "aws":
        quotas = service_quotas.aws_quotas(target.region, target.instance_id)
    if target.kind == "emulator" and settings.endpoint_url:
        admin = EmulatorAdmin(settings.endpoint_url, timeout_s=3.0)
        if target.emulator_config:
            admin.put_config(dict(target.emulator_config))
        quotas = emulator_quotas(admin.config(), admin.state(), target.instance_id)
    return {
        "run_id": run.run_id,
        "started_at": run.prepared_at,
        "ended_at": None,
        "scenario": scenario_to_dict(scenario),
        "target": target.kind,
        "endpoint": settings.endpoint_url,
        "region": target.region,
        "instance": target.instance_id,
        "contact_flow": target.contact_flow_id,
        "retry": {"mode": scenario.retry.mode, "max_attempts": scenario.retry.max_attempts},
        "quotas": quotas,
        "versions": runfolder.versions(),
        "workers": [],
        "lost_workers": [],
        "users": run.users,
        "clean_up": None,
        "arrivals": None,
        "interrupted": False,
        "ended_early": None,
    }


def write_final_meta(run: Run) -> None:
    """meta.json at the end: every load process's clean-up and arrivals, the workers, how it ended."""
    meta = dict(run.meta)
    summaries = list(run.done.values())
    took_part = set(run.done) | set(run.workers) | run.lost()
    not_ended = sorted(c for s in summaries for c in s["clean_up"]["not_ended"])
    arrivals = [s["arrivals"] for s in summaries if s.get("arrivals")]
    meta.update(
        ended_at=time.time(),
        workers=sorted(took_part),
        lost_workers=run.lost_workers,
        clean_up={
            "ended": sum(s["clean_up"]["ended"] for s in summaries),
            "still_active": len(not_ended),
            "not_ended": not_ended,
        },
        arrivals={k: sum(a[k] for a in arrivals) for k in ("scheduled", "started", "dropped")},
        ended_early=run.ended_early,
        interrupted=bool(run.meta.get("interrupted")),
        schedule_started_at=run.t0,
    )
    if run.inbox is not None and run.inbox.recorders:
        meta["shipped_rows"] = {w: r.rows_written for w, r in sorted(run.inbox.recorders.items())}
    missing = sorted(took_part - set(run.done))
    if missing:
        meta["clean_up"]["unreported_workers"] = missing
    if run.orphans:  # chats lost workers left open, ended by the coordinator
        meta["clean_up"]["orphans"] = run.orphans
        meta["clean_up"]["ended"] += sum(s["ended"] for s in run.orphans.values())
        meta["clean_up"]["still_active"] += sum(s["still_active"] for s in run.orphans.values())
        meta["clean_up"]["not_ended"] += [c for s in run.orphans.values() for c in s["not_ended"]]
    run.meta = meta
    runfolder.write_json(run.folder / "meta.json", meta)
    if not_ended:
        log.warning("chatload: %d chats could not be ended: %s", len(not_ended), ", ".join(not_ended))


class Coordinator:
    def __init__(self, environment: Any, live: LiveStats, downstream: Downstream) -> None:
        self.environment = environment
        self.runner = environment.runner
        self.live = live
        self.downstream = downstream
        self.headless = bool(getattr(environment.parsed_options, "headless", False))
        self.run: Run | None = None
        self.last_run: Run | None = None
        self.exit_code: int | None = None
        self._report: Any = None

    @property
    def running(self) -> bool:
        """A run is prepared and has not stopped."""
        return self.run is not None and not self.run.stopped

    def check_before_start(self) -> None:
        """Headless: a bad scenario or option, or no emulator, is one line and exit code 2 before
        anything starts."""
        try:
            line = refusal(run_options.resolve(self.environment.parsed_options))
        except (run_options.UsageError, ScenarioError) as exc:
            line = str(exc)
        if line:
            sys.stderr.write(f"chatload: {line}\n")
            sys.stderr.flush()
            sys.exit(EXIT_INVALID)

    # ------------------------------------------------------------------ the shape's view

    def shape_run(self) -> Run | None:
        """The current run for the shape; prepares one at a run's first tick. None: stop."""
        if self.run is None or self.run.stopped:
            try:
                self.run = self.prepare()
            except (run_options.UsageError, ScenarioError, OSError) as exc:
                log.error("chatload: %s", exc)
                self.exit_code = EXIT_INVALID
                return None
        return self.run

    def prepare(self) -> Run:
        settings = run_options.resolve(self.environment.parsed_options)
        problem = refusal(settings)
        if problem:
            raise run_options.UsageError(problem)
        settings = run_options.with_seed(settings, settings.scenario.arrivals.seed)
        scenario = settings.scenario
        run_id = settings.run_id or new_run_id(scenario.name)
        if self.last_run is not None and self.last_run.run_id == run_id:
            run_id = new_run_id(scenario.name)  # the web UI's next run
        folder = runfolder.create(settings.out, run_id)
        run = Run(settings, folder.name, folder, pool_size(scenario), time.time(), Schedule(scenario.stages))
        run.meta = initial_meta(run)
        runfolder.write_json(folder / "meta.json", run.meta)
        self.live.set_duration(scenario.duration_s)
        quotas = run.meta["quotas"]
        start_chat = quotas.get(START_CHAT) or {}
        self.live.set_quota(quotas.get("concurrent_chats"), start_chat.get("rate"), start_chat.get("burst"))
        log.info("chatload: run %s: %s, %d users, folder %s", run.run_id, scenario.name, run.users, folder)
        return run

    def finish_from_shape(self, reason: str | None) -> None:
        """The shape is done: stop the test (workers included) so the clean-up runs before quit."""
        if reason and self.run is not None:
            self.run.ended_early = self.run.ended_early or reason
        self.runner.stop()

    # ------------------------------------------------------------------ Locust's events

    def on_test_start(self) -> None:
        run = self.shape_run()
        if run is None:
            gevent.spawn(self.runner.stop)
            return
        if run.outputs is None:
            run.outputs = runfolder.LocustOutputs(self.environment, run.folder)
            run.outputs.start()
        self.downstream.begin(run)

    def on_spawning_complete(self) -> None:
        run = self.run
        if run is None or run.t0 is not None:
            return
        run.t0 = time.time() + self.downstream.lead_s
        self.downstream.start(run)
        gevent.spawn(self._follow_stages, run)

    def _follow_stages(self, run: Run) -> None:
        """The live view's stage and its target rate (the global one), from the schedule's clock."""
        assert run.t0 is not None
        while not run.stopped:
            elapsed = time.time() - run.t0
            if 0 <= elapsed <= run.schedule.duration_s:
                stage = run.schedule.stages[run.schedule.stage_at(elapsed)]
                self.live.set_stage(stage.name, run.schedule.rate_at(elapsed))
            gevent.sleep(STAGE_FOLLOW_S)

    def on_test_stop(self) -> None:
        run = self.run
        if run is None or run.stopped:
            return
        run.stopped = True
        self.last_run = run
        self.downstream.collect(run)
        write_final_meta(run)
        if run.outputs is not None:
            try:
                run.outputs.finish()
            except Exception:  # Locust's outputs must never cost us the report
                log.exception("chatload: could not write Locust's outputs")
        if not self.headless:
            self._report = gevent.spawn(self._build_report, run)

    # ------------------------------------------------------------------ what the load processes say

    def kill(self, reason: str) -> None:
        """A kill switch tripped: the shape ends the run at its next tick."""
        if self.running:
            assert self.run is not None
            self.run.ended_early = self.run.ended_early or reason

    def budget_spent(self) -> None:
        if self.running:
            assert self.run is not None
            self.run.ended_early = "max_chats reached"

    def done(self, summary: dict[str, Any]) -> None:
        """A load process's clean-up summary."""
        if self.run is not None:
            self.run.done[summary["worker"]] = summary

    # ------------------------------------------------------------------ the end

    def interrupted(self) -> None:
        """SIGTERM: meta.json says so; a headless run then ends by the shape's normal path (chats
        ended, clean-up, quit, report, exit code) at its next tick, within a second."""
        run = self.run
        if run is None or run.stopped:
            return
        run.meta["interrupted"] = True
        runfolder.write_json(run.folder / "meta.json", run.meta)
        if self.headless:
            log.warning("chatload: SIGTERM: ending the run and its chats")
            run.ended_early = run.ended_early or "interrupted by SIGTERM"

    def quit(self) -> int:
        """Locust quits: wait for the report; the process's exit code."""
        if self._report is not None:
            self._report.join()
        run = self.last_run
        if run is None:
            return self.exit_code if self.exit_code is not None else EXIT_INVALID
        if self.headless:
            self.exit_code, line = runfolder.run_report(run.folder, baseline=run.settings.baseline)
            sys.stderr.write(line + "\n")
        return EXIT_INVALID if self.exit_code is None else self.exit_code

    def _build_report(self, run: Run) -> None:
        self.exit_code, line = runfolder.run_report(run.folder, baseline=run.settings.baseline)
        log.info(line)
