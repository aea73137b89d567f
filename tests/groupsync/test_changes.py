"""The directory watch against a real slapd: syncrepl, the poll fallback, outages."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from homeport.config.groupsync import LdapSettings
from homeport.groupsync.changes import STOP_SECONDS, DirectoryWatch, advance, watched_bases
from tests.ldap_server import GROUPS, PEOPLE, Slapd

WAIT = 15.0


def dn(uid: str) -> str:
    return f"uid={uid},{PEOPLE}"


class Seen:
    """What a DirectoryWatch reported, waited on from the test."""

    def __init__(self) -> None:
        self.changes: list[frozenset[str]] = []
        self.errors: list[str] = []
        self._arrived = threading.Event()

    def changed(self, dns: frozenset[str]) -> None:
        self.changes.append(dns)
        self._arrived.set()

    def failed(self, reason: str) -> None:
        self.errors.append(reason)
        self._arrived.set()

    def wait_until(self, done: Callable[[], bool]) -> None:
        deadline = time.monotonic() + WAIT
        while not done():
            assert time.monotonic() < deadline, (self.changes, self.errors)
            self._arrived.wait(0.2)
            self._arrived.clear()

    def wait_for(self, check: Callable[[frozenset[str]], bool]) -> None:
        self.wait_until(lambda: any(check(dns) for dns in list(self.changes)))


@contextlib.contextmanager
def watching(settings: LdapSettings, mode: str) -> Iterator[tuple[DirectoryWatch, Seen]]:
    """A running watch, live in `mode`; stopped (and checked to end) afterwards."""
    seen = Seen()
    watch = DirectoryWatch(settings, seen.changed, seen.failed)
    watch.start()
    try:
        deadline = time.monotonic() + WAIT
        while watch.mode != mode:
            assert time.monotonic() < deadline, (watch.mode, seen.errors)
            time.sleep(0.05)
        yield watch, seen
    finally:
        watch.stop()
    assert not watch.running


@pytest.fixture(scope="module")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    with Slapd(tmp_path_factory.mktemp("slapd")) as server:
        for uid in ("alice", "bob"):
            server.add_person(uid)
        server.add_group("names", [dn("alice")])
        yield server


@pytest.fixture
def syncrepl(slapd: Slapd) -> Iterator[tuple[DirectoryWatch, Seen]]:
    with watching(slapd.settings(), "syncrepl") as running:
        yield running


def test_the_initial_refresh_is_not_a_change(
    slapd: Slapd, syncrepl: tuple[DirectoryWatch, Seen]
) -> None:
    _watch, seen = syncrepl
    slapd.add_person("hank")
    seen.wait_for(lambda dns: dn("hank") in dns)
    # Reports come in order: had the refresh been reported, alice would be in one.
    assert not any(dn("alice") in dns for dns in seen.changes), seen.changes
    assert seen.errors == []


def test_a_new_member_reports_the_group(
    slapd: Slapd, syncrepl: tuple[DirectoryWatch, Seen]
) -> None:
    _watch, seen = syncrepl
    slapd.add_member("names", dn("bob"))
    seen.wait_for(lambda dns: f"cn=names,{GROUPS}" in dns)
    slapd.remove_member("names", dn("bob"))


def test_a_new_person_is_reported(slapd: Slapd, syncrepl: tuple[DirectoryWatch, Seen]) -> None:
    _watch, seen = syncrepl
    slapd.add_person("erin")
    seen.wait_for(lambda dns: dn("erin") in dns)


def test_a_deleted_entry_is_reported(slapd: Slapd, syncrepl: tuple[DirectoryWatch, Seen]) -> None:
    _watch, seen = syncrepl
    slapd.add_person("frank")
    seen.wait_for(lambda dns: dn("frank") in dns)
    seen.changes.clear()
    slapd.delete(dn("frank"))
    seen.wait_for(lambda dns: dn("frank") in dns)


def test_stop_returns_and_the_thread_ends(slapd: Slapd) -> None:
    seen = Seen()
    watch = DirectoryWatch(slapd.settings(), seen.changed, seen.failed)
    watch.start()
    seen.wait_until(lambda: watch.mode == "syncrepl")
    started = time.monotonic()
    watch.stop()
    assert time.monotonic() - started < STOP_SECONDS + 1
    assert not watch.running


def _outage(server: Slapd, watch: DirectoryWatch, seen: Seen) -> None:
    """slapd goes away and comes back: the watch says why, then asks for a re-read."""
    server.stop()
    try:
        seen.wait_until(lambda: bool(seen.errors))
    finally:
        server.start()
    seen.wait_for(lambda dns: dns == frozenset())
    assert watch.mode in ("syncrepl", "poll")
    assert all("Can't contact LDAP server" in e for e in seen.errors), seen.errors
    assert server.password not in " ".join(seen.errors)


def test_after_an_outage_the_watch_reconnects_and_asks_for_a_re_read(
    slapd: Slapd, syncrepl: tuple[DirectoryWatch, Seen]
) -> None:
    watch, seen = syncrepl
    _outage(slapd, watch, seen)
    slapd.add_person("gina")  # and it follows changes again
    seen.wait_for(lambda dns: dn("gina") in dns)


def test_without_syncrepl_it_polls_modify_timestamps(tmp_path: Path) -> None:
    with Slapd(tmp_path, syncprov=False) as server:
        server.add_person("alice")
        server.add_group("names", [dn("alice")])
        with watching(server.settings(), "poll") as (watch, seen):
            server.add_person("bob")
            seen.wait_for(lambda dns: dn("bob") in dns)
            # alice, added before the watch began, is not news.
            assert not any(dn("alice") in dns for dns in seen.changes), seen.changes
            server.add_member("names", dn("bob"))
            seen.wait_for(lambda dns: f"cn=names,{GROUPS}" in dns)
            # A second edit of the same entry, likely within the same second: seen too.
            seen.changes.clear()
            server.remove_member("names", dn("bob"))
            seen.wait_for(lambda dns: f"cn=names,{GROUPS}" in dns)
            _outage(server, watch, seen)


def test_a_size_limit_on_the_reader_falls_back_to_polling(tmp_path: Path) -> None:
    # The initial refresh of syncrepl is a search like any other: past the limit it fails.
    with Slapd(tmp_path, size_limit=3) as server:
        for uid in ("alice", "bob", "carol", "dave"):
            server.add_person(uid)
        with watching(server.settings(), "poll") as (_watch, seen):
            server.add_person("erin")
            seen.wait_for(lambda dns: dn("erin") in dns)


# Pure helpers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("people", "groups", "expected"),
    [
        ("ou=people,dc=x", "ou=groups,dc=x", ["ou=people,dc=x", "ou=groups,dc=x"]),
        ("dc=x", "ou=groups,dc=x", ["dc=x"]),
        ("ou=people, dc=x", "DC=X", ["DC=X"]),
        ("dc=x", "dc=x", ["dc=x"]),
        ("ou=people,dc=xy", "dc=y", ["ou=people,dc=xy", "dc=y"]),
    ],
)
def test_watched_bases(people: str, groups: str, expected: list[str]) -> None:
    settings = LdapSettings(uri=["ldap://h"], user_base=people, group_base=groups)
    assert watched_bases(settings) == expected


@pytest.mark.parametrize(
    ("since", "found", "expected"),
    [
        ("20240101000000Z", [], ("20240101000000Z", set())),
        (
            "20240101000000Z",
            [("a", "20240101000005Z|1|"), ("b", "20240101000009Z|2|"), ("c", "20240101000009Z|3|")],
            ("20240101000009Z", {("b", "20240101000009Z|2|"), ("c", "20240101000009Z|3|")}),
        ),
        (  # Active Directory's format: the server's own values are the next bound
            "20240101000000Z",
            [("a", "20240101000100.0Z||77")],
            ("20240101000100.0Z", {("a", "20240101000100.0Z||77")}),
        ),
    ],
)
def test_advance(
    since: str, found: list[tuple[str, str]], expected: tuple[str, set[tuple[str, str]]]
) -> None:
    assert advance(since, found) == (expected[0], frozenset(expected[1]))
