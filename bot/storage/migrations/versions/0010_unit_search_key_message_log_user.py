"""units searchable without diacritics (``unit.search_key``: the name and code folded by
``knowledge.normalize.fold``, filled for the units already stored); the message log indexed
by person (``channel, user_id, created_at``: a person's latest message is one index lookup)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from knowledge.normalize import fold

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 5_000


def upgrade() -> None:
    with op.batch_alter_table("unit", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("search_key", sa.String(length=400), nullable=False, server_default="")
        )
    bind = op.get_bind()
    units = bind.execute(sa.text("SELECT id, name, code FROM unit")).all()
    update = sa.text("UPDATE unit SET search_key = :key WHERE id = :uid")
    for start in range(0, len(units), BATCH):
        bind.execute(
            update,
            [
                {"uid": uid, "key": " ".join(fold(f"{name} {code}").split())[:400]}
                for uid, name, code in units[start : start + BATCH]
            ],
        )
    with op.batch_alter_table("message_log", schema=None) as batch_op:
        batch_op.create_index(
            "ix_message_log_user", ["channel", "user_id", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("message_log", schema=None) as batch_op:
        batch_op.drop_index("ix_message_log_user")
    with op.batch_alter_table("unit", schema=None) as batch_op:
        batch_op.drop_column("search_key")
