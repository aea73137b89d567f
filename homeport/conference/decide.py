"""What the conference service decides, without I/O: whose token, which room, what power.

The adapters (`homeport.conference.matrix`) fetch; these functions judge.
Answers follow the reference verification service (matrix-user-verification-
service), so that Prosody's `mod_auth_matrix_user_verification` reads them
unchanged: `user_id`, `results: {user, room_membership}` and
`power_levels: {room, user}` (the room's power levels without their `users`
map, and the user's own level).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_STATE_DEFAULT = 50


class Refused(Exception):
    """The request cannot be vouched for; the message says why (never a secret).

    Client-facing endpoints answer `status` with `{errcode, error}`; the
    verification endpoints turn it into `results` that prove nothing.
    """

    def __init__(self, message: str, status: int = 401, errcode: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.errcode = errcode or ("M_UNAUTHORIZED" if status == 401 else "M_FORBIDDEN")


def allowed_server(server_name: str, allowed: Iterable[str]) -> None:
    if server_name not in set(allowed):
        raise Refused(f"users of {server_name} are not vouched for here")


def user_of_userinfo(server_name: str, body: object) -> str:
    """The user ID a homeserver's `openid/userinfo` vouches for, if it is one of its own.

    A token presented under another server's name is refused: a server can
    only vouch for its own users.
    """
    sub = body.get("sub") if isinstance(body, Mapping) else None
    if not isinstance(sub, str) or not sub.startswith("@"):
        raise Refused(f"{server_name} did not name a user for this token")
    if not sub.endswith(f":{server_name}"):
        raise Refused(f"{server_name} named {sub}, who is not one of its users")
    return sub


def user_level(power_levels: Mapping[str, Any], user_id: str) -> int:
    users = power_levels.get("users")
    if isinstance(users, Mapping) and isinstance(users.get(user_id), int):
        return int(users[user_id])
    default = power_levels.get("users_default", 0)
    return int(default) if isinstance(default, int) else 0


@dataclass(frozen=True)
class RoomFacts:
    """What a homeserver of the deployment in the room knows about one user there."""

    room_id: str
    membership: str | None  # of the user: join, invite, leave, ban, or None
    power_levels: Mapping[str, Any]
    displayname: str = ""
    avatar_url: str = ""
    creators: tuple[str, ...] = ()  # room version 12: creators outrank every level
    creator: str = ""  # who sent m.room.create: their homeserver hosts the room

    @property
    def joined(self) -> bool:
        return self.membership == "join"

    def level_of(self, user_id: str) -> int:
        if user_id in self.creators:
            return 2**53 - 1  # the "infinite" level of room version 12 creators
        return user_level(self.power_levels, user_id)

    def moderator(self, user_id: str) -> bool:
        needed = self.power_levels.get("state_default", DEFAULT_STATE_DEFAULT)
        needed = needed if isinstance(needed, int) else DEFAULT_STATE_DEFAULT
        return self.level_of(user_id) >= needed


def facts_of_state(room_id: str, user_id: str, state: Iterable[Mapping[str, Any]]) -> RoomFacts:
    """The user's membership and the room's power levels from a room's current state."""
    membership: str | None = None
    power_levels: Mapping[str, Any] = {}
    displayname = avatar = ""
    creators: list[str] = []
    creator = ""
    for event in state:
        kind, key, content = event.get("type"), event.get("state_key"), event.get("content")
        if not isinstance(content, Mapping):
            continue
        if kind == "m.room.member" and key == user_id:
            membership = str(content.get("membership") or "") or None
            displayname = str(content.get("displayname") or "")
            avatar = str(content.get("avatar_url") or "")
        elif kind == "m.room.power_levels" and key == "":
            power_levels = content
        elif kind == "m.room.create" and key == "":
            sender = event.get("sender")
            creator = sender if isinstance(sender, str) else ""
            extra = content.get("additional_creators")
            if content.get("room_version") == "12" and isinstance(sender, str):
                creators = [sender, *(c for c in extra or [] if isinstance(c, str))]
    return RoomFacts(
        room_id, membership, power_levels, displayname, avatar, tuple(creators), creator
    )


def verify_user_answer(user_id: str | None) -> dict[str, Any]:
    return {"results": {"user": user_id is not None}, "user_id": user_id}


def verify_user_in_room_answer(user_id: str | None, facts: RoomFacts | None) -> dict[str, Any]:
    """The reference service's answer: power levels only for a member."""
    if user_id is None:
        return {
            "results": {"user": False, "room_membership": None},
            "user_id": None,
            "power_levels": None,
        }
    if facts is None or not facts.joined:
        return {
            "results": {"user": True, "room_membership": False},
            "user_id": user_id,
            "power_levels": None,
        }
    room = {key: value for key, value in facts.power_levels.items() if key != "users"}
    room.setdefault("state_default", DEFAULT_STATE_DEFAULT)
    level = facts.level_of(user_id)
    return {
        "results": {"user": True, "room_membership": True},
        "user_id": user_id,
        "power_levels": {"room": room, "user": level},
    }
