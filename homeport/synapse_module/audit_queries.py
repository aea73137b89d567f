"""The audit rules' reads of Synapse's tables (direct chats, local rooms, an event's
original content): functions of a cursor, run in one transaction each."""

from __future__ import annotations

import json
from typing import Any

from homeport.synapse_module.audit_marks import domain_of

# A parameter, never a literal in the SQL: psycopg2 reads a `%` in the query text as the
# start of a placeholder (PostgreSQL failed every room creation with a literal here).
IS_DIRECT_PATTERN = "%is_direct%"


def is_direct_txn(txn: Any, room_id: str) -> bool:
    """Whether a room is a direct chat: two members at most, and created or listed as one."""
    txn.execute(
        "SELECT COUNT(*) FROM current_state_events WHERE room_id = ? AND type = 'm.room.member' "
        "AND membership IN ('join', 'invite')",
        (room_id,),
    )
    row = txn.fetchone()
    if row is None or int(row[0]) > 2:
        return False
    txn.execute(
        "SELECT j.json FROM events AS e JOIN event_json AS j USING (event_id) "
        "WHERE e.room_id = ? AND e.type = 'm.room.member' AND j.json LIKE ?",
        (room_id, IS_DIRECT_PATTERN),
    )
    for (raw,) in txn.fetchall():
        try:
            if json.loads(raw).get("content", {}).get("is_direct") is True:
                return True
        except (ValueError, AttributeError):
            continue
    txn.execute(
        "SELECT content FROM account_data WHERE account_data_type = 'm.direct' "
        "AND content LIKE ? ESCAPE '!'",
        (f"%{_like_escaped(room_id)}%",),
    )
    for (content,) in txn.fetchall():
        try:
            mapping = json.loads(content)
        except ValueError:
            continue
        if isinstance(mapping, dict) and any(
            isinstance(rooms, list) and room_id in rooms for rooms in mapping.values()
        ):
            return True
    return False


def _like_escaped(text: str) -> str:
    return text.replace("!", "!!").replace("%", "!%").replace("_", "!_")


def local_rooms_txn(
    txn: Any, server_name: str, bot: str, include_dms: bool, before_ts: int
) -> list[str]:
    """Rooms created here before `before_ts` (ms) that the bot never was in (DMs left out
    unless asked for). Rooms created later are the creation callback's: a room caught in
    the middle of its creation (before a DM's `is_direct` invite) could not be told apart."""
    txn.execute(
        "SELECT c.room_id, e.sender FROM current_state_events AS c "
        "JOIN events AS e USING (event_id) WHERE c.type = 'm.room.create' AND c.state_key = '' "
        "AND e.origin_server_ts < ?",
        (before_ts,),
    )
    local = [room for room, sender in txn.fetchall() if domain_of(sender) == server_name]
    txn.execute("SELECT room_id FROM local_current_membership WHERE user_id = ?", (bot,))
    known = {row[0] for row in txn.fetchall()}
    direct = set() if include_dms else direct_rooms_txn(txn) & small_rooms_txn(txn)
    return [room for room in local if room not in known and room not in direct]


def small_rooms_txn(txn: Any) -> set[str]:
    """Rooms of two members at most (joined or invited): only those can be DMs. Marking a
    group room as direct (anyone can) does not keep the bot out of it."""
    txn.execute(
        "SELECT room_id FROM current_state_events WHERE type = 'm.room.member' "
        "AND membership IN ('join', 'invite') GROUP BY room_id HAVING COUNT(*) <= 2"
    )
    return {row[0] for row in txn.fetchall()}


def direct_rooms_txn(txn: Any) -> set[str]:
    """Direct-message rooms: invited to with `is_direct` (what createRoom does for a DM),
    or listed in a local user's `m.direct` (what Element keeps)."""
    direct: set[str] = set()
    txn.execute(
        "SELECT e.room_id, j.json FROM events AS e JOIN event_json AS j USING (event_id) "
        "WHERE e.type = 'm.room.member' AND j.json LIKE ?",
        (IS_DIRECT_PATTERN,),
    )
    for room_id, raw in txn.fetchall():
        try:
            if json.loads(raw).get("content", {}).get("is_direct") is True:
                direct.add(room_id)
        except (ValueError, AttributeError):
            continue
    txn.execute("SELECT content FROM account_data WHERE account_data_type = 'm.direct'")
    for (content,) in txn.fetchall():
        try:
            mapping = json.loads(content)
        except ValueError:
            continue
        for rooms in mapping.values() if isinstance(mapping, dict) else ():
            if isinstance(rooms, list):
                direct.update(r for r in rooms if isinstance(r, str))
    return direct


def original_txn(txn: Any, event_id: str, bot: str) -> dict[str, Any] | None:
    """The event's content as stored before any redaction, if the bot is in its room."""
    txn.execute(
        "SELECT e.room_id, j.json FROM events AS e JOIN event_json AS j USING (event_id) "
        "WHERE e.event_id = ?",
        (event_id,),
    )
    row = txn.fetchone()
    if row is None:
        return None
    txn.execute(
        "SELECT membership FROM local_current_membership WHERE user_id = ? AND room_id = ?",
        (bot, row[0]),
    )
    membership = txn.fetchone()
    if membership is None or membership[0] != "join":
        return None
    content = json.loads(row[1]).get("content")
    return content if isinstance(content, dict) else None
