"""The admin website's calls to Synapse, always with the logged-in admin's own token.

One pooled HTTPS client per homeserver; the token travels per request, so
Synapse itself authorises every action of every admin.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Any
from urllib.parse import quote

import httpx

from homeport.config.model import Deployment
from homeport.synapse.api import SynapseApiError, SynapseClient
from homeport.synapse.module import ROOM_COUNTS_PATH

DESTINATIONS = "/_synapse/admin/v1/federation/destinations"
COUNTS_PER_REQUEST = 50  # short enough for any request line


class NotAdminError(Exception):
    """The credentials are right but the user is not a server admin."""


class AdminApi:
    def __init__(self, deployment: Deployment, ssl_context: ssl.SSLContext) -> None:
        self._clients = {
            name: SynapseClient(hs.base_url, ssl_context)
            for name, hs in deployment.homeservers.items()
        }

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()

    async def _call(
        self, name: str, token: str | None, method: str, path: str, **kwargs: Any
    ) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return await self._clients[name].request(method, path, headers=headers, **kwargs)

    async def login(self, name: str, user: str, password: str) -> tuple[str, str]:
        """(user_id, access_token) of a server admin; NotAdminError for anyone else."""
        body = await self._call(
            name,
            None,
            "POST",
            "/_matrix/client/v3/login",
            json={
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": user},
                "password": password,
                "initial_device_display_name": "Homeport admin website",
            },
        )
        user_id, token = str(body["user_id"]), str(body["access_token"])
        is_admin = False
        try:
            answer = await self._call(
                name, token, "GET", f"/_synapse/admin/v1/users/{quote(user_id)}/admin"
            )
            is_admin = bool(answer.get("admin"))
        except SynapseApiError as error:
            if error.status != 403:
                raise
        finally:
            if not is_admin:
                await self.logout(name, token)  # whatever went wrong, no token stays behind
        if not is_admin:
            raise NotAdminError(user_id)
        return user_id, token

    async def logout(self, name: str, token: str) -> None:
        # Already logged out, or the server is down: the token is gone with us anyway.
        with contextlib.suppress(SynapseApiError, httpx.HTTPError, OSError):
            await self._call(name, token, "POST", "/_matrix/client/v3/logout", json={})

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
        params: dict[str, str | int] = {
            "from": start,
            "limit": limit,
            "order_by": order_by,
            "dir": direction,
        }
        if search:
            params["destination"] = search
        body: dict[str, Any] = await self._call(name, token, "GET", DESTINATIONS, params=params)
        return body

    async def destination(self, name: str, token: str, destination: str) -> dict[str, Any] | None:
        try:
            body: dict[str, Any] = await self._call(
                name, token, "GET", f"{DESTINATIONS}/{quote(destination, safe='')}"
            )
        except SynapseApiError as error:
            if error.status == 404:
                return None
            raise
        return body

    async def destination_rooms(
        self, name: str, token: str, destination: str, start: int = 0, limit: int = 1
    ) -> dict[str, Any]:
        """{rooms: [{room_id, stream_ordering}], total}; an unknown destination has none."""
        try:
            body: dict[str, Any] = await self._call(
                name,
                token,
                "GET",
                f"{DESTINATIONS}/{quote(destination, safe='')}/rooms",
                params={"from": start, "limit": limit},
            )
        except SynapseApiError as error:
            if error.status == 404:
                return {"rooms": [], "total": 0}
            raise
        return body

    async def room_counts(self, name: str, token: str, destinations: list[str]) -> list[int]:
        """Rooms per destination: one request to the Homeport module, else one per row."""
        if not destinations:
            return []
        counts: dict[str, int] = {}
        try:
            for start in range(0, len(destinations), COUNTS_PER_REQUEST):
                chunk = destinations[start : start + COUNTS_PER_REQUEST]
                body = await self._call(
                    name, token, "GET", ROOM_COUNTS_PATH, params=[("destination", d) for d in chunk]
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

    async def reset_connection(self, name: str, token: str, destination: str) -> None:
        await self._call(
            name,
            token,
            "POST",
            f"{DESTINATIONS}/{quote(destination, safe='')}/reset_connection",
            json={},
        )

    async def room(self, name: str, token: str, room_id: str) -> dict[str, Any] | None:
        try:
            body: dict[str, Any] = await self._call(
                name, token, "GET", f"/_synapse/admin/v1/rooms/{quote(room_id, safe='')}"
            )
        except SynapseApiError as error:
            if error.status == 404:
                return None
            raise
        return body

    async def rooms(
        self, name: str, token: str, start: int, limit: int, search: str
    ) -> dict[str, Any]:
        params: dict[str, str | int] = {"from": start, "limit": limit, "order_by": "name"}
        if search:
            params["search_term"] = search
        body: dict[str, Any] = await self._call(
            name, token, "GET", "/_synapse/admin/v1/rooms", params=params
        )
        return body
