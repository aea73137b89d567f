"""The audit bots' records: events, decrypted plaintexts, rooms added and removed."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("homeserver", sa.String(64), nullable=False),
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("room_id", sa.String(255), nullable=False),
        sa.Column("sender", sa.String(255), nullable=False),
        sa.Column("type", sa.String(255), nullable=False),
        sa.Column("state_key", sa.Text, nullable=True),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=True),
        sa.Column("relates_to", sa.String(255), nullable=True),
        sa.Column("redacts", sa.String(255), nullable=True),
        sa.Column("encrypted", sa.Boolean, nullable=False),
        sa.Column("origin_server_ts", sa.BigInteger, nullable=False),
        sa.Column("received_ts", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("homeserver", "event_id", name="audit_events_once"),
    )
    op.create_index("audit_events_by_room", "audit_events", ["homeserver", "room_id", "seq"])
    op.create_index("audit_events_by_time", "audit_events", ["homeserver", "origin_server_ts"])
    op.create_index("audit_events_by_sender", "audit_events", ["homeserver", "sender"])
    op.create_table(
        "audit_decrypted",
        sa.Column("homeserver", sa.String(64), primary_key=True),
        sa.Column("event_id", sa.String(255), primary_key=True),
        sa.Column("type", sa.String(255), nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=True),
        sa.Column("relates_to", sa.String(255), nullable=True),
        sa.Column("decrypted_ts", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "audit_room_changes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("homeserver", sa.String(64), nullable=False),
        sa.Column("room_id", sa.String(255), nullable=False),
        sa.Column("change", sa.String(16), nullable=False),
        sa.Column("by", sa.String(255), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("homeserver", "event_id", name="audit_room_changes_once"),
    )
    op.create_index(
        "audit_room_changes_by_room", "audit_room_changes", ["homeserver", "room_id", "id"]
    )


def downgrade() -> None:
    op.drop_table("audit_room_changes")
    op.drop_table("audit_decrypted")
    op.drop_table("audit_events")
