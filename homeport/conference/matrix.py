"""The conference service's reads of Matrix: whose OpenID token, and the room's state.

A token is checked with the homeserver it names, through the server-server
API (`openid/userinfo`, which a closed `federation_domain_whitelist` does not
block), TLS verified against the deployment's CA and the system store; a
partner is reached only at addresses `homeport.conference.fetch` checked. Room
membership and power levels come from a homeserver of the deployment that is
in the room, through its admin API as Homeport's service account: the room's
creator's homeserver when it is one of ours, otherwise any that has members
there.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import time
from functools import partial

import httpx

from homeport.conference.decide import (
    Refused,
    RoomFacts,
    allowed_server,
    facts_of_state,
    user_of_userinfo,
)
from homeport.conference.fetch import (
    WELL_KNOWN_PORT,
    Blocked,
    Fetcher,
    TooLarge,
    Unreachable,
    WellKnowns,
    srv,
)
from homeport.conference.limits import TokenCache
from homeport.conference.outbound import MAX_USERINFO_BYTES
from homeport.conference.resolve import resolve
from homeport.config.deployment import Deployment
from homeport.synapse.admin_api import SynapseAdmin
from homeport.synapse.api import SynapseApiError
from homeport.synapse.service_account import service_client
from homeport.synapse_module.contract import ROOM_MEMBER_PATH
from homeport.trust import client_ssl_context

logger = logging.getLogger("homeport.conference")

USERINFO_PATH = "/_matrix/federation/v1/openid/userinfo"
# A room still being joined (partial state) makes Synapse wait for its full
# state; another homeserver of ours in the room answers meanwhile.
ROOM_TIMEOUT = 5.0
MAX_OUTBOUND = 32  # concurrent checks with homeservers: a flood waits, it does not fan out


def conference_ssl_context(deployment: Deployment) -> ssl.SSLContext:
    """The deployment's trust, plus the system store: allowed servers may use a public CA."""
    context = client_ssl_context(deployment)
    context.load_default_certs()
    return context


class Matrix:
    """Checks OpenID tokens and reads rooms; one per service process."""

    def __init__(
        self,
        deployment: Deployment,
        ssl_context: ssl.SSLContext,
        well_known_port: int = WELL_KNOWN_PORT,  # the spec's; tests serve partners elsewhere
    ) -> None:
        assert deployment.conference is not None
        self._deployment = deployment
        self._ssl = ssl_context
        self._fetcher = Fetcher(ssl_context, deployment.conference.private_address_rules)
        self._well_knowns = WellKnowns(self._fetcher, well_known_port)
        self._slots = asyncio.Semaphore(MAX_OUTBOUND)
        self._stack = contextlib.AsyncExitStack()
        self._admins: dict[str, SynapseAdmin] = {}
        self._admins_lock = asyncio.Lock()
        self.own_servers = {hs.server_name for hs in deployment.homeservers.values()}
        self.allowed_servers = self.own_servers | set(deployment.conference.allow_homeservers)
        self.cache = TokenCache()
        self._names_by_server = {hs.server_name: n for n, hs in deployment.homeservers.items()}

    async def aclose(self) -> None:
        await self._stack.aclose()
        await self._fetcher.aclose()

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
        checked = server_name not in self.own_servers  # a partner's answers choose addresses
        async with self._slots:
            well_known = partial(self._well_knowns.lookup, checked=checked)
            target = await resolve(server_name, well_known, srv)
            try:
                answer = await self._fetcher.get(
                    target,
                    USERINFO_PATH,
                    params={"access_token": token},
                    limit=MAX_USERINFO_BYTES,
                    checked=checked,
                )
            except Blocked as error:
                raise Refused(
                    f"{server_name} resolves to an address this service does not connect to: "
                    f"{error}"
                ) from None
            except TooLarge:
                raise Refused(
                    f"{server_name} answered more than {MAX_USERINFO_BYTES} bytes for this token"
                ) from None
            except Unreachable as error:
                raise Refused(
                    f"{server_name} cannot be reached ({error}); try again when it is back",
                    status=503,
                    errcode="M_UNAVAILABLE",
                ) from None
        if answer.status == 401:
            raise Refused(f"{server_name} does not know this token (expired or never issued)")
        if answer.status != 200:
            raise Refused(
                f"{server_name} answered {answer.status} for this token",
                status=503 if answer.status >= 500 else 401,
            )
        try:
            body = json.loads(answer.body)
        except ValueError:
            raise Refused(f"{server_name} did not answer with JSON") from None
        return user_of_userinfo(server_name, body)

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

        A member's own homeserver is in the room whenever they are, so when it
        is one of ours it is asked alone (one request, the common case). Else,
        or when it is not in the room, every homeserver of ours is asked.
        """
        home = self._names_by_server.get(user_id.partition(":")[2])
        if home is not None:
            try:
                facts = await self._room_member(home, room_id, user_id)
            except (httpx.HTTPError, SynapseApiError) as error:
                logger.warning(
                    "homeserver unavailable", extra={"homeserver": home, "error": repr(error)}
                )
            else:
                if facts is not None:
                    return facts
        return await self._any_room_facts(room_id, user_id)

    async def _any_room_facts(self, room_id: str, user_id: str) -> RoomFacts | None:
        """Every homeserver of ours asked at once; the room's creator's is believed first.

        One that is down or slow is passed over; only when none could be asked
        is that the answer.
        """
        names = list(self._deployment.homeservers)
        answers = await asyncio.gather(
            *(self._room_member(name, room_id, user_id) for name in names),
            return_exceptions=True,
        )
        present: list[tuple[str, RoomFacts]] = []
        down: list[str] = []
        for name, answer in zip(names, answers, strict=True):
            if isinstance(answer, Refused):
                raise answer
            if isinstance(answer, BaseException):
                logger.warning(
                    "homeserver unavailable", extra={"homeserver": name, "error": repr(answer)}
                )
                down.append(name)
            elif answer is not None:
                present.append((name, answer))
        if not present:
            if down:
                raise Refused(
                    f"no homeserver of this deployment in the room could be asked "
                    f"({', '.join(down)} unavailable)",
                    status=503,
                    errcode="M_UNAVAILABLE",
                )
            return None

        def rank(item: tuple[str, RoomFacts]) -> int:
            creator = item[1].creator.partition(":")[2]
            return 0 if self._names_by_server.get(creator) == item[0] else 1

        return sorted(present, key=rank)[0][1]

    async def _room_member(self, name: str, room_id: str, user_id: str) -> RoomFacts | None:
        """Homeserver `name`'s view of the user in the room, if it is in the room."""
        admin = await self._admin(name)
        try:
            body = await admin.client.request(
                "GET",
                ROOM_MEMBER_PATH,
                params={"room_id": room_id, "user_id": user_id},
                timeout=ROOM_TIMEOUT,
            )
        except SynapseApiError as error:
            if error.status == 400:
                raise Refused(
                    f"{room_id!r} is not a room ID", status=400, errcode="M_INVALID_PARAM"
                ) from None
            raise
        if not body.get("in_room"):
            return None
        return facts_of_state(room_id, user_id, body.get("state", []))
