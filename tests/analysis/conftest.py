"""Synthetic run folders for the analysis tests (the layout of docs/internals.md)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

COLUMNS = [
    "t_intended",
    "t_start",
    "latency_ms",
    "operation",
    "outcome",
    "http_status",
    "error_code",
    "attempts",
    "stage",
    "worker",
    "chat",
    "contact_id",
    "first_outcome",
]
STATUS = {"ok": 200, "throttled_tps": 429, "throttled_concurrency": 429, "client_error": 400, "dropped": 0}
CODES = {
    "throttled_tps": "TooManyRequestsException",
    "throttled_concurrency": "LimitExceededException",
    "client_error": "InvalidRequestException",
}


def row(
    t_start: float,
    operation: str,
    outcome: str,
    latency_ms: float = math.nan,
    *,
    t_intended: float = math.nan,
    stage: str = "",
    worker: str = "w1",
    chat: str = "",
    attempts: int | None = None,
    first_outcome: str | None = None,
    t0: float = 1000.0,
) -> dict[str, Any]:
    """An attempts row; times are given relative to t0 (meta started_at)."""
    return {
        "t_intended": t0 + t_intended,
        "t_start": t0 + t_start,
        "latency_ms": math.nan if outcome == "dropped" else latency_ms,
        "operation": operation,
        "outcome": outcome,
        "http_status": STATUS.get(outcome, 500),
        "error_code": CODES.get(outcome, ""),
        "attempts": 0 if outcome == "dropped" else (attempts or 1),
        "stage": stage,
        "worker": worker,
        "chat": chat,
        "contact_id": f"contact-{chat}" if outcome == "ok" and operation == "StartChatContact" else "",
        "first_outcome": first_outcome or outcome,
    }


def meta(**overrides: Any) -> dict[str, Any]:
    base = {
        "run_id": "20260101T000000Z-test-abcd",
        "started_at": 999.0,
        "schedule_started_at": 1000.0,
        "ended_at": 1010.0,
        "scenario": {
            "name": "test",
            "stages": [{"name": "only", "duration_s": 10, "target_rate": 1}],
            "thresholds": {"max_dropped_share": 0.01},
        },
        "target": "emulator",
        "endpoint": "http://127.0.0.1:1",
        "region": "us-east-1",
        "instance": "i-1",
        "retry": {"mode": "off", "max_attempts": 1},
        "quotas": {"source": "emulator", "StartChatContact": {"rate": 5, "burst": 8}, "concurrent_chats": 500},
        "workers": ["w1"],
        "lost_workers": [],
        "clean_up": {"ended": 0, "still_active": 0, "not_ended": []},
        "interrupted": False,
        "ended_early": None,
    }
    base.update(overrides)
    return base


def write_segment(folder: Path, name: str, rows: list[dict[str, Any]], kind: str = "csv") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(rows, columns=COLUMNS)
    if kind == "parquet":
        path = folder / f"{name}.parquet"
        frame.to_parquet(path, index=False)
    else:
        path = folder / f"{name}.csv"
        frame.to_csv(path, index=False, na_rep="")
    return path


@pytest.fixture
def make_run(tmp_path: Path) -> Callable[..., Path]:
    """make_run(rows_by_worker, meta_overrides..., kind="csv") -> run folder."""
    counter = iter(range(1000))

    def build(segments: dict[str, list[dict[str, Any]]] | None, kind: str = "csv", **overrides: Any) -> Path:
        run_dir = tmp_path / f"run{next(counter)}"
        run_dir.mkdir()
        (run_dir / "meta.json").write_text(json.dumps(meta(**overrides)))
        for worker, rows in (segments or {}).items():
            write_segment(run_dir / "attempts", worker, rows, kind)
        return run_dir

    return build


@pytest.fixture
def attempt_row() -> Callable[..., dict[str, Any]]:
    """The `row` helper, for tests (conftest is not importable under --import-mode=importlib)."""
    return row
