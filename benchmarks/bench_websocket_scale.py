"""Issue 14's scale run: 10,000 concurrent chats, each holding an open, heartbeating chat websocket.

One harness process (`chatload run`'s Locust) and one emulator process on this machine run
benchmarks/scenarios/ten-thousand-chats.toml: 100 chats/s Poisson, holds of about 100 s, every
customer connected with its socket subscribed and heartbeating. The script starts the emulator
itself (so it knows both processes), samples each second the CPU time and RSS of both (from /proc)
and the emulator's active chats and open sockets (its admin API), then reads the run's summary.json
and the emulator's socket counters.

The reference, measured in the same run: the same scenario with `[chat] websocket = false` (the
HTTP-only chat of the first version), so the socket's cost comes out as a ratio on this machine.

    .venv/bin/python benchmarks/bench_websocket_scale.py [--no-reference] [--rate-multiplier 1]

Prints one JSON object: per phase the peak active chats and open sockets, each process's peak RSS
and its RSS and CPU (% of one core, averaged over the seconds the instance held >= 90% of its peak)
per 1,000 open chats, dropped arrivals, missed heartbeats, unexpected closes, lost frames and the
message delivery p50/p95/p99; then the ratios with/without sockets. Exit 1 when the socket phase
dropped an arrival, missed a heartbeat or left a socket open.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatload.contracts import DEFAULT_INSTANCE_ID
from chatload.emulator_control import EmulatorAdmin, running_emulator
from chatload.processes import stop_group, stop_process

SCENARIO = Path(__file__).resolve().parent / "scenarios" / "ten-thousand-chats.toml"
TICK = os.sysconf("SC_CLK_TCK")
HOLD_SHARE = 0.9  # the "held" seconds: the instance at >= 90% of its peak active chats
RUN_LIMIT_S = 20 * 60


@dataclass
class Sample:
    t: float
    harness_cpu_s: float
    harness_rss_mb: float
    emulator_cpu_s: float
    emulator_rss_mb: float
    active_chats: int
    open_sockets: int


@dataclass
class Phase:
    name: str
    samples: list[Sample] = field(default_factory=list)


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def find_locust(run_pid: int, deadline_s: float = 60.0) -> int:
    """The Locust process `chatload run` starts (its child whose command line names locust)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        for child in children(run_pid):
            try:
                if b"locust" in Path(f"/proc/{child}/cmdline").read_bytes():
                    return child
            except OSError:
                continue
        time.sleep(0.2)
    raise RuntimeError("chatload run did not start Locust within 60 s")


def sample_until_done(run: subprocess.Popen, emulator_pid: int, admin: EmulatorAdmin, phase: Phase) -> None:
    harness = find_locust(run.pid)
    while run.poll() is None:
        try:
            state = admin.state()
            sample = Sample(
                time.time(), proc_cpu_s(harness), proc_rss_mb(harness), proc_cpu_s(emulator_pid),
                proc_rss_mb(emulator_pid), int(state["instances"][DEFAULT_INSTANCE_ID]["active_chats"]),
                int(state["websocket"]["open"]),
            )  # fmt: skip
        except (OSError, KeyError, ValueError):
            break  # Locust has exited (or is exiting): the run is over
        phase.samples.append(sample)
        if len(phase.samples) % 10 == 0:  # progress on stderr (stdout is the JSON)
            last = phase.samples[-11] if len(phase.samples) > 10 else phase.samples[0]
            cpu = (sample.harness_cpu_s - last.harness_cpu_s) / max(sample.t - last.t, 1e-9)
            print(
                f"[{phase.name}] {len(phase.samples)} s: {sample.active_chats} active chats, "
                f"{sample.open_sockets} open sockets, harness {100 * cpu:.0f}% of a core, "
                f"{sample.harness_rss_mb:.0f} MB",
                file=sys.stderr, flush=True,
            )  # fmt: skip
        time.sleep(1.0)


def held_figures(samples: list[Sample]) -> dict[str, Any]:
    """CPU and RSS per 1,000 open chats over the seconds the instance held >= 90% of its peak."""
    peak = max((s.active_chats for s in samples), default=0)
    held = [s for s in samples if peak and s.active_chats >= HOLD_SHARE * peak]
    out: dict[str, Any] = {
        "peak_active_chats": peak,
        "peak_open_sockets": max((s.open_sockets for s in samples), default=0),
        "held_seconds": round(held[-1].t - held[0].t, 1) if len(held) > 1 else 0.0,
    }
    for who in ("harness", "emulator"):
        rss = [getattr(s, f"{who}_rss_mb") for s in samples]
        out[f"{who}_peak_rss_mb"] = round(max(rss, default=0.0), 1)
        out[f"{who}_start_rss_mb"] = round(rss[0], 1) if rss else 0.0
        if len(held) > 1:
            chats_k = sum(s.active_chats for s in held) / len(held) / 1000
            cpu = (getattr(held[-1], f"{who}_cpu_s") - getattr(held[0], f"{who}_cpu_s")) / (held[-1].t - held[0].t)
            out[f"{who}_cpu_pct_of_core"] = round(100 * cpu, 1)
            out[f"{who}_cpu_pct_per_1000_chats"] = round(100 * cpu / chats_k, 2)
            out[f"{who}_rss_mb_per_1000_chats"] = round(max(rss) / (peak / 1000), 1)
            out[f"{who}_added_rss_mb_per_1000_chats"] = round((max(rss) - rss[0]) / (peak / 1000), 1)
            # growth while the open chats hold steady: memory kept per chat that has ended
            out[f"{who}_rss_mb_held_first_last"] = [
                round(getattr(held[0], f"{who}_rss_mb"), 1),
                round(getattr(held[-1], f"{who}_rss_mb"), 1),
            ]
    return out


def run_phase(name: str, scenario: Path, multiplier: float, out: Path) -> dict[str, Any]:
    phase = Phase(name)
    out.mkdir(parents=True, exist_ok=True)
    with running_emulator() as emulator:
        admin = EmulatorAdmin(emulator.url, timeout_s=5.0)
        command = [
            sys.executable, "-m", "chatload", "run", str(scenario), "--endpoint-url", emulator.url,
            "--out", str(out), "--rate-multiplier", str(multiplier),
        ]  # fmt: skip
        log = (out / f"{name}.log").open("w")
        run = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)  # fmt: skip
        try:
            sampler = threading.Thread(target=sample_until_done, args=(run, emulator.process.pid, admin, phase))
            sampler.start()
            run.wait(timeout=RUN_LIMIT_S)
            sampler.join(timeout=10)
        finally:
            stop_process(run, grace_s=10.0)
            stop_group(run.pid, grace_s=10.0)  # Locust, should it outlive `chatload run`
            log.close()
        sockets = admin.state()["websocket"]
    folders = [p for p in out.iterdir() if p.is_dir() and (p / "summary.json").exists()]
    folder = max(folders, key=lambda p: p.stat().st_mtime)
    summary = json.loads((folder / "summary.json").read_text())
    meta = json.loads((folder / "meta.json").read_text())
    experience = summary.get("chat_experience") or {}
    delivery = experience.get("message_delivery") or {}
    figures = held_figures(phase.samples)
    figures.update({
        "exit_code": run.returncode,
        "run_folder": str(folder),
        "arrivals": meta.get("arrivals"),
        "clean_up_still_active": (meta.get("clean_up") or {}).get("still_active"),
        "sockets_left_open": sockets["open"],
        "emulator_sockets": sockets,
    })  # fmt: skip
    if experience:
        figures.update({
            "missed_heartbeats": experience.get("missed_heartbeats"),
            "unexpected_closes": experience.get("unexpected_closes"),
            "lost_frames": experience.get("lost_frames"),
            "late_frames": experience.get("late_frames"),
            "message_delivery_ms": {k: round(delivery.get(k) or 0.0, 1) for k in ("p50_ms", "p95_ms", "p99_ms")},
            "first_response": {k: (experience.get("first_response") or {}).get(k) for k in ("count", "ok", "timeout")},
        })  # fmt: skip
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-reference", action="store_true", help="skip the HTTP-only reference phase")
    parser.add_argument("--rate-multiplier", type=float, default=1.0, help="scale the arrival rate (a quick try)")
    args = parser.parse_args(argv)
    text = SCENARIO.read_text()
    if "\nwebsocket = true\n" not in text:
        raise SystemExit(f"{SCENARIO}: expected a line `websocket = true` in [chat]")
    result: dict[str, Any] = {"benchmark": "websocket_scale", "scenario": SCENARIO.name, "cpus": os.cpu_count()}
    out = Path(tempfile.mkdtemp(prefix="chatload-scale-"))  # kept: the run folders, for their reports
    result["sockets"] = run_phase("sockets", SCENARIO, args.rate_multiplier, out / "sockets")
    if not args.no_reference:
        reference = out / "http-only.toml"
        reference.write_text(text.replace("\nwebsocket = true\n", "\nwebsocket = false\n"))
        result["http_only"] = run_phase("http_only", reference, args.rate_multiplier, out / "http-only")
        sockets, http = result["sockets"], result["http_only"]
        result["ratios_sockets_over_http_only"] = {
            key: round(sockets[key] / http[key], 2)
            for key in ("harness_cpu_pct_per_1000_chats", "emulator_cpu_pct_per_1000_chats",
                        "harness_rss_mb_per_1000_chats", "emulator_rss_mb_per_1000_chats")
            if sockets.get(key) and http.get(key)
        }  # fmt: skip
    print(json.dumps(result, indent=1))
    s = result["sockets"]
    dropped = (s.get("arrivals") or {}).get("dropped", 1)
    ok = dropped == 0 and s.get("missed_heartbeats") == 0 and s.get("sockets_left_open") == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
