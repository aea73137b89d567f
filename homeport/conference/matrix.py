"""The conference service's reads of Matrix: whose OpenID token, and the room's state.

A token is checked with the homeserver it names, through the server-server
API (`openid/userinfo`, which a closed `federation_domain_whitelist` does not
block), TLS verified against the deployment's CA and the system store. Room
membership and power levels come from a homeserver of the deployment that is
in the room, through its admin API as Homeport's service account: the room's
creator's homeserver when it is one of ours, otherwise any that has members
there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import dns.asyncresolver
import dns.exception
import httpx

from homeport.conference.decide import (
    Refused,
    RoomFacts,
    allowed_server,
    facts_of_state,
    user_of_userinfo,
)
from homeport.conference.limits import TokenCache
from homeport.conference.resolve import resolve
from homeport.config.deployment import Deployment
from homeport.synapse.admin_api import SynapseAdmin
from homeport.synapse.api import SynapseApiError
from homeport.synapse.service_account import service_client
from homeport.trust import client_ssl_context

logger = logging.getLogger("homeport.conference")

OUTBOUND_TIMEOUT = 10.0
MAX_OUTBOUND = 32  # concurrent checks with homeservers: a flood waits, it does not fan out
MAX_WELL_KNOWN_BYTES = 64 * 1024


def conference_ssl_context(deployment: Deployment) -> ssl.SSLContext:
    """The deployment's trust, plus the system store: allowed servers may use a public CA."""
    context = client_ssl_context(deployment)
    context.load_default_certs()
    return context


class Matrix:
    """Checks OpenID tokens and reads rooms; one per service process."""

    def __init__(self, deployment: Deployment, ssl_context: ssl.SSLContext) -> None:
        self._deployment = deployment
        self._ssl = ssl_context
        self._http = httpx.AsyncClient(verify=ssl_context, timeout=OUTBOUND_TIMEOUT)
        self._slots = asyncio.Semaphore(MAX_OUTBOUND)
        self._stack = contextlib.AsyncExitStack()
        self._admins: dict[str, SynapseAdmin] = {}
        self._admins_lock = asyncio.Lock()
        assert deployment.conference is not None
        self.own_servers = {hs.server_name for hs in deployment.homeservers.values()}
        self.allowed_servers = self.own_servers | set(deployment.conference.allow_homeservers)
        self.cache = TokenCache()

    async def aclose(self) -> None:
        await self._stack.aclose()
        await self._http.aclose()

    # OpenID --------------------------------------------------------------------

    async def user_of(self, server_name: str, token: str, expires_in: float | None = None) -> str:
        """The user whose OpenID token this is, vouched for by `server_name`; else Refused."""
        allowed_server(server_name, self.allowed_servers)
        known = self.cache.get(server_name, token, time.monotonic())
        if known is not None:
            return known
        user_id = await self._ask(server_name, token)
        self.cache.put(server_name, token, user_id, time.monotonic(), expires_in)
        return user_id

    async def _ask(self, server_name: str, token: str) -> str:
        async with self._slots:
            target = await resolve(server_name, self._well_known, _srv)
            try:
                response = await self._http.get(
                    f"{target.base_url}/_matrix/federation/v1/openid/userinfo",
                    params={"access_token": token},
                    headers={"Host": target.host_header},
                    extensions={"sni_hostname": target.tls_name},
                )
            except httpx.HTTPError as error:
                raise Refused(
                    f"{server_name} cannot be reached ({type(error).__name__}); try again "
                    "when it is back",
                    status=503,
                    errcode="M_UNAVAILABLE",
                ) from None
        if response.status_code == 401:
            raise Refused(f"{server_name} does not know this token (expired or never issued)")
        if response.status_code != 200:
            raise Refused(
                f"{server_name} answered {response.status_code} for this token",
                status=503 if response.status_code >= 500 else 401,
            )
        try:
            body = response.json()
        except ValueError:
            raise Refused(f"{server_name} did not answer with JSON") from None
        return user_of_userinfo(server_name, body)

    async def _well_known(self, server_name: str) -> str | None:
        try:
            response = await self._http.get(
                f"https://{server_name}/.well-known/matrix/server", follow_redirects=True
            )
        except httpx.HTTPError:
            return None
        if response.status_code != 200 or len(response.content) > MAX_WELL_KNOWN_BYTES:
            return None
        try:
            body = response.json()
        except ValueError:
            return None
        delegated = body.get("m.server") if isinstance(body, Mapping) else None
        return delegated if isinstance(delegated, str) and delegated else None

    # Rooms ---------------------------------------------------------------------

    async def _admin(self, name: str) -> SynapseAdmin:
        async with self._admins_lock:
            if name not in self._admins:
                self._admins[name] = await self._stack.enter_async_context(
                    service_client(self._deployment, name, self._ssl)
                )
            return self._admins[name]

    async def room_facts(self, room_id: str, user_id: str) -> RoomFacts | None:
        """What a homeserver of ours in the room says about the user; None if none is in it.

        A homeserver that is down is passed over: another one in the room
        answers. Only when none could be asked is that the answer.
        """
        names = list(self._deployment.homeservers)
        rooms = await asyncio.gather(
            *(self._room(name, room_id) for name in names), return_exceptions=True
        )
        present, down = [], []
        for name, room in zip(names, rooms, strict=True):
            if isinstance(room, Refused):
                raise room
            if isinstance(room, BaseException):
                logger.warning(
                    "homeserver unavailable", extra={"homeserver": name, "error": repr(room)}
                )
                down.append(name)
            elif room is not None:
                present.append((name, room))
        if not present and down:
            raise Refused(
                f"no homeserver of this deployment in the room could be asked "
                f"({', '.join(down)} unavailable)",
                status=503,
                errcode="M_UNAVAILABLE",
            )
        if not present:
            return None
        by_server = {hs.server_name: n for n, hs in self._deployment.homeservers.items()}

        def rank(item: tuple[str, Any]) -> int:
            creator = item[1].creator or ""
            return 0 if by_server.get(creator.partition(":")[2]) == item[0] else 1

        for name, _room in sorted(present, key=rank):
            admin = await self._admin(name)
            try:
                body = await admin.client.request(
                    "GET", f"/_synapse/admin/v1/rooms/{quote(room_id, safe='')}/state"
                )
            except (httpx.HTTPError, SynapseApiError) as error:
                logger.warning(
                    "homeserver unavailable", extra={"homeserver": name, "error": repr(error)}
                )
                continue
            return facts_of_state(room_id, user_id, body.get("state", []))
        raise Refused(
            "no homeserver of this deployment in the room answered",
            status=503,
            errcode="M_UNAVAILABLE",
        )

    async def _room(self, name: str, room_id: str) -> Any:
        """The room as homeserver `name` knows it, if it has members there."""
        admin = await self._admin(name)
        try:
            room = await admin.room(room_id)
        except SynapseApiError as error:
            if error.status == 400:  # not a room ID at all
                raise Refused(f"{room_id!r} is not a room ID") from None
            raise
        return room if room is not None and room.joined_local_members > 0 else None


async def _srv(name: str) -> tuple[str, int] | None:
    """The preferred SRV target (lowest priority, then highest weight), or None."""
    try:
        answer = await dns.asyncresolver.resolve(name, "SRV", lifetime=5.0)
    except (dns.exception.DNSException, OSError):
        return None
    records = sorted(answer, key=lambda r: (r.priority, -r.weight))
    if not records:
        return None
    best = records[0]
    return str(best.target).rstrip("."), int(best.port)
