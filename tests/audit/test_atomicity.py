"""One Synapse transaction, one database transaction: all of it recorded, or nothing.

On SQLite and on this machine's real PostgreSQL. A trigger created in the test
database refuses one marked row, the way a full disk or a lost connection
would stop a transaction halfway; nothing of that transaction may be left,
so that Synapse's resend records it whole, once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import DBAPIError

from homeport.audit import store
from homeport.audit.records import EventRecord, RoomChange, record_of
from homeport.config.loader import load_deployment
from homeport.store.database import create_store_engine, store_url
from homeport.store.migrate import migrate
from homeport.store.schema import audit_events, audit_room_changes
from tests.store.test_store import deployment_file

POISON = "$poison"  # the trigger refuses a row with this event ID

SQLITE_TRIGGERS = [
    f"""CREATE TRIGGER poison_{table} BEFORE INSERT ON {table}
        WHEN NEW.event_id = '{POISON}' BEGIN SELECT RAISE(ABORT, 'poisoned row'); END"""
    for table in ("audit_events", "audit_room_changes")
]
POSTGRES_TRIGGERS = [
    f"""CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.event_id = '{POISON}' THEN RAISE EXCEPTION 'poisoned row'; END IF;
            RETURN NEW;
        END $$""",
    *(
        f"""CREATE TRIGGER poison_{table} BEFORE INSERT ON {table}
            FOR EACH ROW EXECUTE FUNCTION poison()"""
        for table in ("audit_events", "audit_room_changes")
    ),
]


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A migrated store whose audit tables refuse the row `POISON`."""
    database = "sqlite"
    if request.param == "postgresql":
        database = request.getfixturevalue("postgres_database")
    deployment = load_deployment(deployment_file(tmp_path, database))[0]
    engine = create_store_engine(store_url(deployment))
    migrate(engine)
    with engine.begin() as connection:
        postgres = connection.dialect.name == "postgresql"
        for statement in POSTGRES_TRIGGERS if postgres else SQLITE_TRIGGERS:
            connection.execute(text(statement))
    yield engine
    engine.dispose()


def event(event_id: str, body: str = "words") -> EventRecord:
    found = record_of(
        {
            "event_id": event_id,
            "room_id": "!r:hs",
            "sender": "@alice:hs",
            "type": "m.room.message",
            "content": {"msgtype": "m.text", "body": body},
            "origin_server_ts": 1_800_000_000_000,
        },
        1_800_000_000_001,
    )
    assert found is not None
    return found


def change(event_id: str) -> RoomChange:
    return RoomChange("!r:hs", "added", "@root:hs", "", event_id, 1_800_000_000_000)


def rows(engine: Engine) -> tuple[int, int]:
    with engine.connect() as connection:
        events = connection.execute(select(func.count()).select_from(audit_events)).scalar()
        changes = connection.execute(select(func.count()).select_from(audit_room_changes)).scalar()
    return int(events or 0), int(changes or 0)


def test_the_fourth_of_five_events_failing_leaves_none_of_them(engine: Engine) -> None:
    events = [event(f"$e{n}") for n in range(3)] + [event(POISON), event("$e4")]
    with pytest.raises(DBAPIError, match="poisoned row"):
        store.record(engine, "internal", events)
    assert rows(engine) == (0, 0)
    # Synapse sends the transaction again (here without the row that failed): all of it.
    assert store.record(engine, "internal", [e for e in events if e.event_id != POISON]) == 4
    assert rows(engine) == (4, 0)


def test_a_room_change_failing_after_the_events_leaves_none_of_them(engine: Engine) -> None:
    """The events are written first, the room changes after: one transaction holds both."""
    events = [event(f"$e{n}") for n in range(5)]
    with pytest.raises(DBAPIError, match="poisoned row"):
        store.record(engine, "internal", events, [change("$c0"), change(POISON)])
    assert rows(engine) == (0, 0)


def test_a_value_the_database_refuses_is_kept_plain_inside_the_same_transaction(
    engine: Engine,
) -> None:
    """A lone surrogate no driver can encode: that event is recorded plain, the rest as
    sent, and duplicates skipped, all in the one transaction; which a later failure in
    it still undoes whole."""
    assert store.record(engine, "internal", [event("$e0")]) == 1
    odd = event("$e2", body="half a pair \ud800")
    batch = [event("$e0"), event("$e1"), odd, event("$e3")]
    with pytest.raises(DBAPIError, match="poisoned row"):
        store.record(engine, "internal", [*batch, event(POISON)])
    assert rows(engine) == (1, 0)
    assert store.record(engine, "internal", batch) == 3  # $e0 was recorded before
    recorded = {e.event_id: e for e in store.stream(engine, "internal", store.Filters())}
    assert list(recorded) == ["$e0", "$e1", "$e2", "$e3"]
    assert recorded["$e2"].body is None  # plain: no derived text
    assert recorded["$e2"].content["body"] == "half a pair \ud800"
    assert recorded["$e3"].body == "words"
