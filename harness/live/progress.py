"""The progress line of a headless run.

On a terminal: one line rewritten about 4 times a second ("\\r", the line, clear to end of line),
cut to the terminal's width so it never wraps; a log record printed meanwhile first clears the line,
so Locust's own log lines stay whole (the next refresh draws the progress line again below them).
Not on a terminal (CI logs): a plain line every 10 s. Either way the last line, when the run stops,
ends with a newline. Everything goes to one stream, stderr by default (where Locust logs).

    ramp 0:42 (1:18 left) | offered 5.2/s accepted 4.9/s (target 6.0/s) | throttled tps 12 conc 0 unknown 0
    | errors 0 | dropped 0 | chats 37/500

`format_line` and the frame functions are pure; `ProgressPrinter` does the writing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
from typing import Any, TextIO

from chatload.contracts import THROTTLED_CONCURRENCY, THROTTLED_TPS, THROTTLED_UNKNOWN
from chatload.harness.live.snapshot import LiveSnapshot
from chatload.harness.live.stats import LiveStats

TERMINAL_INTERVAL_S = 0.25
PLAIN_INTERVAL_S = 10.0
CLEAR_TO_END = "\x1b[K"
PLAIN_PREFIX = "[chatload] "
MIN_COLUMNS = 20
DEFAULT_COLUMNS = 160


def clock_text(seconds: float) -> str:
    """0:42, 12:05, 1:02:03 (seconds rounded down)."""
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def rate_text(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.1f}/s"


def stage_text(snap: LiveSnapshot) -> str:
    if snap.started_at is None:
        return "waiting"
    if not snap.running:
        return "stopped"
    return snap.stage or "running"


def time_text(snap: LiveSnapshot) -> str:
    if snap.remaining_s is None:
        return clock_text(snap.elapsed_s)
    return f"{clock_text(snap.elapsed_s)} ({clock_text(snap.remaining_s)} left)"


def format_line(snap: LiveSnapshot) -> str:
    """The progress line's text (no prefix, no control characters)."""
    target = "" if snap.target_rate is None else f" (target {snap.target_rate:.1f}/s)"
    chats = f"{snap.active_chats}" + ("" if snap.quota_concurrent_chats is None else f"/{snap.quota_concurrent_chats}")
    parts = [
        f"{stage_text(snap)} {time_text(snap)}",
        f"offered {rate_text(snap.offered_rate)} accepted {rate_text(snap.accepted_rate)}{target}",
        f"throttled tps {snap.start_chat(THROTTLED_TPS)} conc {snap.start_chat(THROTTLED_CONCURRENCY)}"
        f" unknown {snap.start_chat(THROTTLED_UNKNOWN)}",
        f"errors {snap.other_errors()}",
        f"dropped {snap.dropped}",
        f"chats {chats}",
    ]
    if snap.workers:
        parts.append(f"workers {snap.workers}")
    return " | ".join(parts)


def terminal_frame(line: str, width: int) -> str:
    """Rewrite the current terminal line; one column is kept free so the cursor never wraps."""
    return "\r" + line[: max(1, width - 1)] + CLEAR_TO_END


def plain_frame(line: str) -> str:
    return PLAIN_PREFIX + line + "\n"


class _ClearLineFilter(logging.Filter):
    """Attached to the log handlers writing to our terminal: clears the progress line first."""

    def __init__(self, printer: ProgressPrinter) -> None:
        super().__init__()
        self.printer = printer

    def filter(self, record: logging.LogRecord) -> bool:
        self.printer.clear()
        return True


def _same_stream(a: Any, b: Any) -> bool:
    if a is b:
        return True
    try:
        return a.fileno() == b.fileno()
    except (AttributeError, OSError, ValueError):
        return False


class ProgressPrinter:
    """Writes the progress line of `live` to `stream` (see the module doc)."""

    def __init__(
        self,
        live: LiveStats,
        stream: TextIO | None = None,
        *,
        is_terminal: bool | None = None,
        interval_s: float | None = None,
        width: int | None = None,
    ) -> None:
        self.live = live
        self.stream = stream if stream is not None else sys.stderr
        if is_terminal is None:
            isatty = getattr(self.stream, "isatty", None)
            is_terminal = bool(isatty and isatty())
        self.is_terminal = is_terminal
        self.interval_s = interval_s or (TERMINAL_INTERVAL_S if is_terminal else PLAIN_INTERVAL_S)
        self.width = width
        self._drawn = False
        self._filters: list[tuple[logging.Handler, logging.Filter]] = []
        self._greenlet: Any = None

    def draw(self) -> None:
        line = format_line(self.live.snapshot())
        if self.is_terminal:
            self._write(terminal_frame(line, self._columns()))
            self._drawn = True
        else:
            self._write(plain_frame(line))

    def _columns(self) -> int:
        if self.width is not None:
            return self.width
        columns = 0
        with contextlib.suppress(AttributeError, OSError, ValueError):
            columns = os.get_terminal_size(self.stream.fileno()).columns
        if columns < MIN_COLUMNS:  # size unknown (a bare pty says 0): $COLUMNS or a wide default
            columns = shutil.get_terminal_size((DEFAULT_COLUMNS, 24)).columns
        return columns if columns >= MIN_COLUMNS else DEFAULT_COLUMNS

    def clear(self) -> None:
        if self._drawn:
            self._write("\r" + CLEAR_TO_END)
            self._drawn = False

    def finish(self) -> None:
        """The last line, ended by a newline; log handlers get their filters back off."""
        self.stop()
        self.draw()
        if self.is_terminal:
            self._write("\n")
            self._drawn = False
        self._unhook_logging()

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # closed stream (shutdown): the progress line is not worth a crash
            pass

    def hook_logging(self) -> None:
        if not self.is_terminal or self._filters:
            return
        loggers = [logging.getLogger(), *(logging.getLogger(name) for name in logging.root.manager.loggerDict)]
        seen: set[int] = set()
        for logger in loggers:
            for handler in getattr(logger, "handlers", []):
                stream = getattr(handler, "stream", None)
                if id(handler) in seen or stream is None or not _same_stream(stream, self.stream):
                    continue
                seen.add(id(handler))
                log_filter = _ClearLineFilter(self)
                handler.addFilter(log_filter)
                self._filters.append((handler, log_filter))

    def _unhook_logging(self) -> None:
        for handler, log_filter in self._filters:
            handler.removeFilter(log_filter)
        self._filters = []

    # gevent part: a greenlet refreshing the line while the run goes on

    def start(self) -> None:
        import gevent

        if self._greenlet is not None and not self._greenlet.dead:
            return
        self.hook_logging()
        self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None

    def _run(self) -> None:
        import gevent

        while True:
            self.draw()
            gevent.sleep(self.interval_s)


def attach(environment: Any, live: LiveStats, stream: TextIO | None = None) -> ProgressPrinter:
    """Show the progress line of `live` from test_start to test_stop (or quitting, whichever comes
    first). Ending at test_stop keeps what the harness prints after the run (the report's summary)
    on lines of its own."""
    printer = ProgressPrinter(live, stream)
    showing = False

    def on_test_start(**_kwargs: Any) -> None:
        nonlocal showing
        showing = True
        printer.start()

    def on_end(**_kwargs: Any) -> None:
        nonlocal showing
        if showing:
            showing = False
            printer.finish()

    environment.events.test_start.add_listener(on_test_start)
    environment.events.test_stop.add_listener(on_end)
    environment.events.quitting.add_listener(on_end)
    return printer
