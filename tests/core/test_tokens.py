"""Tokens (DESIGN: signed, versioned, rotating keys; rule 2: a forged token verifies never)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbeacon.core.limits import INLINE_URL_BYTES
from mailbeacon.core.tokens import InvalidToken, KeyRing, TokenKind, TrackingToken, url_digest

OLD = "old-secret-0123456789abcdef"
NEW = "new-secret-0123456789abcdef"
ring = KeyRing.from_secrets([NEW, OLD])
ids = st.integers(min_value=0, max_value=2**63 - 1)
urls = st.text(min_size=1, max_size=300).map(lambda s: "https://example.com/" + s)


@given(ids, ids)
def test_open_token_round_trip(message_id: int, recipient_id: int) -> None:
    token = ring.sign_open(message_id, recipient_id)
    assert ring.verify(token, TokenKind.OPEN) == TrackingToken(
        TokenKind.OPEN, message_id, recipient_id
    )


@given(ids, ids, ids, urls)
def test_click_token_covers_its_url(m: int, r: int, link: int, url: str) -> None:
    token = ring.sign_click(m, r, link, url)
    assert ring.verify(token, TokenKind.CLICK) == TrackingToken(TokenKind.CLICK, m, r, link, url)
    assert all(c.isalnum() or c in "-_" for c in token)  # URL-safe as it is


@settings(max_examples=300)
@given(ids, ids, ids, urls, st.data())
def test_no_altered_token_verifies(
    m: int, r: int, link: int, url: str, data: st.DataObject
) -> None:
    """Rule 2: flipping any bit of any byte of a token makes it invalid."""
    raw = bytearray(base64.urlsafe_b64decode(ring.sign_click(m, r, link, url) + "=="))
    index = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    bit = data.draw(st.integers(min_value=0, max_value=7))
    raw[index] ^= 1 << bit
    altered = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    with pytest.raises(InvalidToken):
        ring.verify(altered)


@given(st.text(max_size=200))
def test_arbitrary_text_never_verifies_and_never_crashes(text: str) -> None:
    with pytest.raises(InvalidToken):
        ring.verify(text)


def test_old_keys_verify_until_retired() -> None:
    old_ring = KeyRing.from_secrets([OLD])
    token = old_ring.sign_open(1, 2)
    assert ring.verify(token).recipient_id == 2  # rotated: still valid
    with pytest.raises(InvalidToken):
        KeyRing.from_secrets([NEW]).verify(token)  # retired: no longer
    assert ring.verify(ring.sign_open(1, 2)).message_id == 1  # signs with the newest


def test_kinds_are_not_interchangeable() -> None:
    with pytest.raises(InvalidToken):
        ring.verify(ring.sign_open(1, 2), TokenKind.CLICK)
    with pytest.raises(InvalidToken):
        ring.verify(ring.sign_click(1, 2, 3, "https://x.example"), TokenKind.OPEN)


def test_oversized_token_is_refused_cheaply() -> None:
    with pytest.raises(InvalidToken):
        ring.verify("A" * 100_000)


@pytest.mark.parametrize("secrets", [[], ["short"], [NEW, NEW]])
def test_bad_key_configuration_is_refused(secrets: list[str]) -> None:
    with pytest.raises(ValueError):
        KeyRing.from_secrets(secrets)


# --------------------------------------------------------------------------------------------
# Issue 6: one spelling per token; long links by stored id and digest


def _spellings(token: str) -> list[str]:
    """Other base64 spellings of the same bytes, as lenient decoders accept them."""
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    padded = base64.urlsafe_b64encode(raw).decode()
    variants = [padded + "=", token + "==", token + "=" * 4, " " + token, token + "\n"]
    if padded.endswith("="):
        variants.append(padded)  # padding kept
        # the last character's unused low bits set: same bytes, another spelling
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        last = alphabet.index(token[-1])
        unused = 4 if len(token) % 4 == 2 else 2
        for bits in range(1, 1 << unused):
            variants.append(token[:-1] + alphabet[last | bits])
    variants.append(token[:5] + "!" + token[5:])  # a character lenient decoders skip
    variants.append(token.replace("-", "+").replace("_", "/"))
    return [v for v in variants if v != token]


@pytest.mark.parametrize(
    "token", [ring.sign_open(1, 2), ring.sign_click(3, 4, 5, "https://x.example/a")]
)
def test_non_canonical_base64_spellings_are_refused(token: str) -> None:
    assert ring.verify(token)
    for other in _spellings(token):
        with pytest.raises(InvalidToken):
            ring.verify(other)


@given(ids, ids, ids, urls)
def test_every_token_is_its_own_canonical_spelling(m: int, r: int, link: int, url: str) -> None:
    token = ring.sign_click(m, r, link, url)
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    assert base64.urlsafe_b64encode(raw).rstrip(b"=").decode() == token


def test_long_link_token_names_the_link_and_signs_a_digest() -> None:
    url = "https://example.com/?q=" + "a" * 20_000
    token = ring.sign_click(1, 2, 3, url)
    assert len(token) < 120
    verified = ring.verify(token, TokenKind.CLICK)
    assert (verified.message_id, verified.recipient_id, verified.link_id) == (1, 2, 3)
    assert verified.needs_stored_url and verified.url == ""
    assert verified.url_digest == url_digest(url)
    assert verified.covers(url)
    assert not verified.covers(url + "b")
    assert not verified.covers("https://evil.example/")


def test_links_up_to_the_inline_limit_travel_in_the_token() -> None:
    url = "https://example.com/" + "a" * (INLINE_URL_BYTES - len("https://example.com/"))
    verified = ring.verify(ring.sign_click(1, 2, 3, url))
    assert verified.url == url and not verified.needs_stored_url
    assert verified.covers(url) and not verified.covers(url + "x")
    assert ring.verify(ring.sign_click(1, 2, 3, url + "a")).needs_stored_url


@settings(max_examples=200)
@given(st.data())
def test_no_altered_long_link_token_verifies(data: st.DataObject) -> None:
    raw = bytearray(
        base64.urlsafe_b64decode(ring.sign_click(1, 2, 3, "https://x/" + "a" * 5000) + "==")
    )
    index = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    raw[index] ^= 1 << data.draw(st.integers(min_value=0, max_value=7))
    with pytest.raises(InvalidToken):
        ring.verify(base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode())
