"""What the harness costs: StartChatContact flat out through chatload's call path vs a bare boto3 loop.

Both run in this one process, gevent-patched by `import locust` as in a Locust user process, with the
same number of greenlets, against the same emulator in its own process (quotas raised so nothing
throttles). The harness path is what every customer call goes through: Api.call (timing,
classification), the attempts row, the recorder (with its flusher writing the CSV), the live
counters and Locust's request event (its stats). The phases alternate (bare, harness, bare,
harness) so drift on a shared machine hits both.

    .venv/bin/python benchmarks/bench_harness.py [--seconds 4] [--greenlets 8]

Prints JSON: calls/s of each and harness/bare (target >= 0.85).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import gevent
import locust  # noqa: F401  (gevent's patching before boto3, as in a Locust process)
from locust.env import Environment

from chatload.contracts import DEFAULT_CONTACT_FLOW_ID, DEFAULT_INSTANCE_ID
from chatload.emulator_control import running_emulator
from chatload.harness.chats import LiveChats
from chatload.harness.client import Api, ClientSettings, make_clients
from chatload.harness.customer import Customer
from chatload.harness.live.stats import LiveStats
from chatload.harness.outcome import CallFailed
from chatload.harness.recorder import Recorder, flush_forever
from chatload.harness.scenario.model import ChatLife

HIGH = {"rate": 1_000_000, "burst": 1_000_000}
REQUEST = {
    "InstanceId": DEFAULT_INSTANCE_ID,
    "ContactFlowId": DEFAULT_CONTACT_FLOW_ID,
    "ParticipantDetails": {"DisplayName": "bench"},
}


def flat_out(body, seconds: float, greenlets: int) -> int:
    """Run body() in `greenlets` greenlets for `seconds`; returns the calls made."""
    counts = [0] * greenlets
    deadline = time.perf_counter() + seconds

    def loop(i: int) -> None:
        while time.perf_counter() < deadline:
            body()
            counts[i] += 1

    gevent.joinall([gevent.spawn(loop, i) for i in range(greenlets)])
    return sum(counts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each of the four phases")
    parser.add_argument("--greenlets", type=int, default=8)
    args = parser.parse_args(argv)

    config = {
        "rates": {"StartChatContact": HIGH},
        "instances": [{"id": DEFAULT_INSTANCE_ID, "concurrent_chats": 10_000_000}],
    }
    with running_emulator(config) as emu, tempfile.TemporaryDirectory(prefix="chatload-bench-") as tmp:
        settings = ClientSettings(endpoint_url=emu.url, pool_size=args.greenlets)
        bare_client, _ = make_clients(settings)
        connect, participant = make_clients(settings)
        api = Api(connect, participant, settings.attempts_pinned)

        environment = Environment(user_classes=[])
        runner = environment.create_local_runner()  # its stats listen to the request event
        live = LiveStats()
        recorder = Recorder(Path(tmp) / "attempts", "local", sink=live.record)
        flusher = gevent.spawn(flush_forever, recorder, gevent.sleep)
        fire = environment.events.request.fire

        def report(call) -> None:
            failure = None if call.outcome == "ok" else CallFailed(call.outcome, call.error_code)
            fire(request_type=call.operation, name=call.operation, response_time=call.latency_ms,
                 response_length=0, exception=failure, context={})  # fmt: skip

        customer = Customer(
            api=api, recorder=recorder, chats=LiveChats(live), life=ChatLife(connect=False),
            instance_id=DEFAULT_INSTANCE_ID, contact_flow_id=DEFAULT_CONTACT_FLOW_ID, rng=random.Random(0),
            ending=gevent.event.Event(), sleep=gevent.sleep, name="bench", report=report,
        )  # fmt: skip
        now = time.time

        def bare() -> None:
            bare_client.start_chat_contact(**REQUEST)

        def harness() -> None:
            customer.call("StartChatContact", "flat", "bench-1", t_intended=now(), **REQUEST)

        flat_out(bare, 0.5, args.greenlets)  # warm both connection pools
        flat_out(harness, 0.5, args.greenlets)
        totals = {"bare": 0, "harness": 0}
        for _ in range(2):
            totals["bare"] += flat_out(bare, args.seconds, args.greenlets)
            totals["harness"] += flat_out(harness, args.seconds, args.greenlets)
        flusher.kill()
        recorder.close(compact=False)
        ok = live.snapshot().start_chat("ok")
        runner.quit()
        state = emu.state()["operations"]["StartChatContact"]

    seconds = 2 * args.seconds
    bare_rate, harness_rate = totals["bare"] / seconds, totals["harness"] / seconds
    print(json.dumps({
        "benchmark": "harness_call_path_vs_bare_boto3",
        "greenlets": args.greenlets,
        "seconds_per_path": seconds,
        "bare_boto3_calls_per_s": round(bare_rate, 1),
        "harness_calls_per_s": round(harness_rate, 1),
        "ratio": round(harness_rate / bare_rate, 3),
        "target_ratio": 0.85,
        "harness_rows_written": recorder.rows_written,
        "live_ok_counted": ok,
        "emulator_accepted": state["accepted"],
        "emulator_throttled": state["throttled_tps"] + state["throttled_concurrency"],
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
