"""Internal spaces read from Synapse's tables: which rooms they hold, which of those federate.

Functions of a database cursor (Synapse's `LoggingTransaction`, or any DB-API cursor with
`?` placeholders), with no Synapse import, so tests run them on a database of their own.
They read the current state (`current_state_events`) and the events' JSON (`event_json`),
tables Synapse has kept for years. A whole walk runs in one transaction: the rooms of the
internal spaces come out of one consistent view of the state.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

MAX_INTERNAL_ROOMS = 5000  # a walk stops there: a bound on what one check may read

_STATE_SQL = """
    SELECT c.room_id, c.state_key, j.json
    FROM current_state_events AS c
    JOIN event_json AS j ON j.event_id = c.event_id
    WHERE c.type = ? AND c.room_id IN ({placeholders})
"""

_LINKS_TO_SQL = """
    SELECT c.room_id, c.state_key, j.json
    FROM current_state_events AS c
    JOIN event_json AS j ON j.event_id = c.event_id
    WHERE c.type = 'm.space.child' AND c.state_key IN ({placeholders})
"""

_MEMBERS_SQL = """
    SELECT room_id, state_key, membership
    FROM current_state_events
    WHERE type = 'm.room.member' AND room_id IN ({placeholders})
        AND membership IN ('join', 'invite', 'knock')
"""


def linked(content: Any) -> bool:
    """Whether an `m.space.child` or `m.space.parent` content links (a `via` that is not
    empty); an empty content is how a child is removed. Events' contents are mappings
    that are not dicts (Synapse freezes them)."""
    via = content.get("via") if isinstance(content, Mapping) else None
    return isinstance(via, list) and bool(via)


def _chunks(values: list[str], size: int = 500) -> Iterable[list[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _state(txn: Any, event_type: str, room_ids: Iterable[str]) -> list[tuple[str, str, Any]]:
    """(room, state key, content) of the current `event_type` events of `room_ids`."""
    rows: list[tuple[str, str, Any]] = []
    for chunk in _chunks(sorted(set(room_ids))):
        sql = _STATE_SQL.format(placeholders=", ".join("?" for _ in chunk))
        txn.execute(sql, [event_type, *chunk])
        rows += [(room, key, json.loads(raw).get("content")) for room, key, raw in txn.fetchall()]
    return rows


def children(txn: Any, room_ids: Iterable[str]) -> dict[str, list[str]]:
    """The rooms each of `room_ids` holds as a space (its linked `m.space.child` events)."""
    found: dict[str, list[str]] = {}
    for room, child, content in _state(txn, "m.space.child", room_ids):
        if linked(content):
            found.setdefault(room, []).append(child)
    return found


def internal_rooms(txn: Any, roots: Iterable[str]) -> set[str]:
    """The internal spaces and every room and subspace they hold, recursively, as this
    server knows them (a room it is not in has no state here, so no children)."""
    seen = set(roots)
    frontier = set(seen)
    while frontier and len(seen) < MAX_INTERNAL_ROOMS:
        below = {c for kids in children(txn, frontier).values() for c in kids}
        frontier = below - seen
        seen |= frontier
    return seen


def federates(txn: Any, room_ids: Iterable[str]) -> dict[str, bool]:
    """Whether each room federates, from its create event; rooms this server does not know
    are left out. Only a literal `true` or no `m.federate` at all federates."""
    return {
        room: content.get("m.federate", True) is True
        for room, _key, content in _state(txn, "m.room.create", room_ids)
        if isinstance(content, dict)
    }


# Join rules and history visibility that make Synapse describe a room (name, topic, member
# count, children) to any server that asks for a space's hierarchy, federated room or not.
OPEN_JOIN_RULES = ("public", "knock", "knock_restricted")
OPEN_HISTORY = "world_readable"


def exposed(txn: Any, room_ids: Iterable[str]) -> set[str]:
    """Those of `room_ids` whose join rule or history visibility lets Synapse describe
    them to other servers (its room hierarchy API does not look at `m.federate`)."""
    rooms = set(room_ids)
    open_rule = {
        room
        for room, _k, c in _state(txn, "m.room.join_rules", rooms)
        if isinstance(c, dict) and c.get("join_rule") in OPEN_JOIN_RULES
    }
    readable = {
        room
        for room, _k, c in _state(txn, "m.room.history_visibility", rooms)
        if isinstance(c, dict) and c.get("history_visibility") == OPEN_HISTORY
    }
    return open_rule | readable


def resolve(txn: Any, references: Iterable[str]) -> dict[str, str | None]:
    """Each reference (an alias of this server, or a room ID) with the room it names now;
    None for an alias that names no room (yet)."""
    found: dict[str, str | None] = {}
    aliases = sorted({r for r in references if r.startswith("#")})
    for chunk in _chunks(aliases):
        placeholders = ", ".join("?" for _ in chunk)
        txn.execute(
            f"SELECT room_alias, room_id FROM room_aliases WHERE room_alias IN ({placeholders})",  # noqa: S608 - placeholders only
            chunk,
        )
        found.update(dict(txn.fetchall()))
    return {r: (r if r.startswith("!") else found.get(r)) for r in references}


@dataclass(frozen=True)
class SpaceRoom:
    """One room of the internal spaces, as the drift report shows it."""

    room_id: str
    known: bool  # this server is in it (else nothing else is known)
    federates: bool
    space: bool
    name: str | None
    exposed: bool  # Synapse describes it to other servers (join rule, history visibility)
    parents: tuple[str, ...]  # the internal spaces that hold it
    remote_members: tuple[str, ...]  # other servers' users joined, invited or knocking
    outside_parents: tuple[str, ...]  # spaces that federate, outside the internal ones, holding it


def describe(
    txn: Any, references: Iterable[str], server_name: str
) -> tuple[dict[str, str | None], list[SpaceRoom]]:
    """Each reference with its room, and every room of the internal spaces with what drift
    needs of it: whether it federates, other servers' users in it, and spaces outside the
    internal ones that hold it."""
    resolved = resolve(txn, references)
    rooms = internal_rooms(txn, [r for r in resolved.values() if r is not None])
    flags = federates(txn, rooms)
    kinds = {
        room: isinstance(c, dict) and c.get("type") == "m.space"
        for room, _k, c in _state(txn, "m.room.create", rooms)
    }
    names = {room: c.get("name") for room, _k, c in _state(txn, "m.room.name", rooms) if c}
    open_rooms = exposed(txn, rooms)
    held_by: dict[str, list[str]] = {}
    for parent, kids in children(txn, rooms).items():
        for kid in kids:
            held_by.setdefault(kid, []).append(parent)
    outside: dict[str, list[str]] = {}
    for chunk in _chunks(sorted(rooms)):
        txn.execute(_LINKS_TO_SQL.format(placeholders=", ".join("?" for _ in chunk)), chunk)
        for parent, child, raw in txn.fetchall():
            if parent not in rooms and linked(json.loads(raw).get("content")):
                outside.setdefault(child, []).append(parent)
    # Only spaces that federate: the module lets a non-federated space hold an internal one.
    federated_parents = federates(txn, {p for ps in outside.values() for p in ps})
    outside = {
        child: [p for p in parents if federated_parents.get(p, True)]
        for child, parents in outside.items()
    }
    remote: dict[str, list[str]] = {}
    for chunk in _chunks(sorted(rooms)):
        txn.execute(_MEMBERS_SQL.format(placeholders=", ".join("?" for _ in chunk)), chunk)
        for room, user, _membership in txn.fetchall():
            if user.partition(":")[2] != server_name:
                remote.setdefault(room, []).append(user)
    return resolved, [
        SpaceRoom(
            room_id=room,
            known=room in flags,
            federates=flags.get(room, True),
            space=kinds.get(room, False),
            name=names.get(room) if isinstance(names.get(room), str) else None,
            exposed=room in open_rooms,
            parents=tuple(sorted(held_by.get(room, []))),
            remote_members=tuple(sorted(remote.get(room, []))),
            outside_parents=tuple(sorted(outside.get(room, []))),
        )
        for room in sorted(rooms)
    ]
