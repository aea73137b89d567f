"""The Matrix side of a reconcile: the managed rooms and the wanted users as Synapse has them.

`room_state` is pure (state events -> RoomState); `read_matrix_state` asks
Synapse, a few rooms at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterable
from typing import Any

from homeport.groupsync.plan import MatrixState, Member, RoomState, UserState
from homeport.synapse.spaces_api import SpacesApi, StateEvent, UserRow

CONCURRENT_READS = 8
# Up to this many users are asked for one by one (a change touches a few);
# more, and the whole list is cheaper (a thousand users per request).
ONE_BY_ONE = 50
_MEMBERSHIPS = ("join", "invite", "leave", "ban", "knock")


def _level(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def room_state(room_id: str, events: Iterable[StateEvent]) -> RoomState:
    members: dict[str, Member] = {}
    power: dict[str, int] = {}
    users_default = 0
    children: set[str] = set()
    for event in events:
        if event.type == "m.room.member":
            membership = event.content.get("membership")
            if membership in _MEMBERSHIPS:
                members[event.state_key] = Member(membership, event.sender)
        elif event.type == "m.room.power_levels" and event.state_key == "":
            users = event.content.get("users") or {}
            power = {str(user): _level(level) for user, level in users.items()}
            users_default = _level(event.content.get("users_default"))
        elif event.type == "m.space.child" and event.content.get("via"):
            children.add(event.state_key)
    return RoomState(room_id, members, power, users_default, frozenset(children))


async def read_matrix_state(
    api: SpacesApi, aliases: Collection[str], users: Collection[str]
) -> tuple[MatrixState, dict[str, str]]:
    """The rooms behind `aliases` that exist, and those of `users` that exist.

    Also returns alias -> room ID, which the executor starts from.
    """
    limit = asyncio.Semaphore(CONCURRENT_READS)

    async def one(alias: str) -> tuple[str, RoomState | None]:
        async with limit:
            room_id = await api.resolve(alias)
            if room_id is None:
                return alias, None
            events = await api.state(room_id)
        return alias, None if events is None else room_state(room_id, events)

    async def each(user_id: str) -> UserRow | None:
        async with limit:
            return await api.user(user_id)

    found = await asyncio.gather(*(one(alias) for alias in aliases))
    rooms = {alias: state for alias, state in found if state is not None}
    wanted = set(users)
    if len(wanted) <= ONE_BY_ONE:
        rows = [row for row in await asyncio.gather(*map(each, wanted)) if row is not None]
    else:
        rows = [row for row in await api.users() if row.user_id in wanted]
    bound = await api.directory_accounts() if rows else set()
    existing = {
        row.user_id: UserState(row.displayname, row.deactivated, row.user_id in bound)
        for row in rows
    }
    return MatrixState(rooms, existing), {alias: s.room_id for alias, s in rooms.items()}
