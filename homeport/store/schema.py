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
SCHEMA_REVISION = "0006"

metadata = MetaData()


# The kinds of column the tables share, each with its one size.
def _serial(name: str = "id") -> Column[int]:
    """A row's number, counted by the database: the order rows were written in."""
    return Column(name, Integer, primary_key=True, autoincrement=True)


def _homeserver(key: bool = False) -> Column[str]:
    """A homeserver's short name, as homeport.yaml gives it (`internal`)."""
    return Column("homeserver", String(64), primary_key=key, nullable=False)


def _ident(name: str, nullable: bool = False, key: bool = False) -> Column[str]:
    """A Matrix ID (room, event, user: at most 255 bytes) or a name as long."""
    return Column(name, String(255), primary_key=key, nullable=nullable and not key)


def _ms(name: str, nullable: bool = False) -> Column[int]:
    """A time in milliseconds since the epoch, as Synapse counts them."""
    return Column(name, BigInteger, nullable=nullable)


def _text(name: str, nullable: bool = False) -> Column[str]:
    """Text of any length (JSON, a message's body, a reason)."""
    return Column(name, Text, nullable=nullable)


# `homeport verify`: one row per run, one per check of the run.
verify_runs = Table(
    "verify_runs",
    metadata,
    _serial(),
    _ms("finished_ts"),
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
    _text("detail"),
)

# What administrators did through the admin website, and what came of it.
admin_actions = Table(
    "admin_actions",
    metadata,
    _serial(),
    _ms("ts"),
    _homeserver(),
    _ident("user_id"),
    Column("action", String(64), nullable=False),
    _ident("target"),
    Column("outcome", String(64), nullable=False),
    Index("admin_actions_by_target", "homeserver", "target", "ts"),
)

# The audit bots' records: append-only. `seq` is the order Synapse delivered
# them in; an event ID is recorded once per homeserver, however often
# Synapse re-sends the transaction that carried it.
audit_events = Table(
    "audit_events",
    metadata,
    _serial("seq"),
    _homeserver(),
    _ident("event_id"),
    _ident("room_id"),
    _ident("sender"),
    _ident("type"),
    _text("state_key", nullable=True),
    _text("content"),  # JSON, as Synapse sent it
    _text("body", nullable=True),  # the text people search: a message's body
    _ident("relates_to", nullable=True),  # the event an edit or reaction is about
    _ident("redacts", nullable=True),
    Column("encrypted", Boolean, nullable=False),
    _ms("origin_server_ts"),
    _ms("received_ts"),
    UniqueConstraint("homeserver", "event_id", name="audit_events_once"),
    Index("audit_events_by_room", "homeserver", "room_id", "seq"),
    Index("audit_events_by_time", "homeserver", "origin_server_ts"),
    Index("audit_events_by_sender", "homeserver", "sender"),
)

# The plaintext of encrypted events, once the bot had the keys (append-only too).
audit_decrypted = Table(
    "audit_decrypted",
    metadata,
    _homeserver(key=True),
    _ident("event_id", key=True),
    _ident("type"),
    _text("content"),
    _text("body", nullable=True),
    _ident("relates_to", nullable=True),
    _ms("decrypted_ts"),
)

# When each room started and stopped being recorded, by whom (from the bot's
# own membership events, so it agrees with what members saw).
audit_room_changes = Table(
    "audit_room_changes",
    metadata,
    _serial(),
    _homeserver(),
    _ident("room_id"),
    Column("change", String(16), nullable=False),  # "added" or "removed"
    _ident("by"),
    _text("reason"),
    _ident("event_id"),
    _ms("ts"),
    UniqueConstraint("homeserver", "event_id", name="audit_room_changes_once"),
    Index("audit_room_changes_by_room", "homeserver", "room_id", "id"),
)

# Group sync: one row per run (a full reconcile, a directory change, a manual run).
groupsync_runs = Table(
    "groupsync_runs",
    metadata,
    _serial(),
    _homeserver(),
    Column("trigger", String(32), nullable=False),  # "full", "change", "manual", "forced"
    _ms("started_ts"),
    _ms("finished_ts", nullable=True),
    Column("outcome", String(32), nullable=False),  # "running", "ok", "guarded", "failed", ...
    Column("planned", Integer, nullable=False),
    Column("applied", Integer, nullable=False),
    Column("failed", Integer, nullable=False),
    _text("detail"),  # why a run stopped or was guarded
    Index("groupsync_runs_by_time", "homeserver", "id"),
)

# Every action group sync took: what, where, why, and what came of it.
groupsync_actions = Table(
    "groupsync_actions",
    metadata,
    _serial(),
    Column("run_id", Integer, ForeignKey("groupsync_runs.id", ondelete="CASCADE"), nullable=False),
    _ms("ts"),
    _homeserver(),
    Column("kind", String(32), nullable=False),
    _ident("room", nullable=True),  # the alias, as the mapping names it
    _ident("room_id", nullable=True),
    _ident("user_id", nullable=True),
    _text("value", nullable=True),
    _text("why"),
    Column("result", String(16), nullable=False),  # "ok", "failed", "held" (guarded)
    _text("error"),
    Index("groupsync_actions_by_time", "homeserver", "id"),
)

# Whom group sync added to which room, and the power level it gave: only these
# people are ever removed by it, and only these levels taken back.
groupsync_members = Table(
    "groupsync_members",
    metadata,
    _homeserver(key=True),
    _ident("room_id", key=True),
    _ident("user_id", key=True),
    Column("power_level", Integer, nullable=True),
    _ms("added_ts"),
)

# Who runs a homeserver's exclusive job now (a group sync run), until when: one row
# per job and homeserver, renewed while the job runs, taken over once it expires.
leases = Table(
    "leases",
    metadata,
    Column("job", String(32), primary_key=True),
    _homeserver(key=True),
    _ident("holder"),
    _ms("acquired_ts"),
    _ms("expires_ts"),
)

# Federation incidents (the alerts service): one row per incident of a
# destination on a homeserver, open while `ended_ts` is null.
federation_incidents = Table(
    "federation_incidents",
    metadata,
    _serial(),
    _homeserver(),
    _ident("destination"),
    Column("kind", String(32), nullable=False),  # "not_delivering", "not_answering", ...
    _ms("started_ts"),
    _ms("last_bad_ts"),
    _ms("good_since_ts", nullable=True),  # fine again since (settling)
    _ms("ended_ts", nullable=True),
    Column("rooms", Integer, nullable=False),
    Column("events", Integer, nullable=False),
    Column("alerted", Boolean, nullable=False),
    _text("detail"),
    Index("federation_incidents_by_destination", "homeserver", "destination", "started_ts"),
    Index("federation_incidents_open", "homeserver", "ended_ts"),
)

# The destinations each homeserver's events wait for, as of the last check: the
# Federation tab's "undelivered since" order read from an index.
federation_waiting = Table(
    "federation_waiting",
    metadata,
    _homeserver(key=True),
    _ident("destination", key=True),
    _ms("since_ts"),
    Column("rooms", Integer, nullable=False),
    Column("events", Integer, nullable=False),
    Index("federation_waiting_by_since", "homeserver", "since_ts", "destination"),
)

# When the alerts service last checked each homeserver: whether the waiting
# destinations above are fresh enough for the Federation tab to order by.
alert_checks = Table(
    "alert_checks",
    metadata,
    _homeserver(key=True),
    _ms("checked_ts"),
)

# The alerts' outbox: each notice is written with the incidents that made it, in
# one transaction, then sent to the room and the webhook ("pending", "sent",
# "off": not wanted, "expired": given up on).
alert_notices = Table(
    "alert_notices",
    metadata,
    _serial(),
    _homeserver(),
    Column("status", String(16), nullable=False),  # "firing", "resolved"
    _ms("created_ts"),
    _text("incidents"),  # JSON: the incidents as they were when told
    Column("room", String(16), nullable=False),
    Column("webhook", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    _ms("next_try_ts"),
    _text("last_error", nullable=True),
    Index("alert_notices_pending", "next_try_ts"),
)
