"""The website's pure parts: statuses, times, redirects, sessions, policy sentences."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from homeport.admin.present import destination_status, relative, when
from homeport.admin.sessions import Login, PreLoginTokens, SessionStore
from homeport.admin.throttle import Throttle
from homeport.admin.views.auth import safe_next
from homeport.synapse.models import Destination, Undelivered, server_of

WORKING = {
    "destination": "example.org",
    "retry_last_ts": 0,
    "retry_interval": 0,
    "failure_ts": None,
    "last_successful_stream_ordering": 42,
}


@pytest.mark.parametrize(
    ("row", "status"),
    [
        (WORKING, "Working"),
        (
            {**WORKING, "retry_last_ts": 1000, "retry_interval": 600_000, "failure_ts": 900},
            "Failing",
        ),
        ({**WORKING, "last_successful_stream_ordering": None}, "Never worked"),
        (
            {
                **WORKING,
                "last_successful_stream_ordering": None,
                "retry_interval": 5,
                "retry_last_ts": 1,
            },
            "Failing",
        ),
        ({**WORKING, "failure_ts": 900}, "Inactive"),
        ({"destination": "x"}, "Never worked"),
    ],
)
def test_destination_status(row: dict[str, Any], status: str) -> None:
    assert destination_status(Destination.from_api(row), None, NOW) == status


NOW = 1_000_000


@pytest.mark.parametrize(
    ("row", "waiting_since", "status"),
    [
        # Synapse has recorded nothing yet (long retries): events wait all the same.
        (WORKING, NOW - 31_000, "Not delivering"),
        (WORKING, NOW - 30_000, "Not delivering"),
        # A healthy server takes far less than the threshold; in flight is not late.
        (WORKING, NOW - 29_000, "Working"),
        ({**WORKING, "retry_last_ts": 1, "retry_interval": 5}, NOW - 29_000, "Failing"),
        ({**WORKING, "retry_last_ts": 1, "retry_interval": 5}, NOW - 600_000, "Not delivering"),
        ({**WORKING, "last_successful_stream_ordering": None}, NOW - 60_000, "Not delivering"),
    ],
)
def test_not_delivering_is_about_waiting_events(
    row: dict[str, Any], waiting_since: int, status: str
) -> None:
    waiting = Undelivered(str(row["destination"]), 2, waiting_since)
    assert destination_status(Destination.from_api(row), waiting, NOW) == status


def test_backing_off_next_attempt_and_reset() -> None:
    failing = Destination.from_api({**WORKING, "retry_last_ts": 1_000, "retry_interval": 600_000})
    working = Destination.from_api(WORKING)
    assert failing.backing_off
    assert not working.backing_off
    assert failing.next_attempt_ms == 601_000
    assert working.next_attempt_ms is None
    assert failing.can_reset
    assert not working.can_reset


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (480, "in 8 min"),
        (-10_800, "3 h ago"),
        (3, "in a few seconds"),
        (-3, "just now"),
        (-31, "31 s ago"),
        (29.6, "in 30 s"),
        (-60, "1 min ago"),
        (2 * 86_400, "in 2 d"),
    ],
)
def test_relative(seconds: float, words: str) -> None:
    assert relative(seconds) == words


def test_when_is_absolute_with_zone_and_relative() -> None:
    moment = when(1_700_000_000_000, 1_700_000_480_000)
    assert moment is not None
    assert moment.absolute == "2023-11-14 22:13:20 UTC"
    assert moment.relative == "8 min ago"
    assert when(None, 0) is None
    assert when(0, 0) is None


@pytest.mark.parametrize(
    ("target", "safe"),
    [
        ("/rooms?q=x", "/rooms?q=x"),
        ("/federation/example.org", "/federation/example.org"),
        ("https://evil.example/", "/federation"),
        ("//evil.example/x", "/federation"),
        ("/\\evil.example", "/federation"),
        ("javascript:alert(1)", "/federation"),
        ("rooms", "/federation"),
        ("/x\r\nSet-Cookie: a=b", "/federation"),
        (None, "/federation"),
        ("", "/federation"),
    ],
)
def test_redirects_stay_on_this_site(target: str | None, safe: str) -> None:
    assert safe_next(target) == safe


def test_server_of() -> None:
    assert server_of("@alice:localhost:8448") == "localhost:8448"
    assert server_of(None) == ""
    assert server_of("") == ""


def _logins() -> dict[str, Login]:
    return {"internal": Login("@root:internal", secrets.token_hex(8))}


def test_sessions_end_when_idle_or_too_old_and_their_tokens_are_handed_over() -> None:
    now = [0.0]
    store = SessionStore(idle_seconds=60, lifetime_seconds=300, clock=lambda: now[0])
    session = store.new(_logins(), "internal")
    now[0] = 59
    assert store.get(session.id) == (session, None)
    now[0] = 59 + 61
    live, ended = store.get(session.id)
    assert live is None
    assert ended is session
    assert session.ended_because == "idle"
    assert store.get(session.id) == (None, None)
    assert store.drain_ended() == [session]  # its tokens must be logged out
    assert store.drain_ended() == []
    # However active, a session ends at its lifetime.
    busy = store.new(_logins(), "internal")
    for _ in range(5):
        now[0] += 50
        assert store.get(busy.id)[0] is busy
    now[0] += 55  # 305 s after its login, 55 s after its last request
    assert store.get(busy.id) == (None, busy)
    assert busy.ended_because == "lifetime"
    # Idle sessions of others end too, when anyone makes a request.
    other = store.new(_logins(), "internal")
    now[0] += 61
    store.sweep()
    assert other in store.drain_ended()
    assert store.get("not a session") == (None, None)


def test_session_ids_and_csrf_tokens_are_unguessable() -> None:
    store = SessionStore(idle_seconds=60, lifetime_seconds=600)
    a, b = store.new(_logins(), "internal"), store.new(_logins(), "internal")
    assert a.id != b.id
    assert a.csrf_token != b.csrf_token
    assert len(a.id) >= 40


def test_the_session_store_is_bounded_and_a_crowded_out_session_is_logged_out() -> None:
    now = [0.0]
    store = SessionStore(60, 600, clock=lambda: now[0], max_sessions=3)
    first, second = store.new(_logins(), "internal"), store.new(_logins(), "internal")
    now[0] = 10
    assert store.get(first.id)[0] is first  # used: now the most recent
    third, fourth = store.new(_logins(), "internal"), store.new(_logins(), "internal")
    assert len(store) == 3
    assert store.get(second.id) == (None, None)  # least recently used went first
    assert store.drain_ended() == [second]  # and its tokens are logged out
    now[0] = 70
    assert store.get(first.id)[0] is first
    now[0] = 75  # third and fourth were last seen at 10, first at 70
    store.sweep()
    assert {s.id for s in store.drain_ended()} == {third.id, fourth.id}
    assert store.get(first.id)[0] is first


def test_pre_login_tokens_are_signed() -> None:
    tokens = PreLoginTokens()
    cookie = tokens.issue()
    token = tokens.token_of(cookie)
    assert token is not None
    assert token == cookie.split(".")[0]
    assert tokens.token_of(f"{token}.{'0' * 64}") is None  # forged signature
    assert tokens.token_of(PreLoginTokens().issue()) is None  # another website's key
    assert tokens.token_of("no-dot") is None
    assert tokens.token_of(None) is None


def test_the_login_throttle_refills_and_forgets_the_oldest() -> None:
    now = [0.0]
    throttle = Throttle(2, 30.0, clock=lambda: now[0], max_keys=2)
    throttle.spend("a")
    throttle.spend("a")
    assert throttle.wait("a") == 30.0
    now[0] = 15
    assert throttle.wait("a") == 15.0
    now[0] = 30
    assert throttle.wait("a") == 0.0
    throttle.spend("b")
    throttle.spend("c")  # a third key: the least recently seen ("a") is forgotten
    assert throttle.wait("b") == 0.0
