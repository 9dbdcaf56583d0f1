"""The user's own IMAP mailbox: connect safely, find the Sent folder and the inbox.

A small typed layer over IMAPClient (a well-kept IMAP library). IMAPClient is
blocking, so everything here is synchronous and meant to run in a worker thread
(`asyncio.to_thread`), never on the event loop that answers pages or hits.

Connecting follows the same rules as the user's SMTP server (mail.destinations):
the host must resolve to public addresses only, unless the operator sets
SMTP_ALLOW_PRIVATE; the socket goes to an address that was checked, and TLS
still verifies the certificate against the host name the user typed. Failures
become an `ImapError` whose `words` are a fixed, translatable sentence (never
the server's own words) and whose `kind` tells the caller whether a retry can help.

    target = ImapTarget(host, 993, "tls", user, password, allow_private=False)
    with connect(target) as box:           # a logged-in ImapSession
        sent = box.sent_folder()           # by SPECIAL-USE \\Sent, else by name
        box.client.append(sent, raw, flags=[imapclient.SEEN])
"""

from __future__ import annotations

import asyncio
import imaplib
import socket
import ssl
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import imapclient
from cryptography.fernet import Fernet
from imapclient.exceptions import IMAPClientError, LoginError
from sqlalchemy.ext.asyncio import AsyncEngine

from mailbeacon.core.policy import N_
from mailbeacon.mail.destinations import (
    RefusedDestination,
    UnreachableDestination,
    connect_checked,
)
from mailbeacon.store.db import sessions
from mailbeacon.store.mailboxes import imap_password, load_mailbox, record_imap_check

Security = Literal["none", "starttls", "tls"]
SECURITY_MODES: tuple[Security, ...] = ("none", "starttls", "tls")
DEFAULT_PORTS = {"none": 143, "starttls": 143, "tls": 993}

# Names a Sent folder has where the server does not mark it \Sent (RFC 6154), in the
# six languages MailBeacon speaks and in the layouts of common providers. Compared
# case-insensitively, against the full name and against the last path segment.
SENT_NAMES = (
    "Sent",
    "Sent Items",
    "Sent Mail",
    "Sent Messages",
    "INBOX.Sent",
    "INBOX/Sent",
    "[Gmail]/Sent Mail",
    "[Google Mail]/Sent Mail",
    "Gesendet",
    "Gesendete Elemente",
    "Gesendete Objekte",
    "Gesendete Nachrichten",
    "Skickat",
    "Skickade objekt",
    "Skickade meddelanden",
    "Wysłane",
    "Elementy wysłane",
    "Wiadomości wysłane",
    "Inviata",
    "Inviati",
    "Posta inviata",
    "Elementi inviati",
    "Saadetud",
    "Saadetud kirjad",
    "Saadetud üksused",
)

# What the user reads when something fails: fixed sentences, translated where shown.
NOT_ALLOWED = N_(
    "MailBeacon does not connect to this address: it is on this machine or a private "
    "network. Use your mail provider's public server name, or ask your administrator."
)
UNREACHABLE = N_(
    "No IMAP server could be reached there. Check the host name, the port and the security."
)
TLS_FAILED = N_(
    "The IMAP server's certificate could not be verified, or it does not offer the "
    "security chosen. Check the host name and the security."
)
LOGIN_FAILED = N_("The IMAP server did not accept the user name and password.")
PROTOCOL_FAILED = N_("The IMAP server answered in a way MailBeacon did not expect.")
NO_SENT_FOLDER = N_("No Sent folder was found in this mailbox. Enter its name in the settings.")
NO_SUCH_FOLDER = N_("A folder named in the IMAP settings does not exist in this mailbox.")
NOT_CONFIGURED = N_("No IMAP server is set up for this mailbox.")

ErrorKind = Literal["refused", "unreachable", "tls", "login", "protocol", "folder"]


class ImapError(Exception):
    """An IMAP step failed; `words` is what the user reads (an N_ message id).

    `retryable` is False where trying again cannot help until the user changes a
    setting (a refused address, a wrong password, a missing folder).
    """

    def __init__(self, kind: ErrorKind, words: str, **params: str) -> None:
        super().__init__(f"{kind}: {words % params if params else words}")
        self.kind = kind
        self.words = words
        self.params = params

    @property
    def retryable(self) -> bool:
        return self.kind in ("unreachable", "protocol")


@dataclass(frozen=True, slots=True)
class ImapTarget:
    """Where and as whom to sign in; `sent_folder`/`inbox_folder` override discovery."""

    host: str
    port: int
    security: Security
    username: str
    password: str = field(repr=False)
    sent_folder: str = ""
    inbox_folder: str = ""
    allow_private: bool = False
    timeout: float = 30.0


async def target_for_user(
    engine: AsyncEngine, fernet: Fernet, user_id: int, *, allow_private: bool
) -> ImapTarget | None:
    """The user's IMAP settings as a target, or None when IMAP is not set up."""
    async with sessions(engine)() as db:
        mailbox = await load_mailbox(db, user_id)
    if mailbox is None or not mailbox.imap_host or mailbox.imap_security not in SECURITY_MODES:
        return None
    return ImapTarget(
        host=mailbox.imap_host,
        port=mailbox.imap_port,
        security=mailbox.imap_security,
        username=mailbox.imap_username,
        password=imap_password(fernet, mailbox),
        sent_folder=mailbox.imap_sent_folder,
        inbox_folder=mailbox.imap_inbox_folder,
        allow_private=allow_private,
    )


async def remember_outcome(engine: AsyncEngine, user_id: int, error: str) -> None:
    """Store how the last connection went ('' = it worked), so Settings can say so."""
    async with sessions(engine)() as db, db.begin():
        await record_imap_check(db, user_id, error, datetime.now(UTC))


class _CheckedIMAP4(imaplib.IMAP4):
    """imaplib's IMAP4 over a socket we connected to a checked address ourselves.

    `host` stays the name the user gave, so STARTTLS and implicit TLS verify the
    certificate against it, though no second DNS lookup ever happens.
    """

    def __init__(
        self, host: str, port: int, sock: socket.socket, tls: ssl.SSLContext | None, timeout: float
    ) -> None:
        self._checked_sock = sock
        self._tls_context = tls
        super().__init__(host, port, timeout)

    def _create_socket(self, timeout: float | None = None) -> socket.socket:
        sock = self._checked_sock
        sock.setblocking(True)
        sock.settimeout(timeout)
        if self._tls_context is not None:
            return self._tls_context.wrap_socket(sock, server_hostname=self.host)
        return sock


class _CheckedClient(imapclient.IMAPClient):  # type: ignore[misc]
    """IMAPClient whose connection is made by `_CheckedIMAP4` (see there)."""

    def __init__(self, target: ImapTarget, sock: socket.socket, context: ssl.SSLContext) -> None:
        self._checked = (sock, context if target.security == "tls" else None, target.timeout)
        super().__init__(
            target.host,
            port=target.port,
            ssl=False,  # implicit TLS is done by _CheckedIMAP4, on the checked socket
            ssl_context=context,
            timeout=target.timeout,
        )

    def _create_IMAP4(self) -> imaplib.IMAP4:
        sock, tls, timeout = self._checked
        return _CheckedIMAP4(self.host, self.port, sock, tls, timeout)


def tls_context() -> ssl.SSLContext:
    """Certificates checked against the system's trust store and the host name.

    A function of its own so the tests can make MailBeacon trust their throwaway CA.
    """
    return ssl.create_default_context()


def _checked_socket(target: ImapTarget) -> socket.socket:
    """A socket connected to one of the host's checked addresses (mail.destinations).

    The check is the SMTP one, run to completion on a private event loop: this code
    runs in a worker thread, so there is no loop here to borrow.
    """
    try:
        return asyncio.run(
            connect_checked(
                target.host,
                target.port,
                allow_private=target.allow_private,
                connect_seconds=target.timeout,
            )
        )
    except RefusedDestination:
        raise ImapError("refused", NOT_ALLOWED) from None
    except UnreachableDestination:
        raise ImapError("unreachable", UNREACHABLE) from None


def _decoded(name: Any) -> str:
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)


@dataclass(frozen=True, slots=True)
class Folder:
    """One mailbox folder as LIST shows it."""

    name: str
    delimiter: str
    flags: frozenset[str]

    @property
    def selectable(self) -> bool:
        return "\\noselect" not in self.flags and "\\nonexistent" not in self.flags


class ImapSession:
    """A logged-in connection: capabilities, folders, and the raw `client` for the rest."""

    def __init__(self, client: imapclient.IMAPClient, target: ImapTarget) -> None:
        self.client = client
        self.target = target
        self._folders: list[Folder] | None = None

    @property
    def capabilities(self) -> frozenset[str]:
        """What the server offers once logged in (IDLE, SPECIAL-USE, UIDPLUS, ...)."""
        return frozenset(_decoded(c).upper() for c in self.client.capabilities())

    def has(self, capability: str) -> bool:
        return capability.upper() in self.capabilities

    def folders(self) -> list[Folder]:
        if self._folders is None:
            self._folders = [
                Folder(
                    _decoded(name),
                    _decoded(delimiter or b""),
                    frozenset(_decoded(f).lower() for f in flags),
                )
                for flags, delimiter, name in self.client.list_folders()
            ]
        return self._folders

    def _existing(self, name: str) -> str:
        """`name` as the server spells it, or ImapError when there is no such folder."""
        for folder in self.folders():
            if folder.name.casefold() == name.casefold() and folder.selectable:
                return folder.name
        raise ImapError("folder", NO_SUCH_FOLDER, folder=name)

    def sent_folder(self) -> str:
        """The configured Sent folder, else the one marked \\Sent, else one by its name."""
        if self.target.sent_folder:
            return self._existing(self.target.sent_folder)
        found = find_sent_folder(self.folders())
        if found is None:
            raise ImapError("folder", NO_SENT_FOLDER)
        return found

    def inbox_folder(self) -> str:
        """The configured inbox, else INBOX (which every IMAP server has, RFC 3501)."""
        if self.target.inbox_folder:
            return self._existing(self.target.inbox_folder)
        return "INBOX"


def find_sent_folder(folders: Iterable[Folder]) -> str | None:
    """The folder marked \\Sent (RFC 6154), else the first one named like a Sent folder."""
    usable = [f for f in folders if f.selectable]
    for folder in usable:
        if "\\sent" in folder.flags:
            return folder.name
    wanted = [name.casefold() for name in SENT_NAMES]
    for name in wanted:
        for folder in usable:
            full = folder.name.casefold()
            leaf = full.rsplit(folder.delimiter.casefold(), 1)[-1] if folder.delimiter else full
            if name in (full, leaf):
                return folder.name
    return None


@contextmanager
def connect(target: ImapTarget) -> Iterator[ImapSession]:
    """A logged-in session to the target; logs out when the block ends.

    Raises ImapError (refused, unreachable, tls, login, protocol) with words for the user.
    """
    if target.security not in SECURITY_MODES:
        raise ValueError(f"security must be one of {', '.join(SECURITY_MODES)}")
    context = tls_context()
    sock = _checked_socket(target)
    try:
        client = _CheckedClient(target, sock, context)
    except ssl.SSLError:
        sock.close()
        raise ImapError("tls", TLS_FAILED) from None
    except (OSError, IMAPClientError, imaplib.IMAP4.error):
        sock.close()
        raise ImapError("unreachable", UNREACHABLE) from None
    try:
        try:
            if target.security == "starttls":
                client.starttls(context)
        except (ssl.SSLError, IMAPClientError, imaplib.IMAP4.error):
            raise ImapError("tls", TLS_FAILED) from None
        try:
            client.login(target.username, target.password)
        except LoginError:
            raise ImapError("login", LOGIN_FAILED) from None
        # imaplib keeps the pre-login capabilities: ask again to see IDLE, SPECIAL-USE.
        client._cached_capabilities = None
        yield ImapSession(client, target)
    except ImapError:
        raise
    except ssl.SSLError:
        raise ImapError("tls", TLS_FAILED) from None
    except (OSError, IMAPClientError, imaplib.IMAP4.error):
        raise ImapError("protocol", PROTOCOL_FAILED) from None
    finally:
        _close(client)


def _close(client: imapclient.IMAPClient) -> None:
    """LOGOUT, or drop the connection when the server or the TLS layer is past talking."""
    try:
        client.logout()
    except (OSError, IMAPClientError, imaplib.IMAP4.error, ValueError):
        with suppress(OSError, ValueError):
            client.shutdown()


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What "Test connection" found: the server, what it offers, the folders, or the error."""

    server: str
    capabilities: frozenset[str] = frozenset()
    sent_folder: str = ""
    inbox_folder: str = ""
    error: str = ""  # an N_ message id, empty when everything was found
    error_params: dict[str, str] = field(default_factory=dict)

    @property
    def idle(self) -> bool:
        return "IDLE" in self.capabilities

    @property
    def special_use(self) -> bool:
        return "SPECIAL-USE" in self.capabilities


def probe(target: ImapTarget) -> ProbeResult:
    """Connect, sign in and look for the Sent folder and the inbox (blocking: use a thread)."""
    server = f"{target.host}:{target.port}"
    try:
        with connect(target) as box:
            capabilities = box.capabilities
            inbox = box.inbox_folder()
            try:
                sent = box.sent_folder()
            except ImapError as exc:
                return ProbeResult(server, capabilities, "", inbox, exc.words, exc.params)
            return ProbeResult(server, capabilities, sent, inbox)
    except ImapError as exc:
        return ProbeResult(server, error=exc.words, error_params=exc.params)
