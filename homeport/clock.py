"""Time, injected: services read the clock through this, so tests can set it."""

from __future__ import annotations

import time
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
