"""the reminder schedule set on the web console (``push_schedule``: one row; none: the
schedule of ``.env``)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bot.storage.types import UTCDateTime

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "push_schedule",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reminder_offsets_days", sa.String(length=100), nullable=False),
        sa.Column("reminder_time", sa.String(length=5), nullable=False),
        sa.Column("overdue_every_days", sa.Integer(), nullable=False),
        sa.Column("overdue_max_reminders", sa.Integer(), nullable=False),
        sa.Column("quiet_hours", sa.String(length=11), nullable=False),
        sa.Column("non_working_days", sa.Text(), nullable=False),
        sa.Column("weekly_digest", sa.String(length=9), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["updated_by"], ["person.id"]),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("push_schedule")
