"""Signed tracking tokens: what the pixel and click URLs carry.

A token holds everything the collector needs to answer and to record a hit, so
the hot path never reads the database. It is versioned, names the key that
signed it (keys rotate: older keys keep verifying until they are retired), and
is MAC'd with HMAC-SHA256 truncated to 128 bits. The click token also signs the
destination URL, so a redirect can never be bent into an open redirect.

Layout before base64url (no padding)::

    version(1) | key id(2) | kind(1) | message id | recipient id | link id | [url] | mac(16)

ids are unsigned LEB128 varints; the url (click tokens only) is UTF-8 and runs
to the MAC.

A link longer than INLINE_URL_BYTES would make the token too long for the
collector and for some mail clients, so its click token is version 2: instead of
the URL it carries the SHA-256 of the URL (32 bytes) after the ids. The
collector loads the stored link by its id and redirects only if the digest
matches: the MAC still covers the destination, through its digest.

Only the canonical spelling of a token verifies: base64url without padding whose
unused trailing bits are zero, i.e. exactly what :func:`_b64encode` produces.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum

from mailbeacon.core.limits import INLINE_URL_BYTES

TOKEN_VERSION = 1
TOKEN_VERSION_STORED_URL = 2
URL_DIGEST_SIZE = 32
MAC_SIZE = 16
KEY_ID_SIZE = 2
MIN_SECRET_BYTES = 16
MAX_TOKEN_CHARS = 8192


class TokenKind(IntEnum):
    """What a token opens: the pixel or a link."""

    OPEN = 1
    CLICK = 2


class InvalidToken(ValueError):
    """A token that is malformed, altered, or signed by a key we do not hold."""


@dataclass(frozen=True, slots=True)
class TrackingToken:
    """The verified content of a token."""

    kind: TokenKind
    message_id: int
    recipient_id: int
    link_id: int = 0
    url: str = ""
    url_digest: bytes = b""

    @property
    def needs_stored_url(self) -> bool:
        """A long link's token: the URL is the stored link's, checked with covers()."""
        return self.kind is TokenKind.CLICK and not self.url

    def covers(self, url: str) -> bool:
        """Whether ``url`` is the destination this token was signed for."""
        if self.url:
            return hmac.compare_digest(self.url, url)
        return bool(self.url_digest) and hmac.compare_digest(self.url_digest, url_digest(url))


def url_digest(url: str) -> bytes:
    """What a long link's token signs in place of the URL."""
    return hashlib.sha256(url.encode("utf-8")).digest()


def _encode_varint(value: int) -> bytes:
    if value < 0:
        raise ValueError("ids are non-negative")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _decode_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise InvalidToken("truncated id")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    """Decode the one canonical spelling: anything that does not re-encode to itself
    (padding, stray characters, non-zero trailing bits) is refused."""
    if len(text) > MAX_TOKEN_CHARS or not text.isascii():
        raise InvalidToken("not a token")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError as exc:
        raise InvalidToken("not base64url") from exc
    if _b64encode(raw) != text:
        raise InvalidToken("not canonical base64url")
    return raw


def key_id_for(secret: bytes) -> bytes:
    """A short, stable name for a secret, derived from it so config stays one list."""
    return hashlib.sha256(b"mailbeacon-key-id:" + secret).digest()[:KEY_ID_SIZE]


@dataclass(frozen=True, slots=True)
class KeyRing:
    """The signing key (newest) and every key that may still verify."""

    keys: tuple[tuple[bytes, bytes], ...]  # (key id, secret), newest first

    @classmethod
    def from_secrets(cls, secrets: Iterable[str | bytes]) -> KeyRing:
        """Build a ring from secrets, newest first, refusing weak or clashing ones."""
        keys: list[tuple[bytes, bytes]] = []
        for secret in secrets:
            raw = secret.encode("utf-8") if isinstance(secret, str) else secret
            if len(raw) < MIN_SECRET_BYTES:
                raise ValueError(f"a secret key must be at least {MIN_SECRET_BYTES} bytes long")
            kid = key_id_for(raw)
            if any(kid == known for known, _ in keys):
                raise ValueError("two secret keys are the same (or share a key id); drop one")
            keys.append((kid, raw))
        if not keys:
            raise ValueError("at least one secret key is needed")
        return cls(tuple(keys))

    def _mac(self, secret: bytes, body: bytes) -> bytes:
        return hmac.digest(secret, body, "sha256")[:MAC_SIZE]

    def _sign(self, kind: TokenKind, ids: Sequence[int], tail: bytes, version: int) -> str:
        kid, secret = self.keys[0]
        body = bytearray([version])
        body += kid
        body.append(kind)
        for value in ids:
            body += _encode_varint(value)
        body += tail
        return _b64encode(bytes(body) + self._mac(secret, bytes(body)))

    def sign_open(self, message_id: int, recipient_id: int) -> str:
        """The token for one recipient's pixel."""
        return self._sign(TokenKind.OPEN, (message_id, recipient_id, 0), b"", TOKEN_VERSION)

    def sign_click(self, message_id: int, recipient_id: int, link_id: int, url: str) -> str:
        """The token for one recipient's copy of one link, covering its destination.

        Up to INLINE_URL_BYTES the URL travels in the token; beyond, the token signs its
        digest and names the stored link (``link_id`` must be that link's id).
        """
        if not url:
            raise ValueError("a click token needs a destination")
        ids = (message_id, recipient_id, link_id)
        raw = url.encode("utf-8")
        if len(raw) <= INLINE_URL_BYTES:
            return self._sign(TokenKind.CLICK, ids, raw, TOKEN_VERSION)
        return self._sign(TokenKind.CLICK, ids, url_digest(url), TOKEN_VERSION_STORED_URL)

    def verify(self, token: str, expected: TokenKind | None = None) -> TrackingToken:
        """Return what a token says, or raise InvalidToken; constant-time on the MAC."""
        raw = _b64decode(token)
        if len(raw) < 1 + KEY_ID_SIZE + 1 + 3 + MAC_SIZE:
            raise InvalidToken("too short")
        body, mac = raw[:-MAC_SIZE], raw[-MAC_SIZE:]
        version = body[0]
        if version not in (TOKEN_VERSION, TOKEN_VERSION_STORED_URL):
            raise InvalidToken("unknown token version")
        kid = body[1 : 1 + KEY_ID_SIZE]
        secret = next((s for k, s in self.keys if k == kid), None)
        if secret is None:
            raise InvalidToken("unknown key")
        if not hmac.compare_digest(mac, self._mac(secret, body)):
            raise InvalidToken("bad signature")
        try:
            kind = TokenKind(body[1 + KEY_ID_SIZE])
        except ValueError as exc:
            raise InvalidToken("unknown kind") from exc
        if expected is not None and kind is not expected:
            raise InvalidToken("wrong kind of token")
        pos = 2 + KEY_ID_SIZE
        message_id, pos = _decode_varint(body, pos)
        recipient_id, pos = _decode_varint(body, pos)
        link_id, pos = _decode_varint(body, pos)
        if version == TOKEN_VERSION_STORED_URL:
            digest = body[pos:]
            if kind is not TokenKind.CLICK or len(digest) != URL_DIGEST_SIZE:
                raise InvalidToken("bad stored-link token")
            return TrackingToken(kind, message_id, recipient_id, link_id, "", digest)
        try:
            url = body[pos:].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidToken("bad url") from exc
        if kind is TokenKind.CLICK and not url:
            raise InvalidToken("click token without a destination")
        if kind is TokenKind.OPEN and url:
            raise InvalidToken("open token with a destination")
        return TrackingToken(kind, message_id, recipient_id, link_id, url)
