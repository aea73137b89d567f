"""Group sync's Active Directory path against a real domain controller (Samba).

Nested groups resolved by the server's in-chain rule, disabled accounts
skipped, LDAPS and StartTLS verified against the test's CA, and a group of
1,600 members read whole in ranges. Samba hands out every value of `member`
at once unless asked for a range (Windows stops at MaxValRange, 1,500), so
the ranged reads are forced with `range_size` and shown to take several.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ldap
import ldap.ldapobject
import psutil
import pytest

from homeport.config.groupsync import GroupRef, GroupSync
from homeport.directory.ldap_connection import DirectoryUnavailable
from homeport.directory.ldap_reader import read_directory, relative_id
from homeport.directory.model import Directory, Group
from homeport.groupsync.changes import DirectoryWatch
from homeport.groupsync.desired import desired_state
from homeport.groupsync.run import read
from homeport.pki import ensure_ca
from tests.samba_server import (
    BASE_DN,
    BULK,
    BULK_GROUP,
    BULK_MEMBERS,
    GROUPS,
    READER_DN,
    SambaDC,
)

Attributes = dict[str, list[bytes]]


@pytest.fixture(scope="module")
def dc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SambaDC]:
    with SambaDC(tmp_path_factory.mktemp("samba")) as server:
        people = {
            name: server.add_user(name, display_name=f"{name.title()} Example", disabled=off)
            for name, off in [
                ("alice", False),
                ("bob", False),
                ("carol", False),
                ("dave", True),  # disabled, directly in staff
                ("erin", True),  # disabled, two groups down
                ("frank", False),
            ]
        }
        # staff > engineering > contractors: nested two deep; contractors > engineering: a cycle.
        contractors = server.add_group("contractors", [people["carol"], people["erin"]])
        engineering = server.add_group("engineering", [people["bob"], contractors])
        server.add_group("staff", [people["alice"], people["dave"], engineering])
        server.add_member(contractors, engineering)
        server.add_group("admins", [people["frank"]])
        yield server


def cn(value: str) -> GroupRef:
    return GroupRef("cn", value)


def dn(value: str) -> GroupRef:
    return GroupRef("dn", value)


def localparts(directory: Directory, ref: GroupRef) -> set[str]:
    [group] = directory.find_group(ref)
    return {person.localpart for person in directory.people_in(group)}


def test_nested_groups_resolve_and_disabled_accounts_are_skipped(dc: SambaDC) -> None:
    engineering = f"CN=engineering,{GROUPS}"
    directory = read_directory(dc.settings(page_size=2), in_chain=[cn("staff"), dn(engineering)])
    assert {p.localpart for p in directory.people} == {"alice", "bob", "carol", "frank"}
    alice = next(p for p in directory.people if p.localpart == "alice")
    assert (alice.displayname, alice.email) == ("Alice Example", "alice@homeport.test")
    # Resolved by the domain controller itself (the in-chain matching rule)...
    [staff] = directory.find_group(cn("staff"))
    assert staff.resolved is not None
    assert localparts(directory, cn("staff")) == {"alice", "bob", "carol"}
    assert localparts(directory, dn(engineering)) == {"bob", "carol"}
    # ...and by group sync's own walk of `member`, for a group not asked in-chain:
    # through the cycle back to engineering.
    [contractors] = directory.find_group(cn("contractors"))
    assert contractors.resolved is None
    assert localparts(directory, cn("contractors")) == {"bob", "carol"}
    walked = read_directory(dc.settings())
    assert localparts(walked, cn("staff")) == localparts(directory, cn("staff"))


def test_primary_group_members_count(dc: SambaDC) -> None:
    """A user's primary group (Domain Users) lists nobody in `member`, nor does the user's
    `memberOf` name it; its people come from `primaryGroupID`, nested in a group too."""
    domain_users = f"CN=Domain Users,CN=Users,{BASE_DN}"
    everyone = dc.add_group("everyone", [domain_users])
    directory = read_directory(dc.settings(group_base=BASE_DN), [cn("Domain Users"), dn(everyone)])
    [group] = directory.find_group(cn("Domain Users"))
    assert group.members == frozenset()
    enabled = {p.localpart for p in directory.people}
    assert {"alice", "bob", "carol", "frank"} <= enabled
    assert localparts(directory, cn("Domain Users")) == enabled
    assert localparts(directory, dn(everyone)) == enabled


def test_a_disabled_account_drops_out_and_comes_back(dc: SambaDC) -> None:
    gina = dc.add_user("gina")
    dc.add_group("temps", [gina])
    settings = dc.settings(uri=dc.start_tls_uri, start_tls=True)
    assert localparts(read_directory(settings, in_chain=[cn("temps")]), cn("temps")) == {"gina"}
    dc.set_disabled(gina)
    directory = read_directory(settings, in_chain=[cn("temps")])
    assert "gina" not in {p.localpart for p in directory.people}
    assert localparts(directory, cn("temps")) == set()
    dc.set_disabled(gina, False)
    assert localparts(read_directory(settings, in_chain=[cn("temps")]), cn("temps")) == {"gina"}


def test_ldaps_and_start_tls_verify_the_certificate(dc: SambaDC, tmp_path: Path) -> None:
    ldaps = dc.settings()
    start_tls = dc.settings(uri=dc.start_tls_uri, start_tls=True)
    for settings in (ldaps, start_tls):
        assert localparts(read_directory(settings, in_chain=[cn("staff")]), cn("staff")) == {
            "alice",
            "bob",
            "carol",
        }
    # A CA for the same address that did not sign the DC's certificate: refused.
    ensure_ca(tmp_path / "other.crt", tmp_path / "other.key", "other", [dc.host])
    for settings in (ldaps, start_tls):
        wrong = settings.model_copy(update={"ca_file": tmp_path / "other.crt"})
        with pytest.raises(DirectoryUnavailable, match="TLS handshake failed") as error:
            read_directory(wrong)
        assert str(tmp_path / "other.crt") in str(error.value)
        with pytest.raises(DirectoryUnavailable, match="the system's CAs"):
            read_directory(settings.model_copy(update={"ca_file": None}))


def test_a_plain_bind_is_refused_with_a_hint(dc: SambaDC) -> None:
    # AD refuses simple binds over an unencrypted connection, as Samba does here.
    plain = dc.settings(uri=dc.start_tls_uri)
    with pytest.raises(DirectoryUnavailable, match=r"encrypted.*ldaps://.*start_tls"):
        read_directory(plain)


def test_a_wrong_password_names_the_bind(dc: SambaDC, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.secret"
    wrong.write_text("not-the-password\n")
    with pytest.raises(DirectoryUnavailable, match="refused the bind") as error:
        read_directory(dc.settings(wrong))
    assert READER_DN in str(error.value)
    assert str(wrong) in str(error.value)


# Ranged reads --------------------------------------------------------------------


def test_the_server_answers_ranges_only_when_asked(dc: SambaDC) -> None:
    conn = dc.connect(dc.bind_dn, dc.password)
    try:

        def fetch(attribute: str) -> Attributes:
            [(_dn, attrs)] = conn.search_s(BULK_GROUP, ldap.SCOPE_BASE, attrlist=[attribute])
            return dict(attrs)

        whole = fetch("member")  # Samba: every value at once (Windows: 1,500, then a range)
        assert list(whole) == ["member"]
        assert len(whole["member"]) == BULK_MEMBERS
        assert {k: len(v) for k, v in fetch("member;range=0-499").items()} == {
            "member;range=0-499": 500
        }
        assert {k: len(v) for k, v in fetch("member;range=1500-1999").items()} == {
            "member;range=1500-*": 100  # the last range ends in `*`
        }
    finally:
        conn.unbind_s()


def recording(asked: list[tuple[str, str]]) -> Callable[[str], Any]:
    """A connection factory for `read_directory`: real connections that note each
    search's base and the ranges of `member` it asked for."""

    class Recording(ldap.ldapobject.SimpleLDAPObject):
        def search_ext(
            self,
            base: str,
            scope: int,
            filterstr: str = "(objectClass=*)",
            attrlist: Any = None,
            *args: Any,
            **kwargs: Any,
        ) -> Any:
            asked.extend((base, a) for a in attrlist or () if a.startswith("member;range="))
            return super().search_ext(base, scope, filterstr, attrlist, *args, **kwargs)

    return Recording


@pytest.mark.parametrize(
    ("range_size", "followed_by"),
    [
        (500, ["member;range=500-999", "member;range=1000-1499", "member;range=1500-1999"]),
        (BULK_MEMBERS - 1, ["member;range=1599-3197"]),
        (BULK_MEMBERS, []),
    ],
)
def test_a_big_group_is_read_whole_in_ranges(
    dc: SambaDC, range_size: int, followed_by: list[str]
) -> None:
    # Groups from the domain's root: Samba's own groups, a continuation reference, and
    # pages of a few groups, each page's ranged reads in between.
    settings = dc.settings(user_base=BULK, group_base=BASE_DN, page_size=10)
    asked: list[tuple[str, str]] = []
    directory = read_directory(
        settings, in_chain=[cn("bulk")], range_size=range_size, factory=recording(asked)
    )
    # Every page of groups asked for the first range; the big group's next ranges followed.
    assert {a for base, a in asked if base == BASE_DN} == {f"member;range=0-{range_size - 1}"}
    assert [a for base, a in asked if base != BASE_DN] == followed_by
    [group] = directory.find_group(cn("bulk"))
    expected = {f"bulk{i:04d}" for i in range(BULK_MEMBERS)}
    assert len(group.members) == BULK_MEMBERS
    assert {p.localpart for p in directory.people_in(group)} == expected  # in-chain
    walked = Directory(directory.people, (Group(group.dn, group.cn, group.members),))
    assert {p.localpart for p in walked.people_in(walked.groups[0])} == expected


async def test_group_sync_reads_its_spaces_from_active_directory(dc: SambaDC) -> None:
    """What `homeport groupsync run` reads and wants, from its own configuration."""
    secret = dc.password_file(dc.root / "groupsync.secret")
    sync = GroupSync.model_validate(
        {
            "homeserver": "internal",
            "port": 8999,
            "ldap": {
                "uri": [dc.start_tls_uri],
                "start_tls": True,
                "ca_file": str(dc.ca_file),
                "bind_dn": dc.bind_dn,
                "bind_password_file": str(secret),
                "user_base": dc.people,
                "group_base": dc.groups,
                "active_directory": True,
            },
            "spaces": [
                {
                    "name": "Staff",
                    "alias": "staff",
                    "ldap_cn": "staff",
                    "power_levels": {"admins": 100},
                    "subspaces": [
                        {
                            "name": "Engineering",
                            "alias": "engineering",
                            "ldap_dn": f"CN=engineering,{GROUPS}",
                        }
                    ],
                }
            ],
        }
    )
    directory = await read(sync)
    resolved = {g.cn for g in directory.groups if g.resolved is not None}
    assert resolved == {"staff", "engineering", "admins"}  # the mapped groups, by the DC
    desired = desired_state(sync, directory, "hs", ())
    assert set(desired.rooms["staff"].members) == {"@alice:hs", "@bob:hs", "@carol:hs", "@frank:hs"}
    assert desired.rooms["staff"].power == {"@frank:hs": 100}
    assert set(desired.rooms["engineering"].members) == {"@bob:hs", "@carol:hs"}
    assert desired.users["@alice:hs"].displayname == "Alice Example"


def test_changes_arrive_by_polling(dc: SambaDC) -> None:
    """Samba, like AD, refuses syncrepl: the watch polls, and sees changes in seconds."""
    changes: list[frozenset[str]] = []
    errors: list[str] = []

    def wait_until(done: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 15
        while not done():
            assert time.monotonic() < deadline, (watch.mode, changes, errors)
            time.sleep(0.1)

    watch = DirectoryWatch(dc.settings(), changes.append, errors.append)
    watch.start()
    try:
        wait_until(lambda: watch.mode == "poll")
        hank = dc.add_user("hank")
        watchers = dc.add_group("watchers", [hank])
        wait_until(lambda: {hank, watchers} <= set().union(*changes))
        changes.clear()
        dc.set_disabled(hank)
        wait_until(lambda: hank in set().union(*changes))
    finally:
        watch.stop()
    assert not watch.running
    assert errors == []


def sid(*parts: int) -> bytes:
    """A binary SID S-1-5-<parts>: revision, count, authority, then each part."""
    return bytes([1, len(parts), 0, 0, 0, 0, 0, 5]) + b"".join(
        part.to_bytes(4, "little") for part in parts
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (sid(21, 1, 2, 3, 513), 513),  # S-1-5-21-1-2-3-513: Domain Users
        (sid(18), 18),
        (sid(21, 1)[:-1], None),  # cut short
        (b"\x01\x05", None),
    ],
)
def test_relative_id(value: bytes, expected: int | None) -> None:
    assert relative_id(value) == expected


# The fixture itself --------------------------------------------------------------


def test_a_second_domain_controller_takes_another_address(dc: SambaDC, tmp_path: Path) -> None:
    with SambaDC(tmp_path) as second:
        pid, host = second.pid, second.host
        assert host != dc.host
        assert read_directory(second.settings()).people == ()  # a domain of its own
    assert pid is not None
    assert not psutil.pid_exists(pid)  # no Samba left behind...
    shown = subprocess.run(["ip", "-o", "addr", "show", "dev", "lo"], capture_output=True)
    assert f" {host}/32 ".encode() not in shown.stdout  # ...nor its address
    assert localparts(read_directory(dc.settings(), in_chain=[cn("staff")]), cn("staff")) == {
        "alice",
        "bob",
        "carol",
    }
