"""Directory login's password check against a real slapd, and how a typed name is read."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from homeport.config.groupsync import LdapSettings
from homeport.directory.ldap_connection import DirectoryUnavailable
from homeport.directory.ldap_login import (
    LoginName,
    answering_first,
    check_password,
    login_name,
    search_filter,
)
from tests.harness import free_port_run
from tests.ldap_server import SilentServer, Slapd

SERVER = "hs.example.org"


def _settings(**values: object) -> LdapSettings:
    return LdapSettings.model_validate(
        {"uri": "ldap://127.0.0.1", "user_base": "ou=p", "group_base": "ou=g", **values}
    )


@pytest.mark.parametrize(
    ("typed", "active_directory", "expected"),
    [
        ("alice", False, LoginName("uid", "alice")),
        ("@alice:hs.example.org", False, LoginName("uid", "alice")),
        ("@alice:elsewhere.org", False, None),  # another server's user: not ours to check
        ("alice@corp.example", False, None),  # no principal names outside AD
        ("dee", True, LoginName("sAMAccountName", "dee")),
        ("dee@corp.example", True, LoginName("userPrincipalName", "dee@corp.example")),
        ("CORP\\dee", True, LoginName("sAMAccountName", "dee")),
        ("@dee:hs.example.org", True, LoginName("sAMAccountName", "dee")),
        ("", False, None),
    ],
)
def test_a_typed_name_becomes_a_directory_search(
    typed: str, active_directory: bool, expected: LoginName | None
) -> None:
    assert login_name(_settings(active_directory=active_directory), typed, SERVER) == expected


def test_the_search_escapes_what_a_person_types_and_keeps_ad_s_enabled_only_rule() -> None:
    ad = _settings(active_directory=True)
    text = search_filter(ad, LoginName("sAMAccountName", "x*)(uid=*"))
    assert text.endswith("(sAMAccountName=x\\2a\\29\\28uid=\\2a))")
    assert "(!(userAccountControl:1.2.840.113556.1.4.803:=2))" in text


def test_the_server_that_answered_is_asked_first_next_time() -> None:
    settings = _settings(uri=["ldap://a", "ldap://b", "ldap://c"])
    assert answering_first(settings, "ldap://b").uri == ["ldap://b", "ldap://a", "ldap://c"]
    assert answering_first(settings, "ldap://a") is settings


@pytest.fixture(scope="module")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    with Slapd(tmp_path_factory.mktemp("slapd")) as server:
        server.add_person("alice", "Alice Liddell", password="pw-alice")
        server.add_person("twin", "Twin One", password="pw-twin")
        yield server


def test_the_right_password_finds_the_person_and_a_wrong_one_nobody(slapd: Slapd) -> None:
    settings = slapd.settings()
    alice = LoginName("uid", "alice")
    checked = check_password(settings, alice, "pw-alice")
    assert checked.person is not None
    assert (checked.person.localpart, checked.person.displayname) == ("alice", "Alice Liddell")
    assert checked.uri == slapd.uri
    assert check_password(settings, alice, "wrong").person is None
    assert check_password(settings, alice, "").person is None  # never an anonymous bind
    assert check_password(settings, LoginName("uid", "nobody"), "pw-alice").person is None


def test_a_silent_server_is_skipped_within_the_timeout_for_the_next(slapd: Slapd) -> None:
    with SilentServer() as silent:
        settings = slapd.settings(uri=[silent.uri, slapd.uri], timeout="1s")
        checked = check_password(settings, LoginName("uid", "alice"), "pw-alice")
        assert checked.person is not None
        assert checked.uri == slapd.uri


def test_a_directory_that_never_answers_or_is_down_says_so(slapd: Slapd) -> None:
    closed = f"ldap://127.0.0.1:{free_port_run(1)}"
    with SilentServer() as silent:
        settings = slapd.settings(uri=[silent.uri, closed], timeout="1s")
        # Without timeouts this never returns (the test's own timeout would fail it).
        with pytest.raises(DirectoryUnavailable, match="no directory server answered"):
            check_password(settings, LoginName("uid", "alice"), "pw-alice")
