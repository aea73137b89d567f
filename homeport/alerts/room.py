"""The administrators' room on each homeserver: made and kept by Homeport's service account.

`#homeport-alerts:<server>`, non-federated (only this server's users can ever
be in it) and invite-only; every server admin of the homeserver is joined
once. One who leaves stays out: their choice is respected, and a new server
admin is joined at the next keeping. Homeport's own accounts are never joined.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from homeport.identities import is_owned
from homeport.synapse.api import SynapseApiError
from homeport.synapse.spaces_api import SpacesApi, create_room_body

ALIAS_LOCALPART = "homeport-alerts"
NAME = "Homeport alerts"
TOPIC = (
    "Federation incidents of this homeserver, told by Homeport: a server that stops "
    "receiving events or answering, and its recovery. Only this server's users can join."
)
KEEP_EVERY_S = 600.0  # server admins named since are joined within this


class AdminsRoom:
    """The room of one homeserver; `room_id()` makes sure it exists and is kept."""

    def __init__(self, api: SpacesApi, bot_localparts: Iterable[str]) -> None:
        self._api = api
        self._bots = tuple(bot_localparts)
        self._room: str | None = None
        self._kept_at = 0.0

    async def room_id(self) -> str:
        """The room's ID, created if missing; its admins joined every KEEP_EVERY_S."""
        if self._room is None:
            self._room = await self._api.resolve(ALIAS_LOCALPART) or await self._create()
        if time.monotonic() - self._kept_at >= KEEP_EVERY_S:
            await self._join_admins(self._room)
            self._kept_at = time.monotonic()
        return self._room

    def forget(self) -> None:
        """After a failure that may mean the room is gone: look it up again next time."""
        self._room = None
        self._kept_at = 0.0

    async def _create(self) -> str:
        body = create_room_body(ALIAS_LOCALPART, NAME, space=False, federate=False)
        body["topic"] = TOPIC
        try:
            return await self._api.create_room(body)
        except SynapseApiError as error:
            if error.errcode != "M_ROOM_IN_USE":
                raise
            # Another process made it a moment ago.
            found = await self._api.resolve(ALIAS_LOCALPART)
            if found is None:
                raise
            return found

    async def _join_admins(self, room_id: str) -> None:
        for user_id in await self._api.server_admins():
            if is_owned(user_id, self._bots):
                continue
            if await self._api.membership(room_id, user_id) is None:
                await self._api.join(room_id, user_id)
