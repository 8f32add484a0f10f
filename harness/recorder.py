"""The attempts writer: one row per API call (or dropped arrival), per process, append-only.

Rows are kept in a list and appended to `attempts/<worker>.csv` by a flusher at least every
second, and on stop, quit and SIGTERM, so a killed process loses at most its last second. After a
clean stop the CSV is compacted into `attempts/<worker>.parquet` (written to a temporary name,
then renamed; the CSV is removed only after that). Only the columns below are written: whatever
else a row carries (a token, by mistake) never reaches the file.

A worker that does not share the master's filesystem gives the recorder a `ship` function instead:
each flush hands the buffered rows to it (harness.shipping sends them to the master, which writes
them with a recorder of its own), and no file is written on the worker.
"""

from __future__ import annotations

import csv
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Imported with the module, not at the run's end: importing pyarrow (and numpy) takes half a second
# of CPU that blocks the event loop, and at the stop it froze the web UI's polling in "cleanup".
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from chatload.contracts import ATTEMPTS_COLUMNS, FLOAT_COLUMNS, INT_COLUMNS

FLUSH_INTERVAL_S = 0.5
SHIPPED_COPIES = "attempts-shipped"  # beside attempts/: a shipping worker's own copy of its rows
INTENTS = "intents"  # beside attempts/: <worker>.csv, each StartChatContact's token, written before the call


def new_row(
    operation: str,
    outcome: str,
    *,
    t_start: float,
    latency_ms: float = math.nan,
    http_status: int = 0,
    error_code: str = "",
    attempts: int = 1,
    first_outcome: str | None = None,
    t_intended: float = math.nan,
    stage: str = "",
    chat: str = "",
    contact_id: str = "",
    client_token: str = "",
) -> dict:
    """A row of the attempts table (worker is filled in by the recorder)."""
    return {
        "t_intended": t_intended,
        "t_start": t_start,
        "latency_ms": latency_ms,
        "operation": operation,
        "outcome": outcome,
        "http_status": http_status,
        "error_code": error_code,
        "attempts": attempts,
        "stage": stage,
        "worker": "",
        "chat": chat,
        "contact_id": contact_id,
        "first_outcome": outcome if first_outcome is None else first_outcome,
        "client_token": client_token,
        "start_lag_ms": (t_start - t_intended) * 1000.0 if t_intended == t_intended else math.nan,
    }


class Recorder:
    """Buffers rows in memory and appends them to the process's CSV on flush()."""

    def __init__(
        self,
        folder: Path,
        worker: str,
        *,
        sink: Callable[[dict], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        ship: Callable[[list[dict]], None] | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.worker = worker
        # A shipping recorder keeps its own copy beside the attempts folder (never read as attempts,
        # so a master on the same disk does not count the rows twice): if the master is lost, that
        # copy takes the rows' place in attempts/ (promote_copy).
        home = self.folder.parent / SHIPPED_COPIES if ship is not None else self.folder
        self.csv_path = home / f"{worker}.csv"
        self.parquet_path = home / f"{worker}.parquet"
        self._sink = sink
        self._clock = clock
        self._ship = ship
        self._rows: list[dict] = []
        self._intents: Any = None
        self._file = None
        self._writer = None
        self.rows_written = 0
        self.ship_failures = 0
        self.last_flush = clock()
        self.closed = False

    def intend(self, client_token: str, stage: str, chat: str, t: float) -> None:
        """Before a StartChatContact: its idempotency token goes to `intents/<worker>.csv` at once
        (written through), so that a chat whose answer this process never recorded (it was killed
        during the call) can still be found by replaying the token (chatload.harness.runtime.orphans)."""
        if self.closed:
            return
        if self._intents is None:
            path = self.csv_path.parent.parent / INTENTS / f"{self.worker}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            fresh = not path.exists() or path.stat().st_size == 0
            self._intents = open(path, "a", newline="", encoding="utf-8")  # noqa: SIM115
            if fresh:
                self._intents.write("client_token,t,stage,chat\n")
        csv.writer(self._intents).writerow((client_token, repr(t), stage, chat))
        self._intents.flush()

    def record(self, row: dict) -> None:
        row["worker"] = self.worker
        self._rows.append(row)
        if self._sink is not None:
            self._sink(row)

    @property
    def pending(self) -> int:
        return len(self._rows)

    @property
    def ships(self) -> bool:
        return self._ship is not None

    def flush(self) -> int:
        """Append the buffered rows to the CSV and hand them to the OS (or ship them); returns how many."""
        self.last_flush = self._clock()
        if self.closed:
            return 0
        rows, self._rows = self._rows, []
        if self._ship is not None:
            if rows:
                try:
                    self._ship(rows)
                except Exception:  # not sent: kept for the next flush
                    self._rows[:0] = rows
                    self.ship_failures += 1
                    return 0
                self.rows_written += len(rows)
                self._append(rows)
            return len(rows)
        self._append(rows)
        self.rows_written += len(rows)
        return len(rows)

    def _append(self, rows: list[dict]) -> None:
        if self._file is None:
            self.csv_path.parent.mkdir(parents=True, exist_ok=True)
            fresh = not self.csv_path.exists() or self.csv_path.stat().st_size == 0
            self._file = open(self.csv_path, "a", newline="", encoding="utf-8")  # noqa: SIM115
            self._writer = csv.DictWriter(self._file, fieldnames=ATTEMPTS_COLUMNS, extrasaction="ignore")
            if fresh:
                self._writer.writeheader()
        if rows:
            self._writer.writerows(rows)
        self._file.flush()

    def close(self, compact: bool = True) -> Path | None:
        """Flush, close the CSV and (by default) compact it to Parquet. Returns the file that holds
        the rows (a shipping recorder: None, its rows went to the master; its own copy stays in
        SHIPPED_COPIES). Safe to call twice."""
        if not self.closed:
            self.flush()
            self.closed = True
            if self._file is not None:
                self._file.close()
                self._file = None
            if self._intents is not None:
                self._intents.close()
                self._intents = None
        if compact and self.csv_path.exists():
            compact_to_parquet(self.csv_path, self.parquet_path)
        if self._ship is not None:
            return None
        return self.parquet_path if self.parquet_path.exists() else self.csv_path

    def promote_copy(self) -> Path | None:
        """A shipping recorder whose master is gone: its own copy of every row (closed first) becomes
        attempts/<worker>.* on this machine's disk, in place of what the master may have received.
        Returns the file, or None for a recorder that does not ship."""
        if self._ship is None:
            return None
        self.close(compact=True)
        self.folder.mkdir(parents=True, exist_ok=True)
        kept = None
        for source, target in ((self.parquet_path, self.folder / f"{self.worker}.parquet"),
                               (self.csv_path, self.folder / f"{self.worker}.csv")):  # fmt: skip
            if source.exists():
                os.replace(source, target)
                kept = kept or target
        return kept


def compact_to_parquet(csv_path: Path, parquet_path: Path) -> None:
    """Rewrite an attempts CSV as Parquet with the contract's types; the CSV is removed afterwards."""
    types = {c: pa.string() for c in ATTEMPTS_COLUMNS}
    types.update({c: pa.float64() for c in FLOAT_COLUMNS})
    types.update({c: pa.int64() for c in INT_COLUMNS})
    table = pacsv.read_csv(
        csv_path,
        convert_options=pacsv.ConvertOptions(
            column_types=types,
            strings_can_be_null=False,
            null_values=["", "nan", "NaN"],
        ),
    )
    tmp = parquet_path.with_name(parquet_path.name + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, parquet_path)
    csv_path.unlink()


def flush_forever(recorder: Recorder, sleep: Callable[[float], object], interval_s: float = FLUSH_INTERVAL_S) -> None:
    """The flusher greenlet's body: flush, sleep, again, until the recorder is closed (or killed)."""
    while not recorder.closed:
        sleep(interval_s)
        recorder.flush()
