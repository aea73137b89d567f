"""The directory as group sync sees it: people, groups, and who is in which group.

Pure: the LDAP reader (`homeport.directory.ldap_reader`) fills these types;
membership is resolved here, nested groups included and cycles safe, so that
OpenLDAP and Active Directory are planned by the same code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from homeport.config.groupsync import GroupRef


def normal_dn(dn: str) -> str:
    """A DN compared the way directories compare them: case and spaces around the
    separators do not matter. Escaped separators (`\\,`) stay inside their value."""
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for char in dn:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            current.append(char)
            escaped = True
        elif char in ",+":
            parts.append("".join(current).strip() + char)
            current = []
        else:
            current.append(char)
    parts.append("".join(current).strip())
    rdns = []
    for part in parts:
        name, _, value = part.partition("=")
        rdns.append(f"{name.strip()}={value.strip()}")
    return "".join(rdns).lower()


@dataclass(frozen=True)
class Person:
    """One person's entry: where it is and what Matrix takes from it."""

    dn: str
    localpart: str
    displayname: str | None = None
    email: str | None = None
    uid: str | None = None  # what a posixGroup's `memberUid` names


@dataclass(frozen=True)
class Group:
    """One group's entry and its direct members.

    `members` are DNs (`member`, `uniqueMember`), `member_uids` a posixGroup's
    `memberUid`s; `resolved` is set when the server itself resolved the nested
    members (Active Directory's in-chain rule) and then wins.
    """

    dn: str
    cn: str
    members: frozenset[str] = frozenset()
    member_uids: frozenset[str] = frozenset()
    resolved: frozenset[str] | None = None


@dataclass(frozen=True)
class Directory:
    """A consistent read of the directory: every person and every group."""

    people: tuple[Person, ...]
    groups: tuple[Group, ...]
    _people_by_dn: dict[str, Person] = field(init=False, repr=False, compare=False)
    _people_by_uid: dict[str, Person] = field(init=False, repr=False, compare=False)
    _groups_by_dn: dict[str, Group] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_people_by_dn", {normal_dn(p.dn): p for p in self.people})
        object.__setattr__(self, "_people_by_uid", {p.uid.lower(): p for p in self.people if p.uid})
        object.__setattr__(self, "_groups_by_dn", {normal_dn(g.dn): g for g in self.groups})

    def find_group(self, ref: GroupRef) -> list[Group]:
        """The group a DN names, or every group with the cn (several: ambiguous)."""
        if ref.kind == "dn":
            group = self._groups_by_dn.get(normal_dn(ref.value))
            return [] if group is None else [group]
        wanted = ref.value.strip().lower()
        return [g for g in self.groups if g.cn.lower() == wanted]

    def people_in(self, group: Group) -> frozenset[Person]:
        """Everyone in `group`, directly or through nested groups; a cycle ends the walk."""
        found: set[Person] = set()
        seen: set[str] = set()
        pending = [group]
        while pending:
            current = pending.pop()
            key = normal_dn(current.dn)
            if key in seen:
                continue
            seen.add(key)
            if current.resolved is not None:
                found.update(
                    self._people_by_dn[dn]
                    for dn in map(normal_dn, current.resolved)
                    if dn in self._people_by_dn
                )
                continue
            for member in current.members:
                dn = normal_dn(member)
                if dn in self._people_by_dn:
                    found.add(self._people_by_dn[dn])
                elif dn in self._groups_by_dn:
                    pending.append(self._groups_by_dn[dn])
            found.update(
                self._people_by_uid[uid.lower()]
                for uid in current.member_uids
                if uid.lower() in self._people_by_uid
            )
        return frozenset(found)
