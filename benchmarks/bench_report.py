"""Build the full report from 10 million synthetic attempt rows (Parquet segments) and print JSON.

Figures: build time and peak memory of a child process running `python -m analysis.report`, and as the
reference the time pyarrow alone takes to read the same files (ratio = build / read).
Targets (issue 5): build under 60 s, peak under 4 GB on a 2-core machine.

    .venv/bin/python benchmarks/bench_report.py [--rows 10000000] [--workers 8] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
T0 = 1_800_000_000.0
# Per chat: StartChatContact, then (if ok) CreateParticipantConnection, SendMessage, DisconnectParticipant.
LIFE = ["CreateParticipantConnection", "SendMessage", "DisconnectParticipant"]
STAGES = [("warm", 300.0), ("step-1", 450.0), ("step-2", 550.0), ("step-3", 650.0), ("peak", 800.0)]
QUOTA_RATE = 600.0


def chats_needed(rows: int) -> int:
    """Chats whose rows (1 + 3 per ok chat) slightly exceed `rows`; segments are then cut to size."""
    rates = np.array([r for _, r in STAGES])
    ok_share = np.mean(np.minimum(1.0, QUOTA_RATE / rates)) * 0.995
    return int(rows / (1 + 3 * ok_share) * 1.03) + 1


def generate_worker(rng: np.random.Generator, n_chats: int, worker: str, stage_s: float, share: float) -> pa.Table:
    """One worker's rows: n_chats StartChatContact arrivals paced through the stages, plus chat lives."""
    rates = np.array([r for _, r in STAGES]) * share
    per_stage = np.floor(rates * stage_s).astype(np.int64)
    per_stage[-1] = max(0, n_chats - per_stage[:-1].sum())
    stage = np.repeat(np.arange(len(STAGES)), per_stage)[:n_chats]
    within = np.concatenate([np.arange(k) / r for k, r in zip(per_stage, rates, strict=True)])[:n_chats]
    t_intended = T0 + 1.0 + stage * stage_s + within
    t_start = t_intended + rng.exponential(0.002, n_chats)
    # TPS throttling above the quota rate, a few concurrency throttles and errors, 0.1 % dropped
    over = np.clip(1 - QUOTA_RATE / np.array([r for _, r in STAGES])[stage], 0, None)
    u = rng.random(n_chats)
    outcome = np.where(u < over, 1, 0)
    outcome = np.where((u > 0.995) & (u <= 0.997), 2, outcome)
    outcome = np.where((u > 0.997) & (u <= 0.998), 4, outcome)
    outcome = np.where(u > 0.999, 8, outcome)
    ok = outcome == 0
    latency = np.where(ok, rng.lognormal(3.5, 0.4, n_chats), rng.lognormal(1.5, 0.3, n_chats))
    latency = np.where(outcome == 8, np.nan, latency)
    attempts = np.where(outcome == 8, 0, 1)
    chat_index = np.arange(n_chats)
    # life of ok chats: connect after 0.2 s, message after 1 s, disconnect after the hold (mean 30 s)
    life_chat = np.repeat(chat_index[ok], len(LIFE))
    life_op = np.tile(np.arange(1, len(LIFE) + 1), int(ok.sum()))
    hold = rng.exponential(30.0, n_chats)
    offset = np.select([life_op == 1, life_op == 2], [0.2, 1.0], hold[life_chat] + 1.5)
    life_t = t_start[life_chat] + offset
    rows_chat = np.concatenate([chat_index, life_chat])
    operations = np.array(["StartChatContact", *LIFE])
    outcomes = np.array(
        [
            "ok",
            "throttled_tps",
            "throttled_concurrency",
            "throttled_unknown",
            "client_error",
            "server_error",
            "timeout",
            "connection_error",
            "dropped",
        ]
    )
    stage_names = np.array([s for s, _ in STAGES])
    n_life = len(life_chat)
    chat_ids = pa.array(np.char.add(f"{worker}-", np.arange(n_chats).astype("U10"))).take(pa.array(rows_chat))
    return pa.table(
        {
            "t_intended": np.concatenate([t_intended, np.full(n_life, np.nan)]),
            "t_start": np.concatenate([t_start, life_t]),
            "latency_ms": np.concatenate([latency, rng.lognormal(3.0, 0.3, n_life)]),
            "operation": operations[np.concatenate([np.zeros(n_chats, np.int64), life_op])],
            "outcome": outcomes[np.concatenate([outcome, np.zeros(n_life, np.int64)])],
            "http_status": np.concatenate([np.select([ok, outcome == 8], [200, 0], 429), np.full(n_life, 200)]),
            "error_code": np.where(
                np.concatenate([outcome, np.zeros(n_life, np.int64)]) == 1, "TooManyRequestsException", ""
            ),
            "attempts": np.concatenate([attempts, np.ones(n_life, np.int64)]),
            "stage": stage_names[stage[rows_chat]],
            "worker": np.full(n_chats + n_life, worker),
            "chat": chat_ids,
            "contact_id": pa.nulls(n_chats + n_life, pa.string()).fill_null(""),
            "first_outcome": outcomes[np.concatenate([outcome, np.zeros(n_life, np.int64)])],
        }
    )


def generate(run_dir: Path, rows: int, workers: int) -> tuple[int, float]:
    rng = np.random.default_rng(20261124)
    n_chats = chats_needed(rows) // workers
    stage_s = n_chats * workers / np.mean([r for _, r in STAGES]) / len(STAGES)
    (run_dir / "attempts").mkdir(parents=True)
    total = 0
    for w in range(workers):
        size = rows // workers + (1 if w < rows % workers else 0)
        table = generate_worker(rng, n_chats, f"w{w}", stage_s, 1 / workers).slice(0, size)
        total += table.num_rows
        pq.write_table(table, run_dir / "attempts" / f"w{w}.parquet")
    duration = stage_s * len(STAGES) + 200
    meta = {
        "run_id": "bench",
        "started_at": T0 - 5.0,
        "schedule_started_at": T0 + 1.0,
        "ended_at": T0 + duration,
        "interrupted": False,
        "ended_early": None,
        "scenario": {
            "name": "bench",
            "stages": [{"name": s, "duration_s": stage_s, "target_rate": r} for s, r in STAGES],
            "thresholds": {"max_p95_ms": 200, "max_dropped_share": 0.01},
        },
        "target": "emulator",
        "quotas": {
            "source": "emulator",
            "StartChatContact": {"rate": QUOTA_RATE, "burst": 900},
            "concurrent_chats": 30000,
        },
        "workers": [f"w{w}" for w in range(workers)],
        "lost_workers": [],
        "clean_up": {"ended": 0, "still_active": 0, "not_ended": []},
    }
    (run_dir / "meta.json").write_text(json.dumps(meta))
    return total, duration


def pyarrow_read_s(run_dir: Path) -> float:
    start = time.perf_counter()
    tables = [pq.read_table(p) for p in sorted((run_dir / "attempts").glob("*.parquet"))]
    rows = sum(t.num_rows for t in tables)
    elapsed = time.perf_counter() - start
    assert rows > 0
    return elapsed


def build_in_child(run_dir: Path) -> tuple[float, int, int]:
    """Wall time, peak RSS (bytes) and exit code of `python -m chatload.analysis.report RUN_DIR`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "chatload.analysis.report", str(run_dir)], cwd=ROOT, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 1, 2) or not (run_dir / "summary.json").is_file():
        sys.stderr.write(proc.stderr)
        raise SystemExit("report build failed")
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak_kb <= before:
        sys.stderr.write("warning: peak RSS not above an earlier child's; figure is a lower bound\n")
    return elapsed, peak_kb * 1024, proc.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--keep", type=Path, help="leave the run folder here instead of a temp folder")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="chatload-bench-"))
    run_dir = args.keep or base / "run"
    try:
        t = time.perf_counter()
        rows, duration = generate(run_dir, args.rows, args.workers)
        generate_s = time.perf_counter() - t
        read_s = pyarrow_read_s(run_dir)
        build_s, peak_bytes, code = build_in_child(run_dir)
        summary = json.loads((run_dir / "summary.json").read_text())
        print(
            json.dumps(
                {
                    "benchmark": "report_build",
                    "rows": rows,
                    "segments": args.workers,
                    "run_duration_s": round(duration, 1),
                    "generate_s": round(generate_s, 2),
                    "build_s": round(build_s, 2),
                    "peak_rss_mb": round(peak_bytes / 2**20, 1),
                    "pyarrow_read_s": round(read_s, 3),
                    "build_over_read": round(build_s / read_s, 1),
                    "targets": {"build_s": 60, "peak_rss_mb": 4096},
                    "within_targets": build_s < 60 and peak_bytes < 4 * 2**30,
                    "report_exit_code": code,
                    "headline": summary["findings"]["headline"],
                    "error_rows": len((run_dir / "tables" / "errors.csv").read_text().splitlines()) - 1,
                    "cpus": os.cpu_count(),
                },
                indent=2,
            )
        )
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
