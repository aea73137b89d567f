"""The module's reads of Synapse's tables, table-driven on a small SQLite database.

The tables carry Synapse's own names and the columns the queries read; the
same queries run against real Synapses (SQLite and PostgreSQL) in
tests/e2e/test_module.py, test_postgres.py and test_outage.py.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest

from homeport.synapse_module import queries

ME = "me.example.org"
ROOMS = ("!a:x", "!b:x")
# (stream ordering, room, sender, received_ts): local and remote events in two rooms.
EVENTS = [
    (1, "!a:x", f"@alice:{ME}", 1_000),
    (2, "!b:x", f"@alice:{ME}", 2_000),
    (3, "!a:x", "@bob:remote.org", 3_000),  # received from elsewhere: never sent by us
    (4, "!a:x", f"@alice:{ME}", 4_000),
    (5, "!b:x", f"@alice:{ME}", 5_000),
    (6, "!a:x", f"@alice:{ME}", 6_000),
]
# destination: (retry_last_ts, retry_interval, last_successful_stream_ordering, {room: latest})
DESTINATIONS: dict[str, tuple[int, int, int | None, dict[str, int]]] = {
    "up.org": (0, 0, 6, {"!a:x": 6, "!b:x": 5}),  # has everything
    "down-since-2.org": (9_000, 30_000, 2, {"!a:x": 6, "!b:x": 5}),  # lacks 4 and 6, and 5
    "down-since-5.org": (9_500, 60_000, 5, {"!a:x": 6}),  # lacks 6 only
    "never.org": (0, 0, None, {"!b:x": 5}),  # nothing ever delivered
    "quiet.org": (0, 0, 1, {}),  # shares no room any more
}


@pytest.fixture
def txn() -> Iterator[sqlite3.Cursor]:
    db = sqlite3.connect(":memory:")
    db.executescript(
        """
        CREATE TABLE destinations (destination TEXT PRIMARY KEY, retry_last_ts BIGINT,
            retry_interval BIGINT, failure_ts BIGINT, last_successful_stream_ordering BIGINT);
        CREATE TABLE destination_rooms (destination TEXT NOT NULL, room_id TEXT NOT NULL,
            stream_ordering BIGINT NOT NULL, PRIMARY KEY (destination, room_id));
        CREATE TABLE events (stream_ordering INTEGER PRIMARY KEY, room_id TEXT, sender TEXT,
            received_ts BIGINT, origin_server_ts BIGINT);
        CREATE INDEX events_room_stream ON events (room_id, stream_ordering);
        """
    )
    db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?)", [(*e, e[3] - 1) for e in EVENTS])
    for name, (last_ts, interval, delivered, rooms) in DESTINATIONS.items():
        db.execute(
            "INSERT INTO destinations VALUES (?, ?, ?, NULL, ?)",
            (name, last_ts, interval, delivered),
        )
        db.executemany(
            "INSERT INTO destination_rooms VALUES (?, ?, ?)",
            [(name, room, latest) for room, latest in rooms.items()],
        )
    yield db.cursor()
    db.close()


def test_what_each_destination_lacks(txn: sqlite3.Cursor) -> None:
    assert queries.undelivered(txn, ME, None, events=True) == {
        # The oldest undelivered is 4 in !a (3 came from elsewhere) and 5 in !b.
        # Events waiting: local ones after the last delivered (4 and 6 in !a, 5 in !b).
        "down-since-2.org": {"rooms": 2, "since": 4_000, "events": 3},
        "down-since-5.org": {"rooms": 1, "since": 6_000, "events": 1},
        # Never delivered: the room's latest event stands for the outage.
        "never.org": {"rooms": 1, "since": 5_000, "events": 1},
    }


def test_a_page_s_facts_are_its_own(txn: sqlite3.Cursor) -> None:
    counts, waiting = queries.page_facts(txn, ME, ["up.org", "down-since-5.org", "new.org"])
    assert counts == {"up.org": 2, "down-since-5.org": 1, "new.org": 0}
    # A page does not count the events that wait (the tab does not show them).
    assert waiting == {"down-since-5.org": {"rooms": 1, "since": 6_000, "events": 0}}
    assert queries.page_facts(txn, ME, []) == ({}, {})


def test_local_senders_escape_like_wildcards() -> None:
    assert queries.local_senders("a_b%c!d") == "%:a!_b!%c!!d"


@pytest.mark.parametrize(
    ("order", "descending", "start", "limit", "search", "expected"),
    [
        # Longest outage first, then everyone else by name.
        (
            "undelivered_since",
            False,
            0,
            10,
            None,
            ["down-since-2.org", "never.org", "down-since-5.org", "quiet.org", "up.org"],
        ),
        # Shortest first; those with nothing waiting still come last.
        (
            "undelivered_since",
            True,
            0,
            10,
            None,
            ["down-since-5.org", "never.org", "down-since-2.org", "quiet.org", "up.org"],
        ),
        # A page across the boundary between the two groups.
        ("undelivered_since", False, 2, 2, None, ["down-since-5.org", "quiet.org"]),
        ("undelivered_since", False, 4, 2, None, ["up.org"]),
        ("undelivered_since", False, 0, 10, "DOWN", ["down-since-2.org", "down-since-5.org"]),
        # The soonest next attempt first (9,000 + 30,000 before 9,500 + 60,000).
        (
            "next_attempt",
            False,
            0,
            10,
            None,
            ["down-since-2.org", "down-since-5.org", "never.org", "quiet.org", "up.org"],
        ),
        (
            "next_attempt",
            True,
            0,
            10,
            None,
            ["down-since-5.org", "down-since-2.org", "never.org", "quiet.org", "up.org"],
        ),
        ("next_attempt", False, 1, 1, "org", ["down-since-5.org"]),
        # Pages across the boundary between those backing off and the rest, and past it.
        ("next_attempt", False, 1, 2, None, ["down-since-5.org", "never.org"]),
        ("next_attempt", True, 1, 3, None, ["down-since-2.org", "never.org", "quiet.org"]),
        ("next_attempt", False, 3, 5, None, ["quiet.org", "up.org"]),
        ("next_attempt", False, 5, 5, None, []),
        ("next_attempt", False, 0, 10, "DOWN", ["down-since-2.org", "down-since-5.org"]),
    ],
)
def test_the_module_s_own_orders(
    txn: sqlite3.Cursor,
    order: str,
    descending: bool,
    start: int,
    limit: int,
    search: str | None,
    expected: list[str],
) -> None:
    rows, total = queries.paginate_own_order(txn, ME, start, limit, search, order, descending)
    assert [row[0] for row in rows] == expected
    assert total == (2 if search == "DOWN" else len(DESTINATIONS))
    # Synapse's columns, in Synapse's order.
    for row in rows:
        last_ts, interval, delivered, _ = DESTINATIONS[row[0]]
        assert row == (row[0], last_ts, interval, None, delivered)


def test_the_longest_waiting_first_and_bounded() -> None:
    waiting = {f"s{n}.org": {"rooms": 1, "since": 10_000 - n} for n in range(1500)}
    rows = queries.oldest_first(waiting)
    assert len(rows) == queries.MAX_UNDELIVERED
    assert rows[0] == {"destination": "s1499.org", "rooms": 1, "since": 8_501}


@pytest.mark.parametrize(
    ("names", "rest_from", "rest_limit", "search", "expected", "total"),
    [
        # The caller's order first (the store's), then those with nothing waiting by name.
        (["never.org", "down-since-2.org"], 0, 3, None, ["never.org", "down-since-2.org",
         "quiet.org", "up.org"], 5),
        # A later page: the waiting ones are behind, the rest goes on from its offset.
        ([], 1, 5, None, ["up.org"], 5),
        # A name Synapse does not know is left out, never invented.
        (["gone.org", "down-since-5.org"], 0, 0, None, ["down-since-5.org"], 5),
        # The search narrows the rest and the count as Synapse's own list does.
        ([], 0, 5, "UP", ["up.org"], 1),
    ],
)  # fmt: skip
def test_a_page_in_the_callers_order(
    txn: sqlite3.Cursor,
    names: list[str],
    rest_from: int,
    rest_limit: int,
    search: str | None,
    expected: list[str],
    total: int,
) -> None:
    rows, counted = queries.given_order(txn, names, rest_from, rest_limit, search)
    assert [row[0] for row in rows] == expected
    assert counted == total


def test_a_destination_with_no_retry_columns_comes_with_the_rest(txn: sqlite3.Cursor) -> None:
    """Synapse may leave retry_last_ts and retry_interval NULL (a destination first
    known from a room): no next attempt, so among the rest by name, never lost."""
    txn.execute("INSERT INTO destinations VALUES ('nulls.org', NULL, NULL, NULL, NULL)")
    txn.execute("INSERT INTO destinations VALUES ('half.org', NULL, 5000, NULL, NULL)")
    rows, total = queries.paginate_own_order(txn, ME, 0, 10, None, "next_attempt", False)
    assert [row[0] for row in rows] == [
        "down-since-2.org",
        "down-since-5.org",
        "half.org",
        "never.org",
        "nulls.org",
        "quiet.org",
        "up.org",
    ]
    assert total == len(DESTINATIONS) + 2
