"""Token buckets, the way AWS describes its API rate limits (pure; time is passed in).

One implementation, shared by the emulator (which throttles with it) and the harness (whose clean-up
keeps to AWS's rates with it); it lives beside both so that neither depends on the other.

A bucket holds at most `burst` tokens and starts full. Tokens refill continuously at `rate` per
second (in whatever clock the caller passes: the emulator's emulated seconds, the harness's
wall clock); surplus beyond `burst` is discarded. Every HTTP attempt
takes one token; when fewer than one token is left the attempt is throttled.

Over an interval of length T starting full, a bucket therefore admits at most burst + rate * T
attempts: offering 20/s for 10 s against 5/s burst 8 admits 8 + 50 = 58.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class TokenBucket:
    rate: float
    burst: float
    tokens: float
    updated: float

    @classmethod
    def full(cls, rate: float, burst: float, now: float) -> TokenBucket:
        return cls(rate=rate, burst=burst, tokens=float(burst), updated=now)

    def take(self, now: float) -> bool:
        """Spend one token if there is one; refill first. Returns False when throttled."""
        elapsed = now - self.updated
        if elapsed > 0:
            tokens = self.tokens + elapsed * self.rate
            self.tokens = tokens if tokens < self.burst else self.burst
            self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def level(self, now: float) -> float:
        elapsed = max(0.0, now - self.updated)
        return min(self.burst, self.tokens + elapsed * self.rate)

    def reconfigure(self, rate: float, burst: float, now: float) -> None:
        """Change rate and burst in place, keeping the current level (capped at the new burst).

        A bucket that was full stays full only if the new burst is not larger; a raised burst fills
        up at the new rate from the current level, as AWS's own limit increases take effect.
        """
        self.tokens = min(float(burst), self.level(now))
        self.updated = now
        self.rate = rate
        self.burst = burst
