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
)

# The newest migration: the schema these tables describe (a test holds them equal).
SCHEMA_REVISION = "0002"

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
