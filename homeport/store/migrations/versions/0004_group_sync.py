"""Group sync: its runs, every action with its reason and result, and whom it added."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "groupsync_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("homeserver", sa.String(64), nullable=False),
        sa.Column("trigger", sa.String(32), nullable=False),
        sa.Column("started_ts", sa.BigInteger, nullable=False),
        sa.Column("finished_ts", sa.BigInteger, nullable=True),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("planned", sa.Integer, nullable=False),
        sa.Column("applied", sa.Integer, nullable=False),
        sa.Column("failed", sa.Integer, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_index("groupsync_runs_by_time", "groupsync_runs", ["homeserver", "id"])
    op.create_table(
        "groupsync_actions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "run_id",
            sa.Integer,
            sa.ForeignKey("groupsync_runs.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("homeserver", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("room", sa.String(255), nullable=True),
        sa.Column("room_id", sa.String(255), nullable=True),
        sa.Column("user_id", sa.String(255), nullable=True),
        sa.Column("value", sa.Text, nullable=True),
        sa.Column("why", sa.Text, nullable=False),
        sa.Column("result", sa.String(16), nullable=False),
        sa.Column("error", sa.Text, nullable=False),
    )
    op.create_index("groupsync_actions_by_time", "groupsync_actions", ["homeserver", "id"])
    op.create_table(
        "groupsync_members",
        sa.Column("homeserver", sa.String(64), primary_key=True),
        sa.Column("room_id", sa.String(255), primary_key=True),
        sa.Column("user_id", sa.String(255), primary_key=True),
        sa.Column("power_level", sa.Integer, nullable=True),
        sa.Column("added_ts", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("groupsync_members")
    op.drop_index("groupsync_actions_by_time", "groupsync_actions")
    op.drop_table("groupsync_actions")
    op.drop_index("groupsync_runs_by_time", "groupsync_runs")
    op.drop_table("groupsync_runs")
