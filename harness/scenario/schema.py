"""Validation helpers for scenario files: typed reads of TOML tables with one-line errors.

Every problem becomes a `ScenarioError` whose message is one line, `FILE: KEY: problem`, for example
`scenarios/x.toml: stages[1].target_rate: must be a number >= 0, got "fast"`. Unknown keys are
errors too, with the closest known key suggested (difflib).
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from chatload.harness.scenario.duration import EXAMPLES, parse_duration


class ScenarioError(ValueError):
    """A mistake in a scenario; str() is one line naming the file, the key and the problem."""

    def __init__(self, message: str, *, file: str = "", key: str = "", problem: str = "") -> None:
        super().__init__(message)
        self.file = file
        self.key = key
        self.problem = problem or message


def scenario_error(file: str, key: str, problem: str) -> ScenarioError:
    where = f"{file}: {key}: " if key else f"{file}: "
    return ScenarioError(" ".join(f"{where}{problem}".split()), file=file, key=key, problem=problem)


def show(value: Any) -> str:
    """A value as the user wrote it in TOML (strings quoted, booleans lower case)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list | tuple):
        return "an array"
    return str(value)


def suggestion(word: str, choices: Iterable[str]) -> str:
    """ ", did you mean 'x'?" for the closest choice, or "" when none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f", did you mean {close[0]!r}?" if close else ""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _bound_text(minimum: float | None, above: float | None, maximum: float | None, below: float | None) -> str:
    if minimum is not None and maximum is not None:
        return f"from {minimum:g} to {maximum:g}"
    parts = []
    if minimum is not None:
        parts.append(f">= {minimum:g}")
    if above is not None:
        parts.append(f"> {above:g}")
    if maximum is not None:
        parts.append(f"<= {maximum:g}")
    if below is not None:
        parts.append(f"< {below:g}")
    return " and ".join(parts)


@dataclass(frozen=True)
class Table:
    """A TOML table being read: `where` is its key path ("" for the top level, "stages[0]", "chat.hold")."""

    file: str
    where: str
    data: Mapping[str, Any]

    def key(self, name: str) -> str:
        return f"{self.where}.{name}" if self.where else name

    def fail(self, name: str, problem: str) -> NoReturn:
        raise scenario_error(self.file, self.key(name) if name else self.where, problem)

    def has(self, name: str) -> bool:
        return name in self.data

    def check_keys(self, known: Iterable[str]) -> None:
        known = list(known)
        for name in self.data:
            if name not in known:
                hint = suggestion(name, known) or f" (known keys here: {', '.join(known)})"
                self.fail(name, f"unknown key{hint}")

    def required(self, name: str, example: str) -> None:
        if name not in self.data:
            self.fail(name, f"missing; it is required here (e.g. {example})")

    def number(
        self,
        name: str,
        default: float | None = None,
        *,
        minimum: float | None = None,
        above: float | None = None,
        maximum: float | None = None,
        below: float | None = None,
        unit: str = "",
    ) -> float | None:
        if name not in self.data:
            return default
        value = self.data[name]
        bounds = _bound_text(minimum, above, maximum, below)
        ok = _is_number(value) and not (
            (minimum is not None and value < minimum)
            or (above is not None and value <= above)
            or (maximum is not None and value > maximum)
            or (below is not None and value >= below)
        )
        if not ok:
            self.fail(name, f"must be a number {bounds}{unit}, got {show(value)}".replace("  ", " "))
        return float(value)

    def integer(
        self, name: str, default: int | None = None, *, minimum: int | None = None, maximum: int | None = None
    ) -> int | None:
        if name not in self.data:
            return default
        value = self.data[name]
        ok = (
            isinstance(value, int)
            and not isinstance(value, bool)
            and (minimum is None or value >= minimum)
            and (maximum is None or value <= maximum)
        )
        if not ok:
            self.fail(name, f"must be a whole number {_bound_text(minimum, None, maximum, None)}, got {show(value)}")
        return int(value)

    def duration(
        self,
        name: str,
        default: float | None = None,
        *,
        above: float | None = None,
        below: float | None = None,
        why: str = "",
    ) -> float | None:
        if name not in self.data:
            return default
        value = self.data[name]
        try:
            seconds = parse_duration(value)
        except ValueError:
            self.fail(name, f"must be a duration such as {EXAMPLES}, got {show(value)}")
        if above is not None and seconds <= above:
            self.fail(name, f"must be longer than {above:g} s, got {show(value)}")
        if below is not None and seconds >= below:
            self.fail(name, f"must be under {below:g} s{why}, got {show(value)}")
        return seconds

    def string(
        self, name: str, default: str | None = None, *, choices: Iterable[str] | None = None, max_length: int = 1000
    ) -> str | None:
        if name not in self.data:
            return default
        value = self.data[name]
        if not isinstance(value, str):
            self.fail(name, f"must be a string, got {show(value)}")
        if choices is not None:
            options = list(choices)
            if value not in options:
                listed = ", ".join(json.dumps(c) for c in options)
                self.fail(name, f"must be one of {listed}, got {show(value)}{suggestion(value, options)}")
        elif not value.strip():
            self.fail(name, "must not be empty")
        if len(value) > max_length:
            self.fail(name, f"must be at most {max_length} characters, got {len(value)}")
        if "\n" in value:
            self.fail(name, "must be one line")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        if name not in self.data:
            return default
        value = self.data[name]
        if not isinstance(value, bool):
            self.fail(name, f"must be true or false, got {show(value)}")
        return value

    def table(self, name: str) -> Table:
        """The sub-table `name` (an empty one when absent)."""
        value = self.data.get(name, {})
        if not isinstance(value, Mapping):
            self.fail(name, f"must be a table ([{self.key(name)}]), got {show(value)}")
        return Table(self.file, self.key(name), value)

    def tables(self, name: str) -> list[Table]:
        """The array of tables `name` ([[name]]); an error when absent or empty."""
        value = self.data.get(name)
        if value is None:
            self.fail(name, f"missing; add at least one [[{self.key(name)}]] table")
        if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
            self.fail(name, f"must be an array of tables ([[{self.key(name)}]]), got {show(value)}")
        if not value:
            self.fail(name, f"must have at least one [[{self.key(name)}]] table")
        return [Table(self.file, f"{self.key(name)}[{i}]", v) for i, v in enumerate(value)]
