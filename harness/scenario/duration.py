"""Durations as people write them: "30s", "5m", "1h30m", "500ms", "90" or a plain number of seconds.

The style is Locust's (`--run-time 1h30m`), extended with days, milliseconds and decimals
("1.5s", "0.5h"). Units must come in decreasing order and each at most once.
"""

from __future__ import annotations

import math
import re

_UNIT_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(ms|d|h|m|s)")
_NUMBER = re.compile(r"\d+(?:\.\d+)?|\.\d+")
EXAMPLES = '"30s", "5m", "1h30m", "500ms" or a number of seconds'


def parse_duration(text: str | float) -> float:
    """Seconds in `text`: "30s" -> 30.0, "5m" -> 300.0, "1h30m" -> 5400.0, "90" -> 90.0, 90 -> 90.0.

    Raises ValueError with a one-line message for anything else (negative, empty, unknown unit,
    booleans, NaN or infinity).
    """
    if isinstance(text, bool):
        raise ValueError(f"expected a duration such as {EXAMPLES}, got {str(text).lower()}")
    if isinstance(text, int | float):
        seconds = float(text)
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"a duration must be a finite number of seconds >= 0, got {text}")
        return seconds
    if not isinstance(text, str):
        raise ValueError(f"expected a duration such as {EXAMPLES}, got {type(text).__name__}")
    compact = text.strip().lower().replace(" ", "")
    if _NUMBER.fullmatch(compact):
        return float(compact)
    seconds = 0.0
    position = 0
    last_rank = -1
    ranks = list(_UNIT_SECONDS)
    for match in _PART.finditer(compact):
        rank = ranks.index(match.group(2))
        if match.start() != position or rank <= last_rank:
            break
        seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
        last_rank = rank
    if not compact or position != len(compact):
        raise ValueError(f"not a duration: {text!r} (use {EXAMPLES})")
    return seconds


def format_duration(seconds: float) -> str:
    """A short human form of `seconds`: 5400 -> "1h30m", 90 -> "1m30s", 0.5 -> "0.5s"."""
    if seconds < 60 or seconds != int(seconds):
        return f"{seconds:g}s"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "", f"{secs}s" if secs else ""]
    return "".join(parts)
