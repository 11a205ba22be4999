"""invitation codes redacted from the message log; update keys against redelivery; the
command menu set per person

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bot.redaction import redact_codes

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 1000


def _redact_message_log() -> None:
    """Codes typed before this release (``/start TL…``, a typed code, a wrong guess, a code
    inside a sentence) are replaced where they are stored."""
    log = sa.table("message_log", sa.column("id", sa.Integer), sa.column("text", sa.Text))
    connection = op.get_bind()
    last = 0
    while True:
        rows = connection.execute(
            sa.select(log.c.id, log.c.text)
            .where(log.c.id > last, sa.func.lower(log.c.text).like("%tl%"))
            .order_by(log.c.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            break
        last = rows[-1][0]
        changes = [
            {"row_id": row_id, "redacted": redact_codes(text)}
            for row_id, text in rows
            if redact_codes(text) != text
        ]
        if changes:
            connection.execute(
                log.update()
                .where(log.c.id == sa.bindparam("row_id"))
                .values(text=sa.bindparam("redacted")),
                changes,
            )


def upgrade() -> None:
    with op.batch_alter_table("message_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("update_key", sa.String(length=100), nullable=True))
        batch_op.create_unique_constraint("uq_message_log_update", ["channel", "update_key"])
    with op.batch_alter_table("conversation", schema=None) as batch_op:
        batch_op.add_column(sa.Column("menu", sa.String(length=64), nullable=True))
    _redact_message_log()


def downgrade() -> None:
    with op.batch_alter_table("conversation", schema=None) as batch_op:
        batch_op.drop_column("menu")
    with op.batch_alter_table("message_log", schema=None) as batch_op:
        batch_op.drop_constraint("uq_message_log_update", type_="unique")
        batch_op.drop_column("update_key")
