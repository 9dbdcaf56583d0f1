"""Replies and bounces from the sender's inbox (B11)

- replies: one row per reply, auto-reply or bounce that refers to one of the
  user's messages (fact, time, sender; never the body), unique per
  (user_id, source_key) so reading the inbox again records nothing twice.
- recipients: replied_at, reply_count, auto_replied_at, bounced_at,
  bounce_status, bounce_detail; messages: reply_count, last_reply_at,
  bounce_count, and an index to find a message by its Message-ID.
- mailboxes: the inbox watch's position (UIDVALIDITY, last UID), when it last
  synced and its last error.
- notifications: hit_seq and recipient_id become nullable and reply_id names
  the reply a notification stands for.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _count(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.Integer(), nullable=False, server_default="0")


def _moment(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=True)


def upgrade() -> None:
    op.create_table(
        "replies",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("user_id", BIG_ID, nullable=False),
        sa.Column("message_id", BIG_ID, nullable=False),
        sa.Column("recipient_id", BIG_ID, nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("from_address", sa.String(length=320), nullable=False),
        sa.Column("from_name", sa.String(length=200), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_code", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("counted_open", sa.Boolean(), nullable=False),
        sa.Column("source_key", sa.String(length=400), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["recipient_id"], ["recipients.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id", "source_key"),
    )
    op.create_index("ix_replies_message_time", "replies", ["message_id", "received_at"])
    op.create_index("ix_replies_recipient_id", "replies", ["recipient_id"])
    with op.batch_alter_table("recipients", schema=None) as batch_op:
        batch_op.add_column(_moment("replied_at"))
        batch_op.add_column(_count("reply_count"))
        batch_op.add_column(_moment("auto_replied_at"))
        batch_op.add_column(_moment("bounced_at"))
        batch_op.add_column(
            sa.Column("bounce_status", sa.String(length=16), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column("bounce_detail", sa.Text(), nullable=False, server_default="")
        )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(_count("reply_count"))
        batch_op.add_column(_moment("last_reply_at"))
        batch_op.add_column(_count("bounce_count"))
        batch_op.create_index("ix_messages_user_message_id", ["user_id", "message_id_header"])
    with op.batch_alter_table("mailboxes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("inbox_uidvalidity", sa.BigInteger(), nullable=True))
        batch_op.add_column(
            sa.Column("inbox_last_uid", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch_op.add_column(_moment("inbox_synced_at"))
        batch_op.add_column(sa.Column("inbox_error", sa.Text(), nullable=False, server_default=""))
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.alter_column("hit_seq", existing_type=sa.BigInteger(), nullable=True)
        batch_op.alter_column("recipient_id", existing_type=BIG_ID, nullable=True)
        batch_op.add_column(sa.Column("reply_id", BIG_ID, nullable=True))
        batch_op.create_unique_constraint("uq_notifications_reply_id", ["reply_id"])
        batch_op.create_foreign_key(
            "fk_notifications_reply_id_replies",
            "replies",
            ["reply_id"],
            ["id"],
            ondelete="CASCADE",
        )


def downgrade() -> None:
    op.execute("DELETE FROM notifications WHERE reply_id IS NOT NULL")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_constraint("fk_notifications_reply_id_replies", type_="foreignkey")
        batch_op.drop_constraint("uq_notifications_reply_id", type_="unique")
        batch_op.drop_column("reply_id")
        batch_op.alter_column("recipient_id", existing_type=BIG_ID, nullable=False)
        batch_op.alter_column("hit_seq", existing_type=sa.BigInteger(), nullable=False)
    with op.batch_alter_table("mailboxes", schema=None) as batch_op:
        for name in ("inbox_error", "inbox_synced_at", "inbox_last_uid", "inbox_uidvalidity"):
            batch_op.drop_column(name)
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_user_message_id")
        for name in ("bounce_count", "last_reply_at", "reply_count"):
            batch_op.drop_column(name)
    with op.batch_alter_table("recipients", schema=None) as batch_op:
        for name in (
            "bounce_detail",
            "bounce_status",
            "bounced_at",
            "auto_replied_at",
            "reply_count",
            "replied_at",
        ):
            batch_op.drop_column(name)
    op.drop_index("ix_replies_recipient_id", table_name="replies")
    op.drop_index("ix_replies_message_time", table_name="replies")
    op.drop_table("replies")
