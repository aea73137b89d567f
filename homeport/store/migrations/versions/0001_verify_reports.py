"""Reports of `homeport verify`: runs and their checks."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "verify_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("finished_ts", sa.BigInteger, nullable=False),
        sa.Column("mismatches", sa.Integer, nullable=False),
    )
    op.create_table(
        "verify_checks",
        sa.Column(
            "run_id",
            sa.Integer,
            sa.ForeignKey("verify_runs.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("viewer", sa.String(64), primary_key=True),
        sa.Column("target", sa.String(64), primary_key=True),
        sa.Column("surface", sa.String(64), primary_key=True),
        sa.Column("expected", sa.String(32), nullable=False),
        sa.Column("observed", sa.String(32), nullable=False),
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("verify_checks")
    op.drop_table("verify_runs")
