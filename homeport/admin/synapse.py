"""The admin website's calls to Synapse, always with the logged-in admin's own token.

One pooled HTTPS client per homeserver (`SynapseClient`); each call goes
through a view of it bound to the admin's token, so Synapse itself authorises
every action of every admin.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from homeport.config.deployment import Deployment
from homeport.synapse.api import SynapseApiError, SynapseClient
from homeport.synapse.module import ROOM_COUNTS_PATH

DESTINATIONS = "/_synapse/admin/v1/federation/destinations"
COUNTS_PER_REQUEST = 50  # short enough for any request line

T = TypeVar("T")


class NotAdminError(Exception):
    """The credentials are right but the user is not a server admin."""


async def _unless_missing(call: Awaitable[Any], default: T) -> Any | T:
    """The answer, or `default` when Synapse says 404."""
    try:
        return await call
    except SynapseApiError as error:
        if error.status == 404:
            return default
        raise


class AdminApi:
    def __init__(self, deployment: Deployment, ssl_context: ssl.SSLContext) -> None:
        self._clients = {
            name: SynapseClient(hs.base_url, ssl_context)
            for name, hs in deployment.homeservers.items()
        }

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()

    def _as(self, name: str, token: str) -> SynapseClient:
        return self._clients[name].as_user(token)

    async def login(self, name: str, user: str, password: str) -> tuple[str, str]:
        """(user_id, access_token) of a server admin; NotAdminError for anyone else."""
        login = await self._clients[name].login(user, password, "Homeport admin website")
        is_admin = False
        try:
            is_admin = await self._as(name, login.access_token).is_admin(login.user_id)
        finally:
            if not is_admin:
                await self.logout(name, login.access_token)  # no token stays behind
        if not is_admin:
            raise NotAdminError(login.user_id)
        return login.user_id, login.access_token

    async def logout(self, name: str, token: str) -> None:
        # Already logged out, or the server is down: the token is gone with us anyway.
        with contextlib.suppress(SynapseApiError, httpx.HTTPError, OSError):
            await self._as(name, token).logout()

    async def destinations(
        self,
        name: str,
        token: str,
        start: int,
        limit: int,
        order_by: str,
        direction: str,
        search: str,
    ) -> dict[str, Any]:
        return await self._as(name, token).federation_destinations(
            start, limit, order_by, direction, search or None
        )

    async def destination(self, name: str, token: str, destination: str) -> dict[str, Any] | None:
        path = f"{DESTINATIONS}/{quote(destination, safe='')}"
        body: dict[str, Any] | None = await _unless_missing(
            self._as(name, token).request("GET", path), None
        )
        return body

    async def destination_rooms(
        self, name: str, token: str, destination: str, start: int = 0, limit: int = 1
    ) -> dict[str, Any]:
        """{rooms: [{room_id, stream_ordering}], total}; an unknown destination has none."""
        path = f"{DESTINATIONS}/{quote(destination, safe='')}/rooms"
        call = self._as(name, token).request("GET", path, params={"from": start, "limit": limit})
        body: dict[str, Any] = await _unless_missing(call, {"rooms": [], "total": 0})
        return body

    async def room_counts(self, name: str, token: str, destinations: list[str]) -> list[int]:
        """Rooms per destination: one request to the Homeport module, else one per row."""
        if not destinations:
            return []
        client = self._as(name, token)
        counts: dict[str, int] = {}
        try:
            for start in range(0, len(destinations), COUNTS_PER_REQUEST):
                chunk = destinations[start : start + COUNTS_PER_REQUEST]
                body = await client.request(
                    "GET", ROOM_COUNTS_PATH, params=[("destination", d) for d in chunk]
                )
                counts.update(body.get("counts", {}))
            return [int(counts.get(d, 0)) for d in destinations]
        except SynapseApiError as error:
            if error.status not in (404, 405):
                raise
        limit = asyncio.Semaphore(10)

        async def one(destination: str) -> int:
            async with limit:
                return int((await self.destination_rooms(name, token, destination))["total"])

        return list(await asyncio.gather(*(one(d) for d in destinations)))

    async def reset_connection(self, name: str, token: str, destination: str) -> bool:
        """False when Synapse had no backoff to clear."""
        return await self._as(name, token).reset_connection(destination)

    async def room(self, name: str, token: str, room_id: str) -> dict[str, Any] | None:
        path = f"/_synapse/admin/v1/rooms/{quote(room_id, safe='')}"
        body: dict[str, Any] | None = await _unless_missing(
            self._as(name, token).request("GET", path), None
        )
        return body

    async def rooms(
        self, name: str, token: str, start: int, limit: int, search: str
    ) -> dict[str, Any]:
        params: dict[str, str | int] = {"from": start, "limit": limit, "order_by": "name"}
        if search:
            params["search_term"] = search
        body: dict[str, Any] = await self._as(name, token).request(
            "GET", "/_synapse/admin/v1/rooms", params=params
        )
        return body
