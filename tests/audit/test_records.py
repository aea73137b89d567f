"""What the audit bot records of an event, and who added or removed it: table-driven."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest

from homeport.audit.export import write_csv
from homeport.audit.records import MARK, record_of, room_change
from homeport.audit.store import Recorded

BOT = "@audit:hs"
BASE = {"event_id": "$e", "room_id": "!r", "sender": "@a:hs", "origin_server_ts": 5}


@pytest.mark.parametrize(
    ("event", "body", "relates_to", "redacts", "encrypted"),
    [
        ({"type": "m.room.message", "content": {"body": "hi"}}, "hi", None, None, False),
        (
            {
                "type": "m.room.message",
                "content": {
                    "body": "* fixed",
                    "m.new_content": {"body": "fixed"},
                    "m.relates_to": {"rel_type": "m.replace", "event_id": "$old"},
                },
            },
            "fixed",
            "$old",
            None,
            False,
        ),
        (
            {"type": "m.reaction", "content": {"m.relates_to": {"event_id": "$m", "key": "👍"}}},
            None,
            "$m",
            None,
            False,
        ),
        ({"type": "m.room.redaction", "redacts": "$m", "content": {}}, None, None, "$m", False),
        (  # room version 11 moved `redacts` into the content
            {"type": "m.room.redaction", "content": {"redacts": "$m"}},
            None,
            None,
            "$m",
            False,
        ),
        (
            {"type": "m.room.topic", "state_key": "", "content": {"topic": "T"}},
            "T",
            None,
            None,
            False,
        ),
        ({"type": "m.room.encrypted", "content": {"ciphertext": "x"}}, None, None, None, True),
    ],
)
def test_an_event_becomes_a_record(
    event: dict[str, Any],
    body: str | None,
    relates_to: str | None,
    redacts: str | None,
    encrypted: bool,
) -> None:
    record = record_of({**BASE, **event}, received_ms=9)
    assert record is not None
    assert (record.body, record.relates_to, record.redacts, record.encrypted) == (
        body,
        relates_to,
        redacts,
        encrypted,
    )
    assert (record.origin_server_ts, record.received_ts) == (5, 9)


def test_what_is_not_an_event_is_not_recorded() -> None:
    assert record_of({"type": "m.typing", "content": {}}, 1) is None


@pytest.mark.parametrize(
    ("sender", "content", "change", "by"),
    [
        (BOT, {"membership": "join", MARK: {"added_by": "@root:hs"}}, "added", "@root:hs"),
        (BOT, {"membership": "join"}, "added", BOT),
        (
            BOT,
            {"membership": "leave", MARK: {"removed_by": "ops (homeport audit)"}},
            "removed",
            "ops (homeport audit)",
        ),
        ("@root:hs", {"membership": "leave"}, "removed", "@root:hs"),
        # A remote member kicking it: recorded with its author, whatever the content claims.
        (
            "@mod:other",
            {"membership": "ban", MARK: {"removed_by": "forged"}},
            "removed",
            "@mod:other",
        ),
        ("@root:hs", {"membership": "invite"}, None, None),
    ],
)
def test_the_bot_s_membership_is_a_room_change(
    sender: str, content: dict[str, Any], change: str | None, by: str | None
) -> None:
    event = {
        **BASE,
        "type": "m.room.member",
        "state_key": BOT,
        "sender": sender,
        "content": content,
    }
    found = room_change(event, BOT)
    got = (found.change, found.by) if found else (None, None)
    assert got == (change, by)
    assert room_change({**event, "state_key": "@someone:hs"}, BOT) is None


def test_a_new_display_name_is_not_a_new_start_of_recording() -> None:
    event = {
        **BASE,
        "type": "m.room.member",
        "state_key": BOT,
        "sender": BOT,
        "content": {"membership": "join", "displayname": "Recorder"},
        "unsigned": {"prev_content": {"membership": "join"}},
    }
    assert room_change(event, BOT) is None


def test_csv_cells_never_become_spreadsheet_formulas() -> None:
    event = record_of(
        {**BASE, "type": "m.room.message", "content": {"body": '=HYPERLINK("http://evil")'}}, 1
    )
    assert event is not None
    recorded = Recorded(
        1,
        event.event_id,
        event.room_id,
        "@a:hs",
        event.type,
        None,
        json.loads(event.content),
        event.body,
        None,
        None,
        False,
        None,
        5,
        9,
    )
    out = io.StringIO()
    write_csv([recorded], out)
    [row] = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert row["body"] == '\'=HYPERLINK("http://evil")'
