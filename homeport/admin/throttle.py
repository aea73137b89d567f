"""Login throttling inside the website, before Synapse sees the attempt.

Every login reaches Synapse from the website's own address, so Synapse's
per-address login limit is shared by all admins: one attacker guessing
passwords would lock everyone out. The website throttles each client
address and each user name itself, with token buckets in a bounded map
(a flood of addresses evicts the least recently seen, never grows memory).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

MAX_KEYS = 10_000


@dataclass
class _Bucket:
    tokens: float
    updated: float


class Throttle:
    """`burst` attempts at once, then one every `every_seconds`, per key."""

    def __init__(
        self,
        burst: int,
        every_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = MAX_KEYS,
    ) -> None:
        self.burst = burst
        self.every_seconds = every_seconds
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def _bucket(self, key: str) -> _Bucket:
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(float(self.burst), now)
            self._buckets[key] = bucket
            while len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        else:
            refill = (now - bucket.updated) / self.every_seconds
            bucket.tokens = min(float(self.burst), bucket.tokens + refill)
            bucket.updated = now
            self._buckets.move_to_end(key)
        return bucket

    def wait(self, key: str) -> float:
        """Seconds until `key` may try again; 0 when it may now."""
        bucket = self._bucket(key)
        return 0.0 if bucket.tokens >= 1 else (1 - bucket.tokens) * self.every_seconds

    def spend(self, key: str) -> None:
        bucket = self._bucket(key)
        bucket.tokens = max(0.0, bucket.tokens - 1)


# The website's login limits, on refused logins only (an admin who knows the
# password is never slowed down): ten per client address, then one every
# 30 s; five per user name and homeserver, then one a minute.
LOGINS_PER_ADDRESS = 10
ADDRESS_REFILL_SECONDS = 30.0
FAILURES_PER_USER = 5
USER_REFILL_SECONDS = 60.0
