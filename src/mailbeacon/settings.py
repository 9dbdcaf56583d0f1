"""Configuration: environment variables prefixed MAILBEACON_ (and an optional .env).

A wrong value stops start-up with a message that names the variable, rather
than failing later in a way nobody can trace back to the setting.
"""

from __future__ import annotations

import os
import re
import secrets
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from cryptography.fernet import Fernet
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from mailbeacon.core.forwarded import Network, ProxyHeader, parse_networks
from mailbeacon.core.tokens import KeyRing
from mailbeacon.store.private_files import secure_local_state

# A path prefix under PUBLIC_URL: plain segments, nothing a proxy or a mail
# client could normalise differently (no dots, no escapes, no empty segments).
PATH_SEGMENT = re.compile(r"[A-Za-z0-9_~-][A-Za-z0-9._~-]*")
# The first path segments MailBeacon answers itself. A prefix must not start
# with one: behind a proxy that strips the prefix, /mail/... would be ambiguous.
# (tests/test_config.py checks every link the pages render against this list.)
APP_PATHS = frozenset(
    {"o", "c", "api", "static", "login", "logout", "mail", "contacts", "settings"}
    | {"notifications", "outbox"}
    | {"analytics"}
)


class ConfigError(Exception):
    """A setting is wrong; the message says which one and why."""


class Settings(BaseSettings):
    """Everything MailBeacon reads from its environment."""

    model_config = SettingsConfigDict(
        env_prefix="MAILBEACON_", env_file=".env", extra="ignore", frozen=True
    )

    var_dir: Path = Field(default=Path("var"), description="Where local state lives.")
    database_url: str = Field(default="", description="SQLAlchemy async URL.")
    public_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Where readers and browsers reach this server; the base of tracking links.",
    )
    secret_keys: str = Field(default="", description="Token keys, comma-separated, newest first.")
    smtp_url: str = Field(default="", description="smtp://, smtp+starttls:// or smtps:// URL.")
    outbox_port: int = Field(default=0, ge=0, le=65535, description="Embedded outbox SMTP port.")
    process_interval: float = Field(default=0.5, gt=0, le=60, description="Processor poll, s.")
    embedded_worker: bool = Field(
        default=True,
        description="`serve` starts the worker (send queue, processor, outbox) as a second "
        "process; false: run `mailbeacon worker` yourself.",
    )
    data_key: str = Field(default="", description="Fernet key encrypting stored passwords.")
    session_days: int = Field(default=14, ge=1, le=365, description="Sign-in lifetime.")
    hit_confirm_timeout: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="Longest a pixel or redirect waits for its hit to be durable, s; "
        "then it is answered anyway and the hit logged (rule 1 wins).",
    )
    trusted_proxies: Annotated[tuple[Network, ...], NoDecode] = Field(
        default=(),
        description="Reverse proxies whose forwarding headers are believed (IPs/CIDRs).",
    )
    proxy_header: ProxyHeader = Field(
        default=ProxyHeader.X_FORWARDED_FOR,
        description="The header the trusted proxies write the client chain into.",
    )
    signal_settle_seconds: float = Field(
        default=5.0,
        ge=0,
        le=300,
        description="How long a hit waits before it is judged, so a scanner's burst of "
        "clicks is seen whole (B3); also the least delay of a notification.",
    )
    scanner_click_seconds: float = Field(
        default=60.0,
        ge=0,
        le=3600,
        description="A click this soon after delivery, with no earlier open by that "
        "client, is a security scanner's (B3); 0 turns the rule off.",
    )
    smtp_allow_private: bool = Field(
        default=False,
        description="Let users' own mailboxes be on loopback, private or link-local addresses.",
    )

    submission_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="SMTP submission port with STARTTLS for mail clients (B12), e.g. 587; 0: off.",
    )
    submission_tls_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="SMTP submission port with implicit TLS, e.g. 465; 0: off.",
    )
    submission_host: str = Field(
        default="0.0.0.0",  # noqa: S104 - mail clients connect from anywhere, over TLS, with AUTH
        description="The address the submission service listens on.",
    )
    submission_cert: Path | None = Field(
        default=None, description="PEM certificate chain for the submission service's TLS."
    )
    submission_key: Path | None = Field(
        default=None, description="PEM private key of that certificate."
    )
    submission_server_name: str = Field(
        default="",
        description="The host name mail clients are told to use (default: PUBLIC_URL's host); "
        "it must match the certificate.",
    )

    @model_validator(mode="after")
    def _submission_has_tls(self) -> Settings:
        if not (self.submission_port or self.submission_tls_port):
            return self
        for name, path in (("cert", self.submission_cert), ("key", self.submission_key)):
            if path is None:
                raise ValueError(
                    f"MAILBEACON_SUBMISSION_{name.upper()}: required when a submission port "
                    "is set (passwords are only ever accepted over TLS)"
                )
            if not path.is_file():
                raise ValueError(f"MAILBEACON_SUBMISSION_{name.upper()}: no such file {path}")
        try:
            self.submission_ssl_context()
        except (ssl.SSLError, OSError) as exc:
            raise ValueError(
                "MAILBEACON_SUBMISSION_CERT, MAILBEACON_SUBMISSION_KEY: "
                f"not a certificate chain and its private key in PEM ({exc})"
            ) from None
        if self.submission_port and self.submission_port == self.submission_tls_port:
            raise ValueError(
                "MAILBEACON_SUBMISSION_TLS_PORT: must differ from MAILBEACON_SUBMISSION_PORT"
            )
        return self

    def submission_ssl_context(self) -> ssl.SSLContext:
        """The submission service's TLS: the operator's certificate, TLS 1.2 or newer."""
        assert self.submission_cert is not None and self.submission_key is not None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.submission_cert, self.submission_key)
        return context

    @property
    def submission_name(self) -> str:
        """The server name mail clients are told to connect to."""
        return self.submission_server_name or urlsplit(self.public_url).hostname or "localhost"

    @field_validator("public_url")
    @classmethod
    def _public_url_is_http(cls, value: str) -> str:
        return _checked_public_url(value)

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _trusted_proxies_are_networks(cls, value: object) -> object:
        return parse_networks(value) if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _database_url_is_async(cls, value: str) -> str:
        if value and not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError(
                "must start with sqlite+aiosqlite:// or postgresql+asyncpg:// "
                "(MailBeacon talks to its database asynchronously)"
            )
        return value

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url_is_smtp(cls, value: str) -> str:
        if not value:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("smtp", "smtp+starttls", "smtps") or not parts.hostname:
            raise ValueError(
                "must look like smtp://host:25, smtp+starttls://u:p@host:587 "
                "or smtps://u:p@host:465"
            )
        try:
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError as exc:
            raise ValueError(f"has a bad port: {exc}") from exc
        return value

    @property
    def effective_database_url(self) -> str:
        """The configured database, or the embedded SQLite file under var_dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.var_dir / 'mailbeacon.db').resolve()}"

    @property
    def spool_dir(self) -> Path:
        """Where hits go while the database is unreachable: one file per writing process."""
        return self.var_dir / "spool"

    @property
    def spool_path(self) -> Path:
        """The single spool file of versions before `spool_dir`; replayed if found."""
        return self.var_dir / "hits.spool"

    def key_ring(self) -> KeyRing:
        """The token keys: configured ones, or ones generated once and kept under var_dir."""
        raw = self.secret_keys
        if not raw:
            raw = _stored_or_new_secret(self.var_dir / "secret_keys")
        try:
            return KeyRing.from_secrets(k.strip() for k in raw.split(",") if k.strip())
        except ValueError as exc:
            raise ConfigError(f"MAILBEACON_SECRET_KEYS: {exc}") from exc

    def fernet(self) -> Fernet:
        """The key for secrets at rest (mailbox passwords): configured, or generated once."""
        raw = self.data_key or _stored_or_new_secret(
            self.var_dir / "data_key", lambda: Fernet.generate_key().decode("ascii")
        )
        try:
            return Fernet(raw.encode("ascii"))
        except (ValueError, UnicodeEncodeError) as exc:
            raise ConfigError(
                "MAILBEACON_DATA_KEY: must be a Fernet key (32 url-safe base64-encoded bytes)"
            ) from exc

    @property
    def secure_cookies(self) -> bool:
        """Cookies are marked Secure when the app is served over HTTPS."""
        return self.public_url.startswith("https://")

    @property
    def public_path(self) -> str:
        """The path prefix of PUBLIC_URL ("" or e.g. "/mb"): where the whole app answers."""
        return urlsplit(self.public_url).path


def _checked_public_url(value: str) -> str:
    """PUBLIC_URL, normalised (no trailing slash), or ValueError saying what is wrong.

    It ends up in every pixel and link of every mail sent, where it can never
    be corrected, so anything a mail client or proxy could read differently
    from us is refused at start-up.
    """
    if not value.isascii() or any(c.isspace() or not c.isprintable() for c in value):
        raise ValueError("must be plain ASCII without spaces, e.g. https://track.example.com")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an absolute http(s) URL, e.g. https://track.example.com")
    if "@" in parts.netloc:
        raise ValueError("must not contain a user name or password")
    if not parts.hostname:
        raise ValueError("must name a host, e.g. https://track.example.com")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise ValueError("has a bad port (1-65535)")
    if parts.netloc.endswith(":"):
        raise ValueError("has an empty port")
    if "?" in value or "#" in value:
        raise ValueError("must not have a query (?) or fragment (#)")
    path = parts.path.rstrip("/")
    segments = path[1:].split("/") if path else []
    if not all(PATH_SEGMENT.fullmatch(s) for s in segments):
        raise ValueError(
            "may have a path prefix of plain segments only (letters, digits, - _ . ~), "
            "e.g. https://example.com/mailbeacon"
        )
    if segments and segments[0].lower() in APP_PATHS:
        raise ValueError(
            f"has the path prefix {path}, but /{segments[0]} is one of MailBeacon's own "
            "paths; choose another prefix, e.g. /mailbeacon"
        )
    return f"{parts.scheme}://{parts.netloc}{path}"


def _stored_or_new_secret(path: Path, make: Callable[[], str] | None = None) -> str:
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = make() if make else secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(secret + "\n")
    return secret


def load_settings(**overrides: object) -> Settings:
    """Read settings, turning validation errors into a ConfigError naming the variable."""
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = ".".join(str(p) for p in error["loc"])
            if not field:  # a check across settings names them itself
                problems.append(str(error["msg"]).removeprefix("Value error, "))
                continue
            problems.append(f"MAILBEACON_{field.upper()}: {error['msg']}")
        raise ConfigError("; ".join(problems)) from None
    secure_local_state(settings.var_dir)  # owner-only, existing files repaired with a log line
    settings.key_ring()
    settings.fernet()
    return settings
