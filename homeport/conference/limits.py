"""Bounded memory for the conference service: tokens, callers' rates, well-knowns.

Each takes the clock as an argument, so tests can move time; each forgets
the least recently used entries first when full, so a flood of new tokens,
addresses or server names costs a fixed amount of memory.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass

CACHE_SECONDS = 300.0  # a checked token is believed this long at most
CACHE_ENTRIES = 10_000
CALLER_RATE = 20.0  # requests per second per caller address, sustained
CALLER_BURST = 60.0
CALLERS_TRACKED = 10_000
WELL_KNOWNS_KEPT = 500


def _key(server_name: str, token: str) -> str:
    # Only a digest is kept: a memory dump does not hand out tokens.
    return hashlib.sha256(f"{server_name}\0{token}".encode()).hexdigest()


class TokenCache:
    """Who an OpenID token belongs to, for a while after a homeserver said so.

    A token is believed until the expiry its caller states (Element Call sends
    `expires_in`), and never longer than `CACHE_SECONDS` after the check.
    """

    def __init__(self, entries: int = CACHE_ENTRIES, seconds: float = CACHE_SECONDS) -> None:
        self._entries = entries
        self._seconds = seconds
        self._users: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def get(self, server_name: str, token: str, now: float) -> str | None:
        key = _key(server_name, token)
        found = self._users.get(key)
        if found is None:
            return None
        user_id, until = found
        if now >= until:
            del self._users[key]
            return None
        self._users.move_to_end(key)
        return user_id

    def put(
        self, server_name: str, token: str, user_id: str, now: float, expires_in: float | None
    ) -> None:
        lifetime = self._seconds if expires_in is None else min(self._seconds, expires_in)
        if lifetime <= 0:
            return
        key = _key(server_name, token)
        self._users[key] = (user_id, now + lifetime)
        self._users.move_to_end(key)
        while len(self._users) > self._entries:
            self._users.popitem(last=False)

    def __len__(self) -> int:
        return len(self._users)


@dataclass
class _Bucket:
    tokens: float
    at: float


class CallerLimits:
    """A token bucket per caller address: `rate` per second, up to `burst` at once."""

    def __init__(
        self,
        rate: float = CALLER_RATE,
        burst: float = CALLER_BURST,
        tracked: int = CALLERS_TRACKED,
    ) -> None:
        self._rate, self._burst, self._tracked = rate, burst, tracked
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, caller: str, now: float) -> float:
        """0 when the request may go on, else the seconds to wait before asking again."""
        bucket = self._buckets.get(caller)
        if bucket is None:
            bucket = self._buckets[caller] = _Bucket(self._burst, now)
            while len(self._buckets) > self._tracked:
                self._buckets.popitem(last=False)
        self._buckets.move_to_end(caller)
        bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.at) * self._rate)
        bucket.at = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self._rate


@dataclass(frozen=True)
class WellKnownAnswer:
    """A server's well-known: the name it delegates to (None: none), believed `until`."""

    delegated: str | None
    until: float


class WellKnownCache:
    """Well-known answers by server name, each until it expires; at most `entries`."""

    def __init__(self, entries: int = WELL_KNOWNS_KEPT) -> None:
        self._entries = entries
        self._answers: OrderedDict[str, WellKnownAnswer] = OrderedDict()

    def get(self, server_name: str, now: float) -> WellKnownAnswer | None:
        answer = self._answers.get(server_name)
        if answer is None:
            return None
        if now >= answer.until:
            del self._answers[server_name]
            return None
        self._answers.move_to_end(server_name)
        return answer

    def put(self, server_name: str, delegated: str | None, now: float, seconds: float) -> None:
        self._answers[server_name] = WellKnownAnswer(delegated, now + seconds)
        self._answers.move_to_end(server_name)
        while len(self._answers) > self._entries:
            self._answers.popitem(last=False)

    def __len__(self) -> int:
        return len(self._answers)
