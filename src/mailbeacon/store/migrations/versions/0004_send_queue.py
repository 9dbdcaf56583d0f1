"""The durable send queue: send_jobs, per-copy attempts, message progress

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 10:00:00

Mail used to be sent inside the web request. A message the old code left
"sending" (the process died mid-send) never had a job, so it is closed here:
its copies without an outcome become "unknown" (they may have gone out; they
are not sent again) and the message "partial" or "failed".
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNKNOWN = "The send was interrupted by an upgrade; this copy may or may not have been delivered."


def upgrade() -> None:
    op.create_table(
        "send_jobs",
        sa.Column(
            "message_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("run_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_owner", sa.String(length=64), nullable=False),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_send_jobs_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_send_jobs")),
    )
    op.create_index("ix_send_jobs_run_after", "send_jobs", ["run_after"], unique=False)
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("copies_done", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("copies_total", sa.Integer(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("recipients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        sa.text(
            "UPDATE recipients SET status = 'unknown', error = :error WHERE status = 'pending' "
            "AND message_id IN (SELECT id FROM messages WHERE status = 'sending')"
        ).bindparams(error=UNKNOWN)
    )
    op.execute(
        "UPDATE messages SET status = CASE WHEN EXISTS (SELECT 1 FROM recipients r "
        "WHERE r.message_id = messages.id AND r.status = 'sent') THEN 'partial' ELSE 'failed' END "
        "WHERE status = 'sending'"
    )
    op.execute(
        "UPDATE messages SET copies_total = (SELECT count(*) FROM recipients r "
        "WHERE r.message_id = messages.id)"
    )
    op.execute("UPDATE messages SET copies_done = copies_total")


def downgrade() -> None:
    with op.batch_alter_table("recipients", schema=None) as batch_op:
        batch_op.drop_column("next_attempt_at")
        batch_op.drop_column("attempts")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("copies_total")
        batch_op.drop_column("copies_done")
    op.drop_index("ix_send_jobs_run_after", table_name="send_jobs")
    op.drop_table("send_jobs")
