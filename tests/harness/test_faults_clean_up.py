"""Clean-up against an endpoint that stopped answering (pure: a fake clock, no sockets).

Retrying a dead endpoint for the whole clean-up deadline only delays the end of the run: clean-up
gives up once calls have gone unanswered for a few seconds, and names every contact it could not end.
"""

from __future__ import annotations

import pytest

from chatload.harness.chats import CLEAN_UP_RATES, LiveChats, clean_up

REFUSED = (0, "EndpointConnectionError")


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def clock(self) -> float:
        return self.now


def live(n: int) -> LiveChats:
    chats = LiveChats()
    for i in range(n):
        chats.started(f"c{i}", f"contact-{i:03d}", "s")
    return chats


def test_a_refusing_endpoint_is_given_up_within_seconds_and_every_contact_is_named():
    chats, time = live(40), FakeTime()
    calls = []

    def end(chat, operation):
        calls.append(chat.contact_id)
        time.now += 0.002  # a refused connection answers at once
        return (operation, *REFUSED)

    summary = clean_up(chats, end, time.sleep, time.clock, deadline_s=60.0, pause_s=1.0)
    assert summary["ended"] == 0 and summary["still_active"] == 40
    assert summary["not_ended"] == [f"contact-{i:03d}" for i in range(40)]
    assert time.now < 10.0  # not the 60 s deadline
    assert len(chats) == 40


def test_a_black_hole_endpoint_is_given_up_after_a_few_calls_not_one_timeout_per_chat():
    chats, time = live(100), FakeTime()
    calls = []

    def end(chat, operation):
        calls.append(chat.contact_id)
        time.now += 5.0  # connect timeout
        return operation, 0, "ConnectTimeoutError"

    summary = clean_up(chats, end, time.sleep, time.clock, deadline_s=60.0, pause_s=1.0)
    assert len(calls) <= 3 and time.now <= 15.0
    assert summary["still_active"] == 100 and len(summary["not_ended"]) == 100


def test_a_short_outage_does_not_make_clean_up_give_up():
    chats, time = live(3), FakeTime()
    answers = iter([REFUSED] * 5)

    def end(chat, operation):
        time.now += 0.01
        return (operation, *next(answers, (200, "")))

    summary = clean_up(chats, end, time.sleep, time.clock, deadline_s=60.0, pause_s=1.0)
    assert summary == {"ended": 3, "still_active": 0, "not_ended": []}
    assert len(chats) == 0


def test_the_deadline_holds_within_a_round_of_many_slow_answers():
    chats, time = live(100), FakeTime()

    def end(chat, operation):
        time.now += 1.0  # answered, but throttled and slow
        return operation, 429, "TooManyRequestsException"

    summary = clean_up(chats, end, time.sleep, time.clock, deadline_s=10.0, pause_s=1.0)
    assert time.now <= 12.0
    assert summary["still_active"] == 100 and len(summary["not_ended"]) == 100


def test_answers_keep_clean_up_going_until_the_deadline():
    chats, time = live(1), FakeTime()
    calls = []

    def end(chat, operation):
        calls.append(operation)
        return operation, 500, "InternalServiceException"

    summary = clean_up(chats, end, time.sleep, time.clock, deadline_s=5.0, pause_s=1.0)
    assert summary["not_ended"] == ["contact-000"] and len(calls) == 6  # t = 0, 1, ..., 5


def test_clean_up_keeps_to_the_end_calls_rates_and_uses_stop_contact_when_disconnect_is_spent():
    """60 connected chats, rates 3/s burst 5 (DisconnectParticipant) and 10/s burst 15 (StopContact):
    never more calls in any window of w seconds than burst + rate x w per operation; every chat ends;
    StopContact takes over when DisconnectParticipant has no token. Both buckets together give 13/s
    after a burst of 20, so the 60 ends take (60 - 20) / 13 = 3.1 s."""
    t = FakeTime()
    chats = LiveChats()
    for i in range(60):
        chats.started(f"chat-{i}", f"contact-{i}", "s").connection_token = f"token-{i}"
    calls: list[tuple[float, str]] = []

    def end(chat, operation):
        calls.append((t.now, operation))
        return operation, 200, ""

    summary = clean_up(chats, end, t.sleep, t.clock, deadline_s=60.0, rates=CLEAN_UP_RATES)
    assert summary["still_active"] == 0 and summary["ended"] == 60
    by_op = {op: [when for when, o in calls if o == op] for op in CLEAN_UP_RATES}
    assert by_op["DisconnectParticipant"] and by_op["StopContact"]
    for op, (rate, burst) in CLEAN_UP_RATES.items():
        times = by_op[op]
        for i, start in enumerate(times):
            for j in range(i, len(times)):
                assert j - i + 1 <= burst + rate * (times[j] - start) + 1e-9, (op, i, j)
    assert calls[-1][0] == pytest.approx((60 - 20) / 13, abs=0.2)
