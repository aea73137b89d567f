"""Exporting recorded events: JSON lines or CSV, streamed (memory flat in the event count)."""

from __future__ import annotations

import csv
import itertools
import json
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from homeport.audit.store import Recorded
from homeport.clock import iso

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


def _cell(value: object) -> object:
    """A spreadsheet runs a cell that starts with = + - @ (or a tab or CR) as a formula:
    such text gets a leading apostrophe, as OWASP advises."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def write_csv(events: Iterable[Recorded], out: TextIO) -> int:
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    count = 0
    for e in events:
        writer.writerow(
            _cell(v)
            for v in (
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


BATCH = 1000  # events read and written at a time


class ContinuousExport:
    """Appends every newly recorded event to JSON-lines files: one per day, and a new one
    when a file reaches `max_bytes`.

    Encrypted events whose plaintext comes later are followed by a line
    `{"kind": "decrypted", "event_id", "type", "content", "decrypted_ts"}`. A
    cursor file (the last `seq`, and the last plaintext's time) says how far
    it got, so a restart neither skips nor repeats; a crash between a write and
    the cursor may repeat the last lines: readers dedupe by `event_id` (and kind).
    """

    def __init__(
        self, engine: Any, homeserver: str, directory: Path, max_bytes: int, cursor: Path
    ) -> None:
        self._engine = engine
        self._homeserver = homeserver
        self._directory = directory
        self._max_bytes = max_bytes
        self._cursor = cursor

    def _position(self) -> tuple[int, int, list[str]]:
        """(last seq, last plaintext time, plaintexts written at that time)."""
        try:
            data = json.loads(self._cursor.read_text())
            return int(data["seq"]), int(data["decrypted_ts"]), list(data["decrypted_ids"])
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return 0, 0, []

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
        from homeport.files import ensure_dir

        ensure_dir(self._directory)
        after, since_ts, at_since = self._position()
        lines: list[dict[str, Any]] = []
        written = 0
        events = list(
            itertools.islice(
                store.stream(self._engine, self._homeserver, store.Filters(), after), BATCH
            )
        )
        while events:
            self._write(as_json(event) for event in events)
            after, written = events[-1].seq, written + len(events)
            self._save(after, since_ts, at_since)
            events = list(
                itertools.islice(
                    store.stream(self._engine, self._homeserver, store.Filters(), after), BATCH
                )
            )
        for found in store.decrypted_since(self._engine, self._homeserver, since_ts):
            if found.decrypted_ts == since_ts and found.event_id in at_since:
                continue
            lines.append(
                {
                    "kind": "decrypted",
                    "event_id": found.event_id,
                    "type": found.type,
                    "content": json.loads(found.content),
                    "decrypted_ts": found.decrypted_ts,
                }
            )
            if found.decrypted_ts != since_ts:
                since_ts, at_since = found.decrypted_ts, []
            at_since.append(found.event_id)
        self._write(lines)
        written += len(lines)
        if lines:
            self._save(after, since_ts, at_since)
        return written

    def _save(self, after: int, since_ts: int, at_since: list[str]) -> None:
        from homeport.files import write_atomic

        position = {"seq": after, "decrypted_ts": since_ts, "decrypted_ids": at_since}
        write_atomic(self._cursor, json.dumps(position).encode(), mode=0o600)

    def _write(self, lines: Iterable[dict[str, Any]]) -> None:
        """Append, starting a new file once the current one reaches the size limit."""
        day = datetime.now(UTC).strftime("%Y-%m-%d")
        handle: TextIO | None = None
        size = 0
        try:
            for line in lines:
                if handle is None or size >= self._max_bytes:
                    if handle is not None:
                        handle.close()
                    path = self._file(day)
                    handle = _append_private(path)
                    size = path.stat().st_size
                text = json.dumps(line, ensure_ascii=False) + "\n"
                handle.write(text)
                size += len(text.encode())
        finally:
            if handle is not None:
                handle.close()
