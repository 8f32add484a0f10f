"""Emulated time: a clock that runs `time_scale` emulated seconds per real second.

Everything the emulator times (token refill, chat duration, the unconnected timeout, retention of
ended contacts) reads one clock, so a test that sets time_scale = 60 lets an emulated minute pass in
one real second, and the whole emulated world (buckets included) runs 60 times faster.

`now()` is monotonic emulated seconds; `epoch()` is the emulated wall clock (epoch seconds) used for
timestamps in responses. Changing the scale re-anchors the clock so emulated time never jumps.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class ScaledClock:
    """Real clock scaled by time_scale; re-anchored whenever the scale changes."""

    time_scale: float = 1.0
    _real_anchor: float = field(default_factory=time.monotonic)
    _emulated_anchor: float = 0.0
    _epoch_anchor: float = field(default_factory=time.time)

    def now(self) -> float:
        return self._emulated_anchor + (time.monotonic() - self._real_anchor) * self.time_scale

    def epoch(self) -> float:
        return self._epoch_anchor + self.now()

    def set_scale(self, time_scale: float) -> None:
        emulated = self.now()
        self._real_anchor = time.monotonic()
        self._emulated_anchor = emulated
        self.time_scale = time_scale


@dataclass
class FakeClock:
    """A clock tests move by hand (`advance`)."""

    t: float = 0.0
    time_scale: float = 1.0
    epoch0: float = 1_700_000_000.0

    def now(self) -> float:
        return self.t

    def epoch(self) -> float:
        return self.epoch0 + self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds

    def set_scale(self, time_scale: float) -> None:
        self.time_scale = time_scale
