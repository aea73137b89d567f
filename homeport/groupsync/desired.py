"""What the mapping says each space and room should look like, given the directory.

Pure. A subspace's members are members of its parent; a space's child rooms
have the space's members; a power-level group's people become members and get
its level, the highest level winning.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from homeport.config.groupsync import GroupRef, GroupSync, SpaceMapping
from homeport.directory.accounts import skip_reason, user_id_of
from homeport.directory.model import Directory


@dataclass(frozen=True)
class DesiredUser:
    user_id: str
    displayname: str | None
    email: str | None


@dataclass(frozen=True)
class DesiredRoom:
    """One managed space or room: who should be in it, with which power, and why."""

    alias: str
    name: str
    is_space: bool
    parent: str | None  # the alias of the space it is a child of
    members: dict[str, str]  # user ID -> why (the group that brings them)
    power: dict[str, int]  # user ID -> level, for members of power-level groups
    complete: bool = True  # False: a group was missing, so nobody may be removed here
    problems: tuple[str, ...] = ()
    power_why: dict[str, str] = field(default_factory=dict)  # user ID -> the group giving it


@dataclass(frozen=True)
class DesiredState:
    rooms: dict[str, DesiredRoom]  # by alias, parents before children
    users: dict[str, DesiredUser]  # everyone some room wants
    problems: tuple[str, ...] = field(default=())


class _Resolver:
    def __init__(
        self, directory: Directory, server_name: str, bot_localparts: Iterable[str]
    ) -> None:
        self.directory = directory
        self.server_name = server_name
        self.bot_localparts = tuple(bot_localparts)
        self.users: dict[str, DesiredUser] = {}
        self.problems: list[str] = []

    def people(self, ref: GroupRef, where: str) -> dict[str, str] | None:
        """User IDs in the group `ref` names, with the reason; None if the group is
        missing or ambiguous: then nobody may be removed where it counts."""
        groups = self.directory.find_group(ref)
        if len(groups) != 1:
            found = "is not in the directory" if not groups else "names several groups"
            self.problems.append(
                f"group {str(ref)!r} ({where}) {found}: nobody is removed there until it is fixed"
                + ("; name it by `ldap_dn`" if groups else "")
            )
            return None
        group = groups[0]
        out: dict[str, str] = {}
        for person in sorted(self.directory.people_in(group), key=lambda p: p.dn):
            skipped = skip_reason(person, self.bot_localparts)
            user_id = user_id_of(person, self.server_name)
            if skipped is not None or user_id is None:
                self.problems.append(skipped or f"{person.dn}: skipped")
                continue
            self.users.setdefault(user_id, DesiredUser(user_id, person.displayname, person.email))
            out[user_id] = f"group {group.cn}"
        return out


def _space_rooms(
    space: SpaceMapping, parent: str | None, resolver: _Resolver, out: dict[str, DesiredRoom]
) -> DesiredRoom:
    """Fill `out` with this space, its rooms and its subspaces; return this space."""
    start = len(resolver.problems)
    found = resolver.people(space.group, f"space {space.alias!r}")
    complete = found is not None
    members = dict(found or {})
    power: dict[str, int] = {}
    power_why: dict[str, str] = {}
    for group, level in space.power_groups.items():
        holders = resolver.people(group, f"power levels of space {space.alias!r}")
        if holders is None:
            complete = False
            continue
        for user_id, why in holders.items():
            members.setdefault(user_id, why)
            if level >= power.get(user_id, level):
                power[user_id] = level
                power_why[user_id] = f"{why} gives {level}"
    out[space.alias] = placeholder = DesiredRoom(space.alias, space.name, True, parent, {}, {})
    for sub in space.subspaces:
        child = _space_rooms(sub, space.alias, resolver, out)
        complete = complete and child.complete
        for user_id in child.members:
            members.setdefault(user_id, f"subspace {sub.alias}")
    problems = tuple(resolver.problems[start:])
    room = DesiredRoom(
        space.alias, space.name, True, parent, members, power, complete, problems, power_why
    )
    assert out[space.alias] is placeholder
    out[space.alias] = room
    for alias in space.rooms:
        out[alias] = DesiredRoom(
            alias,
            alias,
            False,
            space.alias,
            dict.fromkeys(members, f"space {space.alias}"),
            dict(power),
            complete,
            problems,
            power_why,
        )
    return room


def desired_state(
    sync: GroupSync, directory: Directory, server_name: str, bot_localparts: Iterable[str]
) -> DesiredState:
    """`bot_localparts`: the homeserver's audit bots, accounts Homeport owns (see
    `homeport.identities`): nobody in the directory is mapped onto them."""
    resolver = _Resolver(directory, server_name, bot_localparts)
    rooms: dict[str, DesiredRoom] = {}
    for space in sync.spaces:
        _space_rooms(space, None, resolver, rooms)
    return DesiredState(rooms, resolver.users, tuple(dict.fromkeys(resolver.problems)))


def changed_rooms(before: DesiredState | None, after: DesiredState) -> set[str]:
    """The aliases whose wanted members or power differ: all that a directory change
    can make group sync do (display names aside)."""
    if before is None:
        return set(after.rooms)
    return {
        alias
        for alias, room in after.rooms.items()
        if (old := before.rooms.get(alias)) is None
        or (old.members.keys(), old.power, old.complete)
        != (room.members.keys(), room.power, room.complete)
    }


def changed_users(before: DesiredState | None, after: DesiredState) -> set[str]:
    if before is None:
        return set(after.users)
    return {uid for uid, user in after.users.items() if before.users.get(uid) != user}


def internal_aliases(desired: DesiredState, server_name: str, internal: Iterable[str]) -> set[str]:
    """The managed rooms that belong to an internal space (`policy.rooms.internal_spaces`,
    made whole): the space itself or one it sits in. Group sync creates them non-federated,
    since the Homeport module refuses a federated room as an internal space's child."""
    wanted = set(internal)
    found: set[str] = set()
    for alias in desired.rooms:
        here: str | None = alias
        while here is not None:
            if f"#{here}:{server_name}" in wanted:
                found.add(alias)
                break
            parent = desired.rooms.get(here)
            here = parent.parent if parent is not None else None
    return found
