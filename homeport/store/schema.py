"""The tables of Homeport's store, as the latest migration leaves them.

Migrations (`migrations/versions/`) are the history; this is the present,
for the code that reads and writes. A test checks that the two agree.
Times are milliseconds since the epoch, as Synapse counts them.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

# The newest migration: the schema these tables describe (a test holds them equal).
SCHEMA_REVISION = "0005"

metadata = MetaData()

# `homeport verify`: one row per run, one per check of the run.
verify_runs = Table(
    "verify_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("finished_ts", BigInteger, nullable=False),
    Column("mismatches", Integer, nullable=False),
)

verify_checks = Table(
    "verify_checks",
    metadata,
    Column(
        "run_id",
        Integer,
        ForeignKey("verify_runs.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("position", Integer, nullable=False),  # the check's place in the report
    Column("viewer", String(64), primary_key=True),
    Column("target", String(64), primary_key=True),
    Column("surface", String(64), primary_key=True),
    Column("expected", String(32), nullable=False),
    Column("observed", String(32), nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("detail", Text, nullable=False),
)

# What administrators did through the admin website, and what came of it.
admin_actions = Table(
    "admin_actions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", BigInteger, nullable=False),
    Column("homeserver", String(64), nullable=False),
    Column("user_id", String(255), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(255), nullable=False),
    Column("outcome", String(64), nullable=False),
    Index("admin_actions_by_target", "homeserver", "target", "ts"),
)

# The audit bots' records: append-only. `seq` is the order Synapse delivered
# them in; an event ID is recorded once per homeserver, however often
# Synapse re-sends the transaction that carried it.
audit_events = Table(
    "audit_events",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("homeserver", String(64), nullable=False),
    Column("event_id", String(255), nullable=False),
    Column("room_id", String(255), nullable=False),
    Column("sender", String(255), nullable=False),
    Column("type", String(255), nullable=False),
    Column("state_key", Text, nullable=True),
    Column("content", Text, nullable=False),  # JSON, as Synapse sent it
    Column("body", Text, nullable=True),  # the text people search: a message's body
    Column("relates_to", String(255), nullable=True),  # the event an edit or reaction is about
    Column("redacts", String(255), nullable=True),
    Column("encrypted", Boolean, nullable=False),
    Column("origin_server_ts", BigInteger, nullable=False),
    Column("received_ts", BigInteger, nullable=False),
    UniqueConstraint("homeserver", "event_id", name="audit_events_once"),
    Index("audit_events_by_room", "homeserver", "room_id", "seq"),
    Index("audit_events_by_time", "homeserver", "origin_server_ts"),
    Index("audit_events_by_sender", "homeserver", "sender"),
)

# The plaintext of encrypted events, once the bot had the keys (append-only too).
audit_decrypted = Table(
    "audit_decrypted",
    metadata,
    Column("homeserver", String(64), primary_key=True),
    Column("event_id", String(255), primary_key=True),
    Column("type", String(255), nullable=False),
    Column("content", Text, nullable=False),
    Column("body", Text, nullable=True),
    Column("relates_to", String(255), nullable=True),
    Column("decrypted_ts", BigInteger, nullable=False),
)

# When each room started and stopped being recorded, by whom (from the bot's
# own membership events, so it agrees with what members saw).
audit_room_changes = Table(
    "audit_room_changes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("homeserver", String(64), nullable=False),
    Column("room_id", String(255), nullable=False),
    Column("change", String(16), nullable=False),  # "added" or "removed"
    Column("by", String(255), nullable=False),
    Column("reason", Text, nullable=False),
    Column("event_id", String(255), nullable=False),
    Column("ts", BigInteger, nullable=False),
    UniqueConstraint("homeserver", "event_id", name="audit_room_changes_once"),
    Index("audit_room_changes_by_room", "homeserver", "room_id", "id"),
)

# Group sync: one row per run (a full reconcile, a directory change, a manual run).
groupsync_runs = Table(
    "groupsync_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("homeserver", String(64), nullable=False),
    Column("trigger", String(32), nullable=False),  # "full", "change", "manual", "forced"
    Column("started_ts", BigInteger, nullable=False),
    Column("finished_ts", BigInteger, nullable=True),
    Column("outcome", String(32), nullable=False),  # "running", "ok", "guarded", "failed", ...
    Column("planned", Integer, nullable=False),
    Column("applied", Integer, nullable=False),
    Column("failed", Integer, nullable=False),
    Column("detail", Text, nullable=False),  # why a run stopped or was guarded
    Index("groupsync_runs_by_time", "homeserver", "id"),
)

# Every action group sync took: what, where, why, and what came of it.
groupsync_actions = Table(
    "groupsync_actions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer, ForeignKey("groupsync_runs.id", ondelete="CASCADE"), nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("homeserver", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("room", String(255), nullable=True),  # the alias, as the mapping names it
    Column("room_id", String(255), nullable=True),
    Column("user_id", String(255), nullable=True),
    Column("value", Text, nullable=True),
    Column("why", Text, nullable=False),
    Column("result", String(16), nullable=False),  # "ok", "failed", "held" (guarded)
    Column("error", Text, nullable=False),
    Index("groupsync_actions_by_time", "homeserver", "id"),
)

# Whom group sync added to which room, and the power level it gave: only these
# people are ever removed by it, and only these levels taken back.
groupsync_members = Table(
    "groupsync_members",
    metadata,
    Column("homeserver", String(64), primary_key=True),
    Column("room_id", String(255), primary_key=True),
    Column("user_id", String(255), primary_key=True),
    Column("power_level", Integer, nullable=True),
    Column("added_ts", BigInteger, nullable=False),
)

# Who runs a homeserver's exclusive job now (a group sync run), until when: one row
# per job and homeserver, renewed while the job runs, taken over once it expires.
leases = Table(
    "leases",
    metadata,
    Column("job", String(32), primary_key=True),
    Column("homeserver", String(64), primary_key=True),
    Column("holder", String(255), nullable=False),
    Column("acquired_ts", BigInteger, nullable=False),
    Column("expires_ts", BigInteger, nullable=False),
)
