"""The user's IMAP mailbox (S12, B2, B11) and each message's clean copy in Sent

- mailboxes: imap_host, imap_port, imap_security (none|starttls|tls),
  imap_username, imap_password_encrypted (like the SMTP password),
  imap_sent_folder and imap_inbox_folder (empty: found by SPECIAL-USE / INBOX),
  imap_checked_at and imap_error (the last connection's outcome, for Settings).
- messages: sent_copy_status (''|pending|done|failed|skipped), sent_copy_error,
  sent_copy_attempts, sent_copy_next_at (the next try, or the lease of the
  worker trying), sent_copy_removed (tracked copies the provider saved and
  MailBeacon removed); ix_messages_sent_copy for the worker's "what is due".

Messages already delivered before this revision are marked "skipped": only
mail sent from now on is copied to Sent.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 13:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _text(name: str, size: int) -> sa.Column[str]:
    return sa.Column(name, sa.String(length=size), nullable=False, server_default="")


def _count(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.Integer(), nullable=False, server_default="0")


def _moment(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=True)


def upgrade() -> None:
    with op.batch_alter_table("mailboxes", schema=None) as batch_op:
        batch_op.add_column(_text("imap_host", 255))
        batch_op.add_column(_count("imap_port"))
        batch_op.add_column(_text("imap_security", 16))
        batch_op.add_column(_text("imap_username", 320))
        batch_op.add_column(
            sa.Column(
                "imap_password_encrypted", sa.LargeBinary(), nullable=False, server_default=""
            )
        )
        batch_op.add_column(_text("imap_sent_folder", 255))
        batch_op.add_column(_text("imap_inbox_folder", 255))
        batch_op.add_column(_moment("imap_checked_at"))
        batch_op.add_column(_text("imap_error", 500))
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(_text("sent_copy_status", 16))
        batch_op.add_column(_text("sent_copy_error", 500))
        batch_op.add_column(_count("sent_copy_attempts"))
        batch_op.add_column(_moment("sent_copy_next_at"))
        batch_op.add_column(_count("sent_copy_removed"))
        batch_op.create_index("ix_messages_sent_copy", ["sent_copy_status", "sent_copy_next_at"])
    op.execute(
        "UPDATE messages SET sent_copy_status = 'skipped' "
        "WHERE status IN ('sent', 'partial', 'failed')"
    )


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_sent_copy")
        for name in (
            "sent_copy_removed",
            "sent_copy_next_at",
            "sent_copy_attempts",
            "sent_copy_error",
            "sent_copy_status",
        ):
            batch_op.drop_column(name)
    with op.batch_alter_table("mailboxes", schema=None) as batch_op:
        for name in (
            "imap_error",
            "imap_checked_at",
            "imap_inbox_folder",
            "imap_sent_folder",
            "imap_password_encrypted",
            "imap_username",
            "imap_security",
            "imap_port",
            "imap_host",
        ):
            batch_op.drop_column(name)
