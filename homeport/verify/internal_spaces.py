"""Drift in internal spaces: what was there before the Homeport module guarded them.

`m.federate` is fixed at a room's creation, so a space made internal in homeport.yaml may
already hold rooms that federate, other servers' users, rooms open to other servers' eyes,
or sit in a space that federates. The module keeps new drift out; this finds the old.
`drift` is pure (the module's report in, findings out); `internal_space_drift` asks each
homeserver with internal spaces for its report, as Homeport's service account.
"""

from __future__ import annotations

import ssl

from homeport.config.deployment import Deployment
from homeport.config.policy import internal_space
from homeport.policy.lint.findings import Finding, KeyPath
from homeport.synapse.models import InternalRoom, InternalSpacesReport
from homeport.synapse.service_account import service_client

REPLACE = (
    "replace it with a non-federated room: admin website, Internal spaces, Replace "
    "(its members here move, the old room says where; docs/visibility.md)"
)


ROOT_FEDERATES = (
    "give the address to a new space: remove it from this one (Element: space settings, "
    "published addresses), create the space anew with it (it is made non-federated), and "
    "add the rooms there"
)


def _label(room: InternalRoom) -> str:
    return f"{room.name} ({room.room_id})" if room.name else room.room_id


def _roots(report: InternalSpacesReport, rooms: dict[str, InternalRoom]) -> dict[str, str]:
    """Each room's internal space of homeport.yaml (its reference), by walking parents up."""
    by_room = {room_id: ref for ref, room_id in report.spaces.items() if room_id is not None}
    found: dict[str, str] = {}
    for room_id in rooms:
        walk, seen = [room_id], set()
        while walk:
            here = walk.pop()
            if here in by_room:
                found[room_id] = by_room[here]
                break
            seen.add(here)
            walk += [p for p in rooms[here].parents if p not in seen] if here in rooms else []
    return found


def drift(deployment: Deployment, name: str, report: InternalSpacesReport) -> list[Finding]:
    """What in homeserver `name`'s internal spaces the policy does not hold."""
    hs = deployment.homeservers[name]
    keys: dict[str, KeyPath] = {
        internal_space(ref, hs.server_name): ("policy", "rooms", "internal_spaces", index)
        for index, ref in enumerate(hs.policy.rooms.internal_spaces)
    }
    findings: list[Finding] = []
    for ref, room_id in report.spaces.items():
        if room_id is None:
            findings.append(
                Finding(
                    "internal-space-missing",
                    "warning",
                    name,
                    keys.get(ref, ("policy", "rooms", "internal_spaces")),
                    f"{ref} names no room yet",
                    "Nothing is internal under that name until it exists.",
                    f"create the space with that address (Element: Create a space, address "
                    f"{ref.split(':')[0][1:]}): it is made non-federated and members-only",
                )
            )
    rooms = {room.room_id: room for room in report.rooms}
    roots = _roots(report, rooms)
    for room in report.rooms:
        key = keys.get(roots.get(room.room_id, ""), ("policy", "rooms", "internal_spaces"))
        where = roots.get(room.room_id, "an internal space")
        label = _label(room)
        if not room.known:
            findings.append(
                Finding(
                    "internal-room-unseen",
                    "warning",
                    name,
                    key,
                    f"{label} is held by {where}, but {name} is not in it",
                    "This server cannot tell whether it federates or who is in it.",
                    "remove it from the space, or join it to look",
                )
            )
            continue
        if room.federates:
            root = room.room_id in report.spaces.values()
            findings.append(
                Finding(
                    "internal-room-federates",
                    "error",
                    name,
                    key,
                    f"{label}, {'the' if root else 'in'} internal space {where}, federates",
                    "It was made before it was internal (m.federate never changes after "
                    "creation): other servers' users may join it and read it.",
                    ROOT_FEDERATES if root else REPLACE,
                )
            )
        if room.remote_members:
            shown = ", ".join(room.remote_members[:3])
            more = (
                f" and {len(room.remote_members) - 3} more" if len(room.remote_members) > 3 else ""
            )
            findings.append(
                Finding(
                    "internal-room-remote-members",
                    "error",
                    name,
                    key,
                    f"{label}, in internal space {where}, holds users of other servers: "
                    f"{shown}{more}",
                    "They read everything said there; their servers can let more of theirs in.",
                    REPLACE + "; they cannot follow into it",
                )
            )
        if room.exposed:
            findings.append(
                Finding(
                    "internal-room-exposed",
                    "warning",
                    name,
                    key,
                    f"{label}, in internal space {where}, is open to anyone",
                    "With a public or knocking join rule, or history readable by anyone, "
                    "Synapse describes the room (name, topic, members, rooms) to any server "
                    "that asks for a space's rooms, federated or not.",
                    "set its join rule to space members or invite-only, and its history to "
                    "members only",
                )
            )
        if room.outside_parents:
            findings.append(
                Finding(
                    "internal-space-in-federated-space",
                    "error",
                    name,
                    key,
                    f"{label}, in internal space {where}, is also held by "
                    f"{', '.join(room.outside_parents)}, a space that federates",
                    "Members of that space, other servers' among them, see it listed.",
                    "remove it from that space",
                )
            )
    return findings


async def internal_space_drift(
    deployment: Deployment, context: ssl.SSLContext
) -> dict[str, list[Finding]]:
    """Each homeserver with internal spaces: the drift its module reports."""
    found: dict[str, list[Finding]] = {}
    for name, hs in deployment.homeservers.items():
        if not hs.policy.rooms.internal_spaces:
            continue
        async with service_client(deployment, name, context) as admin:
            report = await admin.internal_spaces()
        found[name] = drift(deployment, name, report)
    return found
