"""Rooms this server's users are in that hold servers it does not federate with. Pure SQL.

A function of a database cursor (Synapse's `LoggingTransaction`, or any DB-API cursor with
`?` placeholders), with no Synapse import. It reads `local_current_membership` (where this
server's users are), `current_state_events` (who else is there), `room_stats_state` (a
room's name) and `partial_state_rooms` (joins whose state Synapse is still completing), in
one transaction. Members of the allowed servers are left out in SQL: what comes back is
only what the report is about.
"""

from __future__ import annotations

from typing import Any

MAX_MIXED_ROOMS = 500  # rooms reported at most (the count says how many in all)

_LOCAL_ROOMS = "SELECT room_id FROM local_current_membership WHERE membership = 'join'"


def _escaped(server: str) -> str:
    return server.replace("!", "!!").replace("%", "!%").replace("_", "!_")


def mixed_rooms(txn: Any, allowed: list[str]) -> dict[str, Any]:
    """{rooms: [{room_id, name, servers, members}], total, partial: [{room_id, name}]}:
    the rooms with joined members of servers not in `allowed` (this server's name among
    them), and the rooms whose join Synapse has not completed."""
    outside = " ".join("AND c.state_key NOT LIKE ? ESCAPE '!'" for _ in allowed)
    txn.execute(
        "SELECT c.room_id, c.state_key FROM current_state_events AS c"  # noqa: S608
        " WHERE c.type = 'm.room.member' AND c.membership = 'join'"
        f" AND c.room_id IN ({_LOCAL_ROOMS}) {outside}",
        [f"%:{_escaped(server)}" for server in allowed],
    )
    servers: dict[str, dict[str, int]] = {}
    for room_id, user_id in txn.fetchall():
        server = str(user_id).split(":", 1)[1] if ":" in str(user_id) else str(user_id)
        per_room = servers.setdefault(str(room_id), {})
        per_room[server] = per_room.get(server, 0) + 1
    listed = sorted(servers)[:MAX_MIXED_ROOMS]
    names = _names(txn, listed)
    txn.execute(
        "SELECT p.room_id FROM partial_state_rooms AS p"  # noqa: S608
        f" WHERE p.room_id IN ({_LOCAL_ROOMS}) ORDER BY p.room_id"
    )
    partial = [str(row[0]) for row in txn.fetchall()][:MAX_MIXED_ROOMS]
    partial_names = _names(txn, partial)
    return {
        "rooms": [
            {
                "room_id": room_id,
                "name": names.get(room_id),
                "servers": sorted(servers[room_id]),
                "members": sum(servers[room_id].values()),
            }
            for room_id in listed
        ],
        "total": len(servers),
        "partial": [{"room_id": r, "name": partial_names.get(r)} for r in partial],
    }


def _names(txn: Any, room_ids: list[str]) -> dict[str, str]:
    if not room_ids:
        return {}
    found: dict[str, str] = {}
    for start in range(0, len(room_ids), 500):
        chunk = room_ids[start : start + 500]
        txn.execute(
            "SELECT room_id, name FROM room_stats_state"  # noqa: S608
            f" WHERE room_id IN ({', '.join('?' for _ in chunk)})",
            chunk,
        )
        found.update({str(r): str(n) for r, n in txn.fetchall() if n})
    return found
