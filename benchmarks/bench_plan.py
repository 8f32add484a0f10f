"""What `chatload plan` costs: one hour at 50 chats/s (Poisson), simulated 200 times, beside a plain loop.

The scenario is a busy contact centre's hour: Poisson arrivals at 50 chats/s against a StartChatContact
quota of 52/s (burst 80) and 5,000 concurrent chats, chats that connect after 1 s, send 2 messages
10 s apart and hold a lognormal 60 s (at most 10 minutes), each call against its own bucket. Figures:

- plan_s: `plan()` without the quota search, 200 simulations (the whole model: arrivals, chat lives,
  StartChatContact's bucket and the quota, the chat's own calls); target under 10 s;
- plan_with_search_s: the same with the quotas needed searched (what `chatload plan` does);
- core_s: the lockstep core alone (build_events + run_calls) on the same arrivals and lives, and
  python_loop_s: the same model as a plain loop over the reference token bucket
  (chatload.tokenbucket.TokenBucket) and a heap of slot ends, run for --loop-runs simulations and
  scaled to all of them; ratio = python_loop_s / core_s.

    .venv/bin/python benchmarks/bench_plan.py [--runs 200] [--loop-runs 3] [--no-search]

Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sys
import time

import numpy as np

from chatload.analysis import plan as planner
from chatload.analysis import plan_sim as sim
from chatload.contracts import DEFAULT_INSTANCE_ID
from chatload.harness.scenario.model import Arrivals, ChatLife, HoldTime, Scenario, Stage, Target

QUOTAS = {
    "rates": {"StartChatContact": {"rate": 52, "burst": 80}, "StopContact": {"rate": 60, "burst": 90}},
    "participant_rates": {
        "CreateParticipantConnection": {"rate": 60, "burst": 90},
        "SendMessage": {"rate": 120, "burst": 180},
        "DisconnectParticipant": {"rate": 60, "burst": 90},
    },
    "instances": [{"id": DEFAULT_INSTANCE_ID, "concurrent_chats": 5000}],
}
HOUR = Scenario(
    name="bench-hour",
    purpose="one hour at 50 chats/s, Poisson",
    path=None,
    stages=(Stage("hour", 3600, 50),),
    chat=ChatLife(
        connect=True, connect_delay_s=1, messages=2, message_interval_s=10, hold=HoldTime("lognormal", 60, 0.5, 600)
    ),
    target=Target(emulator_config=QUOTAS),
    arrivals=Arrivals("poisson", 1),
)  # fmt: skip


def timed(function):
    started = time.perf_counter()
    result = function()
    return result, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--loop-runs", type=int, default=3, help="simulations the plain loop runs (then scaled)")
    parser.add_argument("--no-search", action="store_true", help="leave out plan_with_search_s")
    args = parser.parse_args(argv)

    quotas = planner.scenario_quotas(HOUR)
    plan, plan_s = timed(lambda: planner.plan(HOUR, quotas, runs=args.runs, search=False))
    searched, search_s = (None, None) if args.no_search else timed(lambda: planner.plan(HOUR, quotas, runs=args.runs))

    # the core and the plain loop on the very same arrivals and chat lives
    schedule = sim.ScheduleArrays.of(HOUR.stages)
    talk = HOUR.chat.connect_delay_s + HOUR.chat.messages * HOUR.chat.message_interval_s
    hold = HOUR.chat.hold
    mu = math.log(hold.mean_s) - hold.sigma**2 / 2
    arrivals, lives = [], []
    for n in range(args.runs):
        times = schedule.poisson(np.random.default_rng([1, n, 0]))
        life = np.minimum(np.random.default_rng([1, n, 1]).lognormal(mu, hold.sigma, len(times)), hold.max_s) + talk
        arrivals.append(times)
        lives.append(life)

    def core() -> tuple[sim.Events, sim.Outcomes]:
        events = sim.build_events(arrivals, lives)
        return events, sim.run_calls(events, quotas.rate, quotas.burst, quotas.concurrent_chats)

    (events, result), core_s = timed(core)
    loop_runs = max(1, min(args.loop_runs, args.runs))
    started = time.perf_counter()
    for n in range(loop_runs):
        codes = sim.reference_calls(arrivals[n], lives[n], quotas.rate, quotas.burst, quotas.concurrent_chats)
        assert codes.count(sim.OK) == result.ok[n, 0], "the loop and the core disagree"
    per_simulation = (time.perf_counter() - started) / loop_runs
    python_loop_s = per_simulation * args.runs

    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({
        "benchmark": "plan_one_hour_50_per_s_poisson",
        "runs": args.runs,
        "calls_per_simulation": round(float(np.mean(events.calls)), 1),
        "cpus": os.cpu_count(),
        "plan_s": round(plan_s, 2),
        "plan_target_s": 10.0,
        "plan_with_search_s": None if search_s is None else round(search_s, 2),
        "core_s": round(core_s, 2),
        "python_loop_s_per_simulation": round(per_simulation, 3),
        "python_loop_s": round(python_loop_s, 1),
        "python_loop_runs_timed": loop_runs,
        "ratio": round(python_loop_s / core_s, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024),
        "tps_throttle_pct_mean": plan["total"]["tps_throttle_pct"]["mean"],
        "peak_active_chats_p95": plan["total"]["peak_active_chats"]["p95"],
        "quotas_needed": None if searched is None else searched["quotas_needed"],
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
