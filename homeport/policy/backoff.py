"""What a homeserver's retry settings promise, from Synapse's own algorithm. Pure.

Synapse 1.16x sends a transaction with long retries
(`synapse/http/matrixfederationclient.py`): after attempt n it waits
min(4**n s, max_long_retry_delay) times a jitter of 0.8-1.4, and records a
failure only when `max_long_retries` retries have failed. The destination
is then backed off for `destination_min_retry_interval`, growing by
`destination_retry_multiplier` (jitter 0.8-1.4 again) up to
`destination_max_retry_interval` (`synapse/util/retryutils.py`). Once the
backoff is over, Synapse's catch-up round, run every minute, wakes the
destination (`federation/sender/__init__.py`, WAKEUP_RETRY_PERIOD), unless a
new event wakes it first.

The figures assume a server that refuses connections (stopped): an
unreachable host adds up to `client_timeout` (60 s) per attempt.
"""

from __future__ import annotations

from dataclasses import dataclass

from homeport.config.federation import FederationRetries
from homeport.config.types import duration_ms

JITTER_MAX = 1.4
CATCH_UP_ROUND_S = 60.0
# The Federation tab calls a destination "not delivering" once its oldest
# waiting event is this old: a healthy server takes well under a second.
NOT_DELIVERING_AFTER_S = 30.0


@dataclass(frozen=True)
class RetryPromise:
    """Worst cases, in seconds, of what the settings make Synapse do."""

    failure_recorded_within: float  # from the first undelivered event to a recorded failure
    first_retry_after: float  # backoff after that failure (shortest)
    longest_backoff: float  # the backoff once it has grown to its cap
    recovered_within: float  # from a server's return to Synapse sending it events again


def long_retry_waits(retries: FederationRetries) -> list[float]:
    """The longest wait after each failed attempt of one transaction."""
    cap = duration_ms(retries.max_long_retry_delay) / 1000
    return [min(4.0**n, cap) * JITTER_MAX for n in range(1, retries.max_long_retries + 1)]


def promise(retries: FederationRetries) -> RetryPromise:
    longest = duration_ms(retries.destination_max_retry_interval) / 1000
    return RetryPromise(
        failure_recorded_within=sum(long_retry_waits(retries)),
        first_retry_after=duration_ms(retries.destination_min_retry_interval) / 1000,
        longest_backoff=longest,
        recovered_within=longest + CATCH_UP_ROUND_S,
    )


def spoken(seconds: float) -> str:
    """'34 s', '2 min', '7 d': a duration as people read it."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size * 2 or (unit == "min" and seconds >= 120):
            return f"{round(seconds / size)} {unit}"
    return f"{round(seconds)} s"
