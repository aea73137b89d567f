"""The Synapse paths group sync uses: rooms and spaces it owns, their members, users.

Called with the token of Homeport's service account, a server admin that
creates and administers the mapped spaces. Synapse has no admin kick, so
kicks and state go through the client API as that account; joins use the
admin join API (the service account is in the room, so Synapse lets it
join people who were never invited).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from homeport.identities import DIRECTORY_AUTH_PROVIDER, localpart_of
from homeport.synapse.api import SynapseApiError, SynapseClient
from homeport.synapse_module.contract import DIRECTORY_ACCOUNTS_PATH

V3 = "/_matrix/client/v3"
ADMIN_V1 = "/_synapse/admin/v1"
ADMIN_V2 = "/_synapse/admin/v2"
USERS_PAGE = 1000
RATE_LIMIT_TRIES = 5


def _q(value: str) -> str:
    return quote(value, safe="")


def create_room_body(
    localpart: str, name: str, space: bool, federate: bool = True
) -> dict[str, Any]:
    """The `createRoom` request for a room or space group sync keeps: private, invite-only;
    non-federated (`federate` False) for one that belongs to an internal space."""
    body: dict[str, Any] = {
        "name": name,
        "room_alias_name": localpart,
        "preset": "private_chat",
        "visibility": "private",
        "initial_state": [
            {
                "type": "m.room.history_visibility",
                "state_key": "",
                "content": {"history_visibility": "shared"},
            }
        ],
    }
    content: dict[str, Any] = {}
    if space:
        content["type"] = "m.space"
    if not federate:
        content["m.federate"] = False
    if content:
        body["creation_content"] = content
    return body


@dataclass(frozen=True)
class StateEvent:
    type: str
    state_key: str
    sender: str
    content: dict[str, Any]


@dataclass(frozen=True)
class UserRow:
    user_id: str
    displayname: str | None
    deactivated: bool


async def rate_limited(call: Any, *args: Any, **kwargs: Any) -> Any:
    """Call, waiting out Synapse's `M_LIMIT_EXCEEDED` as long as `retry_after_ms` says."""
    for attempt in range(RATE_LIMIT_TRIES):
        try:
            return await call(*args, **kwargs)
        except SynapseApiError as error:
            if error.status != 429 or attempt == RATE_LIMIT_TRIES - 1:
                raise
            await asyncio.sleep(min(max(error.retry_after_ms, 100), 30_000) / 1000)
    raise AssertionError("unreachable")


def directory_id(user_id: str) -> dict[str, str]:
    """The external ID that binds an account to its directory person (see identities)."""
    return {"auth_provider": DIRECTORY_AUTH_PROVIDER, "external_id": localpart_of(user_id)}


class SpacesApi:
    def __init__(self, client: SynapseClient, server_name: str) -> None:
        self.client = client
        self.server_name = server_name

    def alias(self, localpart: str) -> str:
        return f"#{localpart}:{self.server_name}"

    async def resolve(self, localpart: str) -> str | None:
        """The room an alias of this server points to; None if none does."""
        try:
            body = await self.client.request(
                "GET", f"{V3}/directory/room/{_q(self.alias(localpart))}"
            )
        except SynapseApiError as error:
            if error.status == 404:
                return None
            raise
        return str(body["room_id"])

    async def state(self, room_id: str) -> list[StateEvent] | None:
        """A room's current state (admin API); None if Synapse does not know the room."""
        try:
            body = await self.client.request("GET", f"{ADMIN_V1}/rooms/{_q(room_id)}/state")
        except SynapseApiError as error:
            if error.status in (400, 404):
                return None
            raise
        return [
            StateEvent(
                str(event.get("type", "")),
                str(event.get("state_key", "")),
                str(event.get("sender", "")),
                event.get("content") or {},
            )
            for event in body.get("state", [])
        ]

    async def user(self, user_id: str) -> UserRow | None:
        """One local user; None if Synapse has no such account."""
        try:
            body = await self.client.request("GET", f"{ADMIN_V2}/users/{_q(user_id)}")
        except SynapseApiError as error:
            if error.status == 404:
                return None
            raise
        return UserRow(user_id, body.get("displayname"), bool(body.get("deactivated")))

    async def users(self) -> list[UserRow]:
        """Every local user, deactivated ones too, a thousand per request."""
        found: list[UserRow] = []
        start: str | None = "0"
        while start is not None:
            body = await self.client.request(
                "GET",
                f"{ADMIN_V2}/users",
                params={"from": start, "limit": USERS_PAGE, "guests": "false"},
            )
            found += [
                UserRow(
                    str(user["name"]),
                    user.get("displayname"),
                    bool(user.get("deactivated")),
                )
                for user in body.get("users", [])
            ]
            token = body.get("next_token")
            start = None if token is None else str(token)
        return found

    async def create(self, localpart: str, name: str, space: bool, federate: bool = True) -> str:
        """A private, invite-only room or space owned by the service account."""
        body = create_room_body(localpart, name, space, federate)
        answer = await rate_limited(self.client.request, "POST", f"{V3}/createRoom", json=body)
        return str(answer["room_id"])

    async def create_room(self, body: dict[str, Any]) -> str:
        """A room as `body` asks (a `createRoom` request)."""
        answer = await rate_limited(self.client.request, "POST", f"{V3}/createRoom", json=body)
        return str(answer["room_id"])

    @contextlib.asynccontextmanager
    async def as_user(self, user_id: str) -> AsyncIterator[SpacesApi]:
        """This API acting as local user `user_id` (a token minted by the admin API), for
        what only that user may do; the token is logged out on exit."""
        body = await self.client.request("POST", f"{ADMIN_V1}/users/{_q(user_id)}/login", json={})
        view = SpacesApi(self.client.as_user(str(body["access_token"])), self.server_name)
        try:
            yield view
        finally:
            with contextlib.suppress(SynapseApiError):
                await view.client.logout()

    async def join_self(self, room_id: str) -> None:
        """Join a room as the client's own user (one it may join, or is invited to)."""
        await rate_limited(self.client.request, "POST", f"{V3}/join/{_q(room_id)}", json={})

    async def make_room_admin(self, room_id: str, user_id: str) -> None:
        """Give a local user the highest power in a room, through a local member who has
        it (Synapse's admin API; it invites a user who is not in the room; refused when no
        local member can)."""
        await self.client.request(
            "POST", f"{ADMIN_V1}/rooms/{_q(room_id)}/make_room_admin", json={"user_id": user_id}
        )

    async def put_state(
        self, room_id: str, event_type: str, state_key: str, content: dict[str, Any]
    ) -> None:
        await rate_limited(
            self.client.request,
            "PUT",
            f"{V3}/rooms/{_q(room_id)}/state/{_q(event_type)}/{_q(state_key)}",
            json=content,
        )

    async def get_state(self, room_id: str, event_type: str, state_key: str = "") -> Any:
        return await self.client.request(
            "GET", f"{V3}/rooms/{_q(room_id)}/state/{_q(event_type)}/{_q(state_key)}"
        )

    async def provision(self, user_id: str, displayname: str | None) -> None:
        """A user without a local password: they log in with their directory password.
        Bound to the directory (its external ID), which is what lets them log in."""
        body: dict[str, Any] = {"admin": False, "external_ids": [directory_id(user_id)]}
        if displayname:
            body["displayname"] = displayname
        await rate_limited(self.client.request, "PUT", f"{ADMIN_V2}/users/{_q(user_id)}", json=body)

    async def directory_accounts(self) -> set[str]:
        """The accounts bound to the directory (created by it, or linked on purpose)."""
        body = await self.client.request("GET", DIRECTORY_ACCOUNTS_PATH)
        return {str(user) for user in body.get("user_ids", [])}

    async def link(self, user_id: str) -> None:
        """Bind an existing account to the directory person of the same name, keeping the
        account's other external IDs (Synapse's PUT replaces the whole list)."""
        body = await self.client.request("GET", f"{ADMIN_V2}/users/{_q(user_id)}")
        ids = [
            {"auth_provider": i["auth_provider"], "external_id": i["external_id"]}
            for i in body.get("external_ids") or []
            if i.get("auth_provider") != DIRECTORY_AUTH_PROVIDER
        ]
        await rate_limited(
            self.client.request,
            "PUT",
            f"{ADMIN_V2}/users/{_q(user_id)}",
            json={"external_ids": [*ids, directory_id(user_id)]},
        )

    async def set_displayname(self, user_id: str, displayname: str) -> None:
        await rate_limited(
            self.client.request,
            "PUT",
            f"{ADMIN_V2}/users/{_q(user_id)}",
            json={"displayname": displayname},
        )

    async def membership(self, room_id: str, user_id: str) -> str | None:
        """The user's membership of a room the service account is in; None if none."""
        try:
            event = await self.get_state(room_id, "m.room.member", user_id)
        except SynapseApiError as error:
            if error.status == 404:
                return None
            raise
        membership = event.get("membership") if isinstance(event, dict) else None
        return str(membership) if membership else None

    async def join(self, room_id: str, user_id: str) -> None:
        await rate_limited(
            self.client.request,
            "POST",
            f"{ADMIN_V1}/join/{_q(room_id)}",
            json={"user_id": user_id},
        )

    async def server_admins(self) -> list[str]:
        """This homeserver's active server admins (the admin API's `admins` filter)."""
        found: list[str] = []
        start: str | None = "0"
        while start is not None:
            body = await self.client.request(
                "GET",
                f"{ADMIN_V2}/users",
                params={
                    "from": start,
                    "limit": USERS_PAGE,
                    "admins": "true",
                    "deactivated": "false",
                    "guests": "false",
                },
            )
            found += [str(user["name"]) for user in body.get("users", [])]
            token = body.get("next_token")
            start = None if token is None else str(token)
        return found

    async def send_message(self, room_id: str, txn_id: str, content: dict[str, Any]) -> str:
        """An `m.room.message` as the client's own user; the same `txn_id` sends it once."""
        body = await rate_limited(
            self.client.request,
            "PUT",
            f"{V3}/rooms/{_q(room_id)}/send/m.room.message/{_q(txn_id)}",
            json=content,
        )
        return str(body["event_id"])

    async def kick(self, room_id: str, user_id: str, reason: str) -> None:
        await rate_limited(
            self.client.request,
            "POST",
            f"{V3}/rooms/{_q(room_id)}/kick",
            json={"user_id": user_id, "reason": reason},
        )
