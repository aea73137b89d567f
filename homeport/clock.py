"""Time, injected: services read the clock through this, so tests can set it."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Wall-clock seconds since the epoch (what people are shown)."""
        ...

    def monotonic(self) -> float:
        """Seconds that only move forward (what timeouts are measured in)."""
        ...


class SystemClock:
    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


def iso(ms: int) -> str:
    """A time in milliseconds since the epoch (Matrix's) as people and exports read it."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
