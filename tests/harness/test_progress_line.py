"""The headless progress line: pure formatting, terminal and plain output, log lines kept whole."""

from __future__ import annotations

import io
import logging

import pytest
from support import FakeClock

from chatload.harness.live.progress import (
    CLEAR_TO_END,
    PLAIN_PREFIX,
    ProgressPrinter,
    clock_text,
    format_line,
    plain_frame,
    terminal_frame,
)
from chatload.harness.live.stats import LiveStats

T0 = 2_000_000.0  # the fake clock's start


def busy_live(clock: FakeClock) -> LiveStats:
    live = LiveStats(clock, rate_window_s=5, total_duration_s=120)
    live.set_stage("ramp", 6)
    live.set_quota(500, 5)
    live.start()
    for _ in range(10):
        for outcome, n in {"ok": 5, "throttled_tps": 1, "throttled_concurrency": 0, "dropped": 0}.items():
            for _ in range(n):
                live.record({"operation": "StartChatContact", "outcome": outcome})
        clock.t += 1
    live.record({"operation": "StartChatContact", "outcome": "throttled_unknown"})
    live.record({"operation": "StartChatContact", "outcome": "dropped"})
    live.record({"operation": "SendMessage", "outcome": "server_error"})
    for _ in range(37):
        live.chat_started()
    clock.t += 32.5
    return live


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0:00"), (42.9, "0:42"), (725, "12:05"), (3723, "1:02:03"), (-3, "0:00")]
)
def test_clock_text(seconds, text):
    assert clock_text(seconds) == text


def test_line_has_every_figure():
    line = format_line(busy_live(FakeClock(T0)).snapshot())
    assert line == (
        "ramp 0:42 (1:17 left) | offered 0.0/s accepted 0.0/s (target 6.0/s) | "
        "throttled tps 10 conc 0 unknown 1 | errors 1 | dropped 1 | chats 37/500"
    )


def test_line_rates_of_the_last_seconds():
    clock = FakeClock(T0)
    live = busy_live(clock)
    clock.t -= 32.5  # right after the busy seconds
    line = format_line(live.snapshot())
    assert "offered 6.0/s accepted 5.0/s (target 6.0/s)" in line


def test_line_before_start_and_after_stop():
    clock = FakeClock(T0)
    live = LiveStats(clock)
    assert format_line(live.snapshot()).startswith("waiting 0:00 | offered 0.0/s")
    live.start()
    clock.t += 0.2
    line = format_line(live.snapshot())
    assert line.startswith("running 0:00 | offered -") and "chats 0 |" not in line and line.endswith("chats 0")
    live.stop()
    assert format_line(live.snapshot()).startswith("stopped ")


def test_terminal_frame_rewrites_one_line_within_the_width():
    frame = terminal_frame("x" * 300, 80)
    assert frame.startswith("\r") and frame.endswith(CLEAR_TO_END)
    assert "\n" not in frame
    assert len(frame) == 1 + 79 + len(CLEAR_TO_END)


def test_plain_frame_is_a_whole_line():
    assert plain_frame("abc") == PLAIN_PREFIX + "abc\n"


def test_printer_on_a_terminal_and_its_final_newline():
    out = io.StringIO()
    printer = ProgressPrinter(busy_live(FakeClock(T0)), out, is_terminal=True, width=200)
    assert printer.interval_s == pytest.approx(0.25)
    printer.draw()
    printer.draw()
    printer.finish()
    text = out.getvalue()
    assert text.count("\r") == 3 and text.count("\n") == 1 and text.endswith("\n")
    assert "chats 37/500" in text


def test_printer_not_on_a_terminal_prints_plain_lines():
    out = io.StringIO()  # isatty() is False
    printer = ProgressPrinter(busy_live(FakeClock(T0)), out)
    assert not printer.is_terminal and printer.interval_s == pytest.approx(10.0)
    printer.draw()
    printer.finish()
    lines = out.getvalue().splitlines(keepends=True)
    assert len(lines) == 2 and all(line.startswith(PLAIN_PREFIX) and line.endswith("\n") for line in lines)
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()


def test_log_records_clear_the_progress_line_first():
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log = logging.getLogger("chatload-test-progress")
    log.addHandler(handler)
    log.propagate = False
    try:
        printer = ProgressPrinter(busy_live(FakeClock(T0)), out, is_terminal=True, width=200)
        printer.hook_logging()
        printer.draw()
        log.warning("a locust log line")
        printer.draw()
        printer.finish()
        log.warning("after the end")
        text = out.getvalue()
        # the log line starts on a cleared line and is whole; the progress line is redrawn after it
        assert "\r" + CLEAR_TO_END + "a locust log line\n\r" in text
        assert text.endswith("chats 37/500" + CLEAR_TO_END + "\n" + "after the end\n")
        assert not handler.filters
    finally:
        log.removeHandler(handler)
