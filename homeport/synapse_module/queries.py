"""The Homeport module's reads of Synapse's own tables, each run in one transaction.

Functions of a database cursor (Synapse's `LoggingTransaction`, or any DB-API
cursor with `?` placeholders), with no Synapse import, so tests can run them
on a database of their own. Only columns Synapse has kept stable for years are
read: `destinations`, `destination_rooms` (Synapse's catch-up bookkeeping,
since 1.20), `events` and `background_updates`.
"""

from __future__ import annotations

from typing import Any

from homeport.synapse_module.contract import NEXT_ATTEMPT

MAX_UNDELIVERED = 1000  # what the delivery endpoint answers unless asked for more

# Delivery state, per destination: how many rooms hold events it lacks, and
# when the oldest of those was sent. A room's waiting events begin after the
# last event the destination received (with none ever, the room's latest
# stands for the outage); the oldest is the first event after that point
# sent by a local user (Synapse sends only those); the events waiting are
# those sent by local users after that point. Destinations in one outage
# share (room, point) gaps, so each gap is looked up once.
UNDELIVERED_SQL = """
    WITH waiting AS (
        SELECT dr.destination AS destination, dr.room_id AS room_id,
            dr.stream_ordering AS latest,
            COALESCE(d.last_successful_stream_ordering, dr.stream_ordering - 1) AS after
        FROM destination_rooms AS dr
        LEFT JOIN destinations AS d ON d.destination = dr.destination
        WHERE dr.stream_ordering > COALESCE(d.last_successful_stream_ordering, 0) {only}
    ), gaps AS (
        SELECT DISTINCT room_id, after FROM waiting
    ), firsts AS (
        SELECT g.room_id AS room_id, g.after AS after,
            (SELECT e1.stream_ordering FROM events AS e1
                WHERE e1.room_id = g.room_id AND e1.stream_ordering > g.after
                AND e1.sender LIKE ? ESCAPE '!'
                ORDER BY e1.stream_ordering LIMIT 1) AS first_waiting,
            {events} AS events
        FROM gaps AS g
    ), per_destination AS (
        SELECT w.destination AS destination, COUNT(*) AS rooms,
            MIN(COALESCE(f.first_waiting, w.latest)) AS first_waiting,
            SUM(f.events) AS events
        FROM waiting AS w
        JOIN firsts AS f ON f.room_id = w.room_id AND f.after = w.after
        GROUP BY w.destination
    )
    SELECT p.destination, p.rooms, COALESCE(e.received_ts, e.origin_server_ts), p.events
    FROM per_destination AS p
    LEFT JOIN events AS e ON e.stream_ordering = p.first_waiting
"""


# How many events wait in a gap: read for the alerts service's incidents (how much
# waited), not for a page of the Federation tab, which does not show it.
_EVENTS_WAITING = """(SELECT COUNT(*) FROM events AS e2
                WHERE e2.room_id = g.room_id AND e2.stream_ordering > g.after
                AND e2.sender LIKE ? ESCAPE '!')"""


def count_rooms(txn: Any, destinations: list[str]) -> dict[str, int]:
    placeholders = ", ".join("?" for _ in destinations)
    txn.execute(
        "SELECT destination, COUNT(*) FROM destination_rooms"  # noqa: S608 - placeholders only
        f" WHERE destination IN ({placeholders}) GROUP BY destination",
        destinations,
    )
    counts = dict.fromkeys(destinations, 0)
    counts.update({str(row[0]): int(row[1]) for row in txn.fetchall()})
    return counts


def page_facts(
    txn: Any, server_name: str, destinations: list[str]
) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """Room counts of a page of destinations and what each lacks, in one transaction."""
    if not destinations:
        return {}, {}
    return count_rooms(txn, destinations), undelivered(txn, server_name, destinations)


def oldest_first(
    waiting: dict[str, dict[str, int]], limit: int = MAX_UNDELIVERED
) -> list[dict[str, Any]]:
    """Destinations that lack events, the longest waiting first, at most `limit`."""
    rows = sorted(
        ({"destination": name, **facts} for name, facts in waiting.items()),
        key=lambda row: (row["since"], row["destination"]),
    )
    return rows[:limit]


def local_senders(server_name: str) -> str:
    """A LIKE pattern for user IDs of `server_name` (escape character `!`)."""
    escaped = server_name.replace("!", "!!").replace("%", "!%").replace("_", "!_")
    return f"%:{escaped}"


def undelivered(
    txn: Any, server_name: str, destinations: list[str] | None, events: bool = False
) -> dict[str, dict[str, int]]:
    """Destination -> {rooms, since, events}, for the named destinations or all that lack
    events; `events` (how many wait) counted only when asked (0 otherwise)."""
    args: list[Any] = []
    only = ""
    if destinations is not None:
        if not destinations:
            return {}
        only = f"AND dr.destination IN ({', '.join('?' for _ in destinations)})"
        args.extend(destinations)
    senders = local_senders(server_name)
    sql = UNDELIVERED_SQL.format(only=only, events=_EVENTS_WAITING if events else "0")
    args += [senders, senders] if events else [senders]
    txn.execute(sql, args)
    return {
        str(row[0]): {"rooms": int(row[1]), "since": int(row[2] or 0), "events": int(row[3] or 0)}
        for row in txn.fetchall()
    }


def paginate_own_order(
    txn: Any,
    server_name: str,
    start: int,
    limit: int,
    search: str | None,
    order_by: str,
    descending: bool,
) -> tuple[list[tuple[Any, ...]], int]:
    """Synapse's destinations page (same search, same columns) in an order of the module's.

    Destinations with no next attempt, or nothing waiting, come last either
    way, by name.
    """
    where, args = "", []
    if search:
        where, args = "WHERE LOWER(d.destination) LIKE ?", ["%" + search.lower() + "%"]
    columns = _COLUMNS
    if order_by == NEXT_ATTEMPT:
        return _by_next_attempt(txn, where, args, start, limit, descending)
    txn.execute(f"SELECT COUNT(*) FROM destinations AS d {where}", args)  # noqa: S608
    total = int(txn.fetchone()[0])
    # Undelivered since: the destinations that lack events are few even in a
    # large outage; sort them here, then continue with the rest by name.
    waiting = undelivered(txn, server_name, None)
    txn.execute(f"SELECT d.destination FROM destinations AS d {where} ORDER BY 1", args)  # noqa: S608
    matching = [str(row[0]) for row in txn.fetchall()]
    late = sorted(
        (name for name in matching if name in waiting),
        key=lambda name: (waiting[name]["since"], name),
        reverse=descending,
    )
    rest = [name for name in matching if name not in waiting]
    names = (late + rest)[start : start + limit]
    if not names:
        return [], total
    txn.execute(
        f"SELECT {columns} FROM destinations AS d"  # noqa: S608
        f" WHERE d.destination IN ({', '.join('?' for _ in names)})",
        names,
    )
    rows = {str(row[0]): tuple(row) for row in txn.fetchall()}
    return [rows[name] for name in names if name in rows], total


_COLUMNS = (
    "d.destination, d.retry_last_ts, d.retry_interval, d.failure_ts,"
    " d.last_successful_stream_ordering"
)
# Backing off: a next attempt is known (retry_last_ts + retry_interval).
_BACKING_OFF = "(COALESCE(d.retry_interval, 0) > 0 AND d.retry_last_ts IS NOT NULL)"


def _by_next_attempt(
    txn: Any, where: str, args: list[Any], start: int, limit: int, descending: bool
) -> tuple[list[tuple[Any, ...]], int]:
    """The destinations that back off, by their next attempt; then the rest by name.

    Two reads instead of one sort of every destination: the next attempt is
    computed only for those backing off (a few even in a large outage), and
    the rest come in the primary key's order; how many back off is counted
    only for a page that reaches past them.
    """
    both = f"{where} AND" if where else "WHERE"
    txn.execute(f"SELECT COUNT(*) FROM destinations AS d {where}", args)  # noqa: S608
    total = int(txn.fetchone()[0])
    order = "DESC" if descending else "ASC"
    txn.execute(
        f"SELECT {_COLUMNS} FROM destinations AS d {both} {_BACKING_OFF}"  # noqa: S608
        f" ORDER BY d.retry_last_ts + d.retry_interval {order}, d.destination ASC"
        " LIMIT ? OFFSET ?",
        [*args, limit, start],
    )
    rows = [tuple(row) for row in txn.fetchall()]
    if len(rows) == limit:
        return rows, total
    if rows:
        backing_off = start + len(rows)
    else:
        txn.execute(
            f"SELECT COUNT(*) FROM destinations AS d {both} {_BACKING_OFF}",  # noqa: S608
            args,
        )
        backing_off = int(txn.fetchone()[0])
    txn.execute(
        f"SELECT {_COLUMNS} FROM destinations AS d {both} NOT {_BACKING_OFF}"  # noqa: S608
        " ORDER BY d.destination ASC LIMIT ? OFFSET ?",
        [*args, limit - len(rows), max(0, start - backing_off)],
    )
    rows += [tuple(row) for row in txn.fetchall()]
    return rows, total


# Nothing waits for it: no room holds an event after the last it received.
_NOTHING_WAITING = """NOT EXISTS (SELECT 1 FROM destination_rooms AS dr
    WHERE dr.destination = d.destination
    AND dr.stream_ordering > COALESCE(d.last_successful_stream_ordering, 0))"""


def given_order(
    txn: Any,
    names: list[str],
    rest_from: int,
    rest_limit: int,
    search: str | None,
) -> tuple[list[tuple[Any, ...]], int]:
    """The named destinations' rows in the order given, then `rest_limit` of those with
    nothing waiting, by name, from `rest_from`; and how many destinations match `search`.

    Each part is an indexed read: the named rows by Synapse's primary key, the rest
    walking its index on `destination`, each row's rooms looked up by theirs.
    """
    where, args = "", []
    if search:
        where, args = "WHERE LOWER(d.destination) LIKE ?", ["%" + search.lower() + "%"]
    txn.execute(f"SELECT COUNT(*) FROM destinations AS d {where}", args)  # noqa: S608
    total = int(txn.fetchone()[0])
    rows: list[tuple[Any, ...]] = []
    if names:
        txn.execute(
            f"SELECT {_COLUMNS} FROM destinations AS d"  # noqa: S608
            f" WHERE d.destination IN ({', '.join('?' for _ in names)})",
            names,
        )
        found = {str(row[0]): tuple(row) for row in txn.fetchall()}
        rows = [found[name] for name in names if name in found]
    if rest_limit > 0:
        condition = f"{where} AND {_NOTHING_WAITING}" if where else f"WHERE {_NOTHING_WAITING}"
        txn.execute(
            f"SELECT {_COLUMNS} FROM destinations AS d {condition}"  # noqa: S608
            " ORDER BY d.destination LIMIT ? OFFSET ?",
            [*args, rest_limit, rest_from],
        )
        rows += [tuple(row) for row in txn.fetchall()]
    return rows, total


def pending_background_updates(txn: Any) -> list[str]:
    """The background updates Synapse has still to run, in the order it runs them.

    Synapse's admin API names only the one running now, and none while it sleeps
    between two; its own table lists what is left.
    """
    txn.execute("SELECT update_name FROM background_updates ORDER BY ordering, update_name")
    return [str(row[0]) for row in txn.fetchall()]


def accounts_of_provider(txn: Any, auth_provider: str) -> list[str]:
    """The local accounts bound to `auth_provider` (Synapse's `user_external_ids`, kept
    since single sign-on began): for group sync, the accounts the directory created."""
    txn.execute(
        "SELECT DISTINCT user_id FROM user_external_ids WHERE auth_provider = ? ORDER BY user_id",
        (auth_provider,),
    )
    return [str(row[0]) for row in txn.fetchall()]
