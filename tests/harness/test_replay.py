"""Recorded traffic as stages (harness/scenario/replay.py): both CSV shapes, the interval-to-stage
arithmetic with scale and speed, and every mistake as one line naming file, row and column."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from chatload.harness.scenario.replay import ReplayError, read_recording, replay_stages, text_of


def csv_file(tmp_path: Path, text: str, name: str = "day.csv") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def test_an_interval_table_becomes_step_stages_scaled_and_compressed(tmp_path):
    path = csv_file(
        tmp_path,
        """
        interval_start,chats
        2025-11-28T08:00:00Z,900
        2025-11-28T08:15:00Z,1800
        2025-11-28T08:30:00Z,0
        """,
    )
    recording = read_recording(path)
    assert recording.shape == "intervals" and recording.wall_clock
    assert [i.length_s for i in recording.intervals] == [900.0, 900.0, 900.0]  # the last lasts as the one before
    stages = replay_stages(recording, scale=2.0, speed=60.0)
    # 900 recorded s at speed 60 = 15 real s; 900 chats x 2 over 15 s = 120/s
    assert [(s.name, s.duration_s, s.target_rate) for s in stages] == [
        ("2025-11-28T08:00Z", 15.0, 120.0),
        ("2025-11-28T08:15Z", 15.0, 240.0),
        ("2025-11-28T08:30Z", 15.0, 0.0),
    ]
    assert all(s.ramp == "step" for s in stages)
    # the replayed count of each interval is count x scale, whatever the speed
    for interval, stage in zip(recording.intervals, stages, strict=True):
        assert stage.target_rate * stage.duration_s == pytest.approx(interval.chats * 2.0)


def test_seconds_and_uneven_intervals(tmp_path):
    path = csv_file(tmp_path, "interval_start,chats\n0,10\n60,30\n180,6\n")
    stages = replay_stages(read_recording(path), scale=1.0, speed=1.0)
    assert [(s.name, s.duration_s, s.target_rate) for s in stages] == [
        ("0s", 60.0, 10 / 60),
        ("60s", 120.0, 30 / 120),
        ("180s", 120.0, 6 / 120),
    ]


def test_contact_records_are_counted_per_interval_in_any_order(tmp_path):
    path = csv_file(
        tmp_path,
        """
        ContactId,InitiationTimestamp,Channel
        c3,2025-11-28T08:01:30.500Z,CHAT
        c1,2025-11-28T08:00:05Z,CHAT
        c2,2025-11-28T08:00:59.999Z,CHAT
        c4,2025-11-28T08:03:00Z,CHAT
        """,
    )
    recording = read_recording(path)
    assert recording.shape == "contacts"
    assert [(text_of(i.start, True), i.length_s, i.chats) for i in recording.intervals] == [
        ("2025-11-28T08:00Z", 60.0, 2),
        ("2025-11-28T08:01Z", 60.0, 1),
        ("2025-11-28T08:02Z", 60.0, 0),
        ("2025-11-28T08:03Z", 60.0, 1),
    ]
    coarse = read_recording(path, interval_s=300.0)
    assert [(i.chats, i.length_s) for i in coarse.intervals] == [(4, 300.0)]


def test_a_window_keeps_part_of_the_file(tmp_path):
    path = csv_file(
        tmp_path,
        "interval_start,chats\n2025-11-28T07:30:00Z,1\n2025-11-28T08:00:00Z,2\n"
        "2025-11-28T08:30:00Z,3\n2025-11-28T09:00:00Z,4\n",
    )
    kept = read_recording(path, window=("2025-11-28T08:00:00Z", "2025-11-28T09:00:00Z"))
    assert [i.chats for i in kept.intervals] == [2, 3]
    records = csv_file(
        tmp_path, "InitiationTimestamp\n2025-11-28T08:00:10Z\n2025-11-28T08:02:10Z\n2025-11-28T09:00:00Z\n", "ctr.csv"
    )
    kept = read_recording(records, window=("2025-11-28T08:00:00Z", "2025-11-28T08:03:00Z"))
    assert [i.chats for i in kept.intervals] == [1, 0, 1]


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("interval_start,calls\n0,1\n60,2\n", ["day.csv: row 1", "no column chats"]),
        ("start,chats\n0,1\n60,2\n", ["day.csv: row 1", "no column interval_start"]),
        ("interval_start,chats\n0,1\n60,-3\n", ["day.csv: row 3, column chats", "negative"]),
        ("interval_start,chats\n0,1\n60,many\n", ["day.csv: row 3, column chats", "not a number"]),
        ("interval_start,chats\n0,1\n60,2\n30,2\n", ["day.csv: row 4, column interval_start", "out of order"]),
        ("interval_start,chats\n0,1\n0,2\n", ["day.csv: row 3, column interval_start", "out of order"]),
        ("interval_start,chats\nyesterday,1\n60,2\n", ["day.csv: row 2, column interval_start", "ISO 8601"]),
        ("interval_start,chats\n0,1\n", ["day.csv", "at least two rows"]),
        ("interval_start,chats\n0,\n60,2\n", ["day.csv: row 2, column chats", "empty"]),
        ("interval_start,chats\n0,1\n2025-11-28T08:00:00Z,2\n", ["row 3, column interval_start", "mixes"]),
        ("", ["day.csv: row 1", "no header"]),
        ("InitiationTimestamp\n12345\n", ["day.csv: row 2, column InitiationTimestamp", "ISO 8601"]),
    ],
)
def test_mistakes_are_one_line_with_file_row_and_column(tmp_path, text, needles):
    with pytest.raises(ReplayError) as caught:
        read_recording(csv_file(tmp_path, text))
    message = str(caught.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message


def test_an_unreadable_file_and_an_empty_window(tmp_path):
    with pytest.raises(ReplayError, match=r"nowhere\.csv: cannot be read"):
        read_recording(tmp_path / "nowhere.csv", shown="nowhere.csv")
    path = csv_file(tmp_path, "interval_start,chats\n0,1\n60,2\n")
    with pytest.raises(ReplayError, match=r"day\.csv: window \[600, 700\): no recorded traffic"):
        read_recording(path, window=("600", "700"))
    with pytest.raises(ReplayError, match=r"window: .* must come after"):
        read_recording(path, window=("700", "600"))


def test_scale_and_speed_must_be_positive_and_something_must_be_replayed(tmp_path):
    recording = read_recording(csv_file(tmp_path, "interval_start,chats\n0,1\n60,2\n"))
    for scale, speed in ((0.0, 1.0), (1.0, 0.0), (-1.0, 1.0), (float("nan"), 1.0)):
        with pytest.raises(ReplayError):
            replay_stages(recording, scale=scale, speed=speed)
    zeros = read_recording(csv_file(tmp_path, "interval_start,chats\n0,0\n60,0\n", "zeros.csv"))
    with pytest.raises(ReplayError, match="every interval has 0 chats"):
        replay_stages(zeros, scale=1.0, speed=1.0)
