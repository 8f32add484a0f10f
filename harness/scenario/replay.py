"""A recorded day of traffic as stages: Connect's historical metrics or contact records, replayed.

Two CSV shapes, told apart by the header (pure: reads one file, no clock):

- an interval table, columns `interval_start` (ISO 8601, or seconds) and `chats`: the chats started
  from that row's start until the next row's (the last row lasts as long as the one before it), as
  Connect's historical metrics report contacts per 15- or 30-minute interval;
- contact records, one row per contact with an `InitiationTimestamp` column (ISO 8601), as Connect's
  contact records have them; the contacts are counted per `interval` of recorded time (default one
  minute) from the first one's whole interval (or from the window's start). Their order in the file
  does not matter: records are events, and exports are often unsorted.

`window = [start, end]` keeps the part of the file whose interval starts (or contacts) fall in
[start, end). Each interval becomes a step stage named by its recorded start, lasting
length / speed seconds at the rate count x scale / (length / speed): `speed` recorded seconds pass
per real second, `scale` multiplies every count. A timestamp without a zone is taken as UTC.

Mistakes are a `ReplayError` whose text is one line naming the file, the row (the file's line
number; the header is row 1) and the column: an unreadable file, a missing column, a count that is
not a number or negative, timestamps out of order (interval tables), an empty window.
"""

from __future__ import annotations

import csv
import itertools
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from chatload.harness.scenario.model import Stage

INTERVAL_START = "interval_start"
CHATS = "chats"
INITIATION = "InitiationTimestamp"
DEFAULT_CONTACT_INTERVAL_S = 60.0


class ReplayError(ValueError):
    """A recorded-traffic file that cannot be replayed; str() is one line (file, row, column)."""


@dataclass(frozen=True)
class RecordedInterval:
    start: float  # recorded time: epoch seconds (wall-clock files) or seconds as written
    length_s: float  # recorded seconds
    chats: float  # as recorded, before scale


@dataclass(frozen=True)
class Recording:
    """What a replay reads from its file."""

    path: str
    shape: str  # "intervals" or "contacts"
    wall_clock: bool  # timestamps are dates and times (names are ISO 8601), not plain seconds
    intervals: tuple[RecordedInterval, ...]

    @property
    def total_chats(self) -> float:
        return sum(i.chats for i in self.intervals)


def read_recording(
    path: str | Path,
    *,
    window: tuple[str, str] | None = None,
    interval_s: float | None = None,
    shown: str | None = None,
) -> Recording:
    """The recorded intervals of `path` (within `window`); `shown` is how errors name the file."""
    name = shown or str(path)
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ReplayError(f"{name}: cannot be read: {_reason(exc)}") from None
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise ReplayError(f"{name}: row 1: no header (expected columns {INTERVAL_START},{CHATS} or {INITIATION})")
    header = [cell.strip() for cell in rows[0]]
    body = [(number, row) for number, row in enumerate(rows[1:], start=2) if any(cell.strip() for cell in row)]
    if INITIATION in header:
        if interval_s is not None and not (interval_s > 0 and math.isfinite(interval_s)):
            raise ReplayError(f"{name}: interval must be a duration > 0, got {interval_s}")
        return _contacts(name, header, body, window, interval_s or DEFAULT_CONTACT_INTERVAL_S)
    missing = [column for column in (INTERVAL_START, CHATS) if column not in header]
    if missing:
        raise ReplayError(
            f"{name}: row 1: no column {missing[0]} (an interval table has columns {INTERVAL_START} and "
            f"{CHATS}; contact records have {INITIATION}); the header has: {', '.join(header) or 'nothing'}"
        )
    if interval_s is not None:
        raise ReplayError(f"{name}: interval: only for contact records; an interval table's rows give their own")
    return _intervals(name, header, body, window)


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def _cell(name: str, number: int, row: list[str], header: list[str], column: str) -> str:
    index = header.index(column)
    value = row[index].strip() if index < len(row) else ""
    if not value:
        raise ReplayError(f"{name}: row {number}, column {column}: empty")
    return value


def parse_time(text: str) -> tuple[float, bool]:
    """(seconds, wall_clock): ISO 8601 (a zone-less time is UTC) as epoch seconds, or plain seconds."""
    try:
        return float(text), False
    except ValueError:
        pass
    when = datetime.fromisoformat(text.replace("z", "Z"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp(), True


def _time(name: str, number: int, column: str, text: str) -> tuple[float, bool]:
    try:
        seconds, wall_clock = parse_time(text)
    except ValueError:
        raise ReplayError(
            f"{name}: row {number}, column {column}: {text!r} is neither ISO 8601 (2025-11-28T08:00:00Z) nor seconds"
        ) from None
    if not math.isfinite(seconds):
        raise ReplayError(f"{name}: row {number}, column {column}: {text!r} is not a finite time")
    return seconds, wall_clock


def _window(name: str, window: tuple[str, str] | None) -> tuple[float, float] | None:
    if window is None:
        return None
    try:
        start, _ = parse_time(window[0])
        end, _ = parse_time(window[1])
    except ValueError:
        raise ReplayError(f"{name}: window: {list(window)} must be two ISO 8601 times (or seconds)") from None
    if not end > start:
        raise ReplayError(f"{name}: window: its end {window[1]} must come after its start {window[0]}")
    return start, end


def _empty_window(name: str, window: tuple[str, str]) -> ReplayError:
    return ReplayError(f"{name}: window [{window[0]}, {window[1]}): no recorded traffic falls inside it")


def _intervals(
    name: str, header: list[str], body: list[tuple[int, list[str]]], window: tuple[str, str] | None
) -> Recording:
    starts: list[float] = []
    counts: list[float] = []
    kinds: set[bool] = set()
    for number, row in body:
        start, wall_clock = _time(name, number, INTERVAL_START, _cell(name, number, row, header, INTERVAL_START))
        text = _cell(name, number, row, header, CHATS)
        try:
            count = float(text)
        except ValueError:
            raise ReplayError(f"{name}: row {number}, column {CHATS}: {text!r} is not a number") from None
        if not math.isfinite(count) or count < 0:
            raise ReplayError(f"{name}: row {number}, column {CHATS}: negative or not finite count {text}")
        if starts and start <= starts[-1]:
            raise ReplayError(
                f"{name}: row {number}, column {INTERVAL_START}: timestamps out of order ({text_of(start, wall_clock)} "
                f"does not come after the row before it)"
            )
        kinds.add(wall_clock)
        if len(kinds) > 1:
            raise ReplayError(f"{name}: row {number}, column {INTERVAL_START}: mixes dates and plain seconds")
        starts.append(start)
        counts.append(count)
    if len(starts) < 2:
        raise ReplayError(f"{name}: needs at least two rows (the interval length is the gap between row starts)")
    lengths = [b - a for a, b in itertools.pairwise(starts)]
    lengths.append(lengths[-1])
    intervals = [RecordedInterval(s, n, c) for s, n, c in zip(starts, lengths, counts, strict=True)]
    bounds = _window(name, window)
    if bounds is not None:
        assert window is not None
        intervals = [i for i in intervals if bounds[0] <= i.start < bounds[1]]
        if not intervals:
            raise _empty_window(name, window)
    return Recording(name, "intervals", kinds.pop(), tuple(intervals))


def _contacts(
    name: str,
    header: list[str],
    body: list[tuple[int, list[str]]],
    window: tuple[str, str] | None,
    interval_s: float,
) -> Recording:
    times: list[float] = []
    for number, row in body:
        seconds, wall_clock = _time(name, number, INITIATION, _cell(name, number, row, header, INITIATION))
        if not wall_clock:
            raise ReplayError(f"{name}: row {number}, column {INITIATION}: expected an ISO 8601 time, got seconds")
        times.append(seconds)
    bounds = _window(name, window)
    if bounds is not None:
        assert window is not None
        times = [t for t in times if bounds[0] <= t < bounds[1]]
        if not times:
            raise _empty_window(name, window)
    if not times:
        raise ReplayError(f"{name}: no contact records below the header")
    times.sort()
    origin = bounds[0] if bounds is not None else math.floor(times[0] / interval_s) * interval_s
    end = bounds[1] if bounds is not None else times[-1]
    n = max(1, math.ceil((end - origin) / interval_s - 1e-9))
    if bounds is None and origin + n * interval_s <= times[-1]:
        n += 1  # the last contact opens an interval of its own
    counts = [0.0] * n
    for t in times:
        counts[min(int((t - origin) // interval_s), n - 1)] += 1
    intervals = tuple(RecordedInterval(origin + k * interval_s, interval_s, c) for k, c in enumerate(counts))
    return Recording(name, "contacts", True, intervals)


def text_of(seconds: float, wall_clock: bool) -> str:
    """A recorded time as people write it: ISO 8601 in UTC, or seconds."""
    if not wall_clock:
        return f"{seconds:g}s"
    when = datetime.fromtimestamp(seconds, tz=UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ" if when.second else "%Y-%m-%dT%H:%MZ")


def replay_stages(recording: Recording, *, scale: float, speed: float) -> tuple[Stage, ...]:
    """One step stage per recorded interval: length / speed seconds at count x scale / (length / speed)."""
    if not (scale > 0 and math.isfinite(scale)):
        raise ReplayError(f"{recording.path}: scale must be a number > 0, got {scale}")
    if not (speed > 0 and math.isfinite(speed)):
        raise ReplayError(f"{recording.path}: speed must be a number > 0, got {speed}")
    stages = []
    for interval in recording.intervals:
        duration = interval.length_s / speed
        stages.append(
            Stage(
                name=text_of(interval.start, recording.wall_clock),
                duration_s=duration,
                target_rate=interval.chats * scale / duration,
            )
        )
    if not any(stage.target_rate > 0 for stage in stages):
        raise ReplayError(f"{recording.path}: every interval has 0 chats: nothing to replay")
    return tuple(stages)
