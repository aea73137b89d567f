"""Whether people can log in with their directory password, for `/metrics`.

Read from the homeserver group sync serves (its directory login, inside
Synapse) at most every REFRESH_S seconds, whoever scrapes: `/metrics` needs no
login, and a flood of scrapes never reaches Synapse.
"""

from __future__ import annotations

import asyncio

import httpx
from prometheus_client import CollectorRegistry, Gauge

from homeport.admin.api import Homeservers
from homeport.admin.delivery import READ_TIMEOUT_S, REFRESH_S
from homeport.clock import Clock
from homeport.synapse.api import SynapseApiError


class DirectoryLoginSnapshot:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.up = Gauge(
            "homeport_directory_login_up",
            "1 when the directory answered the last login that asked it, 0 when it did not "
            "(local accounts still log in then); absent when unknown",
            ["homeserver"],
            registry=registry,
        )
        self._read_at: float | None = None
        self._shown: set[str] = set()
        self._lock = asyncio.Lock()

    async def refresh(self, api: Homeservers, name: str, clock: Clock) -> None:
        async with self._lock:
            if self._read_at is not None and clock.monotonic() - self._read_at < REFRESH_S:
                return
            self._read_at = clock.monotonic()
            try:
                state = await asyncio.wait_for(api.directory_login(name), READ_TIMEOUT_S)
            except (SynapseApiError, httpx.HTTPError, OSError, TimeoutError):
                state = None
            answer = None if state is None else state.get("state")
            if answer in ("ok", "unreachable"):
                self.up.labels(name).set(1 if answer == "ok" else 0)
                self._shown.add(name)
            elif name in self._shown:  # no figure rather than a stale one
                self.up.remove(name)
                self._shown.discard(name)
