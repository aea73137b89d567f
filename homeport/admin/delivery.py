"""Every homeserver's undelivered destinations: the Federation tab's alert and `/metrics`.

A snapshot read at most every REFRESH_S seconds, whoever asks and however
often: `/metrics` needs no login, and a flood of scrapes or page loads never
reaches Synapse. Where the alerts service keeps the waiting destinations in
Homeport's store (checked within the last minute), the snapshot reads them
there, from an index; otherwise it asks each homeserver (as Homeport's
service account), which looks at every waiting destination. Each page of the
tab reads its own rows fresh; the snapshot only says which servers beyond
the page lack events.
"""

from __future__ import annotations

import asyncio
import bisect

import httpx
from prometheus_client import CollectorRegistry, Gauge
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from homeport.admin.api import Homeservers
from homeport.alerts.incidents import Incident
from homeport.alerts.store import checked_at, last_incidents, oldest_waiting
from homeport.clock import Clock
from homeport.policy.backoff import NOT_DELIVERING_AFTER_S
from homeport.synapse.api import SynapseApiError
from homeport.synapse.models import Undelivered

REFRESH_S = 10.0
READ_TIMEOUT_S = 5.0  # a homeserver that hangs must not hold every page that waits on this
AGES_PER_HOMESERVER = 100  # bounded label cardinality, whatever the outage
INCIDENTS_KEPT = 10_000  # destinations whose latest incident is remembered at once
LISTED = 1000  # the longest waiting, per homeserver, asked of Synapse (the alert names five)
# From the alerts service's index, every one of a large outage: the "undelivered since"
# pages are then slices of the snapshot, with no query on their path.
STORED_LISTED = 20_000
FRESH_MS = 60_000  # the alerts service's check is recent enough to read from the store


class DeliverySnapshot:
    def __init__(self, registry: CollectorRegistry, store: Engine | None = None) -> None:
        self.store = store  # where the alerts service keeps the waiting destinations
        self.not_delivering = Gauge(
            "homeport_federation_not_delivering_destinations",
            f"Servers whose oldest undelivered event is {NOT_DELIVERING_AFTER_S:.0f} s old or more",
            ["homeserver"],
            registry=registry,
        )
        self.undelivered = Gauge(
            "homeport_federation_undelivered_destinations",
            "Servers that events are waiting for",
            ["homeserver"],
            registry=registry,
        )
        self.age = Gauge(
            "homeport_federation_undelivered_age_seconds",
            "Age of the oldest event each server lacks (the longest waiting per homeserver)",
            ["homeserver", "destination"],
            registry=registry,
        )
        self.known = Gauge(
            "homeport_federation_delivery_known",
            "1 when the homeserver answered the delivery query, 0 when it did not",
            ["homeserver"],
            registry=registry,
        )
        self._read_at: float | None = None
        self._counted: set[str] = set()  # homeservers whose counts are shown
        # Homeserver -> (the longest waiting first, how many), None when it did not answer.
        self.latest: dict[str, tuple[list[Undelivered], int] | None] = {}
        # Homeserver -> when each of its waiting servers' oldest event was sent, in the
        # order of `latest` (the longest waiting first): who is late now is a bisection.
        self._since: dict[str, list[int]] = {}
        self._stored: set[str] = set()  # homeservers whose `latest` came from the store
        # (homeserver, destination) -> (read at, its latest incident or None).
        self._incidents: dict[tuple[str, str], tuple[float, Incident | None]] = {}
        self._lock = asyncio.Lock()

    async def refresh(self, api: Homeservers, names: list[str], clock: Clock) -> None:
        """Read every homeserver's delivery state, unless it was read less than REFRESH_S ago."""
        async with self._lock:
            if self._read_at is not None and clock.monotonic() - self._read_at < REFRESH_S:
                return
            self._read_at = clock.monotonic()
            now_ms = int(clock.time() * 1000)
            answers = await asyncio.gather(
                *(_read(api, name, self.store, now_ms) for name in names)
            )
            self.age.clear()
            for name, (answer, stored) in zip(names, answers, strict=True):
                self.latest[name] = answer
                if stored:
                    self._stored.add(name)
                else:
                    self._stored.discard(name)
                self._since[name] = [u.since_ms for u in answer[0]] if answer else []
                self._show(name, answer, now_ms)

    def late(self, name: str, now_ms: int, shown: int) -> tuple[list[Undelivered], int]:
        """The first `shown` servers of homeserver `name` not delivering at `now_ms` (their
        oldest event is NOT_DELIVERING_AFTER_S old), the longest first, and how many are."""
        answer = self.latest.get(name)
        if not answer:
            return [], 0
        cutoff = now_ms - int(NOT_DELIVERING_AFTER_S * 1000)
        count = bisect.bisect_right(self._since.get(name, []), cutoff)
        return answer[0][: min(count, shown)], count

    def waiting_page(
        self, name: str, start: int, limit: int, search: str, descending: bool
    ) -> tuple[list[str], int] | None:
        """A page of "undelivered since" from this snapshot, when it holds every waiting
        destination of the alerts service's index (at most LISTED); None otherwise."""
        answer = self.latest.get(name)
        if name not in self._stored or answer is None:
            return None
        rows, total = answer  # the longest waiting first, as the index keeps them
        if total > len(rows):
            return None
        needle = search.lower()
        found = [u for u in rows if needle in u.destination.lower()] if needle else rows
        if descending:
            end = len(found) - start
            page = found[max(0, end - limit) : max(0, end)][::-1]
        else:
            page = found[start : start + limit]
        return [u.destination for u in page], len(found)

    async def last_incidents(
        self, name: str, destinations: list[str], clock: Clock
    ) -> dict[str, Incident]:
        """The latest incident of each destination, read at most every REFRESH_S (the alerts
        service changes them once a check, every 15 s)."""
        if self.store is None:
            return {}
        now = clock.monotonic()
        missing = [
            d for d in destinations if now - self._incidents.get((name, d), (-REFRESH_S, None))[0]
            >= REFRESH_S
        ]  # fmt: skip
        if missing:
            found = await asyncio.to_thread(last_incidents, self.store, name, missing)
            for destination in missing:
                self._incidents[(name, destination)] = (now, found.get(destination))
            if len(self._incidents) > INCIDENTS_KEPT:
                stale = [k for k, (at, _) in self._incidents.items() if now - at >= REFRESH_S]
                for key in stale:
                    del self._incidents[key]
        known = {d: self._incidents[(name, d)][1] for d in destinations}
        return {d: incident for d, incident in known.items() if incident is not None}

    def _show(self, name: str, answer: tuple[list[Undelivered], int] | None, now_ms: int) -> None:
        if answer is None:
            self.known.labels(name).set(0)
            if name in self._counted:  # no figure rather than a stale one
                self.not_delivering.remove(name)
                self.undelivered.remove(name)
                self._counted.discard(name)
            return
        rows, total = answer
        self.known.labels(name).set(1)
        self._counted.add(name)
        self.undelivered.labels(name).set(total)
        self.not_delivering.labels(name).set(self.late(name, now_ms, 0)[1])
        for row in rows[:AGES_PER_HOMESERVER]:
            self.age.labels(name, row.destination).set(row.age_s(now_ms))


Read = tuple[list[Undelivered], int] | None


async def _read(
    api: Homeservers, name: str, store: Engine | None, now_ms: int
) -> tuple[Read, bool]:
    """What waits on homeserver `name`, and whether it came from the alerts service's
    index (the store) rather than from Synapse."""
    if store is not None:
        try:
            stored = await asyncio.to_thread(_stored, store, name, now_ms)
        except SQLAlchemyError:
            stored = None
        if stored is not None:
            return stored, True
    try:
        return await asyncio.wait_for(api.undelivered(name), READ_TIMEOUT_S), False
    except (SynapseApiError, httpx.HTTPError, OSError, TimeoutError):
        return None, False


def _stored(store: Engine, name: str, now_ms: int) -> tuple[list[Undelivered], int] | None:
    """The alerts service's last check of `name`, if it is fresh."""
    checked = checked_at(store, name)
    if checked is None or now_ms - checked >= FRESH_MS:
        return None
    rows, total = oldest_waiting(store, name, STORED_LISTED)
    return [Undelivered(d, w.rooms, w.since_ms, w.events) for d, w in rows], total
