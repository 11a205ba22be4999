"""the flood window kept with the conversation (counted across processes); the replies of a
message kept with its log row, and when they were sent (a redelivered update gets them
again if they were not)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bot.storage.types import UTCDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("conversation", schema=None) as batch_op:
        batch_op.add_column(sa.Column("flood_at", UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("flood_count", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("flood_notified", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("message_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("replies", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("replied_at", UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("message_log", schema=None) as batch_op:
        batch_op.drop_column("replied_at")
        batch_op.drop_column("replies")
    with op.batch_alter_table("conversation", schema=None) as batch_op:
        batch_op.drop_column("flood_notified")
        batch_op.drop_column("flood_count")
        batch_op.drop_column("flood_at")
