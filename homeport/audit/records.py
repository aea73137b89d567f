"""What the audit bot records of an event. Pure: an event's JSON in, a row out."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from homeport.synapse_module.contract import MARK


@dataclass(frozen=True)
class EventRecord:
    event_id: str
    room_id: str
    sender: str
    type: str
    state_key: str | None
    content: str  # JSON
    body: str | None
    relates_to: str | None
    redacts: str | None
    encrypted: bool
    origin_server_ts: int
    received_ts: int


@dataclass(frozen=True)
class RoomChange:
    """The bot joined (recording starts) or left (it stops) a room."""

    room_id: str
    change: str  # "added" | "removed"
    by: str
    reason: str
    event_id: str
    ts: int


ID_LENGTH = 255  # the columns of IDs and types; Matrix caps event IDs and types at 255 bytes


def _text(value: object) -> str | None:
    """A string fit for any database: PostgreSQL's text cannot hold NUL characters."""
    return value.replace("\x00", "\ufffd") if isinstance(value, str) else None


def _id(value: object) -> str | None:
    """An ID from the event's content (a client wrote it): dropped when no ID can be that long."""
    text = _text(value)
    return text if text is not None and len(text) <= ID_LENGTH else None


def searchable_body(content: Mapping[str, Any]) -> str | None:
    """The text people search for: a message's body, an edit's new body, a topic, a name."""
    new = content.get("m.new_content")
    if isinstance(new, Mapping) and isinstance(new.get("body"), str):
        return _text(new["body"])
    for key in ("body", "topic", "name"):
        if isinstance(content.get(key), str):
            return _text(content[key])
    return None


def relates_to(content: Mapping[str, Any]) -> str | None:
    relation = content.get("m.relates_to")
    return _id(relation.get("event_id")) if isinstance(relation, Mapping) else None


def record_of(event: Mapping[str, Any], received_ms: int) -> EventRecord | None:
    """The row for a persistent event; None for something that is not one."""
    event_id, room_id, sender = event.get("event_id"), event.get("room_id"), event.get("sender")
    kind, ts = event.get("type"), event.get("origin_server_ts")
    if not all(isinstance(v, str) for v in (event_id, room_id, sender, kind)):
        return None
    # Synapse checked these (its own limits are 255 bytes); truncating keeps a row for
    # an event from a server that did not, rather than losing every event after it.
    event_id, room_id, sender, kind = (
        str(_text(v))[:ID_LENGTH] for v in (event_id, room_id, sender, kind)
    )
    content = event.get("content")
    content = content if isinstance(content, Mapping) else {}
    redacts = _id(event.get("redacts")) or (
        _id(content.get("redacts")) if kind == "m.room.redaction" else None
    )
    return EventRecord(
        event_id=str(event_id),
        room_id=str(room_id),
        sender=str(sender),
        type=str(kind),
        state_key=_text(event.get("state_key")),
        content=json.dumps(content, ensure_ascii=False, sort_keys=True),
        body=searchable_body(content),
        relates_to=relates_to(content),
        redacts=redacts,
        encrypted=kind == "m.room.encrypted",
        origin_server_ts=ts if isinstance(ts, int) else received_ms,
        received_ts=received_ms,
    )


def room_change(event: Mapping[str, Any], bot: str) -> RoomChange | None:
    """The bot's own membership as a change of what is recorded, with who made it."""
    if event.get("type") != "m.room.member" or event.get("state_key") != bot:
        return None
    content = event.get("content")
    content = content if isinstance(content, Mapping) else {}
    mark = content.get(MARK)
    mark = mark if isinstance(mark, Mapping) else {}
    membership, sender = content.get("membership"), str(event.get("sender", ""))
    reason = _text(content.get("reason")) or ""
    unsigned = event.get("unsigned")
    previous = unsigned.get("prev_content") if isinstance(unsigned, Mapping) else None
    was = previous.get("membership") if isinstance(previous, Mapping) else None
    if membership == "join" and was == "join":
        return None  # a new display name, not a new start of recording
    if membership == "join":
        change, by = "added", _text(mark.get("added_by")) or sender
    elif membership in ("leave", "ban"):
        change = "removed"
        by = (_text(mark.get("removed_by")) or sender) if sender == bot else sender
    else:
        return None
    ts = event.get("origin_server_ts")
    return RoomChange(
        room_id=str(event.get("room_id", ""))[:ID_LENGTH],
        change=change,
        by=by[:ID_LENGTH],
        reason=reason,
        event_id=str(event.get("event_id", ""))[:ID_LENGTH],
        ts=ts if isinstance(ts, int) else 0,
    )
