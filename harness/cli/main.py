"""The `chatload` command: run, ui, emulator, report, compare, scenarios.

This process only parses arguments, validates the scenario and starts child processes (the
emulator, Locust, the report). It never imports Locust, gevent or boto3 itself.
Exit codes: 0 thresholds passed, 1 a threshold failed, 2 invalid run or bad input.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from chatload.contracts import (
    ARRIVAL_PROCESSES,
    CONNECT_ENDPOINT_ENV,
    EXIT_CODES,
    EXIT_INVALID,
    EXIT_OK,
    RETRY_MODES,
    endpoint_from_env,
)
from chatload.emulator_control import EmulatorStartError, running_emulator
from chatload.harness.cli import processes
from chatload.harness.runid import new_run_id
from chatload.harness.scenario.files import builtin_scenarios, find_scenario

if TYPE_CHECKING:
    from chatload.harness.scenario.model import Scenario


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_INVALID
    try:
        return int(args.handler(args))
    except UsageError as exc:
        print(f"chatload: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except processes.ProcessError as exc:
        print(f"chatload: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        print("chatload: interrupted", file=sys.stderr)
        return EXIT_INVALID


# ---------------------------------------------------------------- argument parsing


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chatload",
        description="Load and throttling tests for Amazon Connect chat (StartChatContact and the "
        "Participant Service), against a local emulator or a real instance.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="run a scenario headless and build its report",
        description="Run a scenario headless (starting the emulator unless --endpoint-url or "
        "--target aws says otherwise), build the report and exit by the thresholds: "
        "0 passed, 1 a threshold failed, 2 invalid run or bad input.",
    )
    run.add_argument("scenario", nargs="?", help="scenario file or built-in name (see `chatload scenarios`)")
    _add_run_options(run)
    run.add_argument("--processes", type=int, metavar="N", help="Locust worker processes on this machine")
    run.add_argument("--verbose", action="store_true", help="show Locust's own log lines")
    run.add_argument(
        "--baseline", type=Path, metavar="RUN_DIR",
        help="gate the run on this earlier run of the same scenario ([thresholds.regression]): exit 1 on a regression",
    )  # fmt: skip
    run.set_defaults(handler=cmd_run)

    ui = sub.add_parser(
        "ui",
        help="the emulator plus Locust's web UI for exploratory runs",
        description="Start the emulator (unless --endpoint-url or --target aws) and Locust's web UI, "
        "with the Throttling tab. Every run started from the UI leaves its own run folder.",
    )
    ui.add_argument("scenario", nargs="?", help="scenario file or built-in name (default ci-smoke)")
    _add_run_options(ui)
    ui.add_argument("--web-host", default="127.0.0.1", help="address of the web UI (default 127.0.0.1)")
    ui.add_argument("--web-port", type=int, default=8089, help="port of the web UI (default 8089)")
    ui.set_defaults(handler=cmd_ui)

    emu = sub.add_parser("emulator", help="run the Amazon Connect chat emulator in the foreground")
    emu.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    emu.add_argument("--port", type=int, default=8700, help="port (default 8700; 0 picks a free one)")
    emu.add_argument("--config", type=Path, help="emulator TOML config (default: AWS's default quotas)")
    emu.set_defaults(handler=cmd_emulator)

    rep = sub.add_parser("report", help="(re)build the report of a run folder")
    rep.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    rep.add_argument("--baseline", type=Path, metavar="RUN_DIR", help="gate the run on an earlier run of its scenario")
    rep.set_defaults(handler=cmd_report)

    cmp_ = sub.add_parser("compare", help="compare two runs side by side (HTML and Markdown)")
    cmp_.add_argument("run_a", type=Path, metavar="RUN_A")
    cmp_.add_argument("run_b", type=Path, metavar="RUN_B")
    cmp_.add_argument("--out", type=Path, help="folder for the comparison")
    cmp_.add_argument(
        "--gate", action="store_true", help="gate RUN_B on RUN_A by [thresholds.regression]: exit 1 on a regression"
    )
    cmp_.set_defaults(handler=cmd_compare)

    scn = sub.add_parser("scenarios", help="list the built-in scenarios with their purpose")
    scn.set_defaults(handler=cmd_scenarios)

    pln = sub.add_parser(
        "plan",
        help="simulate a scenario offline: the throttling to expect and the quotas it needs",
        description="Simulate a scenario offline, with no network and no Locust, many times over: per stage "
        "the offered and accepted rates, the TPS- and concurrency-throttled shares of StartChatContact calls "
        "and the peak active chats, then the smallest quotas that keep each throttle share under "
        "--max-throttle in 95% of the simulations (docs/plan.md).",
    )
    pln.add_argument("scenario", help="scenario file or built-in name (see `chatload scenarios`)")
    pln.add_argument("--runs", default="200", metavar="N", help="simulations (default 200)")
    pln.add_argument("--seed", metavar="S", help="seed of the simulations (default: the scenario's, else 0)")
    pln.add_argument(
        "--max-throttle", default="0.001", metavar="SHARE",
        help="throttle share the quotas needed must stay under, 0..1 (default 0.001 = 0.1%%)",
    )  # fmt: skip
    pln.add_argument("--rate-quota", metavar="R", help="StartChatContact rate quota, calls/s (default: scenario, AWS)")
    pln.add_argument("--burst", metavar="B", help="StartChatContact burst (default: the scenario's, else AWS's 8)")
    pln.add_argument("--concurrent-chats", metavar="C", help="concurrent active chats quota (default: scenario, AWS)")
    pln.add_argument("--rate-multiplier", default="1", metavar="X", help="scale every stage's rate")
    pln.add_argument("--no-search", action="store_true", help="skip the search for the quotas needed")
    pln.add_argument("--json", action="store_true", help="print the plan as JSON (stable keys, docs/plan.md)")
    pln.set_defaults(handler=cmd_plan)
    return parser


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rate", type=float, help="ad-hoc run: one flat stage at this many chats/s")
    p.add_argument("--duration", help="ad-hoc run: stage length, e.g. 30s, 5m or plain seconds")
    p.add_argument("--hold", help="ad-hoc run: how long each chat stays open (default 0s)")
    p.add_argument("--rate-multiplier", type=float, default=1.0, help="scale every stage's rate")
    p.add_argument("--target", choices=["emulator", "aws"], help="override the scenario's target")
    p.add_argument("--endpoint-url", help="a running emulator (or Connect endpoint) to use")
    p.add_argument("--emulator-config", type=Path, help="TOML config for the emulator this run starts")
    p.add_argument("--region", help="AWS Region of the instance (target aws)")
    p.add_argument("--instance-id", help="Amazon Connect instance id (target aws)")
    p.add_argument("--contact-flow-id", help="contact flow id for StartChatContact (target aws)")
    p.add_argument("--retry-mode", choices=RETRY_MODES, help="SDK retries")
    p.add_argument("--max-attempts", type=int, help="SDK attempts per call when retries are on")
    p.add_argument("--confirm-real-instance", action="store_true", help="consent to load a real instance")
    p.add_argument("--max-chats", type=int, help="cap on chats started in the run")
    p.add_argument("--max-rate", type=float, help="cap on the arrival rate (chats/s)")
    p.add_argument("--arrivals", choices=ARRIVAL_PROCESSES, help="arrival process (default: the scenario's)")
    p.add_argument("--seed", type=int, help="seed of Poisson arrivals (default: the scenario's, else a fresh one)")
    p.add_argument("--out", type=Path, default=Path("reports"), help="folder for run folders (default reports)")


# ---------------------------------------------------------------- scenario resolution


def packaged_locustfile() -> Path:
    """The Locust entry point shipped inside the package (a copy of the repository's locustfile.py)."""
    return Path(str(resources.files("chatload") / "locustfile.py"))


def resolve_scenario_path(name: str | None) -> Path:
    """A path as given, or a built-in name from scenarios/ (with or without .toml)."""
    found = find_scenario(name or "ci-smoke")
    if found is not None:
        return found
    raise UsageError(f"scenario {name!r}: no such file or built-in scenario (list them with `chatload scenarios`)")


def load_run_scenario(args: argparse.Namespace) -> Scenario:
    from chatload.harness.scenario import files, schema

    if args.seed is not None and args.seed < 0:
        raise UsageError(f"--seed: must be a whole number >= 0, got {args.seed}")
    try:
        if args.rate is not None or args.duration is not None:
            if args.scenario:
                raise UsageError("give either a SCENARIO or --rate/--duration, not both")
            if args.rate is None or args.duration is None:
                raise UsageError("an ad-hoc run needs both --rate R and --duration D (e.g. --rate 3 --duration 30s)")
            if args.rate <= 0:
                raise UsageError(f"--rate: must be > 0 chats/s, got {args.rate}")
            duration = _duration_flag("--duration", args.duration)
            hold = _duration_flag("--hold", args.hold) if args.hold is not None else 0.0
            return files.adhoc_scenario(args.rate * args.rate_multiplier, duration, hold_s=hold)
        path = resolve_scenario_path(args.scenario)
        if args.rate_multiplier <= 0:
            raise UsageError(f"--rate-multiplier: must be > 0, got {args.rate_multiplier}")
        return files.load_scenario(path, rate_multiplier=args.rate_multiplier)
    except schema.ScenarioError as exc:
        raise UsageError(str(exc)) from None


def _duration_flag(flag: str, text: str) -> float:
    from chatload.harness.scenario.duration import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"{flag}: {exc}") from None


def locust_options(args: argparse.Namespace, scenario_path: Path | None) -> list[str]:
    """Our own Locust options (harness/options.py) that carry this run's settings."""
    opts: list[str] = []
    if scenario_path is not None:
        opts += ["--scenario", str(scenario_path.resolve())]
    else:
        opts += ["--rate", str(args.rate), "--duration", str(args.duration)]
        if args.hold is not None:
            opts += ["--hold", str(args.hold)]
    if args.rate_multiplier != 1.0:
        opts += ["--rate-multiplier", str(args.rate_multiplier)]
    for flag, value in (
        ("--target", args.target),
        ("--region", args.region),
        ("--instance-id", args.instance_id),
        ("--contact-flow-id", args.contact_flow_id),
        ("--retry-mode", args.retry_mode),
        ("--max-attempts", args.max_attempts),
        ("--max-chats", args.max_chats),
        ("--max-rate", args.max_rate),
        ("--arrivals", args.arrivals),
        ("--seed", args.seed),
    ):
        if value is not None:
            opts += [flag, str(value)]
    if args.confirm_real_instance:
        opts.append("--confirm-real-instance")
    baseline = getattr(args, "baseline", None)
    if baseline is not None:
        if not (baseline / "meta.json").is_file():
            raise UsageError(f"--baseline {baseline}: not a run folder (no meta.json there)")
        opts += ["--baseline", str(baseline.resolve())]
    opts += ["--out", str(args.out.resolve())]
    return opts


def preflight(args: argparse.Namespace, scenario) -> str:
    """Consent, caps and the pre-flight summary; returns the target kind."""
    from chatload.harness import safety
    from chatload.harness.cli import preflight as pf

    target = args.target or scenario.target.kind
    if target == "aws":
        if args.endpoint_url is None and args.emulator_config is not None:
            raise UsageError("--emulator-config: only for the emulator target")
        effective = _with_target_overrides(scenario, args)
        problem = pf.consent_error(effective, args.confirm_real_instance)
        if problem:
            raise UsageError(problem)
        plan = pf.plan(effective)
        problem = safety.check_caps(plan, safety.effective_caps(effective, args.max_chats, args.max_rate))
        if problem:
            raise UsageError(problem)
        print(pf.format_plan(plan), file=sys.stderr)
        args.preflight = real_instance_preflight(effective, plan)
    return target


def real_instance_preflight(scenario, plan) -> dict:
    """Credentials and applied quotas, read by a child process (this one stays free of boto3)."""
    import json
    import subprocess

    from chatload.harness.cli.preflight import quota_warnings, reading_of

    request = {"region": scenario.target.region, "instance_id": scenario.target.instance_id}
    result = subprocess.run(
        [sys.executable, "-m", "chatload.harness.service_quotas"],
        input=json.dumps(request), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines() or [f"pre-flight failed with exit code {result.returncode}"]
        raise UsageError(lines[-1].removeprefix("chatload: "))
    found = json.loads(result.stdout)
    reading = reading_of(found["quotas"])
    found["warnings"] = [*reading.notes, *quota_warnings(plan, reading)]
    for warning in found["warnings"]:
        print(f"chatload: warning: {warning}", file=sys.stderr)
    return found


def _with_target_overrides(scenario, args: argparse.Namespace):
    import dataclasses

    changes = {
        key: value
        for key, value in (
            ("kind", "aws"),
            ("region", args.region),
            ("instance_id", args.instance_id),
            ("contact_flow_id", args.contact_flow_id),
        )
        if value is not None
    }
    if args.confirm_real_instance:
        changes["confirm"] = True
    return dataclasses.replace(scenario, target=dataclasses.replace(scenario.target, **changes))


@contextlib.contextmanager
def target_endpoint(args: argparse.Namespace, target: str) -> Iterator[str | None]:
    """The endpoint Locust talks to: a running one, one we start, or None for real AWS."""
    if args.endpoint_url:
        processes.check_endpoint(args.endpoint_url)
        yield args.endpoint_url
        return
    from_env = endpoint_from_env(CONNECT_ENDPOINT_ENV, dict(os.environ))
    if from_env:  # boto3's convention: Locust's clients read the variables themselves
        if target == "emulator":
            processes.check_endpoint(from_env)
        print(f"chatload: endpoint {from_env} (from the environment)", file=sys.stderr)
        yield None
        return
    if target == "aws":
        yield None
        return
    config = args.emulator_config
    if config is not None and not config.is_file():
        raise UsageError(f"--emulator-config {config}: no such file")
    try:
        emulator = running_emulator(config)
        emu = emulator.__enter__()
    except EmulatorStartError as exc:
        raise processes.ProcessError(str(exc)) from None
    try:
        print(f"chatload: emulator at {emu.url}", file=sys.stderr)
        yield emu.url
    finally:
        emulator.__exit__(None, None, None)


# ---------------------------------------------------------------- commands


def cmd_run(args: argparse.Namespace) -> int:
    scenario = load_run_scenario(args)
    target = preflight(args, scenario)
    if args.processes is not None and args.processes < 1:
        raise UsageError(f"--processes: must be at least 1, got {args.processes}")
    scenario_path = None if args.rate is not None else resolve_scenario_path(args.scenario)
    run_id = new_run_id(scenario.name)
    run_dir = args.out / run_id
    total_s = sum(stage.duration_s for stage in scenario.stages)
    with target_endpoint(args, target) as endpoint:
        cmd = [
            sys.executable, "-m", "locust",
            "-f", str(packaged_locustfile()),
            "--headless", "--only-summary",
            "--run-id", run_id,
            *locust_options(args, scenario_path),
        ]  # fmt: skip
        if endpoint:
            cmd += ["--endpoint-url", endpoint]
        if not args.verbose:
            cmd += ["--loglevel", "WARNING"]
        if args.processes and args.processes > 1:
            port = str(processes.free_port())  # never Locust's fixed 5557: two runs would share workers
            cmd += ["--processes", str(args.processes), "--master-bind-host", "127.0.0.1",
                    "--master-bind-port", port, "--master-host", "127.0.0.1", "--master-port", port]  # fmt: skip
        print(f"chatload: run {run_id}: {scenario.name}, {total_s:.0f} s, target {target}", file=sys.stderr)
        code = processes.run_locust(cmd, watchdog_s=total_s + 180)
    code = code if code in EXIT_CODES else EXIT_INVALID
    print(f"chatload: {verdict(run_dir, code)}", file=sys.stderr)
    return code


def verdict(run_dir: Path, code: int) -> str:
    """The run's last line: what happened, the exit code and where the report is."""
    import json

    try:
        summary = json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return f"exit {code}; no report was built (run folder {run_dir})"
    if not summary.get("valid", False):
        what = "INVALID run: " + "; ".join(summary.get("invalid_reasons") or ["see the report"])
    elif summary.get("passed"):
        what = "thresholds passed"
    else:
        failed = [t["name"] for t in summary.get("thresholds", []) if not t.get("passed")]
        what = "threshold failed: " + ", ".join(failed)
    report = run_dir / "report.html"
    return f"{what} (exit {code}); report {report if report.is_file() else run_dir}"


def cmd_ui(args: argparse.Namespace) -> int:
    scenario = load_run_scenario(args)
    target = preflight(args, scenario)
    scenario_path = None if args.rate is not None else resolve_scenario_path(args.scenario)
    with target_endpoint(args, target) as endpoint:
        cmd = [
            sys.executable, "-m", "locust",
            "-f", str(packaged_locustfile()),
            "--web-host", args.web_host, "--web-port", str(args.web_port),
            *locust_options(args, scenario_path),
        ]  # fmt: skip
        if endpoint:
            cmd += ["--endpoint-url", endpoint]
        print(f"chatload: web UI at http://{args.web_host}:{args.web_port} (Ctrl-C to stop)", file=sys.stderr)
        code = processes.run_locust(cmd, watchdog_s=None)
    return code if code in EXIT_CODES else EXIT_INVALID


def cmd_emulator(args: argparse.Namespace) -> int:
    """The emulator in the foreground: this process becomes `python -m chatload.emulator` (the
    harness and the emulator meet only over HTTP, never by import)."""
    argv = [sys.executable, "-m", "chatload.emulator", "--host", args.host, "--port", str(args.port)]
    if args.config is not None:
        argv += ["--config", str(args.config)]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)
    return EXIT_INVALID  # not reached: execv replaces this process


def cmd_report(args: argparse.Namespace) -> int:
    from chatload.analysis import report

    return report.main([str(args.run_dir)] + (["--baseline", str(args.baseline)] if args.baseline else []))


def cmd_compare(args: argparse.Namespace) -> int:
    from chatload.analysis import compare

    argv = [str(args.run_a), str(args.run_b)]
    if args.out is not None:
        argv += ["--out", str(args.out)]
    if args.gate:
        argv.append("--gate")
    return compare.main(argv)


def cmd_scenarios(args: argparse.Namespace) -> int:
    from chatload.harness.scenario.files import list_scenarios

    rows = list_scenarios(builtin_scenarios())
    width = max((len(name) for name, _, _ in rows), default=0)
    for name, purpose, _path in rows:
        print(f"{name:<{width}}  {purpose}")
    return EXIT_OK


def _plan_number(flag: str, text: str | None, *, whole: bool = False, above: float | None = None,
                 minimum: float | None = None, below: float | None = None) -> float | None:  # fmt: skip
    """A number flag of `chatload plan` (int when whole), None when not given; UsageError naming the flag."""
    if text is None:
        return None
    kind = "a whole number" if whole else "a number"
    try:
        value = int(text) if whole else float(text)
    except ValueError:
        raise UsageError(f"{flag}: must be {kind}, got {text!r}") from None
    rules = (
        (above, lambda v, x: v > x, ">"),
        (minimum, lambda v, x: v >= x, ">="),
        (below, lambda v, x: v < x, "<"),
    )
    for bound, holds, sign in rules:
        if bound is not None and not holds(value, bound):
            raise UsageError(f"{flag}: must be {kind} {sign} {bound:g}, got {text}")
    if not whole and not abs(value) < float("inf"):  # nan and inf
        raise UsageError(f"{flag}: must be a finite number, got {text}")
    return value


def cmd_plan(args: argparse.Namespace) -> int:
    """The scenario simulated offline (chatload.analysis.plan): text, or JSON with --json."""
    import json
    import time

    from chatload.analysis import plan as planner
    from chatload.harness.scenario import files, schema

    runs = _plan_number("--runs", args.runs, whole=True, minimum=1, below=100_001)
    seed = _plan_number("--seed", args.seed, whole=True, minimum=0)
    max_throttle = _plan_number("--max-throttle", args.max_throttle, above=0, below=1)
    rate = _plan_number("--rate-quota", args.rate_quota, above=0)
    burst = _plan_number("--burst", args.burst, minimum=1)
    chats = _plan_number("--concurrent-chats", args.concurrent_chats, whole=True, minimum=1)
    multiplier = _plan_number("--rate-multiplier", args.rate_multiplier, above=0)
    path = resolve_scenario_path(args.scenario)
    try:
        scenario = files.load_scenario(path, rate_multiplier=multiplier or 1.0)
    except schema.ScenarioError as exc:
        raise UsageError(str(exc)) from None
    quotas = planner.scenario_quotas(scenario, rate, burst, chats)
    started = time.monotonic()
    doc = planner.plan(
        scenario, quotas, runs=runs, seed=seed, max_throttle=max_throttle, search=not args.no_search,
        progress=lambda line: print(f"chatload: plan: {line}", file=sys.stderr, flush=True),
    )  # fmt: skip
    print(json.dumps(doc, indent=2) if args.json else planner.format_plan(doc))
    elapsed = time.monotonic() - started
    if elapsed > planner.PROGRESS_AFTER_S:
        print(f"chatload: plan: done in {elapsed:.1f} s", file=sys.stderr)
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
