"""Tokens (DESIGN: signed, versioned, rotating keys; rule 2: a forged token verifies never)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbeacon.core.tokens import InvalidToken, KeyRing, TokenKind, TrackingToken

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
