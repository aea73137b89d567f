"""The audit bot's mark and its rights in a room's state: pure, table-tested, read by
the rules (`audit_rules`) on every event they judge."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeport.synapse_module.contract import MARK


def domain_of(user_id: str) -> str:
    return user_id.split(":", 1)[1]


def not_local_message(bot: str, home: str | None) -> str:
    if home is None:
        return (
            f"The audit bot {bot} can only be added to rooms created on its own homeserver, "
            "and this server does not know which server created this room."
        )
    return (
        f"The audit bot {bot} can only be added to rooms created on its own homeserver; "
        f"this room was created on {home}."
    )


def power_of(state: dict[tuple[str, str], Any], user_id: str) -> float:
    """A member's power level, creators unlimited where the room version says so."""
    create = state[("m.room.create", "")]
    creators = {create.sender, *create.content.get("additional_creators", [])}
    version = getattr(create, "room_version", None)
    if getattr(version, "msc4289_creator_power_enabled", False) and user_id in creators:
        return float("inf")
    levels = state.get(("m.room.power_levels", ""))
    if levels is None:
        return 100.0 if user_id == create.sender else 0.0
    users = levels.content.get("users", {})
    return float(users.get(user_id, levels.content.get("users_default", 0)))


def best_inviter(state: dict[tuple[str, str], Any], is_mine: Any, bot: str) -> str | None:
    """The joined local member with the most power, if that power suffices to invite."""
    levels = state.get(("m.room.power_levels", ""))
    needed = float(levels.content.get("invite", 0)) if levels is not None else 0.0
    members = [
        key[1]
        for key, event in state.items()
        if key[0] == "m.room.member"
        and key[1] != bot
        and event.content.get("membership") == "join"
        and is_mine(key[1])
    ]
    ranked = sorted(members, key=lambda user: (-power_of(state, user), user))
    if ranked and power_of(state, ranked[0]) >= needed:
        return ranked[0]
    return None


def is_joined(state: dict[tuple[str, str], Any], user_id: str) -> bool:
    member = state.get(("m.room.member", user_id))
    return member is not None and member.content.get("membership") == "join"


def valid_mark(content: Any) -> dict[str, Any] | None:
    """The recording mark, as a plain dict (Synapse hands events' content in frozen)."""
    mark = content.get(MARK) if isinstance(content, Mapping) else None
    if isinstance(mark, Mapping) and mark.get("recording") is True:
        return dict(mark)
    return None


def marked_content(content: dict[str, Any], before: Any, displayname: str) -> dict[str, Any]:
    """The bot's join as Homeport sets it: its display name, and its recording mark (the
    one this event carries, else the one it had, else a plain one)."""
    previous = None
    if before is not None and before.content.get("membership") == "join":
        previous = valid_mark(before.content)
    mark = valid_mark(content) or previous or {"recording": True, "added_by": "unknown"}
    return {**content, "displayname": displayname, MARK: mark}


def mark_changed(content: Mapping[str, Any], marked: dict[str, Any]) -> bool:
    same_name = content.get("displayname") == marked["displayname"]
    return not same_name or valid_mark(content) != marked[MARK]


def upgrade_problem(
    recorded_room: str, tombstone_sender: str, create: Any, server_name: str
) -> str | None:
    """Why a tombstone's replacement is not a real upgrade of the recorded room, if not.

    A real upgrade's successor names the recorded room as predecessor in its
    create event, which the upgrader sent on this homeserver; anything else
    (a room of someone else's, a direct chat) is not the bot's to enter.
    """
    if create is None:
        return "this homeserver is not in that room"
    predecessor = create.content.get("predecessor")
    if not isinstance(predecessor, dict) or predecessor.get("room_id") != recorded_room:
        return (
            "that room is not an upgrade of this one (its create event names no such predecessor)"
        )
    if domain_of(create.sender) != server_name:
        return f"that room was created on {domain_of(create.sender)}, not on {server_name}"
    if create.sender != tombstone_sender:
        return (
            f"that room was created by {create.sender}, not by {tombstone_sender}, "
            "who sent the tombstone"
        )
    return None
