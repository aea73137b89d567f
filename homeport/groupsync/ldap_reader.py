"""Reading the directory with python-ldap: people and groups, whole or not at all.

Paged results (RFC 2696) so that reads past the server's size limit come back
complete; Active Directory's ranged attributes (`member;range=0-1499`) read
to the end; the in-chain rule for AD's nested groups, and `primaryGroupID`
for the people whose primary group it is. Any failure (no server
answers, the bind is refused, a search fails or is cut short) raises
DirectoryUnavailable: group sync never plans from a partial directory.
"""

from __future__ import annotations

import contextlib
import re
import socket
from collections.abc import Callable, Collection, Iterator
from typing import Any
from urllib.parse import urlsplit

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
GROUP_ATTRIBUTES = ["cn", "member", "uniqueMember", "memberUid"]
AD_DISABLED_BIT = 2
AD_IN_CHAIN = "1.2.840.113556.1.4.1941"
AD_ENABLED_ONLY = "(!(userAccountControl:1.2.840.113556.1.4.803:=2))"
_RANGE = re.compile(r"^(?P<name>[^;]+);range=(?P<low>\d+)-(?P<high>\d+|\*)$", re.IGNORECASE)
# Errors that say "this server did not answer": the next URI is tried.
_UNREACHABLE = (ldap.SERVER_DOWN, ldap.CONNECT_ERROR, ldap.TIMEOUT, ldap.UNAVAILABLE, ldap.BUSY)
# Binds refused because the connection is not encrypted (AD's default for simple binds).
_PLAINTEXT_REFUSED = (ldap.STRONG_AUTH_REQUIRED, ldap.CONFIDENTIALITY_REQUIRED)
# Results that say "you got part of the entries".
_TOO_MANY = (ldap.SIZELIMIT_EXCEEDED, ldap.ADMINLIMIT_EXCEEDED)
_TOO_LONG = (ldap.TIMELIMIT_EXCEEDED, ldap.TIMEOUT)
_PARTIAL = "nothing is read rather than a part"

Attributes = dict[str, list[bytes]]


class DirectoryUnavailable(HomeportError):
    """The directory could not be read whole; nothing may be removed on its word."""


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


def describe(error: ldap.LDAPError) -> str:
    """What the server or libldap said, without the noise; never holds a password."""
    info = error.args[0] if error.args and isinstance(error.args[0], dict) else {}
    text = str(info.get("desc", type(error).__name__))
    detail = str(info.get("info") or "")
    if detail and detail != "(unknown error code)":
        text += f" ({detail})"
    return text


# Connecting -----------------------------------------------------------------------


def _password(settings: LdapSettings) -> str:
    path = settings.bind_password_file
    if path is None:
        return ""
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as error:
        raise DirectoryUnavailable(
            f"cannot read group_sync.ldap.bind_password_file {path}: {error.strerror}; "
            "create it with the bind password on one line (mode 0600)"
        ) from error


def _set_options(conn: Any, settings: LdapSettings) -> None:
    """Per-connection options; NEWCTX last, so the TLS context takes the ones before it."""
    seconds = duration_ms(settings.timeout) / 1000
    conn.set_option(ldap.OPT_PROTOCOL_VERSION, 3)
    conn.set_option(ldap.OPT_REFERRALS, 0)
    conn.set_option(ldap.OPT_NETWORK_TIMEOUT, seconds)
    conn.set_option(ldap.OPT_TIMEOUT, seconds)
    conn.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND)
    if settings.ca_file is not None:
        conn.set_option(ldap.OPT_X_TLS_CACERTFILE, str(settings.ca_file))
    conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)


def _close(conn: Any) -> None:
    with contextlib.suppress(ldap.LDAPError):
        conn.unbind_s()


def _port_open(uri: str, seconds: float) -> bool:
    parts = urlsplit(uri)
    port = parts.port or (636 if parts.scheme == "ldaps" else 389)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=seconds):
            return True
    except OSError:
        return False


def _unreachable(uri: str, settings: LdapSettings, error: ldap.LDAPError) -> str:
    """Why `uri` did not answer; a port that answers means TLS failed (libldap won't say)."""
    text = describe(error)
    tls = uri.startswith("ldaps://") or settings.start_tls
    if tls and _port_open(uri, min(duration_ms(settings.timeout) / 1000, 3.0)):
        host = urlsplit(uri).hostname
        trust = f"ca_file {settings.ca_file} holds" if settings.ca_file else "the system's CAs hold"
        text += (
            f"; the server answers but the TLS handshake failed: check that {trust} the CA "
            f"that signed its certificate, and that the certificate names {host}"
        )
    return text


def _bind(conn: Any, settings: LdapSettings, uri: str, password: str) -> None:
    if settings.start_tls and uri.startswith("ldap://"):
        conn.start_tls_s()
    if settings.bind_dn is None:
        conn.simple_bind_s("", "")
    else:
        conn.simple_bind_s(settings.bind_dn, password)


def connect(settings: LdapSettings, factory: Callable[[str], Any] = ldap.initialize) -> Any:
    """A bound connection to the first server that answers, tried in `uri` order.

    Only a server that does not answer is skipped: a refused bind would be
    refused by the next one too, so it raises at once. `factory` makes the
    connection object for a URI (the watcher's syncrepl consumer is one)."""
    password = _password(settings)
    tried: list[str] = []
    for uri in settings.uri:
        conn = factory(uri)
        _set_options(conn, settings)
        try:
            _bind(conn, settings, uri, password)
        except ldap.INVALID_CREDENTIALS as error:
            _close(conn)
            raise DirectoryUnavailable(
                f"{uri} refused the bind as {settings.bind_dn!r}: wrong DN or password; check "
                "group_sync.ldap.bind_dn and the password in the file bind_password_file "
                f"({settings.bind_password_file})"
            ) from error
        except _PLAINTEXT_REFUSED as error:
            _close(conn)
            raise DirectoryUnavailable(
                f"{uri} wants an encrypted connection before a bind ({describe(error)}), as "
                "Active Directory does by default: use an ldaps:// address, or start_tls: true, "
                "with the directory's CA in group_sync.ldap.ca_file"
            ) from error
        except _UNREACHABLE as error:
            _close(conn)
            tried.append(f"{uri}: {_unreachable(uri, settings, error)}")
            continue
        except ldap.LDAPError as error:
            _close(conn)
            who = "anonymous bind" if settings.bind_dn is None else f"bind as {settings.bind_dn!r}"
            raise DirectoryUnavailable(f"{uri} refused the {who}: {describe(error)}") from error
        return conn
    raise DirectoryUnavailable(
        "no directory server answered; tried in order: "
        + "; ".join(tried)
        + ". Check group_sync.ldap.uri, and that the directory runs and is reachable from here"
    )


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
    if isinstance(error, _UNREACHABLE):
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


def _read_people(conn: Any, settings: LdapSettings) -> list[Person]:
    attributes = [
        settings.localpart_attribute,
        settings.attributes.displayname,
        settings.attributes.email,
        "uid",
    ]
    if settings.active_directory:
        attributes.append("userAccountControl")
    found = paged_search(
        conn, settings.user_base, people_filter(settings), attributes, settings.page_size
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
    in_chain: Collection[str] = (),
    *,
    range_size: int | None = None,
    factory: Callable[[str], Any] = ldap.initialize,
) -> Directory:
    """Every person and group; on AD, the groups named in `in_chain` (cn or DN)
    resolved by the server. Synchronous: run it in a thread from async code.

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
        _close(conn)


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
    names: Collection[str],
    rids: dict[str, int],
) -> list[Group]:
    """The named groups with `resolved` set to every person in them, at any depth,
    their primary members included."""
    wanted = {n.strip().lower() for n in names if "=" not in n}
    wanted |= {normal_dn(n) for n in names if "=" in n}
    by_dn = {normal_dn(g.dn): g for g in groups}
    out = []
    for group in groups:
        if group.cn.lower() in wanted or normal_dn(group.dn) in wanted:
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
