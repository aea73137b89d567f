"""What the admin website needs of the homeservers, as protocols it is built with.

`create_app` takes a `Homeservers`; `LiveHomeservers` (homeport.admin.synapse)
talks to the real Synapses, a recorded fake can stand in where a test is
about the page and not about Synapse. Every call is made as the logged-in
admin (`admin(name, token)`), so Synapse authorises each one.
"""

from __future__ import annotations

from typing import Any, Protocol

from homeport.synapse.admin_api import DestinationListing, DestinationQuery
from homeport.synapse.models import (
    AuditMembership,
    Destination,
    DestinationRoomsPage,
    InternalSpacesReport,
    MixedRoomsReport,
    Room,
    RoomPage,
    Undelivered,
)
from homeport.synapse.spaces_api import SpacesApi


class NotAdminError(Exception):
    """The credentials are right but the user is not a server admin."""


class HomeserverAdmin(Protocol):
    """The part of Synapse's admin API the website reads and changes."""

    async def destinations_with_counts(
        self, query: DestinationQuery, also: tuple[str, ...] = ()
    ) -> DestinationListing: ...

    async def destinations_given(
        self,
        query: DestinationQuery,
        names: list[str],
        rest_from: int,
        also: tuple[str, ...] = (),
    ) -> DestinationListing: ...

    async def facts(
        self, destinations: list[str]
    ) -> tuple[dict[str, int], dict[str, Undelivered]]: ...

    async def destination(self, destination: str) -> Destination | None: ...

    async def destination_rooms(
        self, destination: str, start: int = 0, limit: int = 1
    ) -> DestinationRoomsPage: ...

    async def room(self, room_id: str) -> Room | None: ...

    async def rooms(self, start: int = 0, limit: int = 50, search: str = "") -> RoomPage: ...

    async def reset_connection(self, destination: str) -> bool: ...

    async def audit_add(self, room: str, by: str) -> AuditMembership: ...

    async def audit_remove(self, room: str, by: str) -> AuditMembership: ...

    async def directory_login(self) -> dict[str, Any] | None: ...

    async def internal_spaces(self) -> InternalSpacesReport: ...

    async def mixed_rooms(self, allowed: list[str]) -> MixedRoomsReport: ...


class Homeservers(Protocol):
    """The deployment's homeservers, as the website's admins reach them."""

    async def login(self, name: str, user: str, password: str) -> tuple[str, str]:
        """(user_id, access token) of a server admin of `name`; NotAdminError otherwise."""
        ...

    async def logout(self, name: str, token: str) -> None:
        """End a token; quietly, when it is gone already or the server is down."""
        ...

    async def is_admin(self, name: str, token: str, user_id: str) -> bool:
        """Whether the token still belongs to a server admin (False when it is gone)."""
        ...

    def admin(self, name: str, token: str) -> HomeserverAdmin: ...

    def spaces(self, name: str, token: str) -> SpacesApi:
        """Rooms and their state, as the logged-in admin (the Internal spaces remedy)."""
        ...

    async def undelivered(self, name: str) -> tuple[list[Undelivered], int]:
        """Every destination `name` owes events, as Homeport's service account (metrics)."""
        ...

    async def directory_login(self, name: str) -> dict[str, Any] | None:
        """Whether directory login works on `name` (None: it has none), as the service
        account (metrics)."""
        ...

    async def aclose(self) -> None: ...
