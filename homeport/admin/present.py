"""How the admin website words Synapse's facts: statuses and moments. Pure."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from typing import Literal, NamedTuple

from homeport.policy.backoff import NOT_DELIVERING_AFTER_S
from homeport.synapse.models import Destination, Undelivered

DestinationStatus = Literal["Not delivering", "Failing", "Never worked", "Inactive", "Working"]


def destination_status(
    destination: Destination, undelivered: Undelivered | None, now_ms: int
) -> DestinationStatus:
    """One word for a federation destination.

    Not delivering: events have waited for it longer than a healthy server
    ever takes, whether or not Synapse has recorded a failure yet (Synapse
    records one only after a transaction's long retries). Failing: Synapse is
    backing off. Never worked: no transaction with events ever succeeded.
    Working: no failure recorded. Inactive: a failure is recorded but Synapse
    is not backing off (it will try again with the next event).
    """
    if undelivered is not None and undelivered.age_s(now_ms) >= NOT_DELIVERING_AFTER_S:
        return "Not delivering"
    if destination.backing_off:
        return "Failing"
    if destination.last_successful_stream_ordering is None:
        return "Never worked"
    if destination.failure_ts is None and not destination.retry_last_ts:
        return "Working"
    return "Inactive"


class When(NamedTuple):
    """A moment shown as absolute time with zone and as relative words (a tuple: a
    Federation tab page makes a hundred of them)."""

    iso: str
    absolute: str
    relative: str


def relative(delta_seconds: float) -> str:
    """'in 8 min', '3 h ago', '31 s ago', 'just now'.

    Seconds count in an outage (the Federation tab's threshold is 30 s), so
    under a minute they are said as such.
    """
    future = delta_seconds > 0
    seconds = abs(delta_seconds)
    if seconds < 5:
        return "in a few seconds" if future else "just now"
    if seconds < 45:
        return f"in {round(seconds)} s" if future else f"{round(seconds)} s ago"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size * 0.9 or unit == "min":
            amount = max(1, round(seconds / size))
            return f"in {amount} {unit}" if future else f"{amount} {unit} ago"
    raise AssertionError("unreachable")


def when(ms: int | None, now_ms: int, zone: tzinfo = UTC) -> When | None:
    if not ms:
        return None
    iso, absolute = _stamp(ms, zone)
    return When(iso, absolute, relative((ms - now_ms) / 1000))


@lru_cache(maxsize=4096)
def _stamp(ms: int, zone: tzinfo) -> tuple[str, str]:
    """The moment's ISO form and its words: the same for every page that shows it."""
    moment = datetime.fromtimestamp(ms / 1000, tz=zone)
    iso = moment.isoformat(timespec="seconds")  # YYYY-MM-DDTHH:MM:SS+HH:MM
    # strftime("%Y-%m-%d %H:%M:%S %Z") says the same at several times the cost.
    return iso, f"{iso[:10]} {iso[11:19]} {moment.tzname() or ''}".rstrip()
