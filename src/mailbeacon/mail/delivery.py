"""One recipient's copy: rendered and handed to the mail server, in the delivery process.

This module runs in a process of its own (a one-process `CpuPool` owned by the
send worker), because both halves cost time in proportion to the message:
rewriting the body and building the MIME copy, and the SMTP client's own
preparation of the bytes (line endings, dot-stuffing) which aiosmtplib would
do on the event loop. Blocking `smtplib` is right here: nothing else runs in
this process, and it lets us see exactly where a transaction failed.

The process keeps the message being sent (`_template`) and one open SMTP
connection between calls, so a message's body crosses the process boundary
once per claim and its copies share a connection. Only one copy exists in
memory at a time.

Outcomes, by where the transaction stopped:
- before the final reply to DATA, with a 4xx reply or a lost connection:
  `retry` (the server did not take the message), 5xx: `failed`;
- the server cannot be reached (connect, TLS, login): `unreachable`, for the
  worker to retry every waiting copy later;
- the connection failed while we waited for the reply to the message itself:
  `unknown`: it may have been accepted, so it is never sent again.
"""

from __future__ import annotations

import logging
import re
import smtplib
import socket
import ssl
from dataclasses import dataclass
from email.policy import SMTP as SMTP_POLICY
from email.policy import SMTPUTF8 as SMTPUTF8_POLICY

from mailbeacon.core.addresses import Mailbox, parse_mailbox
from mailbeacon.core.mime import build_copy
from mailbeacon.core.placeholders import fill, has_placeholders, values_for
from mailbeacon.core.rewrite import rewrite_html, rewrite_text
from mailbeacon.core.submitted import render_submitted
from mailbeacon.core.tokens import KeyRing
from mailbeacon.mail.smtp import SmtpTarget
from mailbeacon.store.sendqueue import QueuedMessage

log = logging.getLogger(__name__)

_LINE_ENDINGS = re.compile(rb"\r\n|\n|\r(?!\n)")
_LEADING_DOT = re.compile(rb"(?m)^\.")
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")


@dataclass(frozen=True, slots=True)
class CopyOrder:
    """Render and send one copy. `template` is sent once per claim, then left None."""

    message_id: int
    recipient_id: int
    recipient: str
    target: SmtpTarget
    keys: KeyRing
    public_url: str
    template: QueuedMessage | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one copy: sent, retry, failed, unknown, unreachable or need_template."""

    kind: str
    error: str = ""


_template: QueuedMessage | None = None
_connection: tuple[SmtpTarget, smtplib.SMTP] | None = None
_local_hostname: str | None = None


def deliver_copy(order: CopyOrder) -> Outcome:
    """Render `order`'s copy and hand it over (runs in the delivery process)."""
    global _template
    if order.template is not None:
        _template = order.template
    if _template is None or _template.id != order.message_id:
        return Outcome("need_template")
    try:
        raw, utf8 = render_copy(_template, order)
    except Exception as exc:  # a body no rule foresaw must not stop the queue
        log.exception("could not build copy for recipient %d", order.recipient_id)
        return Outcome("failed", f"this copy could not be built: {type(exc).__name__}")
    if order.target.refusal:
        return Outcome("failed", order.target.refusal)
    sender = parse_mailbox(_template.from_address).address
    return _transmit(order.target, sender, order.recipient, raw, utf8)


def forget() -> None:
    """Drop the cached message and close the connection (after a claim ends)."""
    global _template
    _template = None
    _close()


def render_copy(message: QueuedMessage, order: CopyOrder) -> tuple[bytes, bool]:
    """One recipient's copy as bytes (their own pixel and link tokens, B1), and if it needs
    SMTPUTF8."""
    keys, base = order.keys, order.public_url
    link_ids = {url: link_id for link_id, url in message.links}

    def click_url_for(url: str) -> str | None:
        link_id = link_ids.get(url)
        if link_id is None:
            return None
        return f"{base}/c/{keys.sign_click(message.id, order.recipient_id, link_id, url)}"

    pixel = None
    if message.track_opens:
        pixel = f"{base}/o/{keys.sign_open(message.id, order.recipient_id)}.gif"
    clicks = click_url_for if message.track_links else None
    if message.raw_source is not None:  # from a mail client: its own bytes, rewritten in place
        raw = render_submitted(
            message.raw_source,
            pixel_url=pixel,
            click_url_for=clicks,
            message_id=message.message_id_header,
            date=message.created_at,
        )
        head = _BLANK_LINE.split(raw, maxsplit=1)[0]
        addresses = (message.from_address, order.recipient)
        return raw, not (head.isascii() and all(a.isascii() for a in addresses))
    html, text, subject = message.html, message.text, message.subject
    if any(has_placeholders(part) for part in (html, text, subject)):
        name = next((n for a, n in message.names if a == order.recipient), "")
        values = values_for(order.recipient, name)
        subject = fill(subject, values)
        html = None if html is None else fill(html, values, as_html=True)
        text = None if text is None else fill(text, values)
    if html is not None:
        honeypot = None
        if message.track_links and message.honeypot is not None:
            link_id, url = message.honeypot
            honeypot = f"{base}/c/{keys.sign_click(message.id, order.recipient_id, link_id, url)}"
        html = rewrite_html(html, pixel_url=pixel, click_url_for=clicks, honeypot_url=honeypot)
    if text is not None and message.track_links:
        text = rewrite_text(text, click_url_for)
    mime = build_copy(
        sender=parse_mailbox(message.from_address),
        to=tuple(Mailbox(address, name) for address, name in message.to),
        cc=tuple(Mailbox(address, name) for address, name in message.cc),
        subject=subject,
        html=html,
        text=text,
        message_id=message.message_id_header,
        date=message.created_at,
        attachments=message.attachments,
    )
    utf8 = not (message.from_address.isascii() and order.recipient.isascii())
    return mime.as_bytes(policy=SMTPUTF8_POLICY if utf8 else SMTP_POLICY), utf8


def _wire(raw: bytes) -> bytes:
    """The DATA payload: CRLF line endings, leading dots doubled, the closing dot.

    The copy is built with CRLF already, so the usual case takes two C-speed
    byte scans; only odd line endings pay for the regular expressions.
    """
    if raw.count(b"\n") == raw.count(b"\r\n") and raw.count(b"\r") == raw.count(b"\r\n"):
        data = raw.replace(b"\r\n.", b"\r\n..")
        if data.startswith(b"."):
            data = b"." + data
    else:
        data = _LEADING_DOT.sub(b"..", _LINE_ENDINGS.sub(b"\r\n", raw))
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


def _open(target: SmtpTarget) -> smtplib.SMTP:
    global _local_hostname
    if _local_hostname is None:
        _local_hostname = socket.getfqdn()
    smtp: smtplib.SMTP
    if target.security == "tls":
        smtp = smtplib.SMTP_SSL(
            local_hostname=_local_hostname,
            timeout=target.timeout,
            context=ssl.create_default_context(),
        )
    else:
        smtp = smtplib.SMTP(local_hostname=_local_hostname, timeout=target.timeout)
    # smtplib verifies TLS against `_host`, the name given to its constructor; we
    # connect to the checked address (when there is one) but verify the name.
    smtp._host = target.host  # type: ignore[attr-defined]
    smtp.connect(target.connect_address or target.host, target.port)
    try:
        smtp.ehlo_or_helo_if_needed()
        if target.security == "starttls":
            smtp.starttls(context=ssl.create_default_context())
            smtp.ehlo()
        if target.username:
            smtp.login(target.username, target.password)
    except BaseException:
        smtp.close()
        raise
    return smtp


def _connect(target: SmtpTarget) -> tuple[smtplib.SMTP, bool]:
    """The open connection to `target` (reused: True) or a new one."""
    global _connection
    if _connection is not None and _connection[0] == target and _connection[1].sock is not None:
        return _connection[1], True
    _close()
    smtp = _open(target)
    _connection = (target, smtp)
    return smtp, False


def _close() -> None:
    global _connection
    if _connection is not None:
        smtp = _connection[1]
        _connection = None
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()


def _drop() -> None:
    global _connection
    if _connection is not None:
        _connection[1].close()
        _connection = None


def _refused(smtp: smtplib.SMTP, code: int, reply: bytes) -> Outcome:
    text = f"{code} {reply.decode('utf-8', 'replace')}".strip()
    try:
        smtp.rset()
    except (smtplib.SMTPException, OSError):
        _drop()
    return Outcome("retry" if 400 <= code < 500 else "failed", text)


def _transmit(target: SmtpTarget, sender: str, recipient: str, raw: bytes, utf8: bool) -> Outcome:
    where = f"{target.host}:{target.port}"
    for _ in range(2):  # a reused connection the server has closed meanwhile: reconnect once
        try:
            smtp, reused = _connect(target)
        except (smtplib.SMTPException, OSError) as exc:
            _drop()
            return Outcome("unreachable", f"could not reach the mail server {where}: {exc}")
        try:
            options: list[str] = []
            if utf8:
                if not smtp.has_extn("smtputf8"):
                    return Outcome(
                        "failed", "the mail server does not accept internationalised addresses"
                    )
                options = ["SMTPUTF8", "BODY=8BITMIME"]
                smtp.command_encoding = "utf-8"
            else:
                smtp.command_encoding = "ascii"
            code, reply = smtp.mail(sender, options)
            if code != 250:
                return _refused(smtp, code, reply)
            code, reply = smtp.rcpt(recipient)
            if code not in (250, 251):
                return _refused(smtp, code, reply)
            code, reply = smtp.docmd("DATA")
            if code != 354:
                return _refused(smtp, code, reply)
            smtp.send(_wire(raw))
        except (smtplib.SMTPException, OSError) as exc:
            # Nothing accepted yet: the closing dot never got out, or no DATA at all.
            _drop()
            if reused:
                continue
            return Outcome("retry", f"the connection to {where} failed: {exc}")
        try:
            code, reply = smtp.getreply()
        except (smtplib.SMTPException, OSError) as exc:
            _drop()
            return Outcome(
                "unknown",
                f"the connection to {where} failed while the server was taking the message "
                f"({exc}); it may or may not have been delivered, so it was not sent again",
            )
        if code == 250:
            return Outcome("sent")
        return _refused(smtp, code, reply)
    return Outcome("retry", f"the connection to {where} kept closing")
