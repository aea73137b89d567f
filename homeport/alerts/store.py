"""Incidents, the destinations waiting now, and the alerts' outbox in Homeport's store.

A check's step is written in one transaction: the incidents it opened or
changed, the notices it made (the outbox), and the waiting destinations as it
found them (only what changed). Sending reads the outbox afterwards, so a
notice is never lost between a check and its delivery, and a restart of
`up` neither forgets an incident nor tells it twice.

Bounded: ended incidents are kept for the configured retention and at most
MAX_INCIDENTS per homeserver (the oldest go first); sent notices for a week.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Connection, Engine, delete, func, insert, or_, select, update

from homeport.alerts.incidents import Incident, Kind, Notice, Status, Step, Waiting
from homeport.store.schema import (
    alert_checks,
    alert_notices,
    federation_incidents,
    federation_waiting,
)
from homeport.synapse.admin_api import DestinationQuery

MAX_INCIDENTS = 100_000  # per homeserver, whatever the outage
NOTICES_KEPT_MS = 7 * 86_400_000
NOTICE_EXPIRES_MS = 86_400_000  # a notice not delivered within a day is given up on
Delivery = Literal["pending", "sent", "off", "expired"]

_I = federation_incidents.c
_W = federation_waiting.c
_N = alert_notices.c
_C = alert_checks.c


def _incident(row: Any) -> Incident:
    return Incident(
        homeserver=row.homeserver,
        destination=row.destination,
        kind=row.kind,
        started_ms=row.started_ts,
        last_bad_ms=row.last_bad_ts,
        good_since_ms=row.good_since_ts,
        ended_ms=row.ended_ts,
        rooms=row.rooms,
        events=row.events,
        alerted=bool(row.alerted),
        detail=row.detail,
        id=row.id,
    )


def _values(incident: Incident) -> dict[str, Any]:
    return {
        "homeserver": incident.homeserver,
        "destination": incident.destination,
        "kind": incident.kind,
        "started_ts": incident.started_ms,
        "last_bad_ts": incident.last_bad_ms,
        "good_since_ts": incident.good_since_ms,
        "ended_ts": incident.ended_ms,
        "rooms": incident.rooms,
        "events": incident.events,
        "alerted": incident.alerted,
        "detail": incident.detail,
    }


def open_incidents(engine: Engine, homeserver: str) -> list[Incident]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(federation_incidents).where(_I.homeserver == homeserver, _I.ended_ts.is_(None))
        )
        return [_incident(row) for row in rows]


def record_step(
    engine: Engine,
    homeserver: str,
    step: Step,
    waiting: Mapping[str, Waiting],
    now_ms: int,
    room: bool,
    webhook: bool,
) -> list[int]:
    """Write a check's step and its waiting destinations at once; the new notices' IDs."""
    with engine.begin() as connection:
        written = _write_incidents(connection, step.changed)
        ids = [
            _write_notice(connection, notice, written, now_ms, room, webhook)
            for notice in step.notices
        ]
        _write_waiting(connection, homeserver, waiting)
        checked = connection.execute(
            update(alert_checks).where(_C.homeserver == homeserver).values(checked_ts=now_ms)
        )
        if checked.rowcount == 0:
            connection.execute(
                insert(alert_checks).values(homeserver=homeserver, checked_ts=now_ms)
            )
    return ids


def _write_incidents(
    connection: Connection, changed: Sequence[Incident]
) -> dict[tuple[str, Kind], Incident]:
    """Each incident as written, with its ID, by key."""
    written: dict[tuple[str, Kind], Incident] = {}
    for incident in changed:
        if incident.id is None:
            new_id = connection.execute(
                insert(federation_incidents).values(_values(incident))
            ).inserted_primary_key
            assert new_id is not None
            incident = dataclasses.replace(incident, id=int(new_id[0]))
        else:
            connection.execute(
                update(federation_incidents).where(_I.id == incident.id).values(_values(incident))
            )
        written[incident.key] = incident
    return written


def _write_notice(
    connection: Connection,
    notice: Notice,
    written: Mapping[tuple[str, Kind], Incident],
    now_ms: int,
    room: bool,
    webhook: bool,
) -> int:
    incidents = [written.get(i.key, i) for i in notice.incidents]
    found = connection.execute(
        insert(alert_notices).values(
            homeserver=notice.homeserver,
            status=notice.status,
            created_ts=now_ms,
            incidents=json.dumps([_incident_json(i) for i in incidents]),
            room="pending" if room else "off",
            webhook="pending" if webhook else "off",
            attempts=0,
            next_try_ts=now_ms,
            last_error=None,
        )
    ).inserted_primary_key
    assert found is not None
    return int(found[0])


def _incident_json(incident: Incident) -> dict[str, Any]:
    return dataclasses.asdict(incident)


def _write_waiting(connection: Connection, homeserver: str, waiting: Mapping[str, Waiting]) -> None:
    """The table made equal to `waiting`, writing only what changed."""
    stored = {
        row.destination: Waiting(row.since_ts, row.rooms, row.events)
        for row in connection.execute(
            select(_W.destination, _W.since_ts, _W.rooms, _W.events).where(
                _W.homeserver == homeserver
            )
        )
    }
    gone = [d for d in stored if d not in waiting]
    for start in range(0, len(gone), 500):
        connection.execute(
            delete(federation_waiting).where(
                _W.homeserver == homeserver, _W.destination.in_(gone[start : start + 500])
            )
        )
    new = [
        {"homeserver": homeserver, "destination": d, "since_ts": w.since_ms, "rooms": w.rooms,
         "events": w.events}
        for d, w in waiting.items()
        if d not in stored
    ]  # fmt: skip
    if new:
        connection.execute(insert(federation_waiting), new)
    for destination, now in waiting.items():
        before = stored.get(destination)
        if before is not None and before != now:
            connection.execute(
                update(federation_waiting)
                .where(_W.homeserver == homeserver, _W.destination == destination)
                .values(since_ts=now.since_ms, rooms=now.rooms, events=now.events)
            )


@dataclass(frozen=True)
class StoredNotice:
    id: int
    notice: Notice
    created_ms: int
    room: Delivery
    webhook: Delivery
    attempts: int


def _notice(row: Any) -> StoredNotice:
    incidents = tuple(Incident(**value) for value in json.loads(row.incidents))
    status: Status = row.status
    return StoredNotice(
        row.id,
        Notice(row.homeserver, status, incidents),
        row.created_ts,
        row.room,
        row.webhook,
        row.attempts,
    )


def due_notices(engine: Engine, now_ms: int) -> list[StoredNotice]:
    """Notices with a delivery still to make, whose next try is due, oldest first."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(alert_notices)
            .where(
                _N.next_try_ts <= now_ms,
                or_(_N.room == "pending", _N.webhook == "pending"),
            )
            .order_by(_N.id)
        )
        return [_notice(row) for row in rows]


def undelivered_notices(engine: Engine) -> int:
    """Notices with a channel still to send."""
    with engine.connect() as connection:
        pending = or_(_N.room == "pending", _N.webhook == "pending")
        return int(connection.execute(select(func.count()).where(pending)).scalar_one())


def open_in(engine: Engine, homeservers: Sequence[str]) -> list[Incident]:
    """Every open incident of these homeservers, the newest first."""
    query = (
        select(federation_incidents)
        .where(_I.homeserver.in_(list(homeservers)), _I.ended_ts.is_(None))
        .order_by(_I.started_ts.desc(), _I.id.desc())
    )
    with engine.connect() as connection:
        return [_incident(row) for row in connection.execute(query)]


def told_open(engine: Engine) -> list[Incident]:
    """Every open incident that was told, of every homeserver."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(federation_incidents).where(_I.ended_ts.is_(None), _I.alerted.is_(True))
        )
        return [_incident(row) for row in rows]


def mark_notice(
    engine: Engine,
    notice_id: int,
    room: Delivery,
    webhook: Delivery,
    attempts: int,
    next_try_ms: int,
    error: str | None,
) -> None:
    with engine.begin() as connection:
        connection.execute(
            update(alert_notices)
            .where(_N.id == notice_id)
            .values(
                room=room,
                webhook=webhook,
                attempts=attempts,
                next_try_ts=next_try_ms,
                last_error=error,
            )
        )


def prune(engine: Engine, now_ms: int, retention_ms: int) -> int:
    """Forget what is past keeping; how many incidents went."""
    with engine.begin() as connection:
        gone = connection.execute(
            delete(federation_incidents).where(
                _I.ended_ts.is_not(None), _I.ended_ts < now_ms - retention_ms
            )
        ).rowcount
        for (homeserver,) in connection.execute(select(_I.homeserver).distinct()).all():
            count = connection.execute(
                select(func.count()).where(_I.homeserver == homeserver)
            ).scalar_one()
            if count > MAX_INCIDENTS:
                oldest = (
                    select(_I.id)
                    .where(_I.homeserver == homeserver, _I.ended_ts.is_not(None))
                    .order_by(_I.started_ts)
                    .limit(count - MAX_INCIDENTS)
                )
                gone += connection.execute(
                    delete(federation_incidents).where(_I.id.in_(oldest.scalar_subquery()))
                ).rowcount
        connection.execute(
            delete(alert_notices).where(
                _N.created_ts < now_ms - NOTICES_KEPT_MS,
                _N.room != "pending",
                _N.webhook != "pending",
            )
        )
    return int(gone)


# Reads for the website -------------------------------------------------------


def last_incidents(
    engine: Engine, homeserver: str, destinations: Sequence[str]
) -> dict[str, Incident]:
    """The latest incident of each named destination that had one (its index holds each
    destination's incidents in the order they started)."""
    if not destinations:
        return {}
    query = (
        select(federation_incidents)
        .where(_I.homeserver == homeserver, _I.destination.in_(list(destinations)))
        .order_by(_I.destination, _I.started_ts, _I.id)
    )
    with engine.connect() as connection:
        return {row.destination: _incident(row) for row in connection.execute(query)}


def recent_incidents(engine: Engine, homeservers: Sequence[str], since_ms: int) -> list[Incident]:
    """Every incident open now or ended since `since_ms`, the newest first."""
    query = (
        select(federation_incidents)
        .where(
            _I.homeserver.in_(list(homeservers)),
            or_(_I.ended_ts.is_(None), _I.ended_ts >= since_ms),
        )
        .order_by(_I.started_ts.desc(), _I.id.desc())
    )
    with engine.connect() as connection:
        return [_incident(row) for row in connection.execute(query)]


def incidents_since(
    engine: Engine, homeserver: str, destination: str, since_ms: int
) -> list[Incident]:
    """A destination's incidents that were open at some moment since `since_ms`, oldest
    first."""
    query = (
        select(federation_incidents)
        .where(
            _I.homeserver == homeserver,
            _I.destination == destination,
            or_(_I.ended_ts.is_(None), _I.ended_ts >= since_ms),
        )
        .order_by(_I.started_ts)
    )
    with engine.connect() as connection:
        return [_incident(row) for row in connection.execute(query)]


def checked_at(engine: Engine, homeserver: str) -> int | None:
    """When the alerts service last wrote homeserver `homeserver`'s check; None: never."""
    with engine.connect() as connection:
        found = connection.execute(
            select(_C.checked_ts).where(_C.homeserver == homeserver)
        ).scalar_one_or_none()
        return None if found is None else int(found)


def oldest_waiting(
    engine: Engine, homeserver: str, limit: int
) -> tuple[list[tuple[str, Waiting]], int]:
    """The `limit` destinations that have waited longest (as of the last check), and how
    many wait in all."""
    with engine.connect() as connection:
        total = connection.execute(
            select(func.count()).where(_W.homeserver == homeserver)
        ).scalar_one()
        rows = connection.execute(
            select(_W.destination, _W.since_ts, _W.rooms, _W.events)
            .where(_W.homeserver == homeserver)
            .order_by(_W.since_ts, _W.destination)
            .limit(limit)
        )
        found = [(str(r.destination), Waiting(r.since_ts, r.rooms, r.events)) for r in rows]
        return found, int(total)


def waiting_page(
    engine: Engine, homeserver: str, query: DestinationQuery, fresh_since_ms: int
) -> tuple[list[str], int] | None:
    """`waiting_order` for the Federation tab's page, if the last check of `homeserver`
    was written since `fresh_since_ms`; None otherwise (one connection, one thread hop)."""
    checked = checked_at(engine, homeserver)
    if checked is None or checked < fresh_since_ms:
        return None
    descending = query.direction == "b"
    return waiting_order(engine, homeserver, query.start, query.limit, query.search, descending)


def waiting_order(
    engine: Engine,
    homeserver: str,
    start: int,
    limit: int,
    search: str,
    descending: bool,
) -> tuple[list[str], int]:
    """A page of the destinations that lack events, by their oldest waiting event, and
    how many lack events in all (as of the last check)."""
    where = [_W.homeserver == homeserver]
    if search:
        where.append(func.lower(_W.destination).contains(search.lower(), autoescape=True))
    since = _W.since_ts.desc() if descending else _W.since_ts.asc()
    name = _W.destination.desc() if descending else _W.destination.asc()
    with engine.connect() as connection:
        total = connection.execute(select(func.count()).where(*where)).scalar_one()
        names = connection.execute(
            select(_W.destination).where(*where).order_by(since, name).offset(start).limit(limit)
        ).scalars()
        return [str(n) for n in names], int(total)
