"""The hand-off of arrivals to idle users (harness/runtime/handoff.py) and the clean-up's pace."""

from __future__ import annotations

import gevent

from chatload.contracts import DEFAULT_CONNECT_RATES, DEFAULT_PARTICIPANT_RATES, DISCONNECT, STOP_CONTACT
from chatload.harness.chats import clean_up_rates
from chatload.harness.runtime.handoff import IdleUsers


def idle_users(idle: IdleUsers, n: int, got: list) -> list:
    users = [gevent.spawn(lambda i=i: got.append((i, idle.wait()))) for i in range(n)]
    gevent.sleep(0)  # every user is waiting now
    return users


def test_an_arrival_with_no_idle_user_is_refused_at_once() -> None:
    assert IdleUsers().offer("a") is False


def test_arrivals_go_to_the_longest_idle_users_and_none_is_lost() -> None:
    idle: IdleUsers[str] = IdleUsers()
    got: list = []
    users = idle_users(idle, 3, got)
    assert len(idle) == 3
    assert [idle.offer(x) for x in ("a", "b", "c", "d")] == [True, True, True, False]
    gevent.joinall(users, timeout=5)
    assert sorted(got) == [(0, "a"), (1, "b"), (2, "c")]
    assert len(idle) == 0


def test_offers_never_fail_while_users_are_idle_on_a_busy_hub() -> None:
    """gevent's Channel.put(block=False) gave up through a zero timer when the hub was busy; the
    hand-off must take every offer while a user is idle, however many greenlets are runnable."""
    idle: IdleUsers[int] = IdleUsers()
    got: list = []
    stop = False

    def busy() -> None:
        while not stop:
            gevent.sleep(0)

    spinners = [gevent.spawn(busy) for _ in range(500)]
    users = idle_users(idle, 300, got)
    taken = [idle.offer(i) for i in range(300)]
    gevent.joinall(users, timeout=10)
    stop = True
    gevent.joinall(spinners, timeout=10)
    assert all(taken)
    assert sorted(item for _, item in got) == list(range(300))


def test_release_wakes_every_idle_user_and_later_waits_return_at_once() -> None:
    idle: IdleUsers[str] = IdleUsers()
    got: list = []
    users = idle_users(idle, 4, got)
    idle.release()
    gevent.joinall(users, timeout=5)
    assert [item for _, item in got] == [None] * 4
    assert idle.wait() is None and len(idle) == 0
    assert idle.offer("late") is False
    idle.reopen()
    user = gevent.spawn(idle.wait)
    gevent.sleep(0)
    assert idle.offer("next run") is True
    assert user.get(timeout=5) == "next run"


def test_a_killed_idle_user_leaves_the_queue() -> None:
    idle: IdleUsers[str] = IdleUsers()
    user = gevent.spawn(idle.wait)
    gevent.sleep(0)
    assert len(idle) == 1
    user.kill(block=True)
    assert len(idle) == 0
    assert idle.offer("a") is False


def test_a_timed_wait_returns_none_and_leaves_the_queue() -> None:
    idle: IdleUsers[str] = IdleUsers()
    assert idle.wait(timeout_s=0.01) is None
    assert len(idle) == 0


def test_the_clean_up_keeps_to_the_runs_known_rates_else_awss_defaults() -> None:
    defaults = {DISCONNECT: DEFAULT_PARTICIPANT_RATES[DISCONNECT], STOP_CONTACT: DEFAULT_CONNECT_RATES[STOP_CONTACT]}
    assert clean_up_rates(None) == defaults
    assert clean_up_rates({"source": "defaults"}) == defaults
    emulator = {
        "source": "emulator",
        "rates": {STOP_CONTACT: {"rate": 50, "burst": 60}},
        "participant_rates": {DISCONNECT: {"rate": 1000, "burst": 1000}},
    }
    assert clean_up_rates(emulator) == {DISCONNECT: (1000.0, 1000.0), STOP_CONTACT: (50.0, 60.0)}
    half = {"participant_rates": {DISCONNECT: {"rate": 7}}}  # no burst: not known
    assert clean_up_rates(half) == defaults
