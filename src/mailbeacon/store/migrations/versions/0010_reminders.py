"""Follow-up reminders (B5)

- reminders: one row per recipient's copy with its condition (not_opened,
  not_clicked, not_replied), days, due time (computed in the user's zone),
  state (pending, fired, met, cancelled), when it fired or closed, and the
  outcome of the optional email to the user themselves.
- users: the composer's default reminder (condition, days, email too).
- notifications: reminder_id names the reminder a "reminder" notification
  stands for (unique: one notification per reminder).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "reminders",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("user_id", BIG_ID, nullable=False),
        sa.Column("message_id", BIG_ID, nullable=False),
        sa.Column("recipient_id", BIG_ID, nullable=False),
        sa.Column("condition", sa.String(length=16), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("email_me", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("email_status", sa.String(length=16), nullable=False, server_default=""),
        sa.Column("email_error", sa.Text(), nullable=False, server_default=""),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["recipient_id"], ["recipients.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("recipient_id"),
    )
    op.create_index("ix_reminders_state_due", "reminders", ["state", "due_at"])
    op.create_index("ix_reminders_user_id", "reminders", ["user_id"])
    op.create_index("ix_reminders_message_id", "reminders", ["message_id"])
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("reminder_condition", sa.String(length=16), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column("reminder_days", sa.Integer(), nullable=False, server_default="3")
        )
        batch_op.add_column(
            sa.Column("reminder_email", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reminder_id", BIG_ID, nullable=True))
        batch_op.create_unique_constraint("uq_notifications_reminder_id", ["reminder_id"])
        batch_op.create_foreign_key(
            "fk_notifications_reminder_id_reminders",
            "reminders",
            ["reminder_id"],
            ["id"],
            ondelete="CASCADE",
        )


def downgrade() -> None:
    op.execute("DELETE FROM notifications WHERE reminder_id IS NOT NULL")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_constraint("fk_notifications_reminder_id_reminders", type_="foreignkey")
        batch_op.drop_constraint("uq_notifications_reminder_id", type_="unique")
        batch_op.drop_column("reminder_id")
    with op.batch_alter_table("users", schema=None) as batch_op:
        for name in ("reminder_email", "reminder_days", "reminder_condition"):
            batch_op.drop_column(name)
    op.drop_index("ix_reminders_message_id", table_name="reminders")
    op.drop_index("ix_reminders_user_id", table_name="reminders")
    op.drop_index("ix_reminders_state_due", table_name="reminders")
    op.drop_table("reminders")
