"""The directory reader against a real slapd, and its pure helpers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import ldap
import psutil
import pytest

from homeport.config.groupsync import GroupRef, LdapSettings
from homeport.directory.ldap_connection import DirectoryUnavailable
from homeport.directory.ldap_reader import (
    group_of,
    in_chain_filter,
    merge_ranges,
    parse_range,
    people_filter,
    person_of,
    read_directory,
    strip_unique_member,
)
from homeport.directory.model import Directory
from tests.harness import free_port_run
from tests.ldap_server import GROUPS, PEOPLE, SUFFIX, Slapd

SIZE_LIMIT = 50
BIG = 120


def dn(uid: str) -> str:
    return f"uid={uid},{PEOPLE}"


def group_dn(cn: str) -> str:
    return f"cn={cn},{GROUPS}"


@pytest.fixture(scope="module")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    with Slapd(tmp_path_factory.mktemp("slapd"), size_limit=SIZE_LIMIT, tls=True) as server:
        for uid in ("alice", "bob", "carol", "dave"):
            server.add_person(uid)
        server.add_person("zoe", "Zoë Ångström")
        for i in range(BIG):
            server.add_person(f"big{i:03d}")
        # A person entry without the localpart attribute: not a person to group sync.
        server.add(
            f"cn=No Uid,{PEOPLE}",
            {"objectClass": ["inetOrgPerson"], "cn": ["No Uid"], "sn": ["Uid"]},
        )
        server.add_group("names", [dn("alice")])
        server.add_group("unique", [dn("bob") + "#'0101'B", dn("zoe")], kind="groupOfUniqueNames")
        server.add_group("posix", ["carol", "Zoe"], kind="posixGroup")
        # A cycle: outer holds inner, inner holds outer.
        server.add_group("inner", [dn("dave")])
        server.add_group("outer", [dn("alice"), group_dn("inner")])
        server.add_member("inner", group_dn("outer"))
        server.add_group("big", [dn(f"big{i:03d}") for i in range(BIG)])
        yield server


@pytest.fixture(scope="module")
def settings(slapd: Slapd, tmp_path_factory: pytest.TempPathFactory) -> LdapSettings:
    secret = slapd.password_file(tmp_path_factory.mktemp("secret") / "ldap.secret")
    return slapd.settings(secret, page_size=7)


def people(settings_or_directory: LdapSettings | Directory, cn: str) -> set[str]:
    directory = (
        settings_or_directory
        if isinstance(settings_or_directory, Directory)
        else read_directory(settings_or_directory)
    )
    [group] = directory.find_group(GroupRef("cn", cn))
    return {p.localpart for p in directory.people_in(group)}


def test_every_kind_of_group_resolves(settings: LdapSettings) -> None:
    # In-chain is for Active Directory only: here it changes nothing.
    directory = read_directory(settings, in_chain=[GroupRef("cn", "outer")])
    assert people(directory, "names") == {"alice"}
    assert people(directory, "unique") == {"bob", "zoe"}  # the #'0101'B suffix is dropped
    assert people(directory, "posix") == {"carol", "zoe"}  # memberUid, case-insensitive
    assert people(directory, "outer") == {"alice", "dave"}  # nested, through a cycle
    assert people(directory, "inner") == {"alice", "dave"}
    assert all(group.resolved is None for group in directory.groups)


def test_people_carry_their_attributes(settings: LdapSettings) -> None:
    directory = read_directory(settings)
    by_localpart = {p.localpart: p for p in directory.people}
    assert len(directory.people) == 5 + BIG  # the entry without a uid is not a person
    zoe = by_localpart["zoe"]
    assert (zoe.dn, zoe.displayname, zoe.email, zoe.uid) == (
        dn("zoe"),
        "Zoë Ångström",
        "zoe@example.org",
        "zoe",
    )


def test_a_group_past_the_size_limit_is_read_whole(slapd: Slapd, settings: LdapSettings) -> None:
    conn = ldap.initialize(slapd.uri)
    conn.simple_bind_s(slapd.bind_dn, slapd.password)
    try:
        with pytest.raises(ldap.SIZELIMIT_EXCEEDED):  # the limit is real for a plain search
            conn.search_s(PEOPLE, ldap.SCOPE_SUBTREE, "(objectClass=inetOrgPerson)")
    finally:
        conn.unbind_s()
    assert people(settings, "big") == {f"big{i:03d}" for i in range(BIG)}


def test_a_search_cut_short_is_an_error_not_a_smaller_directory(tmp_path: Path) -> None:
    # A server that caps even paged searches returns part of the people: refused whole.
    with Slapd(tmp_path, size_limit=5, paged_total=8) as capped:
        pid = capped.pid
        for i in range(12):
            capped.add_person(f"p{i:02d}")
        settings = capped.settings(page_size=3)
        with pytest.raises(
            DirectoryUnavailable, match=r"search under ou=people.* short.*size.prtotal"
        ):
            read_directory(settings)
    assert pid is not None
    assert not psutil.pid_exists(pid)  # no slapd left behind


def test_an_anonymous_bind_reads_too(settings: LdapSettings) -> None:
    anonymous = settings.model_copy(update={"bind_dn": None, "bind_password_file": None})
    assert people(anonymous, "outer") == {"alice", "dave"}


def test_a_missing_base_is_named(settings: LdapSettings) -> None:
    wrong = settings.model_copy(update={"user_base": f"ou=nobody,{SUFFIX}"})
    with pytest.raises(DirectoryUnavailable, match=r"ou=nobody.* does not exist.*user_base"):
        read_directory(wrong)


def test_failover_to_the_next_server(settings: LdapSettings, slapd: Slapd) -> None:
    dead = f"ldap://127.0.0.1:{free_port_run(1)}"
    both = settings.model_copy(update={"uri": [dead, slapd.uri]})
    assert people(both, "names") == {"alice"}


def test_a_wrong_password_names_the_bind(
    settings: LdapSettings, slapd: Slapd, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong.secret"
    wrong.write_text("nope\n")
    # The bind is refused by the second server: no failover hides it.
    both = settings.model_copy(
        update={"bind_password_file": wrong, "uri": [slapd.uri, slapd.ldaps_uri]}
    )
    with pytest.raises(DirectoryUnavailable, match="refused the bind") as error:
        read_directory(both)
    assert "bind_password_file" in str(error.value)
    assert str(wrong) in str(error.value)


def test_no_server_answering_names_each_one(settings: LdapSettings) -> None:
    dead = [f"ldap://127.0.0.1:{free_port_run(1)}", f"ldap://127.0.0.1:{free_port_run(1)}"]
    with pytest.raises(DirectoryUnavailable, match="no directory server answered") as error:
        read_directory(settings.model_copy(update={"uri": dead}))
    assert all(uri in str(error.value) for uri in dead)


def test_a_stopped_server_is_unavailable(slapd: Slapd, settings: LdapSettings) -> None:
    slapd.stop()
    try:
        with pytest.raises(DirectoryUnavailable, match="no directory server answered"):
            read_directory(settings)
    finally:
        slapd.start()
    assert people(settings, "names") == {"alice"}


def test_ldaps_and_start_tls_verify_the_certificate(slapd: Slapd, settings: LdapSettings) -> None:
    assert slapd.ca_file is not None
    secure = settings.model_copy(update={"uri": [slapd.ldaps_uri], "ca_file": slapd.ca_file})
    assert people(secure, "names") == {"alice"}
    start_tls = settings.model_copy(update={"start_tls": True, "ca_file": slapd.ca_file})
    assert people(start_tls, "names") == {"alice"}
    # Without the CA, the certificate is not trusted: no connection, no directory.
    for untrusted in (secure, start_tls):
        with pytest.raises(DirectoryUnavailable, match="TLS handshake failed"):
            read_directory(untrusted.model_copy(update={"ca_file": None}))
    # With the CA but another name than the certificate's: refused too.
    other_name = secure.model_copy(
        update={"uri": [slapd.ldaps_uri.replace("127.0.0.1", "localhost")]}
    )
    with pytest.raises(DirectoryUnavailable, match="certificate names localhost"):
        read_directory(other_name)


# Pure helpers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("uid=a,dc=x", "uid=a,dc=x"),
        ("uid=a,dc=x#'0101'B", "uid=a,dc=x"),
        ("uid=a,dc=x#''B", "uid=a,dc=x"),
        ("cn=a\\#b,dc=x", "cn=a\\#b,dc=x"),
        ("cn=a#b,dc=x", "cn=a#b,dc=x"),
    ],
)
def test_unique_member(value: str, expected: str) -> None:
    assert strip_unique_member(value) == expected


@pytest.mark.parametrize(
    ("attribute", "expected"),
    [
        ("member", None),
        ("member;binary", None),
        ("member;range=0-1499", ("member", 0, 1499)),
        ("member;range=1500-*", ("member", 1500, None)),
        ("Member;Range=3000-4499", ("Member", 3000, 4499)),
    ],
)
def test_ranged_attributes(attribute: str, expected: object) -> None:
    assert parse_range(attribute) == expected


RANGES = {
    "member;range=2-*": {"member;range=2-3": [b"c", b"d"]},
    "member;range=4-*": {"member;range=4-*": [b"e"]},
}


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        ({"cn": [b"g"], "member": [b"a"]}, {"cn": [b"g"], "member": [b"a"]}),
        ({"member;range=0-*": [b"a"]}, {"member": [b"a"]}),
        (
            {"cn": [b"g"], "member;range=0-1": [b"a", b"b"]},
            {"cn": [b"g"], "member": [b"a", b"b", b"c", b"d", b"e"]},
        ),
    ],
)
def test_ranges_are_read_to_the_end(
    attrs: dict[str, list[bytes]], expected: dict[str, list[bytes]]
) -> None:
    asked: list[str] = []

    def fetch(attribute: str) -> dict[str, list[bytes]]:
        asked.append(attribute)
        return RANGES[attribute]

    assert merge_ranges("cn=g", attrs, fetch) == expected
    assert asked == (list(RANGES) if "member;range=0-1" in attrs else [])


def test_a_range_that_does_not_follow_is_an_error() -> None:
    with pytest.raises(DirectoryUnavailable, match="stopped handing out member of cn=g"):
        merge_ranges("cn=g", {"member;range=0-1": [b"a"]}, lambda _attribute: {})


AD = {"uri": "ldaps://dc.example.org", "user_base": "OU=People", "group_base": "OU=Groups"}
CHAIN = "(memberOf:1.2.840.113556.1.4.1941:=CN=Staff \\28all\\29\\2a,OU=Groups)"


@pytest.mark.parametrize(
    ("values", "people", "localpart"),
    [
        (
            {**AD, "active_directory": True},
            "(&(&(objectCategory=person)(objectClass=user))"
            "(!(userAccountControl:1.2.840.113556.1.4.803:=2)))",
            "sAMAccountName",
        ),
        (
            {**AD, "active_directory": True, "user_filter": "(objectClass=user)"},
            "(&(objectClass=user)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))",
            "sAMAccountName",
        ),
        (
            {**AD, "active_directory": True, "user_filter": "objectClass=user"},
            "(&(objectClass=user)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))",
            "sAMAccountName",
        ),
        (
            {**AD, "active_directory": True, "attributes": {"localpart": "userPrincipalName"}},
            "(&(&(objectCategory=person)(objectClass=user))"
            "(!(userAccountControl:1.2.840.113556.1.4.803:=2)))",
            "userPrincipalName",
        ),
        (AD, "(objectClass=inetOrgPerson)", "uid"),
        ({**AD, "user_filter": "(uid=*)"}, "(uid=*)", "uid"),
    ],
)
def test_people_and_in_chain_filters(
    values: dict[str, object], people: str, localpart: str
) -> None:
    settings = LdapSettings.model_validate(values)
    assert people_filter(settings) == people
    assert settings.localpart_attribute == localpart
    assert in_chain_filter(settings, "CN=Staff (all)*,OU=Groups") == f"(&{people}{CHAIN})"


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        (  # an enabled AD account: sAMAccountName, lower-cased
            {"sAMAccountName": [b"JDoe"], "cn": [b"John Doe"], "userAccountControl": [b"512"]},
            ("jdoe", "John Doe"),
        ),
        ({"sAMAccountName": [b"old"], "userAccountControl": [b"514"]}, None),  # disabled
        ({"cn": [b"No Name"], "userAccountControl": [b"512"]}, None),  # no user name
    ],
)
def test_active_directory_people(
    attrs: dict[str, list[bytes]], expected: tuple[str, str] | None
) -> None:
    settings = LdapSettings.model_validate({**AD, "active_directory": True})
    found = person_of(settings, "CN=x,OU=People", attrs)
    assert (None if found is None else (found.localpart, found.displayname)) == expected


def test_a_group_of_every_kind_keeps_its_members() -> None:
    group = group_of(
        "cn=g,ou=groups",
        {
            "cn": [b"g"],
            "member": [b"uid=a,ou=people"],
            "uniqueMember": [b"uid=b,ou=people#'01'B"],
            "memberUid": [b"c"],
        },
    )
    assert group.members == frozenset({"uid=a,ou=people", "uid=b,ou=people"})
    assert group.member_uids == frozenset({"c"})
