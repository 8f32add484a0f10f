"""Idle customers waiting for an arrival, and the dispatcher's hand-off to one of them.

The dispatcher never waits for a user (an arrival no idle user can take is dropped on the spot), and
an arrival offered while a user is idle must never be lost. gevent's `Channel.put(block=False)` gives
up through a zero-second timer that, on a busy hub, can fire before its own hand-over callback has
run: at 100 chats/s with thousands of chats open it dropped arrivals while thousands of users were
idle. Here the hand-over is a plain call in the dispatcher's greenlet: `offer` takes the
longest-idle user's slot and fills it, and the user wakes with its arrival.

An idle user waits on its own slot with no timer: thousands of idle users polling with short
timeouts cost about a quarter of a 10,000-chat run's CPU in timer set-up alone. `release()` wakes
every idle user with None when the run's arrivals end, and a user that Locust kills while idle
leaves the queue on its way out.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from typing import Generic, TypeVar

import gevent
import gevent.event

T = TypeVar("T")


class IdleUsers(Generic[T]):
    """Users waiting for work, longest-idle first."""

    def __init__(self) -> None:
        self._slots: OrderedDict[int, gevent.event.AsyncResult] = OrderedDict()
        self._keys = itertools.count()
        self.released = False

    def __len__(self) -> int:
        return len(self._slots)

    def offer(self, item: T) -> bool:
        """Hand `item` to the longest-idle user; False (at once) when no user is idle."""
        if not self._slots:
            return False
        _, slot = self._slots.popitem(last=False)
        slot.set(item)
        return True

    def wait(self, timeout_s: float | None = None) -> T | None:
        """Wait idle until offered an item; None once released (or after timeout_s, when given)."""
        if self.released:
            return None
        key = next(self._keys)
        slot = gevent.event.AsyncResult()
        self._slots[key] = slot
        try:
            return slot.get(timeout=timeout_s)
        except gevent.Timeout:
            # An offer that filled the slot just before the timer fired still counts.
            return slot.value if slot.ready() else None
        finally:
            self._slots.pop(key, None)

    def release(self) -> None:
        """No more work: every idle user wakes with None, and later waits return None at once."""
        self.released = True
        while self._slots:
            _, slot = self._slots.popitem(last=False)
            slot.set(None)

    def reopen(self) -> None:
        """A new run: users wait for work again."""
        self.released = False
