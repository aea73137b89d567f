"""Exporting recorded events: JSON lines or CSV, streamed (memory flat in the event count)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TextIO

from homeport.audit.store import Recorded

CSV_COLUMNS = (
    "seq",
    "time",
    "event_id",
    "room_id",
    "sender",
    "type",
    "state_key",
    "body",
    "relates_to",
    "redacts",
    "encrypted",
    "decrypted",
    "origin_server_ts",
    "received_ts",
    "content",
)


def parse_time(text: str) -> int:
    """Milliseconds since the epoch of an ISO 8601 date or time (UTC unless it says)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as error:
        raise ValueError(
            f"{text!r} is not a date or time: write e.g. 2026-11-26 or 2026-11-26T09:30:00Z"
        ) from error
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def as_json(event: Recorded) -> dict[str, Any]:
    """One exported event: the record, with its time in words and the plaintext if known."""
    return {"time": iso(event.origin_server_ts), **event.as_json()}


def _plain_body(event: Recorded) -> str | None:
    if event.decrypted is not None:
        body = event.decrypted["content"].get("body")
        return body if isinstance(body, str) else None
    return event.body


def write_jsonl(events: Iterable[Recorded], out: TextIO) -> int:
    count = 0
    for event in events:
        out.write(json.dumps(as_json(event), ensure_ascii=False) + "\n")
        count += 1
    return count


def write_csv(events: Iterable[Recorded], out: TextIO) -> int:
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    count = 0
    for e in events:
        writer.writerow(
            (
                e.seq,
                iso(e.origin_server_ts),
                e.event_id,
                e.room_id,
                e.sender,
                e.type,
                e.state_key or "",
                _plain_body(e) or "",
                e.relates_to or "",
                e.redacts or "",
                e.encrypted,
                e.decrypted is not None,
                e.origin_server_ts,
                e.received_ts,
                json.dumps(e.decrypted["content"] if e.decrypted else e.content),
            )
        )
        count += 1
    return count
