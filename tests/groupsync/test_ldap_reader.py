"""The directory reader and the change watch against a real slapd."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import ldap
import pytest

from homeport.config.groupsync import LdapSettings
from homeport.groupsync.changes import DirectoryWatch
from homeport.groupsync.ldap_reader import (
    DirectoryUnavailable,
    in_chain_filter,
    parse_range,
    people_filter,
    read_directory,
    strip_unique_member,
)
from tests.harness import free_port_run
from tests.ldap_server import GROUPS, PEOPLE, Slapd

SIZE_LIMIT = 20
BIG = 45


def dn(uid: str) -> str:
    return f"uid={uid},{PEOPLE}"


@pytest.fixture(scope="module")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    with Slapd(tmp_path_factory.mktemp("slapd"), size_limit=SIZE_LIMIT, tls=True) as server:
        for uid in ("alice", "bob", "carol", "dave"):
            server.add_person(uid)
        for i in range(BIG):
            server.add_person(f"big{i:02d}")
        server.add_group("names", [dn("alice")])
        server.add_group("unique", [dn("bob") + "#'0101'B"], kind="groupOfUniqueNames")
        server.add_group("posix", ["carol"], kind="posixGroup")
        # A cycle: outer holds inner, inner holds outer.
        server.add_group("inner", [dn("dave")])
        server.add_group("outer", [dn("alice"), f"cn=inner,{GROUPS}"])
        server.add_member("inner", f"cn=outer,{GROUPS}")
        server.add_group("big", [dn(f"big{i:02d}") for i in range(BIG)])
        yield server


@pytest.fixture(scope="module")
def settings(slapd: Slapd, tmp_path_factory: pytest.TempPathFactory) -> LdapSettings:
    secret = slapd.password_file(tmp_path_factory.mktemp("secret") / "ldap.secret")
    return slapd.settings(secret, page_size=7)


def people(settings: LdapSettings, cn: str) -> set[str]:
    directory = read_directory(settings)
    [group] = directory.find_group(cn)
    return {p.localpart for p in directory.people_in(group)}


def test_every_kind_of_group_resolves(settings: LdapSettings) -> None:
    assert people(settings, "names") == {"alice"}
    assert people(settings, "unique") == {"bob"}
    assert people(settings, "posix") == {"carol"}
    assert people(settings, "outer") == {"alice", "dave"}  # nested, through a cycle
    assert people(settings, "inner") == {"alice", "dave"}


def test_a_group_past_the_size_limit_is_read_whole(slapd: Slapd, settings: LdapSettings) -> None:
    conn = ldap.initialize(slapd.uri)
    conn.simple_bind_s(slapd.bind_dn, slapd.password)
    with pytest.raises(ldap.SIZELIMIT_EXCEEDED):  # the limit is real for a plain search
        conn.search_s(PEOPLE, ldap.SCOPE_SUBTREE, "(objectClass=inetOrgPerson)")
    conn.unbind_s()
    assert people(settings, "big") == {f"big{i:02d}" for i in range(BIG)}


def test_a_search_cut_short_is_an_error_not_a_smaller_directory(tmp_path: Path) -> None:
    # A server that caps even paged searches returns part of the people: refused whole.
    with Slapd(tmp_path, size_limit=5, paged_total=8) as capped:
        for i in range(12):
            capped.add_person(f"p{i:02d}")
        settings = capped.settings(capped.password_file(tmp_path / "secret"), page_size=3)
        with pytest.raises(DirectoryUnavailable, match=r"search under ou=people.* failed"):
            read_directory(settings)


def test_failover_to_the_next_server(settings: LdapSettings, slapd: Slapd) -> None:
    dead = f"ldap://127.0.0.1:{free_port_run(1)}"
    both = settings.model_copy(update={"uri": [dead, slapd.uri]})
    assert people(both, "names") == {"alice"}


def test_a_wrong_password_names_the_bind(settings: LdapSettings, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.secret"
    wrong.write_text("nope\n")
    with pytest.raises(DirectoryUnavailable, match="refused the bind"):
        read_directory(settings.model_copy(update={"bind_password_file": wrong}))


def test_no_server_answering_names_each_one(settings: LdapSettings) -> None:
    dead = [f"ldap://127.0.0.1:{free_port_run(1)}", f"ldap://127.0.0.1:{free_port_run(1)}"]
    with pytest.raises(DirectoryUnavailable, match="no directory server answered") as error:
        read_directory(settings.model_copy(update={"uri": dead}))
    assert all(uri in str(error.value) for uri in dead)


def test_ldaps_and_start_tls_verify_the_certificate(slapd: Slapd, settings: LdapSettings) -> None:
    assert slapd.ca_file is not None
    secure = settings.model_copy(update={"uri": [slapd.ldaps_uri], "ca_file": slapd.ca_file})
    assert people(secure, "names") == {"alice"}
    start_tls = settings.model_copy(update={"start_tls": True, "ca_file": slapd.ca_file})
    assert people(start_tls, "names") == {"alice"}
    # Without the CA, the certificate is not trusted: no connection, no directory.
    with pytest.raises(DirectoryUnavailable):
        read_directory(secure.model_copy(update={"ca_file": None}))
    with pytest.raises(DirectoryUnavailable):
        read_directory(start_tls.model_copy(update={"ca_file": None}))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("uid=a,dc=x", "uid=a,dc=x"),
        ("uid=a,dc=x#'0101'B", "uid=a,dc=x"),
        ("cn=a\\#b,dc=x", "cn=a\\#b,dc=x"),
    ],
)
def test_unique_member(value: str, expected: str) -> None:
    assert strip_unique_member(value) == expected


@pytest.mark.parametrize(
    ("attribute", "expected"),
    [
        ("member", None),
        ("member;range=0-1499", ("member", 0, 1499)),
        ("member;range=1500-*", ("member", 1500, None)),
        ("Member;Range=3000-4499", ("Member", 3000, 4499)),
    ],
)
def test_ranged_attributes(attribute: str, expected: object) -> None:
    assert parse_range(attribute) == expected


AD = {"uri": "ldaps://dc.example.org", "user_base": "OU=People", "group_base": "OU=Groups"}


@pytest.mark.parametrize(
    ("values", "people", "chain"),
    [
        (
            {**AD, "active_directory": True},
            "(&(&(objectCategory=person)(objectClass=user))"
            "(!(userAccountControl:1.2.840.113556.1.4.803:=2)))",
            "(memberOf:1.2.840.113556.1.4.1941:=CN=Staff \\28all\\29,OU=Groups)",
        ),
        (
            {**AD, "active_directory": True, "user_filter": "(objectClass=user)"},
            "(&(objectClass=user)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))",
            "(memberOf:1.2.840.113556.1.4.1941:=CN=Staff \\28all\\29,OU=Groups)",
        ),
        (AD, "(objectClass=inetOrgPerson)", None),
    ],
)
def test_active_directory_filters(
    values: dict[str, object], people: str, chain: str | None
) -> None:
    settings = LdapSettings.model_validate(values)
    assert people_filter(settings) == people
    if chain is not None:
        assert in_chain_filter(settings, "CN=Staff (all),OU=Groups") == f"(&{people}{chain})"
        assert settings.localpart_attribute == "sAMAccountName"


class Seen:
    """What a DirectoryWatch reported, waited on from the test."""

    def __init__(self) -> None:
        self.changes: list[frozenset[str]] = []
        self.errors: list[str] = []
        self._arrived = threading.Event()

    def changed(self, dns: frozenset[str]) -> None:
        self.changes.append(dns)
        self._arrived.set()

    def wait_for(self, check: Callable[[frozenset[str]], bool]) -> None:
        deadline = time.monotonic() + 20
        while not any(check(dns) for dns in self.changes):
            assert time.monotonic() < deadline, (self.changes, self.errors)
            self._arrived.wait(0.5)
            self._arrived.clear()


def _watch(server: Slapd, settings: LdapSettings, mode: str) -> None:
    seen = Seen()
    watch = DirectoryWatch(settings, seen.changed, seen.errors.append)
    watch.start()
    try:
        deadline = time.monotonic() + 20
        while watch.mode != mode:
            assert time.monotonic() < deadline, (watch.mode, seen.errors)
            time.sleep(0.1)
        assert seen.changes == []  # the initial refresh is not a change
        server.add_member("names", dn("bob"))
        seen.wait_for(lambda dns: f"cn=names,{GROUPS}" in dns)
        server.add_person("erin")
        seen.wait_for(lambda dns: dn("erin") in dns)
        if mode == "syncrepl":  # a poll on modifyTimestamp cannot see a deletion
            seen.changes.clear()
            server.delete(dn("erin"))
            seen.wait_for(lambda dns: dn("erin") in dns)
        server.stop()
        time.sleep(3)  # longer than a poll's period: the outage is noticed
        server.start()
        seen.wait_for(lambda dns: dns == frozenset())  # reconnected: re-read everything
        assert seen.errors
    finally:
        started = time.monotonic()
        watch.stop()
        assert time.monotonic() - started < 10
    assert watch._thread is not None
    assert not watch._thread.is_alive()


def test_syncrepl_reports_changes_and_comes_back_after_an_outage(tmp_path: Path) -> None:
    with Slapd(tmp_path) as server:
        for uid in ("alice", "bob"):
            server.add_person(uid)
        server.add_group("names", [dn("alice")])
        _watch(server, server.settings(server.password_file(tmp_path / "secret")), "syncrepl")


def test_a_size_limit_on_the_reader_falls_back_to_polling(
    slapd: Slapd, settings: LdapSettings
) -> None:
    _watch(slapd, settings, "poll")
    slapd.delete(dn("erin"))
    slapd.remove_member("names", dn("bob"))
