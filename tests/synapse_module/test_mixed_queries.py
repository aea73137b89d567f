"""Rooms that mix servers, read from Synapse's tables: table-driven on a small SQLite database
(the same query runs against a real Synapse in tests/e2e/test_three.py)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest

from homeport.synapse_module.mixed_queries import mixed_rooms

ME = "internal.example.org"
SIBLING = "external.example.org"
# (room, member, membership) in the current state; which rooms our users are in.
MEMBERS = [
    ("!ours", f"@alice:{ME}", "join"),
    ("!ours", f"@bob:{SIBLING}", "join"),  # a sibling we federate with: fine
    ("!mixed", f"@alice:{ME}", "join"),
    ("!mixed", "@carol:partner.org", "join"),
    ("!mixed", "@dave:partner.org", "join"),
    ("!mixed", "@eve:other_net.org", "join"),
    ("!mixed", "@left:stranger.org", "leave"),  # gone: not counted
    ("!elsewhere", "@carol:partner.org", "join"),  # none of ours is in it
    ("!partial", f"@alice:{ME}", "join"),
]
LOCAL = [("!ours", "join"), ("!mixed", "join"), ("!partial", "join"), ("!old", "leave")]


@pytest.fixture
def txn() -> Iterator[sqlite3.Cursor]:
    db = sqlite3.connect(":memory:")
    db.executescript(
        """
        CREATE TABLE current_state_events (event_id TEXT, room_id TEXT, type TEXT,
            state_key TEXT, membership TEXT);
        CREATE TABLE local_current_membership (room_id TEXT, user_id TEXT, event_id TEXT,
            membership TEXT);
        CREATE TABLE room_stats_state (room_id TEXT, name TEXT);
        CREATE TABLE partial_state_rooms (room_id TEXT);
        """
    )
    db.executemany(
        "INSERT INTO current_state_events VALUES ('$e', ?, 'm.room.member', ?, ?)", MEMBERS
    )
    db.executemany("INSERT INTO local_current_membership VALUES (?, '@alice', '$e', ?)", LOCAL)
    db.execute("INSERT INTO room_stats_state VALUES ('!mixed', 'Partners')")
    db.execute("INSERT INTO partial_state_rooms VALUES ('!partial')")
    yield db.cursor()
    db.close()


def test_rooms_of_ours_with_servers_outside_the_list(txn: sqlite3.Cursor) -> None:
    assert mixed_rooms(txn, [ME, SIBLING]) == {
        "rooms": [
            {
                "room_id": "!mixed",
                "name": "Partners",
                "servers": ["other_net.org", "partner.org"],
                "members": 3,
            }
        ],
        "total": 1,
        "partial": [{"room_id": "!partial", "name": None}],
    }


def test_like_wildcards_in_a_server_name_match_only_themselves(txn: sqlite3.Cursor) -> None:
    # "other_net.org" listed: "_" must not match any one character of another name.
    found = mixed_rooms(txn, [ME, SIBLING, "other_net.org", "partner_org"])
    assert found["rooms"][0]["servers"] == ["partner.org"]
