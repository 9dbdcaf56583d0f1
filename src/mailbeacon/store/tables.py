"""The schema, in SQLAlchemy 2 declarative style.

Hits are an append-only log of facts; events and the aggregate columns on
messages, recipients and links are derived from them by the processor and can
be rebuilt at any time.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import base as postgresql_base
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import FunctionElement
from sqlalchemy.types import UserDefinedType

# A 64-bit key that SQLite still treats as its rowid alias.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite has no time zones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime; use UTC-aware datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment = datetime.fromisoformat(value) if isinstance(value, str) else value
        if not isinstance(moment, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if moment.tzinfo is None:
            return moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)


class XID8(UserDefinedType[int]):
    """PostgreSQL's 64-bit transaction id (`xid8`), read and written as an int."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "XID8"


# The id of the transaction that wrote a row: xid8 on PostgreSQL, where the
# processor orders hits by it; an always-NULL integer on SQLite, which has one
# writer at a time and needs none (see processor/reading.py).
TransactionId = BigInteger().with_variant(XID8(), "postgresql")
# Reflection (and so the migrations-match-models test) knows the type by name.
postgresql_base.ischema_names.setdefault("xid8", XID8)


class CurrentTransactionId(FunctionElement[int]):
    """Server default of `hits.xid`: the inserting transaction's id on PostgreSQL."""

    type = TransactionId
    inherit_cache = True


@compiles(CurrentTransactionId, "postgresql")
def _CurrentTransactionId_pg(
    element: CurrentTransactionId, compiler: SQLCompiler, **kw: Any
) -> str:
    return "pg_current_xact_id()"


@compiles(CurrentTransactionId)
def _CurrentTransactionId_other(
    element: CurrentTransactionId, compiler: SQLCompiler, **kw: Any
) -> str:
    return "NULL"


def utcnow() -> datetime:
    """Now, in UTC, aware."""
    return datetime.now(UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class User(Base):
    """A person who sends mail. Holds the account switches (S4) and last toggles (S6)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(200))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Account switches (S4).
    open_tracking: Mapped[bool] = mapped_column(Boolean, default=True)
    link_tracking: Mapped[bool] = mapped_column(Boolean, default=True)
    notify_tracking: Mapped[bool] = mapped_column(Boolean, default=True)
    # The toggles used on the last email become the next defaults (S6).
    last_track_opens: Mapped[bool] = mapped_column(Boolean, default=True)
    last_track_links: Mapped[bool] = mapped_column(Boolean, default=True)
    locale: Mapped[str] = mapped_column(String(16), default="en")
    # Until the user picks a language in Settings, each sign-in takes the browser's (a
    # user added by an admin reads the app in the language of their own browser).
    locale_chosen: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    # Until the user picks a zone in Settings, each sign-in takes the browser's.
    timezone_chosen: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # A re-open notifies only after this many quiet hours since the last counted
    # open of that recipient (B3: notifications are not noise).
    reopen_quiet_hours: Mapped[int] = mapped_column(Integer, default=3, server_default="3")
    # The composer's follow-up reminder default (B5): '' is off, else a
    # core.reminders.Condition; after how many days; and whether to email too.
    reminder_condition: Mapped[str] = mapped_column(String(16), default="", server_default="")
    reminder_days: Mapped[int] = mapped_column(Integer, default=3, server_default="3")
    reminder_email: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Appended to a new email in the composer (B13); plain text, the user's own words.
    signature: Mapped[str] = mapped_column(Text, default="", server_default="")


class ApiToken(Base):
    """A per-user API token; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AppPassword(Base):
    """A password for a mail client's SMTP submission (B12); only its argon2 hash is stored.

    `prefix` (the first characters of the password) picks the one hash to check,
    so a sign-in costs one argon2 verification however many passwords a user has.
    """

    __tablename__ = "app_passwords"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    hash: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class OpenAggregates:
    """Counters the processor keeps: counted opens and clicks, first and last."""

    open_count: Mapped[int] = mapped_column(Integer, default=0)
    first_open_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_open_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    click_count: Mapped[int] = mapped_column(Integer, default=0)
    first_click_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_click_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Message(OpenAggregates, Base):
    """One email as the user wrote it, sent as one copy per recipient (B1)."""

    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_user_created", "user_id", "created_at"),
        Index("ix_messages_sent_copy", "sent_copy_status", "sent_copy_next_at"),
        # Replies name our messages by Message-ID (B11).
        Index("ix_messages_user_message_id", "user_id", "message_id_header"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    message_id_header: Mapped[str] = mapped_column(String(250))
    from_address: Mapped[str] = mapped_column(String(400))
    subject: Mapped[str] = mapped_column(Text, default="")
    html_body: Mapped[str | None] = mapped_column(Text, nullable=True)
    text_body: Mapped[str | None] = mapped_column(Text, nullable=True)
    # What the user asked for, and what was actually done, with the reasons why not.
    requested_opens: Mapped[bool] = mapped_column(Boolean)
    requested_links: Mapped[bool] = mapped_column(Boolean)
    track_opens: Mapped[bool] = mapped_column(Boolean)
    track_links: Mapped[bool] = mapped_column(Boolean)
    untracked_reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    # queued -> sending -> sent | partial | failed (mail.worker says when).
    status: Mapped[str] = mapped_column(String(16), default="queued")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Progress for the pages: copies with a final outcome out of all copies.
    copies_done: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    copies_total: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The clean copy in the sender's Sent folder (S12, B2; mail.sentfolder):
    # '' (not delivered yet), pending, done, failed or skipped (no IMAP, nothing delivered).
    sent_copy_status: Mapped[str] = mapped_column(String(16), default="", server_default="")
    sent_copy_error: Mapped[str] = mapped_column(String(500), default="", server_default="")
    sent_copy_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # When pending: the next try, or until when the worker trying holds it (a lease).
    sent_copy_next_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Tracked copies the provider saved in Sent itself, which MailBeacon removed.
    sent_copy_removed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Replies and bounces found in the sender's inbox (B11; mail/inbox.py).
    reply_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_reply_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    bounce_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Where it came from: "composer" (page, API, CLI) or "smtp" (a mail client, B12).
    source: Mapped[str] = mapped_column(String(16), default="composer", server_default="composer")
    # A submitted message's bytes as the client sent them; each copy is made from these
    # (core.submitted), so attachments and headers go out as written. None: composer.
    # Deferred: pages that load messages never pull megabytes of attachments.
    raw_source: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True, deferred=True)

    recipients: Mapped[list[Recipient]] = relationship(
        back_populates="message", order_by="Recipient.id", cascade="all, delete-orphan"
    )
    # The links a person wrote: the invisible honeypot (Link.honeypot) is not one of them,
    # so pages, the API and counts never show it; its clicks stay in the hit log.
    links: Mapped[list[Link]] = relationship(
        back_populates="message",
        order_by="Link.id",
        cascade="all, delete-orphan",
        primaryjoin="and_(Message.id == Link.message_id, Link.honeypot.is_(False))",
    )


class Recipient(OpenAggregates, Base):
    """One To/Cc/Bcc address of a message and the fate of its own copy."""

    __tablename__ = "recipients"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    address: Mapped[str] = mapped_column(String(320), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    field: Mapped[str] = mapped_column(String(3))  # to, cc or bcc
    # queued -> sending -> sent | failed | unknown; a transient failure goes back
    # to queued with `next_attempt_at` (store.sendqueue holds the rules).
    status: Mapped[str] = mapped_column(String(16), default="queued")
    error: Mapped[str] = mapped_column(Text, default="")
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Delivered into the embedded outbox, which stands in for the recipient's
    # inbox in the day-one demo: the sender's own browser reads it as them.
    outbox: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The client of the first counted open by a person (B4: a clearly different
    # client on a different network later is "possibly forwarded").
    reader_agent: Mapped[str] = mapped_column(String(512), default="", server_default="")
    reader_network: Mapped[str] = mapped_column(String(64), default="", server_default="")
    # Counted opens by kind of reader, and what was kept but not counted.
    person_open_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    proxy_open_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    inferred_open_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    machine_event_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    forwarded_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # What the sender's inbox says about this copy (B11): the first reply, how
    # many, the first auto-reply (labelled, never counted), and a bounce, whose
    # status is also the recipient's status ("bounced").
    replied_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    reply_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    auto_replied_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    bounced_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    bounce_status: Mapped[str] = mapped_column(String(16), default="", server_default="")
    bounce_detail: Mapped[str] = mapped_column(Text, default="", server_default="")

    message: Mapped[Message] = relationship(back_populates="recipients")


class Link(Base):
    """One distinct tracked destination in a message."""

    __tablename__ = "links"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    url: Mapped[str] = mapped_column(Text)
    # The invisible link MailBeacon adds to tracked HTML mail: only software
    # follows it, which marks that client as a scanner for the copy (B3).
    honeypot: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    click_count: Mapped[int] = mapped_column(Integer, default=0)
    first_click_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_click_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    message: Mapped[Message] = relationship(back_populates="links")


class SendJob(Base):
    """A message the worker still has to deliver: the durable send queue.

    The row exists while any copy lacks a final outcome. A worker holds it by a
    lease (`lease_owner` until `lease_expires_at`); a dead worker's lease runs
    out and another worker takes the job over.
    """

    __tablename__ = "send_jobs"
    __table_args__ = (Index("ix_send_jobs_run_after", "run_after"),)

    message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    run_after: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_owner: Mapped[str] = mapped_column(String(64), default="")
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class HitRow(Base):
    """A raw hit: append-only. `seq` orders the log; `hit_id` makes replay idempotent.

    `xid` is the inserting transaction's id on PostgreSQL (NULL on SQLite): with
    several hit writers, seq order is not commit order, and the processor reads
    in (xid, seq) order instead (processor/reading.py).
    """

    __tablename__ = "hits"
    __table_args__ = (
        # Partial: on SQLite, where xid is always NULL, it holds nothing and costs
        # the hit writer nothing.
        Index(
            "ix_hits_xid_seq",
            "xid",
            "seq",
            postgresql_where=text("xid IS NOT NULL"),
            sqlite_where=text("xid IS NOT NULL"),
        ),
        # The processor reads a copy's neighbouring hits (bursts, B3).
        Index("ix_hits_recipient_time", "recipient_id", "received_at"),
    )

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    hit_id: Mapped[str] = mapped_column(String(32), unique=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(8))
    message_id: Mapped[int] = mapped_column(BigInteger)
    recipient_id: Mapped[int] = mapped_column(BigInteger)
    link_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    method: Mapped[str] = mapped_column(String(8))
    prefetch: Mapped[bool] = mapped_column(Boolean)
    ip: Mapped[str] = mapped_column(String(64))
    user_agent: Mapped[str] = mapped_column(String(512))
    # What the collector knew of the full address before truncating it: a tag
    # from the network table ("apple-relay", "google", "datacenter", ...).
    network: Mapped[str] = mapped_column(String(32), default="", server_default="")
    xid: Mapped[int | None] = mapped_column(
        TransactionId, nullable=True, server_default=CurrentTransactionId()
    )


class Event(Base):
    """A hit, judged and attributed. Derived; rebuilt from hits on demand."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_message_time", "message_id", "occurred_at"),
        Index("ix_events_recipient_kind", "recipient_id", "kind"),
        Index("ix_events_recipient_time", "recipient_id", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    hit_seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    recipient_id: Mapped[int] = mapped_column(ForeignKey("recipients.id", ondelete="CASCADE"))
    link_id: Mapped[int | None] = mapped_column(
        ForeignKey("links.id", ondelete="CASCADE"), nullable=True, index=True
    )
    kind: Mapped[str] = mapped_column(String(8))
    # The class (core.signals.SignalClass) and its reason (core.signals.Reason).
    verdict: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(32), default="", server_default="")
    counted: Mapped[bool] = mapped_column(Boolean)
    # A repeat of the same client's open or click within the dedupe window:
    # kept, not counted again.
    duplicate: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Read from a clearly different client and network than the recipient's
    # first counted open (B4): not counted as the recipient's own.
    forwarded: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # A counted click on a copy with no counted open: it counts as the open too.
    inferred_open: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ip: Mapped[str] = mapped_column(String(64))
    network: Mapped[str] = mapped_column(String(32), default="", server_default="")
    user_agent: Mapped[str] = mapped_column(String(512))


class ProcessorCursor(Base):
    """How far the processor has read the hit log: (last_xid, last_seq) on
    PostgreSQL, last_seq alone on SQLite (last_xid stays NULL there)."""

    __tablename__ = "processor_cursor"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    last_xid: Mapped[int | None] = mapped_column(TransactionId, nullable=True)


class OutboxMail(Base):
    """A message captured by the embedded outbox, exactly as it arrived over SMTP."""

    __tablename__ = "outbox_mail"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    envelope_from: Mapped[str] = mapped_column(String(400))
    envelope_to: Mapped[list[str]] = mapped_column(JSON)
    subject: Mapped[str] = mapped_column(Text, default="")
    raw: Mapped[bytes] = mapped_column(LargeBinary)


class WebSession(Base):
    """A signed-in browser. Only the SHA-256 of the cookie value is stored."""

    __tablename__ = "web_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Notification(Base):
    """An open or click the user asked to hear about (S9). One per counted event.

    Keyed by the hit, not the event, so rebuilding events keeps read marks.
    """

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_user_read", "user_id", "read_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # An open or click names its hit; a reply or bounce (B11) names its reply row
    # instead (hit_seq NULL), and a reply from someone who was not a recipient
    # names no recipient. Typed `int` for the processor, which only ever reads
    # notifications of hits; code that reads reply notifications checks for None.
    hit_seq: Mapped[int] = mapped_column(BigInteger, unique=True, nullable=True)
    reply_id: Mapped[int | None] = mapped_column(
        ForeignKey("replies.id", ondelete="CASCADE"), unique=True, nullable=True
    )
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    recipient_id: Mapped[int] = mapped_column(
        ForeignKey("recipients.id", ondelete="CASCADE"), nullable=True
    )
    link_id: Mapped[int | None] = mapped_column(
        ForeignKey("links.id", ondelete="CASCADE"), nullable=True
    )
    kind: Mapped[str] = mapped_column(String(8))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Clicks of one recipient close together are one notification ("Carl
    # clicked 3 links"): how many events it stands for, and distinct links.
    event_count: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    link_count: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # A follow-up reminder that fired (B5; kind "reminder"): at most one notification each.
    reminder_id: Mapped[int | None] = mapped_column(
        ForeignKey("reminders.id", ondelete="CASCADE"), unique=True, nullable=True
    )


class NotifiedHit(Base):
    """Every hit a notification stands for (one, or a grouped burst of clicks).

    A rebuild re-derives events but must never notify a hit twice.
    """

    __tablename__ = "notified_hits"

    hit_seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    notification_id: Mapped[int] = mapped_column(
        ForeignKey("notifications.id", ondelete="CASCADE"), index=True
    )


class UserDevice(Base):
    """A browser a user signed in with: its agent and truncated network.

    A hit from one of the sender's own devices is "self", never counted (B2).
    """

    __tablename__ = "user_devices"
    __table_args__ = (UniqueConstraint("user_id", "user_agent", "network"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    user_agent: Mapped[str] = mapped_column(String(512))
    network: Mapped[str] = mapped_column(String(64))
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Mailbox(Base):
    """A user's own SMTP server, and optionally the same mailbox over IMAP.

    Passwords are encrypted with the configured data key."""

    __tablename__ = "mailboxes"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer)
    security: Mapped[str] = mapped_column(String(16))  # none, starttls or tls
    username: Mapped[str] = mapped_column(String(320), default="")
    password_encrypted: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The same mailbox over IMAP (mail.imap): Sent copies, replies. Empty host: not set up.
    imap_host: Mapped[str] = mapped_column(String(255), default="", server_default="")
    imap_port: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    imap_security: Mapped[str] = mapped_column(String(16), default="", server_default="")
    imap_username: Mapped[str] = mapped_column(String(320), default="", server_default="")
    imap_password_encrypted: Mapped[bytes] = mapped_column(
        LargeBinary, default=b"", server_default=""
    )
    # Empty: found by SPECIAL-USE \Sent or by name; INBOX.
    imap_sent_folder: Mapped[str] = mapped_column(String(255), default="", server_default="")
    imap_inbox_folder: Mapped[str] = mapped_column(String(255), default="", server_default="")
    # The last connection's outcome (Test connection or the worker): '' means it worked.
    imap_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    imap_error: Mapped[str] = mapped_column(String(500), default="", server_default="")
    # How far the inbox watch has read (B11, mail/inbox.py): the folder's
    # UIDVALIDITY and the highest UID looked at. A new UIDVALIDITY means the
    # UIDs were renumbered: the watch starts over, and the replies table's
    # unique key keeps that from recording anything twice.
    inbox_uidvalidity: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    inbox_last_uid: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    inbox_synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    inbox_error: Mapped[str] = mapped_column(Text, default="", server_default="")


class Reply(Base):
    """A reply, auto-reply or bounce in the sender's inbox that refers to one of
    their messages (B11). The fact, time and sender; never the body.

    `source_key` makes recording idempotent: the inbox message's Message-ID
    (or, without one, UIDVALIDITY and UID), plus the failed address for a
    bounce that reports several recipients.
    """

    __tablename__ = "replies"
    __table_args__ = (
        UniqueConstraint("user_id", "source_key"),
        Index("ix_replies_message_time", "message_id", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    # None: the sender was not a recipient of the message (a colleague, a forward).
    recipient_id: Mapped[int | None] = mapped_column(
        ForeignKey("recipients.id", ondelete="CASCADE"), nullable=True, index=True
    )
    kind: Mapped[str] = mapped_column(String(16))  # reply, auto_reply or bounce
    from_address: Mapped[str] = mapped_column(String(320), default="")
    from_name: Mapped[str] = mapped_column(String(200), default="")
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status_code: Mapped[str] = mapped_column(String(16), default="")
    # A bounce's diagnostic, or why a message was judged an auto-reply.
    detail: Mapped[str] = mapped_column(Text, default="")
    # The first reply of a recipient without a counted open counted as the open.
    counted_open: Mapped[bool] = mapped_column(Boolean, default=False)
    source_key: Mapped[str] = mapped_column(String(400))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Reminder(Base):
    """A follow-up reminder for one recipient's copy (B5; rules in core.reminders).

    One row per recipient, because each copy is tracked on its own (B1): the
    user is reminded about exactly the people who stayed silent. `state` moves
    only away from "pending", by a conditional UPDATE, so it fires at most once
    however many workers look and however often they restart.
    """

    __tablename__ = "reminders"
    __table_args__ = (Index("ix_reminders_state_due", "state", "due_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    recipient_id: Mapped[int] = mapped_column(
        ForeignKey("recipients.id", ondelete="CASCADE"), unique=True
    )
    condition: Mapped[str] = mapped_column(String(16))  # not_opened, not_clicked, not_replied
    days: Mapped[int] = mapped_column(Integer)
    email_me: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # pending -> fired | met | cancelled.
    state: Mapped[str] = mapped_column(String(16), default="pending")
    fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # When it left "pending" for met or cancelled.
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The email to the user themselves: '' (not asked), sending, sent or failed (its error).
    email_status: Mapped[str] = mapped_column(String(16), default="", server_default="")
    email_error: Mapped[str] = mapped_column(Text, default="", server_default="")


class Attachment(Base):
    """A file sent with a composer message (B13), stored once and put in every copy.

    Kept in the database (both backends), so a worker on another machine reads it the
    way it reads the bodies; deferred so listing a message's files never loads them.
    """

    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    filename: Mapped[str] = mapped_column(String(250))
    content_type: Mapped[str] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)


class MessageTemplate(Base):
    """A saved email to start from (B13): subject and body with {{first_name}}-style
    placeholders, filled per recipient when each copy is rendered."""

    __tablename__ = "message_templates"
    __table_args__ = (UniqueConstraint("user_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    subject: Mapped[str] = mapped_column(Text, default="")
    format: Mapped[str] = mapped_column(String(8), default="html")
    body: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
