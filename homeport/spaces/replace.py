"""The remedy for a federated room in an internal space: a non-federated replacement.

`m.federate` never changes after creation, and Synapse's own upgrade copies it (the
Homeport module refuses that upgrade). So the replacement is made the way an upgrade
is, as the logged-in server admin: a new room, non-federated, with the old room's
name, topic, avatar, encryption and power levels, naming the old one as its
predecessor (Element: "This room is a continuation of another conversation"); the old
room tombstoned towards it (Element: "This room has been replaced and is no longer
active", with a link); the internal space holding the new room instead of the old; and
the old room's members of this server joined to the new one. Other servers' members
cannot follow: the old room stays theirs, read-only in Element.

In room version 12 only a room's creators may tombstone it: the admin does it in the name
of a creator of this server (Synapse's admin API mints the creator a token, logged out at
once), and the recorded action says so. `replacement_body` is pure; `replace_room` is
the I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from homeport.synapse.api import SynapseApiError
from homeport.synapse.spaces_api import SpacesApi, StateEvent

COPIED = ("m.room.avatar", "m.room.encryption", "m.room.guest_access")
TOMBSTONE_BODY = "This room has been replaced by a non-federated room of its internal space."


def _domain(user_id: str) -> str:
    return user_id.partition(":")[2]


def replacement_body(
    state: list[StateEvent], old_room: str, parent: str, server_name: str, creator: str
) -> dict[str, Any]:
    """The `createRoom` request of the replacement. Pure."""
    current = {(e.type, e.state_key): e.content for e in state}
    body: dict[str, Any] = {
        "preset": "private_chat",
        "creation_content": {"m.federate": False, "predecessor": {"room_id": old_room}},
        "initial_state": [
            {"type": "m.space.parent", "state_key": parent, "content": {"via": [server_name]}},
            {
                "type": "m.room.join_rules",
                "state_key": "",
                "content": {
                    "join_rule": "restricted",
                    "allow": [{"type": "m.room_membership", "room_id": parent}],
                },
            },
        ],
    }
    name = current.get(("m.room.name", ""), {}).get("name")
    topic = current.get(("m.room.topic", ""), {}).get("topic")
    if isinstance(name, str) and name:
        body["name"] = name
    if isinstance(topic, str) and topic:
        body["topic"] = topic
    for kind in COPIED:
        content = current.get((kind, ""))
        if content:
            body["initial_state"].append({"type": kind, "state_key": "", "content": content})
    history = current.get(("m.room.history_visibility", ""), {}).get("history_visibility")
    if history in ("invited", "joined", "shared"):
        body["initial_state"].append(
            {
                "type": "m.room.history_visibility",
                "state_key": "",
                "content": {"history_visibility": history},
            }
        )
    levels = current.get(("m.room.power_levels", ""))
    if isinstance(levels, dict):
        # This server's users keep their power; other servers' cannot come; the creator
        # is the room's creator (room version 12 keeps creators out of the map).
        users = {
            user: level
            for user, level in (levels.get("users") or {}).items()
            if _domain(user) == server_name and user != creator
        }
        body["power_level_content_override"] = {
            **{k: v for k, v in levels.items() if k != "users"},
            "users": users,
        }
    return body


@dataclass(frozen=True)
class Replaced:
    old_room: str
    new_room: str
    moved: tuple[str, ...]  # this server's members, joined to the new room
    left: tuple[str, ...]  # other servers' members, who stay in the old one
    tombstoned: bool
    problems: tuple[str, ...]  # what could not be done, in words


async def replace_room(api: SpacesApi, room_id: str, parent: str, admin_user: str) -> Replaced:
    """Replace `room_id`, held by the internal space `parent`, as server admin `admin_user`."""
    state = await api.state(room_id)
    if state is None:
        raise LookupError(f"{api.server_name} does not know room {room_id}")
    members = [
        e.state_key
        for e in state
        if e.type == "m.room.member" and e.content.get("membership") == "join"
    ]
    local = [m for m in members if _domain(m) == api.server_name]
    remote = tuple(m for m in members if _domain(m) != api.server_name)
    new_room = await api.create_room(
        replacement_body(state, room_id, parent, api.server_name, admin_user)
    )
    problems: list[str] = []
    tombstoned = await _tombstone(api, room_id, new_room, admin_user, state, problems)
    try:
        await _as_room_admin(api, parent, admin_user)
        await api.put_state(parent, "m.space.child", new_room, {"via": [api.server_name]})
        await api.put_state(parent, "m.space.child", room_id, {})
    except SynapseApiError as error:
        problems.append(f"the space still lists the old room: {error}")
    moved = []
    for user in local:
        if user == admin_user:
            continue
        try:
            await api.join(new_room, user)
        except SynapseApiError as error:
            problems.append(f"{user} was not moved: {error}")
        else:
            moved.append(user)
    return Replaced(room_id, new_room, tuple(moved), remote, tombstoned, tuple(problems))


async def _as_room_admin(api: SpacesApi, room_id: str, user: str) -> None:
    """Make `user` (the API's own) a member of `room_id` who may send any state there."""
    try:
        await api.make_room_admin(room_id, user)
    except SynapseApiError as error:
        if error.status != 400:  # 400: already the room's admin, or a creator (v12)
            raise
    await api.join_self(room_id)  # invited by the above when not a member yet


def creators(state: list[StateEvent]) -> list[str]:
    """Who created the room (room version 12's additional creators too). Pure."""
    create = next((e for e in state if e.type == "m.room.create"), None)
    if create is None:
        return []
    extra = create.content.get("additional_creators") or []
    return [create.sender, *(str(u) for u in extra if isinstance(u, str))]


async def _tombstone(
    api: SpacesApi,
    room_id: str,
    new_room: str,
    user: str,
    state: list[StateEvent],
    problems: list[str],
) -> bool:
    """Tombstone the old room as the admin; where only its creators may (room version
    12), in the name of a creator of this server, whose minted token is logged out."""
    content = {"body": TOMBSTONE_BODY, "replacement_room": new_room}
    try:
        await _as_room_admin(api, room_id, user)
        await api.put_state(room_id, "m.room.tombstone", "", content)
        return True
    except SynapseApiError as error:
        refused = error
    for creator in creators(state):
        if _domain(creator) != api.server_name:
            continue
        try:
            async with api.as_user(creator) as as_creator:
                await as_creator.put_state(room_id, "m.room.tombstone", "", content)
        except SynapseApiError as error:
            refused = error
            continue
        problems.append(f"tombstoned in the name of its creator {creator}")
        return True
    problems.append(
        f"the old room was not tombstoned ({refused}): no member of this server may; its "
        "members are told nothing there"
    )
    return False
