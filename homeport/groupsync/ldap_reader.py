"""Reading the directory with python-ldap: people and groups, whole or not at all.

Paged results (RFC 2696) so that reads past the server's size limit come back
complete; Active Directory's ranged attributes (`member;range=0-1499`) read
to the end; the in-chain rule for AD's nested groups. Any failure (no server
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

from homeport.config.groupsync import LdapSettings
from homeport.config.types import duration_ms
from homeport.errors import HomeportError
from homeport.groupsync.directory import Directory, Group, Person, normal_dn

GROUP_FILTER = (
    "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)"
    "(objectClass=posixGroup)(objectClass=group))"
)
AD_DISABLED_BIT = 2
AD_IN_CHAIN = "1.2.840.113556.1.4.1941"
AD_ENABLED_ONLY = "(!(userAccountControl:1.2.840.113556.1.4.803:=2))"
_RANGE = re.compile(r"^(?P<name>[^;]+);range=(?P<low>\d+)-(?P<high>\d+|\*)$", re.IGNORECASE)


class DirectoryUnavailable(HomeportError):
    """The directory could not be read whole; nothing may be removed on its word."""


# Pure helpers --------------------------------------------------------------------


def people_filter(settings: LdapSettings) -> str:
    """Who counts as a person; on AD, enabled accounts only."""
    base = settings.people_filter
    if not base.startswith("("):
        base = f"({base})"
    return f"(&{base}{AD_ENABLED_ONLY})" if settings.active_directory else base


def in_chain_filter(settings: LdapSettings, group_dn: str) -> str:
    """People in `group_dn` at any depth, resolved by Active Directory itself."""
    escaped = ldap.filter.escape_filter_chars(group_dn)
    return f"(&{people_filter(settings)}(memberOf:{AD_IN_CHAIN}:={escaped}))"


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


def _text(values: list[bytes]) -> list[str]:
    return [v.decode("utf-8", errors="replace") for v in values]


def _first(attrs: dict[str, list[bytes]], name: str) -> str | None:
    for key, values in attrs.items():
        if key.lower() == name.lower() and values:
            return values[0].decode("utf-8", errors="replace")
    return None


def _values(attrs: dict[str, list[bytes]], name: str) -> list[str]:
    return [
        v for key, values in attrs.items() if key.lower() == name.lower() for v in _text(values)
    ]


# Connecting -----------------------------------------------------------------------


def _password(settings: LdapSettings) -> str:
    path = settings.bind_password_file
    assert path is not None
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as error:
        raise DirectoryUnavailable(
            f"cannot read group_sync.ldap.bind_password_file {path}: {error.strerror}"
        ) from error


def _describe(error: ldap.LDAPError) -> str:
    info = error.args[0] if error.args and isinstance(error.args[0], dict) else {}
    text = str(info.get("desc", type(error).__name__))
    if info.get("info"):
        text += f" ({info['info']})"
    return text


def connect(settings: LdapSettings, factory: Callable[[str], Any] = ldap.initialize) -> Any:
    """A bound connection to the first server that answers, tried in `uri` order.

    `factory` makes the connection object for a URI (the watcher's syncrepl
    consumer is one)."""
    seconds = duration_ms(settings.timeout) / 1000
    tried: list[str] = []
    for uri in settings.uri:
        conn = factory(uri)
        conn.set_option(ldap.OPT_PROTOCOL_VERSION, 3)
        conn.set_option(ldap.OPT_REFERRALS, 0)
        conn.set_option(ldap.OPT_NETWORK_TIMEOUT, seconds)
        conn.set_option(ldap.OPT_TIMEOUT, seconds)
        conn.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND)
        if settings.ca_file is not None:
            conn.set_option(ldap.OPT_X_TLS_CACERTFILE, str(settings.ca_file))
        conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)
        try:
            if settings.start_tls and uri.startswith("ldap://"):
                conn.start_tls_s()
            if settings.bind_dn is not None:
                conn.simple_bind_s(settings.bind_dn, _password(settings))
            else:
                conn.simple_bind_s("", "")
        except ldap.INVALID_CREDENTIALS as error:
            conn.unbind_s()
            raise DirectoryUnavailable(
                f"{uri} refused the bind as {settings.bind_dn!r}: wrong DN or password; check "
                "group_sync.ldap.bind_dn and the file bind_password_file"
            ) from error
        except (ldap.SERVER_DOWN, ldap.CONNECT_ERROR, ldap.TIMEOUT, ldap.UNAVAILABLE) as error:
            conn.unbind_s()
            tried.append(f"{uri}: {_describe(error)}")
            continue
        except ldap.LDAPError as error:
            conn.unbind_s()
            raise DirectoryUnavailable(f"{uri}: {_describe(error)}") from error
        return conn
    raise DirectoryUnavailable("no directory server answered: " + "; ".join(tried))


# Searching ------------------------------------------------------------------------


def paged_search(
    conn: Any, base: str, filterstr: str, attributes: list[str], page_size: int
) -> Iterator[tuple[str, dict[str, list[bytes]]]]:
    """Every entry, a page at a time; a search cut short raises DirectoryUnavailable."""
    control = SimplePagedResultsControl(True, size=page_size, cookie="")
    while True:
        try:
            msgid = conn.search_ext(
                base, ldap.SCOPE_SUBTREE, filterstr, attributes, serverctrls=[control]
            )
            _type, data, _msgid, controls = conn.result3(msgid)
        except ldap.NO_SUCH_OBJECT as error:
            raise DirectoryUnavailable(
                f"{base} does not exist in the directory: {_describe(error)}"
            ) from error
        except ldap.LDAPError as error:
            raise DirectoryUnavailable(
                f"the search under {base} failed: {_describe(error)}"
            ) from error
        for dn, attrs in data:
            if dn is not None:  # referrals come without a DN
                yield dn, attrs
        cookie = next(
            (c.cookie for c in controls if c.controlType == SimplePagedResultsControl.controlType),
            None,
        )
        if not cookie:
            return
        control.cookie = cookie


def _complete_ranges(conn: Any, dn: str, attrs: dict[str, list[bytes]]) -> dict[str, list[bytes]]:
    """AD returns big multi-valued attributes a range at a time: fetch the rest."""
    out: dict[str, list[bytes]] = {}
    for key, values in attrs.items():
        parsed = parse_range(key)
        if parsed is None:
            out.setdefault(key, []).extend(values)
            continue
        name, _low, high = parsed
        collected = list(values)
        while high is not None:
            wanted = f"{name};range={high + 1}-*"
            try:
                found = conn.search_s(dn, ldap.SCOPE_BASE, "(objectClass=*)", [wanted])
            except ldap.LDAPError as error:
                raise DirectoryUnavailable(
                    f"reading {name} of {dn} failed: {_describe(error)}"
                ) from error
            more = found[0][1] if found else {}
            step = next(((k, v) for k, v in more.items() if parse_range(k)), None)
            if step is None:
                break
            collected += step[1]
            again = parse_range(step[0])
            assert again is not None
            high = again[2]
        out.setdefault(name, []).extend(collected)
    return out


def _person(settings: LdapSettings, dn: str, attrs: dict[str, list[bytes]]) -> Person | None:
    localpart = _first(attrs, settings.localpart_attribute)
    if not localpart:
        return None
    control = _first(attrs, "userAccountControl")
    if control and control.isdigit() and int(control) & AD_DISABLED_BIT:
        return None  # a disabled AD account, even under a custom filter
    return Person(
        dn,
        localpart.lower(),
        _first(attrs, settings.attributes.displayname),
        _first(attrs, settings.attributes.email),
        _first(attrs, "uid"),
    )


def _group(dn: str, attrs: dict[str, list[bytes]]) -> Group:
    members = _values(attrs, "member") + [
        strip_unique_member(v) for v in _values(attrs, "uniqueMember")
    ]
    return Group(
        dn,
        _first(attrs, "cn") or dn.split(",", 1)[0].partition("=")[2],
        frozenset(members),
        frozenset(_values(attrs, "memberUid")),
    )


def read_directory(settings: LdapSettings, in_chain: Collection[str] = ()) -> Directory:
    """Every person and group; on AD, the groups named in `in_chain` resolved by the server."""
    conn = connect(settings)
    try:
        person_attributes = [
            settings.localpart_attribute,
            settings.attributes.displayname,
            settings.attributes.email,
            "uid",
        ]
        if settings.active_directory:
            person_attributes.append("userAccountControl")
        people = [
            person
            for dn, attrs in paged_search(
                conn,
                settings.user_base,
                people_filter(settings),
                person_attributes,
                settings.page_size,
            )
            if (person := _person(settings, dn, attrs)) is not None
        ]
        groups = [
            _group(dn, _complete_ranges(conn, dn, attrs))
            for dn, attrs in paged_search(
                conn,
                settings.group_base,
                GROUP_FILTER,
                ["cn", "member", "uniqueMember", "memberUid"],
                settings.page_size,
            )
        ]
        if settings.active_directory and in_chain:
            groups = _resolve_in_chain(conn, settings, groups, in_chain)
        return Directory(tuple(people), tuple(groups))
    finally:
        conn.unbind_s()


def _resolve_in_chain(
    conn: Any, settings: LdapSettings, groups: list[Group], names: Collection[str]
) -> list[Group]:
    wanted = {n.lower() for n in names if "=" not in n} | {normal_dn(n) for n in names if "=" in n}
    out = []
    for group in groups:
        if group.cn.lower() in wanted or normal_dn(group.dn) in wanted:
            dns = frozenset(
                dn
                for dn, _attrs in paged_search(
                    conn,
                    settings.user_base,
                    in_chain_filter(settings, group.dn),
                    ["1.1"],
                    settings.page_size,
                )
            )
            group = Group(group.dn, group.cn, group.members, group.member_uids, dns)
        out.append(group)
    return out
