"""Federation incidents, the destinations waiting now, the last checks, the alerts' outbox."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "federation_incidents",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("homeserver", sa.String(64), nullable=False),
        sa.Column("destination", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("started_ts", sa.BigInteger, nullable=False),
        sa.Column("last_bad_ts", sa.BigInteger, nullable=False),
        sa.Column("good_since_ts", sa.BigInteger, nullable=True),
        sa.Column("ended_ts", sa.BigInteger, nullable=True),
        sa.Column("rooms", sa.Integer, nullable=False),
        sa.Column("events", sa.Integer, nullable=False),
        sa.Column("alerted", sa.Boolean, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_index(
        "federation_incidents_by_destination",
        "federation_incidents",
        ["homeserver", "destination", "started_ts"],
    )
    op.create_index("federation_incidents_open", "federation_incidents", ["homeserver", "ended_ts"])
    op.create_table(
        "federation_waiting",
        sa.Column("homeserver", sa.String(64), primary_key=True),
        sa.Column("destination", sa.String(255), primary_key=True),
        sa.Column("since_ts", sa.BigInteger, nullable=False),
        sa.Column("rooms", sa.Integer, nullable=False),
        sa.Column("events", sa.Integer, nullable=False),
    )
    op.create_index(
        "federation_waiting_by_since",
        "federation_waiting",
        ["homeserver", "since_ts", "destination"],
    )
    op.create_table(
        "alert_checks",
        sa.Column("homeserver", sa.String(64), primary_key=True),
        sa.Column("checked_ts", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "alert_notices",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("homeserver", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_ts", sa.BigInteger, nullable=False),
        sa.Column("incidents", sa.Text, nullable=False),
        sa.Column("room", sa.String(16), nullable=False),
        sa.Column("webhook", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_try_ts", sa.BigInteger, nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
    )
    op.create_index("alert_notices_pending", "alert_notices", ["next_try_ts"])


def downgrade() -> None:
    op.drop_table("alert_notices")
    op.drop_table("alert_checks")
    op.drop_table("federation_waiting")
    op.drop_table("federation_incidents")
