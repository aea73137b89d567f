"""The audit records in Homeport's store: append-only, each event once.

Writes happen in one database transaction per Synapse transaction, all or
nothing, so the bot can acknowledge it exactly when it is durable; on SQLite
the store's engine makes that a real transaction holding the write lock for
just that work (`homeport.store.sqlite`). Reads page by `seq` (keyset
pagination): an export or a search never holds more than a page in memory,
however many events there are.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Table, and_, func, or_, select
from sqlalchemy.exc import DataError, DBAPIError, StatementError
from sqlalchemy.sql import ColumnElement

from homeport.audit.records import EventRecord, RoomChange
from homeport.store.schema import audit_decrypted, audit_events, audit_room_changes

PAGE = 1000


def _insert_statement(connection: Connection, table: Table) -> Any:
    """INSERT that skips a row whose unique key is already there (recorded before)."""
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing()


def _refused_value(error: Exception) -> bool:
    """A value the database refuses: a DataError, or one the driver cannot send at all
    (psycopg2 refuses a NUL, no driver encodes a lone surrogate: a ValueError, raw or
    wrapped in a StatementError). Anything else (a locked or lost database, a
    constraint) is not the row's fault."""
    return isinstance(error, DataError | ValueError) or not isinstance(error, DBAPIError)


def _insert_new(
    connection: Connection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    fallback: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> int:
    """Insert the rows whose unique key is new (the others are already recorded), inside
    the caller's transaction; returns how many were new.

    One statement for all the rows. Should the database refuse a value, the rows
    go again one by one, each under a savepoint, a refused one stored as
    `fallback(row)`: one odd event can never hold up every event after it
    (Synapse resends a refused transaction for ever). Any other error
    propagates, and the caller's transaction leaves nothing behind.
    """
    if not rows:
        return 0
    statement = _insert_statement(connection, table)
    new = statement.returning(table.c.event_id)  # the rows inserted: skipped ones are not
    if fallback is None:
        return len(connection.execute(new, rows).all())
    try:
        with connection.begin_nested():
            return len(connection.execute(new, rows).all())
    except (StatementError, ValueError) as error:
        if not _refused_value(error):
            raise
    inserted = 0
    for row in rows:
        try:
            with connection.begin_nested():
                inserted += connection.execute(statement, row).rowcount
        except (StatementError, ValueError) as error:
            if not _refused_value(error):
                raise
            inserted += connection.execute(statement, fallback(row)).rowcount
    return inserted


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """An event row reduced to what any database holds: its JSON in ASCII, no derived text."""
    content = json.dumps(json.loads(row["content"]), ensure_ascii=True, sort_keys=True)
    return {
        **row,
        "content": content,
        "body": None,
        "relates_to": None,
        "redacts": None,
        "state_key": None
        if row["state_key"] is None
        else row["state_key"].encode("ascii", "backslashreplace").decode(),
    }


def record(
    engine: Engine,
    homeserver: str,
    events: Sequence[EventRecord],
    changes: Sequence[RoomChange] = (),
) -> int:
    """Store a transaction's events and room changes in one database transaction, all or
    nothing; returns how many events were new."""
    event_rows, change_rows = _rows(homeserver, events), _rows(homeserver, changes)
    with engine.begin() as connection:  # SQLite's write lock, until the commit
        new = _insert_new(connection, audit_events, event_rows, fallback=_plain)
        _insert_new(connection, audit_room_changes, change_rows)
    return new


def _rows(homeserver: str, records: Sequence[object]) -> list[dict[str, Any]]:
    """Rows of flat records, made before the transaction: none of its lock is spent here
    (`vars`, not `asdict`, which deep-copies field by field)."""
    return [{"homeserver": homeserver, **vars(r)} for r in records]


@dataclass(frozen=True)
class Decrypted:
    event_id: str
    type: str
    content: str  # JSON
    body: str | None
    relates_to: str | None
    decrypted_ts: int


def record_decrypted(engine: Engine, homeserver: str, found: Sequence[Decrypted]) -> int:
    rows = _rows(homeserver, found)
    with engine.begin() as connection:
        return _insert_new(connection, audit_decrypted, rows)


UNDECRYPTED_PAGE = 200


def undecrypted(
    engine: Engine, homeserver: str, after: int = 0, limit: int = UNDECRYPTED_PAGE
) -> list[tuple[int, dict[str, Any]]]:
    """Encrypted events without plaintext yet, after `seq`, oldest first: (seq, event)."""
    e, d = audit_events, audit_decrypted
    query = (
        select(e.c.seq, e.c.event_id, e.c.room_id, e.c.sender, e.c.content, e.c.origin_server_ts)
        .select_from(
            e.outerjoin(d, and_(d.c.homeserver == e.c.homeserver, d.c.event_id == e.c.event_id))
        )
        .where(e.c.homeserver == homeserver, e.c.encrypted, e.c.seq > after)
        .where(d.c.event_id.is_(None))
        .order_by(e.c.seq)
        .limit(limit)
    )
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    return [
        (
            row.seq,
            {
                "event_id": row.event_id,
                "room_id": row.room_id,
                "sender": row.sender,
                "type": "m.room.encrypted",
                "content": json.loads(row.content),
                "origin_server_ts": row.origin_server_ts,
            },
        )
        for row in rows
    ]


def decrypted_since(
    engine: Engine, homeserver: str, since_ts: int, limit: int = 1000
) -> list[Decrypted]:
    """Plaintexts found at or after `since_ts`, in the order they were found."""
    d = audit_decrypted
    query = (
        select(d)
        .where(d.c.homeserver == homeserver, d.c.decrypted_ts >= since_ts)
        .order_by(d.c.decrypted_ts, d.c.event_id)
        .limit(limit)
    )
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    return [
        Decrypted(r.event_id, r.type, r.content, r.body, r.relates_to, r.decrypted_ts) for r in rows
    ]


@dataclass(frozen=True)
class AuditedRoom:
    room_id: str
    since_ts: int
    added_by: str
    events: int


def _latest_changes(homeserver: str) -> Any:
    c = audit_room_changes
    latest = (
        select(func.max(c.c.id).label("id"))
        .where(c.c.homeserver == homeserver)
        .group_by(c.c.room_id)
        .subquery()
    )
    return select(c).join(latest, latest.c.id == c.c.id)


def audited_rooms(engine: Engine, homeserver: str) -> list[AuditedRoom]:
    """The rooms the bot records now: its last change there is `added`."""
    changes = _latest_changes(homeserver).subquery()
    counts = (
        select(audit_events.c.room_id, func.count().label("events"))
        .where(audit_events.c.homeserver == homeserver)
        .group_by(audit_events.c.room_id)
        .subquery()
    )
    query = (
        select(changes.c.room_id, changes.c.ts, changes.c.by, counts.c.events)
        .outerjoin(counts, counts.c.room_id == changes.c.room_id)
        .where(changes.c.change == "added")
        .order_by(changes.c.ts)
    )
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    return [AuditedRoom(r.room_id, r.ts, r.by, r.events or 0) for r in rows]


def count_audited(engine: Engine, homeserver: str) -> int:
    changes = _latest_changes(homeserver).subquery()
    query = select(func.count()).select_from(changes).where(changes.c.change == "added")
    with engine.connect() as connection:
        return int(connection.execute(query).scalar_one())


def room_changes(
    engine: Engine, homeserver: str, room_id: str | None = None, limit: int = 500
) -> list[RoomChange]:
    """When recording started and stopped, by whom; newest first."""
    c = audit_room_changes
    query = select(c).where(c.c.homeserver == homeserver).order_by(c.c.id.desc()).limit(limit)
    if room_id is not None:
        query = query.where(c.c.room_id == room_id)
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    return [RoomChange(r.room_id, r.change, r.by, r.reason, r.event_id, r.ts) for r in rows]


@dataclass(frozen=True)
class Filters:
    """What an export or a search selects; every field optional."""

    room_id: str | None = None
    sender: str | None = None
    text: str | None = None  # in the body, plaintext of encrypted events included
    since_ms: int | None = None
    until_ms: int | None = None
    event_type: str | None = None


@dataclass(frozen=True)
class Recorded:
    """One recorded event as exports and the website show it."""

    seq: int
    event_id: str
    room_id: str
    sender: str
    type: str
    state_key: str | None
    content: dict[str, Any]
    body: str | None
    relates_to: str | None
    redacts: str | None
    encrypted: bool
    decrypted: dict[str, Any] | None  # {"type", "content"} once the keys arrived
    origin_server_ts: int
    received_ts: int

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _conditions(homeserver: str, filters: Filters) -> list[ColumnElement[bool]]:
    e, d = audit_events, audit_decrypted
    where: list[ColumnElement[bool]] = [e.c.homeserver == homeserver]
    if filters.room_id:
        where.append(e.c.room_id == filters.room_id)
    if filters.sender:
        where.append(e.c.sender == filters.sender)
    if filters.event_type:
        where.append(e.c.type == filters.event_type)
    if filters.since_ms is not None:
        where.append(e.c.origin_server_ts >= filters.since_ms)
    if filters.until_ms is not None:
        where.append(e.c.origin_server_ts < filters.until_ms)
    if filters.text:
        pattern = (
            "%" + filters.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        )
        where.append(
            or_(
                func.lower(e.c.body).like(pattern.lower(), escape="\\"),
                func.lower(d.c.body).like(pattern.lower(), escape="\\"),
            )
        )
    return where


def _page(
    connection: Connection,
    homeserver: str,
    filters: Filters,
    after: int,
    before: int | None,
    limit: int,
    newest_first: bool,
) -> list[Recorded]:
    e, d = audit_events, audit_decrypted
    where = _conditions(homeserver, filters)
    where.append(e.c.seq > after)
    if before is not None:
        where.append(e.c.seq < before)
    query = (
        select(e, d.c.type.label("d_type"), d.c.content.label("d_content"))
        .select_from(
            e.outerjoin(d, and_(d.c.homeserver == e.c.homeserver, d.c.event_id == e.c.event_id))
        )
        .where(*where)
        .order_by(e.c.seq.desc() if newest_first else e.c.seq)
        .limit(limit)
    )
    return [
        Recorded(
            seq=r.seq,
            event_id=r.event_id,
            room_id=r.room_id,
            sender=r.sender,
            type=r.type,
            state_key=r.state_key,
            content=json.loads(r.content),
            body=r.body,
            relates_to=r.relates_to,
            redacts=r.redacts,
            encrypted=r.encrypted,
            decrypted=(
                None if r.d_type is None else {"type": r.d_type, "content": json.loads(r.d_content)}
            ),
            origin_server_ts=r.origin_server_ts,
            received_ts=r.received_ts,
        )
        for r in connection.execute(query).all()
    ]


def stream(engine: Engine, homeserver: str, filters: Filters, after: int = 0) -> Iterator[Recorded]:
    """Every matching event in recording order, a page at a time (memory stays flat)."""
    while True:
        with engine.connect() as connection:
            page = _page(connection, homeserver, filters, after, None, PAGE, newest_first=False)
        yield from page
        if len(page) < PAGE:
            return
        after = page[-1].seq


def search(
    engine: Engine, homeserver: str, filters: Filters, before: int | None, limit: int = 50
) -> list[Recorded]:
    """A page of matching events, newest first, older than `before` (a `seq`)."""
    with engine.connect() as connection:
        return _page(connection, homeserver, filters, 0, before, limit, newest_first=True)


def event(engine: Engine, homeserver: str, event_id: str) -> Recorded | None:
    e = audit_events
    with engine.connect() as connection:
        seq = connection.execute(
            select(e.c.seq).where(e.c.homeserver == homeserver, e.c.event_id == event_id)
        ).scalar()
        if seq is None:
            return None
        page = _page(connection, homeserver, Filters(), seq - 1, seq + 1, 1, newest_first=False)
    return page[0] if page else None


def last_seq(engine: Engine, homeserver: str) -> int:
    query = select(func.max(audit_events.c.seq)).where(audit_events.c.homeserver == homeserver)
    with engine.connect() as connection:
        return int(connection.execute(query).scalar() or 0)
