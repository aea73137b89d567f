"""Desired state + Matrix state + group sync's own history -> the actions to take.

Pure, like matrix-corporal's reconciler: the executor (`homeport.groupsync.apply`)
only carries the actions out. Rules:

- a wanted member who is not in the room joins it, unless they left by
  themselves, were kicked or banned by someone else than group sync (their
  choice, or a room admin's, stands);
- only people group sync itself added are removed, never those matching the
  protected patterns, and nobody where the directory could not be read whole;
- power levels group sync set are taken back when the group no longer gives
  them, unless someone changed them since;
- a run that would remove more than `max_removal_share` of a room's members
  (and more than one) is guarded: its removals wait for `--force`;
- a directory person binds only to an account the directory created (Synapse
  records it among the account's external IDs) or an administrator linked
  (`homeport groupsync link`): any other existing account of that name is a
  conflict, reported and left alone (never renamed, joined, given power or
  removed). Accounts group sync itself provisioned before accounts were bound
  are bound now, on the word of its own history.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from homeport.groupsync.desired import DesiredRoom, DesiredState

Membership = Literal["join", "invite", "leave", "ban", "knock"]


@dataclass(frozen=True)
class Member:
    membership: Membership
    sender: str  # who sent the membership event: the user, or who kicked or invited


@dataclass(frozen=True)
class RoomState:
    """A managed room as Synapse holds it."""

    room_id: str
    members: Mapping[str, Member]
    power_users: Mapping[str, int]
    users_default: int = 0
    children: frozenset[str] = frozenset()  # room IDs of its m.space.child events


@dataclass(frozen=True)
class UserState:
    displayname: str | None
    deactivated: bool = False
    directory: bool = False  # bound to the directory: created by it, or linked on purpose


@dataclass(frozen=True)
class MatrixState:
    rooms: Mapping[str, RoomState]  # by alias: the managed rooms that exist
    users: Mapping[str, UserState]  # the wanted users that exist


@dataclass(frozen=True)
class Managed:
    """What group sync did to one member of one room, from its history."""

    power_level: int | None = None  # the level group sync last set, if any


# History: room ID -> user ID -> what group sync did there (added, and power).
History = Mapping[str, Mapping[str, Managed]]


ActionKind = Literal[
    "create_space",
    "create_room",
    "link_child",
    "provision_user",
    "link_user",
    "set_displayname",
    "join",
    "set_power",
    "kick",
]


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    room: str | None = None  # an alias; rooms may not exist yet when the plan is made
    user: str | None = None
    value: str | int | None = None  # a name, a display name, a level, the child alias
    why: str = ""

    def describe(self) -> str:
        what = self.kind.replace("_", " ")
        parts = [what]
        if self.user:
            parts.append(self.user)
        if self.room:
            parts.append(("to #" if self.kind in ("join", "link_child") else "in #") + self.room)
        if self.value is not None and self.kind != "link_child":
            parts.append(f"= {self.value}")
        return " ".join(parts)


# The order the executor applies the kinds in: rooms before links, users before joins.
PHASES: tuple[tuple[ActionKind, ...], ...] = (
    ("create_space",),
    ("create_room",),
    ("link_child",),
    ("provision_user", "link_user", "set_displayname"),
    ("join",),
    ("set_power",),
    ("kick",),
)


@dataclass(frozen=True)
class Guard:
    room: str
    removals: int
    members: int

    def describe(self, share: float) -> str:
        return (
            f"#{self.room}: {self.removals} of {self.members} members would be removed, "
            f"more than max_removal_share {share:.0%}"
        )


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...]
    guards: tuple[Guard, ...] = ()
    notes: tuple[str, ...] = ()  # what group sync chose not to do, and why
    conflicts: tuple[str, ...] = ()  # existing accounts the directory may not bind to

    def applicable(self, force: bool) -> tuple[Action, ...]:
        """The actions to apply: a guarded plan removes nobody unless forced."""
        if force or not self.guards:
            return self.actions
        return tuple(a for a in self.actions if a.kind != "kick")

    def count(self, kind: str) -> int:
        return sum(1 for a in self.actions if a.kind == kind)


@dataclass(frozen=True)
class Rules:
    service_user: str  # owns the spaces; its membership is never touched
    protected: tuple[str, ...] = ()  # regexes of user IDs never removed
    max_removal_share: float = 0.2

    def is_protected(self, user_id: str) -> bool:
        return user_id == self.service_user or any(
            re.fullmatch(pattern, user_id) for pattern in self.protected
        )


@dataclass
class _Planner:
    desired: DesiredState
    matrix: MatrixState
    history: History
    rules: Rules
    provisioned: frozenset[str] = frozenset()
    actions: list[Action] = field(default_factory=list)
    guards: list[Guard] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    conflicts: set[str] = field(default_factory=set)

    def rooms(self, room: DesiredRoom) -> None:
        current = self.matrix.rooms.get(room.alias)
        if current is None:
            kind: ActionKind = "create_space" if room.is_space else "create_room"
            self.actions.append(Action(kind, room.alias, value=room.name))
        if room.parent is not None:
            parent = self.matrix.rooms.get(room.parent)
            if current is None or parent is None or current.room_id not in parent.children:
                self.actions.append(Action("link_child", room.parent, value=room.alias))

    def users(self, wanted: Iterable[str]) -> None:
        for user_id in sorted(wanted):
            user = self.desired.users[user_id]
            existing = self.matrix.users.get(user_id)
            if existing is None:
                self.actions.append(Action("provision_user", user=user_id, value=user.displayname))
                continue
            if not existing.directory:
                if user_id not in self.provisioned:
                    self.conflicts.add(user_id)
                    self.notes.append(conflict_note(user_id))
                    continue
                self.actions.append(
                    Action("link_user", user=user_id, why="provisioned by group sync earlier")
                )
            if (
                user.displayname
                and not existing.deactivated
                and existing.displayname != user.displayname
            ):
                self.actions.append(Action("set_displayname", user=user_id, value=user.displayname))

    def joins(self, room: DesiredRoom, current: RoomState | None) -> None:
        for user_id, why in sorted(room.members.items()):
            if user_id in self.conflicts:
                continue
            existing = self.matrix.users.get(user_id)
            if existing is not None and existing.deactivated:
                self.notes.append(f"{user_id} is deactivated: not joined to #{room.alias}")
                continue
            member = None if current is None else current.members.get(user_id)
            if member is None or member.membership in ("invite", "knock"):
                self.actions.append(Action("join", room.alias, user_id, why=why))
            elif member.membership == "join":
                continue
            elif member.membership == "leave" and member.sender == self.rules.service_user:
                self.actions.append(Action("join", room.alias, user_id, why=why))
            elif member.membership == "ban":
                self.notes.append(
                    f"{user_id} was banned from #{room.alias} by {member.sender}: not joined"
                )
            else:
                how = "by themselves" if member.sender == user_id else f"by {member.sender}"
                self.notes.append(f"{user_id} left #{room.alias} {how}: not joined again")

    def power(self, room: DesiredRoom, current: RoomState | None) -> None:
        managed = {} if current is None else self.history.get(current.room_id, {})
        levels = {} if current is None else current.power_users
        default = 0 if current is None else current.users_default
        for user_id, level in sorted(room.power.items()):
            if user_id not in room.members or user_id in self.conflicts:
                continue
            if levels.get(user_id, default) != level:
                why = room.power_why.get(user_id, room.members[user_id])
                self.actions.append(Action("set_power", room.alias, user_id, level, why=why))
        for user_id, done in sorted(managed.items()):
            if done.power_level is None or user_id in room.power:
                continue
            if levels.get(user_id, default) == done.power_level:
                self.actions.append(
                    Action("set_power", room.alias, user_id, None, why="no longer in its group")
                )

    def kicks(self, room: DesiredRoom, current: RoomState | None) -> None:
        if current is None:
            return
        managed = self.history.get(current.room_id, {})
        leaving = [
            user_id
            for user_id, member in sorted(current.members.items())
            if member.membership in ("join", "invite")
            and user_id not in room.members
            and user_id in managed
            and user_id not in self.conflicts
            and not self.rules.is_protected(user_id)
        ]
        if leaving and not room.complete:
            self.notes.append(
                f"#{room.alias}: {len(leaving)} removal(s) held back: the directory "
                "could not say who belongs there"
            )
            return
        joined = sum(1 for m in current.members.values() if m.membership == "join")
        if len(leaving) > 1 and len(leaving) > self.rules.max_removal_share * joined:
            self.guards.append(Guard(room.alias, len(leaving), joined))
        for user_id in leaving:
            self.actions.append(Action("kick", room.alias, user_id, why="not in its groups"))


def conflict_note(user_id: str) -> str:
    return (
        f"{user_id} exists but the directory did not create it: left alone (not renamed, "
        f"joined or removed), and its directory person cannot log in to it; if they are "
        f"the same person, link them on purpose with `homeport groupsync link {user_id}`"
    )


def plan(
    desired: DesiredState,
    matrix: MatrixState,
    history: History,
    rules: Rules,
    only: Iterable[str] | None = None,
    provisioned: Iterable[str] = (),
) -> Plan:
    """The actions that make the rooms in `only` (default: all) what `desired` says.

    `provisioned`: the users group sync's history says it created (bound now if
    Synapse does not say so yet)."""
    wanted = set(desired.rooms) if only is None else set(only)
    planner = _Planner(desired, matrix, history, rules, frozenset(provisioned))
    rooms = [room for alias, room in desired.rooms.items() if alias in wanted]
    for room in rooms:
        planner.rooms(room)
    planner.users({user_id for room in rooms for user_id in room.members})
    for room in rooms:
        current = matrix.rooms.get(room.alias)
        planner.joins(room, current)
        planner.power(room, current)
        planner.kicks(room, current)
    order = {kind: index for index, kinds in enumerate(PHASES) for kind in kinds}
    actions = sorted(planner.actions, key=lambda a: order[a.kind])
    notes = [*(p for room in rooms for p in room.problems), *planner.notes]
    return Plan(
        tuple(actions),
        tuple(planner.guards),
        tuple(dict.fromkeys(notes)),
        tuple(sorted(planner.conflicts)),
    )
