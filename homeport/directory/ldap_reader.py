"""Reading the directory with python-ldap: people and groups, whole or not at all.

Paged results (RFC 2696) so that reads past the server's size limit come back
complete; Active Directory's ranged attributes (`member;range=0-1499`) read
to the end; the in-chain rule for AD's nested groups, and `primaryGroupID`
for the people whose primary group it is. Any failure (no server
answers, the bind is refused, a search fails or is cut short) raises
DirectoryUnavailable: group sync never plans from a partial directory.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterator
from typing import Any

import ldap
import ldap.filter
from ldap.controls import SimplePagedResultsControl

from homeport.config.groupsync import GroupRef, LdapSettings
from homeport.directory.ldap_connection import (
    UNREACHABLE,
    DirectoryUnavailable,
    close,
    connect,
    describe,
)
from homeport.directory.model import Directory, Group, Person, normal_dn

GROUP_FILTER = (
    "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)"
    "(objectClass=posixGroup)(objectClass=group))"
)
GROUP_ATTRIBUTES = ["cn", "member", "uniqueMember", "memberUid"]
AD_DISABLED_BIT = 2
AD_IN_CHAIN = "1.2.840.113556.1.4.1941"
AD_ENABLED_ONLY = "(!(userAccountControl:1.2.840.113556.1.4.803:=2))"
_RANGE = re.compile(r"^(?P<name>[^;]+);range=(?P<low>\d+)-(?P<high>\d+|\*)$", re.IGNORECASE)
# Results that say "you got part of the entries".
_TOO_MANY = (ldap.SIZELIMIT_EXCEEDED, ldap.ADMINLIMIT_EXCEEDED)
_TOO_LONG = (ldap.TIMELIMIT_EXCEEDED, ldap.TIMEOUT)
_PARTIAL = "nothing is read rather than a part"

Attributes = dict[str, list[bytes]]


# Pure helpers --------------------------------------------------------------------


def people_filter(settings: LdapSettings) -> str:
    """Who counts as a person; on AD, enabled accounts only."""
    base = settings.people_filter
    if not base.startswith("("):
        base = f"({base})"
    return f"(&{base}{AD_ENABLED_ONLY})" if settings.active_directory else base


def in_chain_filter(settings: LdapSettings, group_dn: str, primary: Collection[int] = ()) -> str:
    """People in `group_dn` at any depth, resolved by Active Directory itself; and
    people whose primary group (`primaryGroupID`) is one of `primary`, the relative
    IDs of the group and the groups in it: AD lists nobody in their primary group's
    `member` (nor that group in their `memberOf`), so Domain Users would be empty."""
    escaped = ldap.filter.escape_filter_chars(group_dn)
    chain = f"(memberOf:{AD_IN_CHAIN}:={escaped})"
    if primary:
        chain = "(|" + chain + "".join(f"(primaryGroupID={rid})" for rid in primary) + ")"
    return f"(&{people_filter(settings)}{chain})"


def relative_id(sid: bytes) -> int | None:
    """The last part of a binary `objectSid` (S-1-5-21-...-513 -> 513): what the
    `primaryGroupID` of the group's primary members holds."""
    if len(sid) < 12 or len(sid) != 8 + 4 * sid[1]:
        return None
    return int.from_bytes(sid[-4:], "little")


def strip_unique_member(value: str) -> str:
    """`uniqueMember` may end in an optional `#'0101'B` uid: the DN is before it."""
    head, sep, tail = value.rpartition("#")
    if sep and re.fullmatch(r"'[01]*'B", tail):
        return head
    return value


def parse_range(attribute: str) -> tuple[str, int, int | None] | None:
    """`member;range=0-1499` -> ("member", 0, 1499); the last range ends in `*` (None)."""
    match = _RANGE.match(attribute)
    if match is None:
        return None
    high = match["high"]
    return match["name"], int(match["low"]), None if high == "*" else int(high)


def range_request(name: str, low: int, range_size: int | None) -> str:
    """`member;range=1500-*` (as many as the server hands out at once), or with
    `range_size`, exactly that many: `member;range=1500-1999`."""
    high = "*" if range_size is None else str(low + range_size - 1)
    return f"{name};range={low}-{high}"


def merge_ranges(
    dn: str,
    attrs: Attributes,
    fetch: Callable[[str], Attributes],
    range_size: int | None = None,
) -> Attributes:
    """AD hands out big multi-valued attributes a range at a time: ask `fetch` (a read
    of `dn` for one attribute) for the next ranges until one ends in `*`, and file
    every value under the plain name. A range that does not follow is an error.
    `range_size` asks for that many values a time instead of the server's own step."""
    out: Attributes = {}
    for key, values in attrs.items():
        parsed = parse_range(key)
        if parsed is None:
            out.setdefault(key, []).extend(values)
            continue
        name, _low, high = parsed
        collected = list(values)
        while high is not None:
            step = _next_range(name, high, fetch(range_request(name, high + 1, range_size)))
            if step is None:
                raise DirectoryUnavailable(
                    f"the directory stopped handing out {name} of {dn} after value {high}: "
                    "the group probably changed while it was read; the next run reads it again"
                )
            collected += step[0]
            high = step[1]
        out.setdefault(name, []).extend(collected)
    return out


def _next_range(name: str, high: int, found: Attributes) -> tuple[list[bytes], int | None] | None:
    """The values and the new upper end of the range right after `high`, if it came."""
    for key, values in found.items():
        parsed = parse_range(key)
        if parsed and parsed[0].lower() == name.lower() and parsed[1] == high + 1:
            return values, parsed[2]
    return None


def _first(attrs: Attributes, name: str) -> str | None:
    values = _values(attrs, name)
    return values[0] if values else None


def _values(attrs: Attributes, name: str) -> list[str]:
    """Every value of `name` as text (attribute names are case-insensitive)."""
    return [
        value.decode("utf-8", errors="replace")
        for key, values in attrs.items()
        if key.lower() == name.lower()
        for value in values
    ]


# Searching ------------------------------------------------------------------------


def _search_failed(base: str, error: ldap.LDAPError) -> DirectoryUnavailable:
    if isinstance(error, ldap.NO_SUCH_OBJECT):
        return DirectoryUnavailable(
            f"{base} does not exist in the directory ({describe(error)}): check "
            "group_sync.ldap.user_base and group_base"
        )
    if isinstance(error, _TOO_MANY):
        return DirectoryUnavailable(
            f"the directory cut the search under {base} short ({describe(error)}), even "
            f"though it was read in pages; {_PARTIAL}. Let the bind DN page through every "
            "entry (OpenLDAP: size.prtotal=unlimited in its limits)"
        )
    if isinstance(error, _TOO_LONG):
        return DirectoryUnavailable(
            f"the search under {base} took too long and was cut short ({describe(error)}); "
            f"{_PARTIAL}. Raise group_sync.ldap.timeout, or the server's time limit for the "
            "bind DN"
        )
    if isinstance(error, UNREACHABLE):
        return DirectoryUnavailable(
            f"the directory stopped answering during the search under {base}: {describe(error)}"
        )
    return DirectoryUnavailable(f"the search under {base} failed: {describe(error)}")


def paged_search(
    conn: Any, base: str, filterstr: str, attributes: list[str], page_size: int
) -> Iterator[tuple[str, Attributes]]:
    """Every entry, a page at a time; a search cut short raises DirectoryUnavailable."""
    control = SimplePagedResultsControl(True, size=page_size, cookie="")
    while True:
        try:
            msgid = conn.search_ext(
                base, ldap.SCOPE_SUBTREE, filterstr, attributes, serverctrls=[control]
            )
            _type, data, _msgid, controls = conn.result3(msgid)
        except ldap.LDAPError as error:
            raise _search_failed(base, error) from error
        for dn, attrs in data:
            if dn is not None:  # a continuation reference (AD's DNS zones): not an entry
                yield dn, attrs
        cookie = next(
            (c.cookie for c in controls if c.controlType == SimplePagedResultsControl.controlType),
            None,
        )
        if not cookie:
            return
        control.cookie = cookie


def _fetch_attribute(conn: Any, dn: str) -> Callable[[str], Attributes]:
    """A read of one attribute of `dn`, for `merge_ranges`."""

    def fetch(attribute: str) -> Attributes:
        try:
            found = conn.search_s(dn, ldap.SCOPE_BASE, "(objectClass=*)", [attribute])
        except ldap.LDAPError as error:
            raise DirectoryUnavailable(
                f"reading {attribute} of {dn} failed: {describe(error)}"
            ) from error
        return dict(found[0][1]) if found and found[0][0] is not None else {}

    return fetch


def person_of(settings: LdapSettings, dn: str, attrs: Attributes) -> Person | None:
    localpart = _first(attrs, settings.localpart_attribute)
    if not localpart:
        return None
    control = _first(attrs, "userAccountControl")
    if control and control.lstrip("-").isdigit() and int(control) & AD_DISABLED_BIT:
        return None  # a disabled AD account, even under a custom filter
    return Person(
        dn,
        localpart.lower(),
        _first(attrs, settings.attributes.displayname),
        _first(attrs, settings.attributes.email),
        _first(attrs, "uid"),
    )


def group_of(dn: str, attrs: Attributes) -> Group:
    members = _values(attrs, "member") + [
        strip_unique_member(v) for v in _values(attrs, "uniqueMember")
    ]
    return Group(
        dn,
        _first(attrs, "cn") or dn.split(",", 1)[0].partition("=")[2],
        frozenset(members),
        frozenset(_values(attrs, "memberUid")),
    )


def person_attributes(settings: LdapSettings) -> list[str]:
    """What `person_of` reads of an entry."""
    attributes = [
        settings.localpart_attribute,
        settings.attributes.displayname,
        settings.attributes.email,
        "uid",
    ]
    if settings.active_directory:
        attributes.append("userAccountControl")
    return attributes


def _read_people(conn: Any, settings: LdapSettings) -> list[Person]:
    found = paged_search(
        conn,
        settings.user_base,
        people_filter(settings),
        person_attributes(settings),
        settings.page_size,
    )
    return [person for dn, attrs in found if (person := person_of(settings, dn, attrs))]


def _read_groups(
    conn: Any, settings: LdapSettings, range_size: int | None
) -> tuple[list[Group], dict[str, int]]:
    """Every group, and on AD each group's relative ID (by normal DN)."""
    attributes = list(GROUP_ATTRIBUTES)
    if range_size is not None:
        attributes = [range_request(a, 0, range_size) if a == "member" else a for a in attributes]
    if settings.active_directory:
        attributes.append("objectSid")
    found = paged_search(conn, settings.group_base, GROUP_FILTER, attributes, settings.page_size)
    groups: list[Group] = []
    rids: dict[str, int] = {}
    for dn, attrs in found:
        merged = merge_ranges(dn, attrs, _fetch_attribute(conn, dn), range_size)
        groups.append(group_of(dn, merged))
        sid = next((v[0] for k, v in merged.items() if k.lower() == "objectsid" and v), None)
        if sid is not None and (rid := relative_id(sid)) is not None:
            rids[normal_dn(dn)] = rid
    return groups, rids


def read_directory(
    settings: LdapSettings,
    in_chain: Collection[GroupRef] = (),
    *,
    range_size: int | None = None,
    factory: Callable[[str], Any] = ldap.initialize,
) -> Directory:
    """Every person and group; on AD, the groups in `in_chain` resolved by the
    server. Synchronous: run it in a thread from async code.

    `range_size` reads `member` that many values at a time, as Active Directory
    hands it out past its MaxValRange (1,500) unasked; Samba answers ranges only
    when asked, so the tests force them with it against a real domain controller
    (and see the requests through `factory`, as in `connect`)."""
    if range_size is not None and range_size < 1:
        raise ValueError(f"range_size must be at least 1, not {range_size}")
    conn = connect(settings, factory)
    try:
        people = _read_people(conn, settings)
        groups, rids = _read_groups(conn, settings, range_size)
        if settings.active_directory and in_chain:
            groups = _resolve_in_chain(conn, settings, groups, in_chain, rids)
        return Directory(tuple(people), tuple(groups))
    finally:
        close(conn)


def _nested(group: Group, by_dn: dict[str, Group]) -> set[str]:
    """The normal DNs of `group` and of every group in it that was read; cycles end."""
    seen: set[str] = set()
    pending = [group]
    while pending:
        current = pending.pop()
        key = normal_dn(current.dn)
        if key not in seen:
            seen.add(key)
            pending += [by_dn[m] for m in map(normal_dn, current.members) if m in by_dn]
    return seen


def _resolve_in_chain(
    conn: Any,
    settings: LdapSettings,
    groups: list[Group],
    refs: Collection[GroupRef],
    rids: dict[str, int],
) -> list[Group]:
    """The groups `refs` name, found as group sync finds them, with `resolved` set to
    every person in them, at any depth, their primary members included."""
    found_by = Directory((), tuple(groups))
    wanted = {normal_dn(g.dn) for ref in refs for g in found_by.find_group(ref)}
    by_dn = {normal_dn(g.dn): g for g in groups}
    out = []
    for group in groups:
        if normal_dn(group.dn) in wanted:
            primary = sorted({rids[dn] for dn in _nested(group, by_dn) if dn in rids})
            found = paged_search(
                conn,
                settings.user_base,
                in_chain_filter(settings, group.dn, primary),
                ["1.1"],
                settings.page_size,
            )
            resolved = frozenset(dn for dn, _attrs in found)
            group = Group(group.dn, group.cn, group.members, group.member_uids, resolved)
        out.append(group)
    return out
