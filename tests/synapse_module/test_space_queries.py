"""The internal spaces' walk over Synapse's current state, on a database of the test's own
with Synapse's table and column names."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest

from homeport.synapse_module import space_queries

SERVER = "hs.example"


class _State:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.count = 0

    def put(self, room: str, kind: str, key: str, content: dict[str, Any], **extra: str) -> None:
        """The room's current `kind`/`key` state event, replacing the one before."""
        self.count += 1
        event_id = f"$e{self.count}"
        self.db.execute(
            "DELETE FROM current_state_events WHERE room_id = ? AND type = ? AND state_key = ?",
            (room, kind, key),
        )
        self.db.execute(
            "INSERT INTO current_state_events VALUES (?, ?, ?, ?, ?)",
            (event_id, room, kind, key, extra.get("membership")),
        )
        body = {"type": kind, "state_key": key, "room_id": room, "content": content}
        self.db.execute(
            "INSERT INTO event_json VALUES (?, ?, ?)", (event_id, room, json.dumps(body))
        )

    def room(self, room: str, federate: bool | None = None, space: bool = False) -> None:
        content: dict[str, Any] = {"room_version": "10"}
        if federate is not None:
            content["m.federate"] = federate
        if space:
            content["type"] = "m.space"
        self.put(room, "m.room.create", "", content)

    def child(self, space: str, room: str, linked: bool = True) -> None:
        self.put(space, "m.space.child", room, {"via": [SERVER]} if linked else {})

    def member(self, room: str, user: str, membership: str = "join") -> None:
        self.put(room, "m.room.member", user, {"membership": membership}, membership=membership)


@pytest.fixture
def state() -> Iterator[_State]:
    db = sqlite3.connect(":memory:")
    db.executescript(
        """
        CREATE TABLE current_state_events (event_id TEXT, room_id TEXT, type TEXT,
            state_key TEXT, membership TEXT);
        CREATE TABLE event_json (event_id TEXT, room_id TEXT, json TEXT);
        CREATE TABLE room_aliases (room_alias TEXT, room_id TEXT, creator TEXT);
        """
    )
    yield _State(db)
    db.close()


def test_subspaces_and_their_rooms_are_internal_removed_children_are_not(state: _State) -> None:
    state.room("!staff", federate=False, space=True)
    state.room("!sub", federate=False, space=True)
    state.child("!staff", "!sub")
    state.child("!staff", "!a")
    state.child("!sub", "!b")
    state.child("!sub", "!gone", linked=False)  # Element removes a child with {}
    state.child("!other", "!c")  # another space's child
    state.child("!b", "!staff")  # a cycle ends the walk
    txn = state.db.cursor()
    assert space_queries.internal_rooms(txn, ["!staff"]) == {"!staff", "!sub", "!a", "!b"}
    assert space_queries.internal_rooms(txn, ["!sub"]) == {"!sub", "!b", "!staff", "!a"}
    assert space_queries.internal_rooms(txn, []) == set()


@pytest.mark.parametrize(
    ("content_federate", "federates"),
    [(None, True), (True, True), (False, False)],
    ids=["unsaid", "true", "false"],
)
def test_only_a_literal_false_keeps_a_room_to_this_server(
    state: _State, content_federate: bool | None, federates: bool
) -> None:
    state.room("!r", federate=content_federate)
    assert space_queries.federates(state.db.cursor(), ["!r", "!unknown"]) == {"!r": federates}


def test_the_drift_report_names_what_is_wrong_with_each_room(state: _State) -> None:
    state.room("!staff", federate=False, space=True)
    state.put("!staff", "m.room.name", "", {"name": "Staff"})
    state.room("!old", federate=True)  # from before the policy
    state.room("!public", federate=True, space=True)  # a federated space holding the internal one
    state.child("!staff", "!old")
    state.child("!staff", "!unseen")  # a room this server is not in
    state.child("!public", "!staff")
    state.room("!local", federate=False, space=True)  # a non-federated space may hold it
    state.child("!local", "!staff")
    state.member("!old", f"@alice:{SERVER}")
    state.member("!old", "@bob:elsewhere.example")
    state.member("!old", "@carol:elsewhere.example", "invite")
    state.member("!old", "@dave:elsewhere.example", "leave")
    resolved, rooms = space_queries.describe(state.db.cursor(), ["!staff", "#none:x"], SERVER)
    assert resolved == {"!staff": "!staff", "#none:x": None}
    report = {r.room_id: r for r in rooms}
    assert set(report) == {"!staff", "!old", "!unseen"}
    staff, old, unseen = report["!staff"], report["!old"], report["!unseen"]
    assert (staff.name, staff.space, staff.federates, staff.outside_parents) == (
        "Staff",
        True,
        False,
        ("!public",),
    )
    assert (old.federates, old.parents, old.exposed) == (True, ("!staff",), False)
    assert old.remote_members == ("@bob:elsewhere.example", "@carol:elsewhere.example")
    assert (unseen.known, unseen.federates) == (False, True)


def test_references_resolve_through_this_server_s_aliases(state: _State) -> None:
    state.room("!staff", federate=False, space=True)
    state.child("!staff", "!a")
    state.room("!a", federate=True)
    state.db.execute("INSERT INTO room_aliases VALUES ('#staff:hs.example', '!staff', NULL)")
    txn = state.db.cursor()
    references = ["#staff:hs.example", "#later:hs.example", "!id"]
    assert space_queries.resolve(txn, references) == {
        "#staff:hs.example": "!staff",
        "#later:hs.example": None,
        "!id": "!id",
    }
