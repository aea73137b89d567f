"""Exporting recorded events: JSON lines or CSV, streamed (memory flat in the event count)."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
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


def _append_private(path: Path) -> TextIO:
    """Open for appending; a new file is mode 0600 from its first byte (it holds what
    people said)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    return os.fdopen(fd, "a", encoding="utf-8")


class ContinuousExport:
    """Appends every newly recorded event to JSON-lines files: one per day, and a new one
    when a file reaches `max_bytes`. A cursor file says how far it got, so a restart
    neither skips nor repeats (a crash between a write and the cursor may repeat the
    last lines: readers dedupe by `event_id`)."""

    def __init__(
        self, engine: Any, homeserver: str, directory: Path, max_bytes: int, cursor: Path
    ) -> None:
        self._engine = engine
        self._homeserver = homeserver
        self._directory = directory
        self._max_bytes = max_bytes
        self._cursor = cursor

    def _after(self) -> int:
        try:
            return int(self._cursor.read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def _file(self, day: str) -> Path:
        """Today's file with room left, numbered past the full ones."""
        n = 0
        while True:
            suffix = f".{n}" if n else ""
            path = self._directory / f"audit-{self._homeserver}-{day}{suffix}.jsonl"
            if not path.exists() or path.stat().st_size < self._max_bytes:
                return path
            n += 1

    def write_new(self) -> int:
        from homeport.audit import store
        from homeport.files import ensure_dir, write_atomic

        ensure_dir(self._directory)
        after, written = self._after(), 0
        handle: TextIO | None = None
        path: Path | None = None
        try:
            for event in store.stream(self._engine, self._homeserver, store.Filters(), after):
                wanted = self._file(datetime.now(UTC).strftime("%Y-%m-%d"))
                if wanted != path:
                    if handle is not None:
                        handle.close()
                    path, handle = wanted, _append_private(wanted)
                assert handle is not None
                handle.write(json.dumps(as_json(event), ensure_ascii=False) + "\n")
                handle.flush()
                after, written = event.seq, written + 1
        finally:
            if handle is not None:
                handle.close()
        if written:
            write_atomic(self._cursor, str(after).encode(), mode=0o600)
        return written
