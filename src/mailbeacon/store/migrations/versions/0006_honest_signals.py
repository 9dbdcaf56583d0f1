"""Honest signals (B2, B3, B4): what the classifier and the processor keep

- hits.network: the collector's tag for the full address before truncation;
  ix_hits_recipient_time for reading a copy's neighbouring hits.
- links.honeypot: the invisible link only software follows.
- events: reason, duplicate, forwarded, inferred_open, network.
- recipients: outbox (delivered into the embedded outbox), the first counted
  reader's agent and network, and counts by kind of reader.
- notifications: event_count and link_count (a burst of clicks is one
  notification); notified_hits: every hit a notification stands for.
- users.reopen_quiet_hours (default 3); user_devices: the sender's browsers.

Existing events keep their verdicts until `mailbeacon worker --rebuild`
re-judges the log with the new classifier; existing notifications are carried
into notified_hits so a rebuild never raises them again.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 13:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FALSE = sa.false()
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _flag(name: str) -> sa.Column[bool]:
    return sa.Column(name, sa.Boolean(), nullable=False, server_default=FALSE)


def _count(name: str, default: str = "0") -> sa.Column[int]:
    return sa.Column(name, sa.Integer(), nullable=False, server_default=default)


def _text(name: str, size: int) -> sa.Column[str]:
    return sa.Column(name, sa.String(length=size), nullable=False, server_default="")


def upgrade() -> None:
    with op.batch_alter_table("hits", schema=None) as batch_op:
        batch_op.add_column(_text("network", 32))
        batch_op.create_index("ix_hits_recipient_time", ["recipient_id", "received_at"])
    with op.batch_alter_table("links", schema=None) as batch_op:
        batch_op.add_column(_flag("honeypot"))
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(_text("reason", 32))
        batch_op.add_column(_flag("duplicate"))
        batch_op.add_column(_flag("forwarded"))
        batch_op.add_column(_flag("inferred_open"))
        batch_op.add_column(_text("network", 32))
        batch_op.create_index("ix_events_recipient_time", ["recipient_id", "occurred_at"])
    with op.batch_alter_table("recipients", schema=None) as batch_op:
        batch_op.add_column(_flag("outbox"))
        batch_op.add_column(_text("reader_agent", 512))
        batch_op.add_column(_text("reader_network", 64))
        for name in (
            "person_open_count",
            "proxy_open_count",
            "inferred_open_count",
            "machine_event_count",
            "forwarded_count",
        ):
            batch_op.add_column(_count(name))
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(_count("event_count", "1"))
        batch_op.add_column(_count("link_count", "1"))
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(_count("reopen_quiet_hours", "3"))
    op.create_table(
        "notified_hits",
        sa.Column("hit_seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("notification_id", BIG_ID, nullable=False),
        sa.ForeignKeyConstraint(["notification_id"], ["notifications.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("hit_seq"),
    )
    op.create_index("ix_notified_hits_notification_id", "notified_hits", ["notification_id"])
    op.execute(
        "INSERT INTO notified_hits (hit_seq, notification_id) SELECT hit_seq, id FROM notifications"
    )
    op.create_table(
        "user_devices",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("user_id", BIG_ID, nullable=False),
        sa.Column("user_agent", sa.String(length=512), nullable=False),
        sa.Column("network", sa.String(length=64), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id", "user_agent", "network"),
    )


def downgrade() -> None:
    op.drop_table("user_devices")
    op.drop_index("ix_notified_hits_notification_id", table_name="notified_hits")
    op.drop_table("notified_hits")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("reopen_quiet_hours")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_column("link_count")
        batch_op.drop_column("event_count")
    with op.batch_alter_table("recipients", schema=None) as batch_op:
        for name in (
            "forwarded_count",
            "machine_event_count",
            "inferred_open_count",
            "proxy_open_count",
            "person_open_count",
            "reader_network",
            "reader_agent",
            "outbox",
        ):
            batch_op.drop_column(name)
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_recipient_time")
        for name in ("network", "inferred_open", "forwarded", "duplicate", "reason"):
            batch_op.drop_column(name)
    with op.batch_alter_table("links", schema=None) as batch_op:
        batch_op.drop_column("honeypot")
    with op.batch_alter_table("hits", schema=None) as batch_op:
        batch_op.drop_index("ix_hits_recipient_time")
        batch_op.drop_column("network")
