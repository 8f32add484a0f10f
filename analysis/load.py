"""Read a run folder: meta.json, attempts segments (CSV and Parquet, via pyarrow), Locust's CSVs.

Everything a user can get wrong here raises `RunError` with one line naming the file and the problem.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from chatload.analysis.columns import (
    CATEGORY_COLUMNS,
    FLOAT_COLUMNS,
    INT_COLUMNS,
    READ_COLUMNS,
    REQUIRED_COLUMNS,
    STRING_COLUMNS,
)
from chatload.contracts import START_CHAT

_DICT = pa.dictionary(pa.int32(), pa.string())
SCHEMA = pa.schema(
    [(c, pa.float64()) for c in FLOAT_COLUMNS]
    + [(c, pa.int32()) for c in INT_COLUMNS]
    + [(c, _DICT) for c in CATEGORY_COLUMNS]
    + [(c, _DICT) for c in STRING_COLUMNS]
)
_INT_DEFAULTS = {"http_status": 0, "attempts": 1}


class RunError(Exception):
    """A run folder (or a file in it) that cannot be read; the message is one line."""


@dataclass
class Run:
    """A loaded run: `attempts` has one row per call or dropped arrival, times in epoch seconds.

    `chat` is replaced by `chat_key` (int64 code of (worker, chat); -1 when empty) to keep memory small.
    """

    run_dir: Path
    meta: dict[str, Any]
    attempts: pd.DataFrame
    t0: float  # origin of the per-second buckets: the schedule's start (whole seconds earlier if rows are)
    t_end: float
    cut_short: bool
    files: list[str]
    locust: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)
    schedule_t0: float = 0.0  # when the pacer's clock started (epoch seconds)
    schedule_source: str = "schedule_started_at"
    master_lost: list[dict[str, Any]] = field(default_factory=list)  # master-lost-<worker>.json notes

    @property
    def run_id(self) -> str:
        return str(self.meta.get("run_id") or self.run_dir.name)

    @property
    def duration_s(self) -> float:
        return max(0.0, self.t_end - self.t0)


def read_meta(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "meta.json"
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: no such run folder")
    if not path.is_file():
        raise RunError(f"{path}: missing; is {run_dir} a chatload run folder?")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise RunError(f"{path}: expected a JSON object")
    return meta


def segment_files(attempts_dir: Path) -> list[Path]:
    """Parquet segments plus CSV segments whose stem has no Parquet file, sorted by name."""
    if not attempts_dir.is_dir():
        return []
    parquet = {p.stem: p for p in attempts_dir.glob("*.parquet")}
    csv = {p.stem: p for p in attempts_dir.glob("*.csv") if p.stem not in parquet}
    return sorted([*parquet.values(), *csv.values()])


def _complete_lines(path: Path) -> tuple[bytes, bool]:
    """The file's bytes up to its last newline (a killed writer leaves a partial last line)."""
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return data, False
    cut = data.rfind(b"\n")
    return (data[: cut + 1] if cut >= 0 else b""), True


def _read_csv(path: Path, notes: list[str]) -> pa.Table:
    data, truncated = _complete_lines(path)
    if truncated:
        notes.append(f"{path.name}: ignored a partial last line (writer stopped mid-line)")
    header = data.split(b"\n", 1)[0].decode("utf-8", "replace").strip()
    if not header:
        return SCHEMA.empty_table()
    names = [n.strip() for n in header.split(",")]
    present = [c for c in READ_COLUMNS if c in names]
    skipped = 0

    def skip(_row: Any) -> str:
        nonlocal skipped
        skipped += 1
        return "skip"

    types = {c: SCHEMA.field(c).type for c in present}
    try:
        table = pacsv.read_csv(
            pa.py_buffer(data),
            parse_options=pacsv.ParseOptions(invalid_row_handler=skip),
            convert_options=pacsv.ConvertOptions(
                column_types=types, include_columns=present, strings_can_be_null=False
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise RunError(f"{path}: unreadable CSV ({str(exc).splitlines()[0]})") from None
    if skipped:
        notes.append(f"{path.name}: skipped {skipped} malformed row(s)")
    return table


def _read_parquet(path: Path) -> pa.Table:
    try:
        names = pq.read_schema(path).names
        present = [c for c in READ_COLUMNS if c in names]
        dictionary = [c for c in (*CATEGORY_COLUMNS, *STRING_COLUMNS) if c in present]
        return pq.read_table(path, columns=present, read_dictionary=dictionary)
    except (OSError, pa.ArrowException) as exc:
        raise RunError(f"{path}: unreadable Parquet ({str(exc).splitlines()[0]})") from None


def _conform(table: pa.Table, path: Path) -> pa.Table:
    """Cast a segment to SCHEMA, adding missing optional columns with their defaults."""
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise RunError(f"{path}: missing column(s) {', '.join(missing)}; not an attempts file")
    n = table.num_rows
    columns = []
    for f in SCHEMA:
        if f.name in table.column_names:
            col = table[f.name]
            try:
                col = col.cast(pa.string()).dictionary_encode() if f.type == _DICT and col.type != _DICT else col
                col = col.cast(f.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise RunError(f"{path}: column {f.name}: {str(exc).splitlines()[0]}") from None
        elif f.name == "worker":
            col = pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array([path.stem]))
        elif f.type == _DICT:
            col = pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array([""]))
        else:
            col = pa.nulls(n, f.type)
        if f.name in _INT_DEFAULTS:
            col = pc.fill_null(col, _INT_DEFAULTS[f.name])
        columns.append(col)
    return pa.table(columns, schema=SCHEMA)


@dataclass
class _Segment:
    """A conformed segment without its chat column, and that column dictionary-encoded."""

    table: pa.Table
    chat_codes: np.ndarray  # int32 index into chat_names, -1 where the chat is empty
    chat_names: pa.Array


def _split_chat(table: pa.Table) -> _Segment:
    chat = table.select(["chat"]).unify_dictionaries()["chat"]
    chat = chat.combine_chunks() if chat.num_chunks else pa.DictionaryArray.from_arrays([], pa.array([], pa.string()))
    codes = pc.fill_null(chat.indices, -1).to_numpy(zero_copy_only=False).astype(np.int32)
    names = chat.dictionary
    empty = pc.index(names, "").as_py()
    if empty >= 0:
        codes[codes == empty] = -1
    return _Segment(table.drop_columns(["chat"]), codes, names)


def _chat_keys(segments: list[_Segment], worker: pa.ChunkedArray) -> np.ndarray:
    """int64 code per row for (worker, chat), the same in every segment; -1 where chat is empty."""
    n_rows = sum(len(s.chat_codes) for s in segments)
    if n_rows == 0:
        return np.empty(0, np.int64)
    names = pa.concat_arrays([s.chat_names.cast(pa.large_string()) for s in segments])
    global_codes = pc.dictionary_encode(names).indices.to_numpy(zero_copy_only=False).astype(np.int64)
    n_chats = int(global_codes.max()) + 1 if len(global_codes) else 1
    offsets = np.cumsum([0] + [len(s.chat_names) for s in segments])
    chat = np.concatenate(
        [
            np.where(s.chat_codes >= 0, global_codes[off + s.chat_codes], -1)
            for s, off in zip(segments, offsets[:-1], strict=True)
        ]
    )
    workers = worker.combine_chunks().indices.to_numpy(zero_copy_only=False).astype(np.int64)
    return np.where(chat >= 0, workers * n_chats + chat, -1)


def read_attempts(run_dir: Path, notes: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """All segments as one pandas frame (categoricals; chat replaced by chat_key)."""
    files = segment_files(run_dir / "attempts")
    if not (run_dir / "attempts").is_dir():
        notes.append("no attempts/ folder: the run recorded no calls")
    segments = [
        _split_chat(_conform(_read_parquet(p) if p.suffix == ".parquet" else _read_csv(p, notes), p)) for p in files
    ]
    empty = _split_chat(SCHEMA.empty_table())
    table = pa.concat_tables([s.table for s in segments] or [empty.table]).unify_dictionaries()
    keys = _chat_keys(segments or [empty], table["worker"])
    segments.clear()
    # hand the only reference to to_frame, so that to_pandas(self_destruct) frees columns as it goes
    owner = [table]
    del table
    return to_frame(owner.pop(), keys), [p.name for p in files]


def to_frame(table: pa.Table, chat_key: np.ndarray) -> pd.DataFrame:
    """pandas frame: floats, int32 attempts, categoricals (no missing values), chat_key."""
    frame = table.to_pandas(split_blocks=True, self_destruct=True)
    del table
    for c in CATEGORY_COLUMNS:
        if frame[c].dtype != "category":
            frame[c] = frame[c].astype("category")
        if frame[c].isna().any():
            if "" not in frame[c].cat.categories:
                frame[c] = frame[c].cat.add_categories([""])
            frame[c] = frame[c].fillna("")
    return frame.assign(
        attempts=frame["attempts"].astype(np.int32),
        http_status=frame["http_status"].astype(np.int16),
        chat_key=chat_key,
    )


def read_locust_stats(run_dir: Path, notes: list[str]) -> pd.DataFrame | None:
    path = run_dir / "locust_stats.csv"
    if not path.is_file():
        return None
    try:
        stats = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        notes.append(f"{path.name}: ignored, unreadable ({exc})")
        return None
    if not {"Name", "Request Count", "Failure Count"} <= set(stats.columns):
        notes.append(f"{path.name}: ignored, unexpected columns")
        return None
    return stats


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def load_run(run_dir: Path | str) -> Run:
    run_dir = Path(run_dir)
    meta = read_meta(run_dir)
    notes: list[str] = []
    attempts, files = read_attempts(run_dir, notes)
    if attempts["t_start"].isna().any():
        notes.append(f"ignored {int(attempts['t_start'].isna().sum())} row(s) without t_start")
        attempts = attempts[attempts["t_start"].notna()].reset_index(drop=True)
    ended_at = _number(meta.get("ended_at"))
    first = _number(np.fmin(attempts["t_intended"].min(), attempts["t_start"].min())) if len(attempts) else None
    schedule_t0, source = schedule_start(meta, attempts)
    if schedule_t0 is None:
        schedule_t0, source = (first, "first recorded time") if first is not None else (0.0, "none")
    # buckets start at the schedule's start, whole seconds earlier when rows are earlier (kept aligned)
    t0 = schedule_t0 - math.ceil(schedule_t0 - first) if first is not None and first < schedule_t0 else schedule_t0
    last = _number((attempts["t_start"] + attempts["latency_ms"].fillna(0.0) / 1000.0).max()) or t0
    cut_short = ended_at is None
    t_end = max(ended_at, last) if ended_at is not None else last
    if cut_short:
        notes.append("meta.json has no ended_at: the run was cut short; its end is the last attempt's time")
    return Run(
        run_dir=run_dir,
        meta=meta,
        attempts=attempts,
        t0=t0,
        t_end=t_end,
        cut_short=cut_short,
        files=files,
        locust=read_locust_stats(run_dir, notes),
        notes=notes,
        master_lost=read_master_lost(run_dir, notes),
        schedule_t0=schedule_t0,
        schedule_source=source,
    )


def read_master_lost(run_dir: Path, notes: list[str]) -> list[dict[str, Any]]:
    """The notes of workers that lost their master (master-lost-<worker>.json, written by them)."""
    found = []
    for path in sorted(Path(run_dir).glob("master-lost-*.json")):
        try:
            note = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            notes.append(f"{path.name} could not be read: {exc}")
            continue
        if isinstance(note, dict):
            found.append(note)
    return found


def schedule_start(meta: dict[str, Any], attempts: pd.DataFrame) -> tuple[float | None, str]:
    """When the pacer's clock started: meta.json schedule_started_at, else the first arrival's
    t_intended, else meta.json started_at (when the run was prepared, before the users spawned)."""
    at = _number(meta.get("schedule_started_at"))
    if at is not None:
        return at, "schedule_started_at"
    if len(attempts):
        first = _number(attempts.loc[attempts["operation"] == START_CHAT, "t_intended"].min())
        if first is not None:
            return first, "first arrival's t_intended"
    at = _number(meta.get("started_at"))
    return (at, "started_at") if at is not None else (None, "none")
