"""Delivering copies over SMTP with aiosmtplib, one connection per message."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

import aiosmtplib


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    """Where and how to hand mail over."""

    host: str
    port: int
    security: str = "none"  # none, starttls or tls
    username: str = ""
    password: str = ""
    timeout: float = 30.0
    # For a user's own mailbox: the address `host` resolved to and was checked at
    # (mail.destinations), connected to instead of resolving again, so DNS cannot
    # be re-pointed between check and use; TLS still verifies `host`.
    connect_address: str = ""
    # Why this destination must not be used at all (a private address): every copy fails.
    refusal: str = ""
    # The embedded outbox: its copies stand in for the recipients' inboxes (day one).
    outbox: bool = False

    @classmethod
    def from_url(cls, url: str) -> SmtpTarget:
        """smtp://host:25, smtp+starttls://user:pass@host:587, smtps://user:pass@host:465."""
        parts = urlsplit(url)
        security = {"smtp": "none", "smtp+starttls": "starttls", "smtps": "tls"}.get(parts.scheme)
        if security is None or not parts.hostname:
            raise ValueError(f"not an SMTP URL: {url!r}")
        default_port = {"none": 25, "starttls": 587, "tls": 465}[security]
        return cls(
            host=parts.hostname,
            port=parts.port or default_port,
            security=security,
            username=unquote(parts.username or ""),
            password=unquote(parts.password or ""),
        )


@dataclass(frozen=True, slots=True)
class Delivery:
    """One copy to hand over: its envelope and its bytes."""

    envelope_from: str
    recipient: str
    message: EmailMessage


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """What the server said about one copy: empty error means accepted."""

    recipient: str
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


def _client(target: SmtpTarget) -> aiosmtplib.SMTP:
    return aiosmtplib.SMTP(
        hostname=target.host,
        port=target.port,
        use_tls=target.security == "tls",
        start_tls=target.security == "starttls",
        username=target.username or None,
        password=target.password or None,
        timeout=target.timeout,
    )


async def deliver(target: SmtpTarget, deliveries: Sequence[Delivery]) -> list[DeliveryResult]:
    """Send each copy, one result per copy; a refusal of one does not stop the others."""
    if not deliveries:
        return []
    client = _client(target)
    try:
        await client.connect()
    except (aiosmtplib.SMTPException, OSError) as exc:
        reason = f"could not reach the mail server {target.host}:{target.port}: {exc}"
        return [DeliveryResult(d.recipient, reason) for d in deliveries]
    results: list[DeliveryResult] = []
    try:
        for delivery in deliveries:
            results.append(await _send_one(client, delivery))
    finally:
        try:
            await client.quit()
        except (aiosmtplib.SMTPException, OSError):
            client.close()
    return results


async def _send_one(client: aiosmtplib.SMTP, delivery: Delivery) -> DeliveryResult:
    try:
        if not client.is_connected:
            await client.connect()
        errors, _ = await client.send_message(
            delivery.message, sender=delivery.envelope_from, recipients=[delivery.recipient]
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        return DeliveryResult(delivery.recipient, "; ".join(str(e) for e in exc.recipients))
    except (aiosmtplib.SMTPException, OSError) as exc:
        return DeliveryResult(delivery.recipient, str(exc) or type(exc).__name__)
    if errors:
        return DeliveryResult(delivery.recipient, "; ".join(str(v) for v in errors.values()))
    return DeliveryResult(delivery.recipient)


async def check_connection(target: SmtpTarget) -> str:
    """Connect and log in; empty string on success, else what went wrong."""
    client = _client(target)
    try:
        await client.connect()
        await client.noop()
        await client.quit()
    except (aiosmtplib.SMTPException, OSError) as exc:
        return str(exc) or type(exc).__name__
    return ""
