"""What administrators did through the admin website."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "admin_actions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("homeserver", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(255), nullable=False),
        sa.Column("outcome", sa.String(64), nullable=False),
    )
    op.create_index("admin_actions_by_target", "admin_actions", ["homeserver", "target", "ts"])


def downgrade() -> None:
    op.drop_index("admin_actions_by_target", "admin_actions")
    op.drop_table("admin_actions")
