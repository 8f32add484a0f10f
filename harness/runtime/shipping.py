"""How a worker's attempts rows reach the master's run folder.

A worker that sees the master's run folder (one machine, or a shared volume) writes its
`attempts/<worker>.csv` there itself. A worker that does not ships its rows to the master in
"chatload_rows" messages on its flush cadence, and the master appends them to
`attempts/<worker>.csv` in its run folder (then compacts it to Parquet like any other).

Which of the two: the master writes a random token into `<run folder>/.chatload-run-token` and
sends it with "chatload_run"; a worker that reads the same token at that path shares the master's
filesystem. `CHATLOAD_SHIP_ROWS=1` in a worker's environment makes it ship anyway (tests use it
to exercise shipping on one machine).
"""

from __future__ import annotations

import logging
import math
import os
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from chatload.contracts import ATTEMPTS_COLUMNS as COLUMNS
from chatload.harness.recorder import Recorder
from chatload.harness.runtime.coordinator import Run

log = logging.getLogger("chatload")

MSG_ROWS = "chatload_rows"
TOKEN_FILE = ".chatload-run-token"
SHIP_ENV = "CHATLOAD_SHIP_ROWS"
MAX_ROWS_PER_MESSAGE = 2000  # a flush (every 0.5 s) larger than this goes in several messages


def write_token(folder: Path) -> str:
    """The master: a fresh random token in the run folder; returns it (sent with "chatload_run")."""
    token = secrets.token_hex(16)
    (Path(folder) / TOKEN_FILE).write_text(token, encoding="utf-8")
    return token


def remove_token(folder: Path) -> None:
    (Path(folder) / TOKEN_FILE).unlink(missing_ok=True)


def must_ship(folder: Path, token: str | None, environ: Mapping[str, str] = os.environ) -> bool:
    """A worker: True unless it finds the master's token in the master's run folder."""
    if environ.get(SHIP_ENV, "").strip() == "1":
        return True
    if not token:
        return True
    try:
        return (Path(folder) / TOKEN_FILE).read_text(encoding="utf-8").strip() != token
    except OSError:
        return True


def _plain(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


def rows_messages(run_id: str, worker: str, rows: list[dict]) -> Iterator[dict[str, Any]]:
    """The "chatload_rows" payloads for a flush: rows as lists in column order (NaN as None)."""
    for start in range(0, len(rows), MAX_ROWS_PER_MESSAGE):
        chunk = rows[start : start + MAX_ROWS_PER_MESSAGE]
        yield {
            "run_id": run_id,
            "worker": worker,
            "rows": [[_plain(row.get(c, "")) for c in COLUMNS] for row in chunk],
        }


def rows_of(data: Mapping[str, Any]) -> list[dict]:
    """The rows of a "chatload_rows" payload as recorder rows; ValueError if it is malformed."""
    rows = data.get("rows")
    if not isinstance(rows, list):
        raise ValueError("rows is not a list")
    out = []
    for values in rows:
        if not isinstance(values, list | tuple) or len(values) != len(COLUMNS):
            raise ValueError(
                f"a row has {len(values) if isinstance(values, list | tuple) else '?'} values, not {len(COLUMNS)}"
            )
        out.append({c: (math.nan if v is None else v) for c, v in zip(COLUMNS, values, strict=True)})
    return out


def shipper(send: Callable[[str, dict], Any], run_id: str, worker: str) -> Callable[[list[dict]], None]:
    """A worker's recorder sink for its flushes: each batch of rows goes to the master."""

    def ship(rows: list[dict]) -> None:
        for payload in rows_messages(run_id, worker, rows):
            send(MSG_ROWS, payload)

    return ship


class Inbox:
    """The master's side: each shipping worker's rows appended to `attempts/<worker>.csv`."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder) / "attempts"
        self.recorders: dict[str, Recorder] = {}
        self.closed = False
        self.rows = 0

    def receive(self, data: Mapping[str, Any]) -> int:
        """Append one message's rows (flushed at once, so a master that dies keeps them)."""
        worker = str(data.get("worker") or "")
        if not worker or "/" in worker or worker.startswith("."):
            raise ValueError(f"bad worker name {worker!r}")
        rows = rows_of(data)
        if self.closed:
            log.warning("chatload: %d rows of worker %s arrived after the run's end: not kept", len(rows), worker)
            return 0
        recorder = self.recorders.get(worker)
        if recorder is None:
            recorder = self.recorders[worker] = Recorder(self.folder, worker)
        for row in rows:
            recorder.record(row)
        recorder.flush()
        self.rows += len(rows)
        return len(rows)

    def close(self, compact: bool = True) -> None:
        """The run's end: every shipped file compacted to Parquet."""
        self.closed = True
        for recorder in self.recorders.values():
            recorder.close(compact=compact)


def deliver(runs: Iterable[Run | None], data: Any) -> None:
    """The master: a "chatload_rows" message into the inbox of the run it names (the current or
    the last one); anything else is logged and dropped."""
    run_id = data.get("run_id") if isinstance(data, dict) else None
    run = next((r for r in runs if r is not None and r.run_id == run_id), None)
    if run is None or run.inbox is None:
        log.warning("chatload: attempts rows for unknown run %s from a worker: not kept", run_id)
        return
    try:
        run.inbox.receive(data)
    except ValueError as exc:
        log.warning("chatload: attempts rows from a worker not kept: %s", exc)


def close_run(run: Run) -> None:
    """The master at the run's end (after the workers' last rows): compact the shipped attempts
    files and remove the run folder's token."""
    if run.inbox is not None:
        try:
            run.inbox.close(compact=True)
        except Exception:  # a bad shipped file must not cost us meta.json and the report
            log.exception("chatload: could not compact the shipped attempts files")
    remove_token(run.folder)
