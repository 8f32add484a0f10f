"""The emulator's token buckets, by key: per (account, region, operation) and per (instance, operation).

The bucket itself is chatload.tokenbucket's (shared with the harness).
"""

from __future__ import annotations

from dataclasses import dataclass

from chatload.tokenbucket import TokenBucket


@dataclass
class BucketSet:
    """Buckets by key, created full on first use with the limits `limits(key)` returns."""

    buckets: dict[tuple[str, ...], TokenBucket]

    @classmethod
    def empty(cls) -> BucketSet:
        return cls(buckets={})

    def take(self, key: tuple[str, ...], rate: float, burst: float, now: float) -> bool:
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = TokenBucket.full(rate, burst, now)
        elif bucket.rate != rate or bucket.burst != burst:
            bucket.reconfigure(rate, burst, now)
        return bucket.take(now)

    def clear(self) -> None:
        self.buckets.clear()
