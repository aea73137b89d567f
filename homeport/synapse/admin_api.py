"""Synapse's admin API, typed: every admin path Homeport calls lives here.

A `SynapseAdmin` wraps a `SynapseClient` that carries an admin's token
(Homeport's own service account, or a logged-in admin of the website), so
Synapse itself authorises every call. Answers come back as the types of
`homeport.synapse.models`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

from homeport.synapse.api import RegisteredUser, SynapseApiError, SynapseClient
from homeport.synapse.models import (
    AuditMembership,
    Destination,
    DestinationPage,
    DestinationRoomsPage,
    InternalSpacesReport,
    MixedRoomsReport,
    Room,
    RoomPage,
    Undelivered,
)
from homeport.synapse_module.contract import (
    AUDIT_ADD_PATH,
    AUDIT_REMOVE_PATH,
    BACKGROUND_UPDATES_PATH,
    DELIVERY_PATH,
    DESTINATIONS_PATH,
    DIRECTORY_LOGIN_PATH,
    GIVEN_ORDER,
    INTERNAL_SPACES_PATH,
    MIXED_ROOMS_PATH,
    ROOM_COUNTS_PATH,
)

V1 = "/_synapse/admin/v1"
DESTINATIONS = f"{V1}/federation/destinations"
COUNTS_PER_REQUEST = 50  # short enough for any request line

DestinationOrder = Literal[
    "destination",
    "retry_last_ts",
    "retry_interval",
    "failure_ts",
    "last_successful_stream_ordering",
    "next_attempt",  # the Homeport module's: last failed attempt + retry interval
    "undelivered_since",  # the Homeport module's: the oldest undelivered event first
]
# Orders Synapse's admin API knows; the others need the Homeport module.
SYNAPSE_ORDERS: tuple[DestinationOrder, ...] = (
    "destination",
    "retry_last_ts",
    "retry_interval",
    "failure_ts",
    "last_successful_stream_ordering",
)
Direction = Literal["f", "b"]


@dataclass(frozen=True)
class DestinationQuery:
    """Which page of Synapse's destinations list: paging, order and search."""

    start: int = 0
    limit: int = 100
    order_by: DestinationOrder = "destination"
    direction: Direction = "f"
    search: str = ""  # a case-insensitive substring (undocumented in Synapse)

    def params(self) -> list[tuple[str, str | int]]:
        params: list[tuple[str, str | int]] = [
            ("from", self.start),
            ("limit", self.limit),
            ("order_by", self.order_by),
            ("dir", self.direction),
        ]
        if self.search:
            params.append(("destination", self.search))
        return params


@dataclass(frozen=True)
class DestinationListing:
    """A page of destinations with the room count and delivery state of each listed server."""

    page: DestinationPage
    room_counts: dict[str, int]
    undelivered: dict[str, Undelivered]  # listed servers that lack events


def _undelivered(body: dict[str, Any]) -> dict[str, Undelivered]:
    return {
        name: Undelivered.from_api(name, facts)
        for name, facts in (body.get("undelivered") or {}).items()
    }


def _quoted(value: str) -> str:
    return quote(value, safe="")


class SynapseAdmin:
    """The admin API of one homeserver, as the admin whose token the client carries."""

    def __init__(self, client: SynapseClient) -> None:
        self.client = client

    async def __aenter__(self) -> SynapseAdmin:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.client.aclose()

    async def _get_or_none(self, path: str, **kwargs: Any) -> Any | None:
        """The answer, or None when Synapse says 404 (no such thing)."""
        try:
            return await self.client.request("GET", path, **kwargs)
        except SynapseApiError as error:
            if error.status == 404:
                return None
            raise

    # Users ---------------------------------------------------------------------

    async def register(
        self,
        shared_secret: str,
        localpart: str,
        password: str,
        admin: bool,
        device_name: str | None = None,
    ) -> RegisteredUser:
        """Shared-secret registration, as Synapse's `register_new_matrix_user` does it;
        the session it comes with gets `device_name` (as a login's device would)."""
        nonce = (await self.client.request("GET", f"{V1}/register"))["nonce"]
        mac = hmac.new(shared_secret.encode(), digestmod=hashlib.sha1)
        for part in (nonce, localpart, password):
            mac.update(part.encode() + b"\x00")
        mac.update(b"admin" if admin else b"notadmin")
        request: dict[str, object] = {
            "nonce": nonce,
            "username": localpart,
            "password": password,
            "admin": admin,
            "mac": mac.hexdigest(),
        }
        if device_name is not None:
            request["initial_device_display_name"] = device_name
        body = await self.client.request("POST", f"{V1}/register", json=request)
        return RegisteredUser(body["user_id"], body["access_token"], body["device_id"])

    async def is_admin(self, user_id: str) -> bool:
        """Whether `user_id` is a server admin, asked as that user (403 means no)."""
        try:
            body = await self.client.request("GET", f"{V1}/users/{_quoted(user_id)}/admin")
        except SynapseApiError as error:
            if error.status == 403:
                return False
            raise
        return bool(body.get("admin"))

    async def put_user(self, user_id: str, displayname: str, password: str | None = None) -> None:
        """Create (or update) a user who is not an admin; without `password`, one nobody
        can log in as (an admin mints its tokens) and Synapse hashes nothing."""
        body: dict[str, object] = {"displayname": displayname, "admin": False}
        if password is not None:
            body["password"] = password
        await self.client.request("PUT", f"/_synapse/admin/v2/users/{_quoted(user_id)}", json=body)

    async def login_as(self, user_id: str) -> str:
        """An access token for `user_id`, minted by an admin (no device, no rate limit)."""
        body = await self.client.request("POST", f"{V1}/users/{_quoted(user_id)}/login", json={})
        return str(body["access_token"])

    async def deactivate(self, user_id: str) -> None:
        """Deactivate and erase a user (they leave every room)."""
        await self.client.request(
            "POST", f"{V1}/deactivate/{_quoted(user_id)}", json={"erase": True}
        )

    async def users_named(self, prefix: str) -> list[str]:
        """Active local users whose localpart starts with `prefix` (Synapse's `name` search)."""
        found: list[str] = []
        start: int | None = 0
        while start is not None:
            body = await self.client.request(
                "GET",
                "/_synapse/admin/v2/users",
                params={"name": prefix, "from": start, "limit": 100, "guests": "false"},
            )
            for user in body.get("users", []):
                name = str(user.get("name", ""))
                if name.startswith(f"@{prefix}") and not user.get("deactivated"):
                    found.append(name)
            token = body.get("next_token")
            start = int(token) if token is not None else None
        return found

    async def joined_rooms(self, user_id: str) -> list[str]:
        body = await self.client.request("GET", f"{V1}/users/{_quoted(user_id)}/joined_rooms")
        return [str(room) for room in body.get("joined_rooms", [])]

    async def remove_ratelimit_override(self, user_id: str) -> None:
        """Give a user Synapse's rate limits back; quietly when none was set."""
        try:
            await self.client.request("DELETE", f"{V1}/users/{_quoted(user_id)}/override_ratelimit")
        except SynapseApiError as error:
            if error.status != 404:
                raise

    async def override_ratelimit(self, user_id: str) -> None:
        """Exempt a user from rate limits (service accounts, verify's probes)."""
        await self.client.request(
            "POST",
            f"{V1}/users/{_quoted(user_id)}/override_ratelimit",
            json={"messages_per_second": 0, "burst_count": 0},
        )

    # Rooms ---------------------------------------------------------------------

    async def room(self, room_id: str) -> Room | None:
        body = await self._get_or_none(f"{V1}/rooms/{_quoted(room_id)}")
        return None if body is None else Room.from_api(body)

    async def rooms(self, start: int = 0, limit: int = 50, search: str = "") -> RoomPage:
        params: dict[str, str | int] = {"from": start, "limit": limit, "order_by": "name"}
        if search:
            params["search_term"] = search
        return RoomPage.from_api(await self.client.request("GET", f"{V1}/rooms", params=params))

    async def delete_room(self, room_id: str) -> None:
        """Remove local users from a room and purge it, in the background (admin API v2)."""
        await self.client.request(
            "DELETE", f"/_synapse/admin/v2/rooms/{_quoted(room_id)}", json={"purge": True}
        )

    # The audit bot (the Homeport module) -------------------------------------

    async def audit_add(self, room: str, by: str) -> AuditMembership:
        """Add the audit bot to a room (ID or alias) created on this server; `by` is recorded."""
        body = await self.client.request("POST", AUDIT_ADD_PATH, json={"room": room, "by": by})
        return AuditMembership.from_api(body)

    async def audit_remove(self, room: str, by: str) -> AuditMembership:
        body = await self.client.request("POST", AUDIT_REMOVE_PATH, json={"room": room, "by": by})
        return AuditMembership.from_api(body)

    # Federation ----------------------------------------------------------------

    async def destinations(self, query: DestinationQuery) -> DestinationPage:
        return DestinationPage.from_api(
            await self.client.request("GET", DESTINATIONS, params=query.params())
        )

    async def destinations_with_counts(
        self, query: DestinationQuery, also: tuple[str, ...] = ()
    ) -> DestinationListing:
        """A page of destinations with the facts of each, and of the servers in `also`.

        One request to the Homeport module, which lists the page with Synapse's
        own storage method; two (the admin API, then the facts) on a Synapse
        whose storage the module cannot reach, in Synapse's orders only.
        """
        params = query.params() + [("also", server) for server in also]
        try:
            body = await self.client.request("GET", DESTINATIONS_PATH, params=params)
        except SynapseApiError as error:
            if error.status not in (404, 405):
                raise
        else:
            counts = {d: int(n) for d, n in body.get("room_counts", {}).items()}
            return DestinationListing(DestinationPage.from_api(body), counts, _undelivered(body))
        if query.order_by not in SYNAPSE_ORDERS:
            query = DestinationQuery(query.start, query.limit, "destination", "f", query.search)
        page = await self.destinations(query)
        names = [d.destination for d in page.destinations] + list(also)
        counts, undelivered = await self.facts(list(dict.fromkeys(names)))
        return DestinationListing(page, counts, undelivered)

    async def destinations_given(
        self,
        query: DestinationQuery,
        names: list[str],
        rest_from: int,
        also: tuple[str, ...] = (),
    ) -> DestinationListing:
        """A page the caller orders (the Homeport module's `given` order): the destinations
        in `names` first, in that order, then those with nothing waiting, by name, from
        `rest_from`, to fill `query.limit`; with the facts of each and of `also`."""
        params: list[tuple[str, str | int]] = [
            ("order_by", GIVEN_ORDER),
            ("from", query.start),
            ("limit", query.limit),
            ("rest_from", rest_from),
            ("rest_limit", max(0, query.limit - len(names))),
            *(("name", name) for name in names),
            *(("also", server) for server in also),
        ]
        if query.search:
            params.append(("destination", query.search))
        body = await self.client.request("GET", DESTINATIONS_PATH, params=params)
        counts = {d: int(n) for d, n in body.get("room_counts", {}).items()}
        return DestinationListing(DestinationPage.from_api(body), counts, _undelivered(body))

    async def undelivered(
        self, limit: int = 1000, events: bool = False
    ) -> tuple[list[Undelivered], int]:
        """Every destination that lacks events, the longest waiting first (the first
        `limit`, at most 100,000), and how many lack events in all; with `events`, how
        many events wait for each (a count the module makes only when asked)."""
        params = {"limit": limit, "events": "true" if events else "false"}
        body = await self.client.request("GET", DELIVERY_PATH, params=params)
        rows = [Undelivered.from_api(str(r["destination"]), r) for r in body["undelivered"]]
        return rows, int(body.get("total", len(rows)))

    async def directory_login(self) -> dict[str, Any] | None:
        """Whether directory login works (`homeport.synapse_module.directory_login`); None where
        this homeserver has no directory login."""
        try:
            body = await self.client.request("GET", DIRECTORY_LOGIN_PATH)
        except SynapseApiError as error:
            if error.status in (404, 405):
                return None
            raise
        return dict(body)

    async def internal_spaces(self) -> InternalSpacesReport:
        """The internal spaces and their rooms (the Homeport module's report); empty on a
        homeserver without internal spaces, where the module serves no report."""
        body = await self._get_or_none(INTERNAL_SPACES_PATH)
        return InternalSpacesReport.from_api(body or {})

    async def mixed_rooms(self, allowed: list[str]) -> MixedRoomsReport:
        """The rooms of this server's users that hold servers outside `allowed` (the
        Homeport module's report), and those whose join Synapse has not completed."""
        params = [("allowed", server) for server in allowed]
        body = await self.client.request("GET", MIXED_ROOMS_PATH, params=params)
        return MixedRoomsReport.from_api(body)

    async def pending_background_updates(self) -> list[str]:
        """The background updates Synapse has still to run, next first."""
        body = await self.client.request("GET", BACKGROUND_UPDATES_PATH)
        return [str(name) for name in body["pending"]]

    async def destination(self, destination: str) -> Destination | None:
        body = await self._get_or_none(f"{DESTINATIONS}/{_quoted(destination)}")
        return None if body is None else Destination.from_api(body)

    async def destination_rooms(
        self, destination: str, start: int = 0, limit: int = 1
    ) -> DestinationRoomsPage:
        """The rooms that federate with `destination`; an unknown destination has none."""
        body = await self._get_or_none(
            f"{DESTINATIONS}/{_quoted(destination)}/rooms",
            params={"from": start, "limit": limit},
        )
        return DestinationRoomsPage.from_api(body or {})

    async def count_backing_off(self) -> int:
        """Destinations Synapse is backing off from, reading only those.

        Ordered by retry interval, descending, the failing ones come first: the
        first healthy row ends the count, however many destinations there are.
        """
        failing, start = 0, 0
        while True:
            page = await self.destinations(DestinationQuery(start, 500, "retry_interval", "b"))
            for row in page.destinations:
                if not row.backing_off:
                    return failing
                failing += 1
            if page.next_token is None:
                return failing
            start = page.next_token

    async def facts(self, destinations: list[str]) -> tuple[dict[str, int], dict[str, Undelivered]]:
        """Rooms per destination and what each lacks: one request per 50 to the Homeport
        module; without it, one admin API request per destination and nothing known lacking."""
        if not destinations:
            return {}, {}
        counts = dict.fromkeys(destinations, 0)
        undelivered: dict[str, Undelivered] = {}
        try:
            for start in range(0, len(destinations), COUNTS_PER_REQUEST):
                chunk = destinations[start : start + COUNTS_PER_REQUEST]
                body = await self.client.request(
                    "GET", ROOM_COUNTS_PATH, params=[("destination", d) for d in chunk]
                )
                counts.update({d: int(n) for d, n in body.get("counts", {}).items()})
                undelivered.update(_undelivered(body))
            return counts, undelivered
        except SynapseApiError as error:
            if error.status not in (404, 405):
                raise
        # A homeserver without the Homeport module: Synapse counts one destination at a time.
        limit = asyncio.Semaphore(10)

        async def one(destination: str) -> int:
            async with limit:
                return (await self.destination_rooms(destination)).total

        totals = await asyncio.gather(*(one(d) for d in destinations))
        return dict(zip(destinations, totals, strict=True)), {}

    async def reset_connection(self, destination: str) -> bool:
        """Clear the backoff toward `destination`; False when Synapse had none to clear."""
        try:
            await self.client.request(
                "POST", f"{DESTINATIONS}/{_quoted(destination)}/reset_connection", json={}
            )
        except SynapseApiError as error:
            if error.status in (400, 404):
                return False
            raise
        return True
