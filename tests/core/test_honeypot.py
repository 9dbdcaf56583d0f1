"""The honeypot link (B3): one invisible link in tracked HTML mail that only software follows.

It must be exactly one, invisible and unreachable for a person, leave every other byte of
the body as it was (the design's splicing rule), and stay out of the plain-text part and
the link limit.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailbeacon.core.compose import MAX_LINKS
from mailbeacon.core.rewrite import honeypot_tag, rewrite_html, rewrite_text, strip_tracking
from mailbeacon.mail.prepare import Prepared, SenderProfile, SendInput, prepare

HONEYPOT = "https://t.example/c/honey-token"
TAG = honeypot_tag(HONEYPOT)
PUBLIC_URL = "https://t.example/mb"


def track(url: str) -> str | None:
    return f"https://t.example/c/{len(url)}"


def with_honeypot(doc: str, pixel: str | None = None) -> str:
    return rewrite_html(doc, pixel_url=pixel, click_url_for=track, honeypot_url=HONEYPOT)


def test_the_honeypot_is_an_empty_hidden_unfocusable_link() -> None:
    assert re.fullmatch(r'<a href="[^"]+" [^<>]*></a>', TAG)  # empty: nothing to see or click
    assert 'aria-hidden="true"' in TAG and 'tabindex="-1"' in TAG
    assert "display:none" in TAG and "mso-hide:all" in TAG


def test_it_goes_right_after_the_body_start_tag_and_changes_nothing_else() -> None:
    doc = '<!DOCTYPE html><html><head><title>x</title></head><BODY class="a" >\n<p>Hi <a href="https://example.com/">x</a></p></body></html>'
    out = with_honeypot(doc)
    assert out.count(TAG) == 1
    assert out.index(TAG) == out.index('<BODY class="a" >') + len('<BODY class="a" >')
    assert out.replace(TAG, "", 1) == rewrite_html(doc, pixel_url=None, click_url_for=track)


def test_without_a_body_tag_it_goes_first_but_after_a_doctype() -> None:
    assert with_honeypot("<p>Hi</p>") == TAG + "<p>Hi</p>"
    assert with_honeypot("<!doctype html>\n<p>Hi</p>") == "<!doctype html>" + TAG + "\n<p>Hi</p>"
    assert with_honeypot("") == TAG


@pytest.mark.parametrize(
    "doc",
    [
        "<!-- <body> --><p>Hi</p>",  # a body tag in a comment is no body tag
        "<script>var s='<body>'</script><p>Hi</p>",
        "<textarea><body></textarea>",
    ],
)
def test_a_body_tag_that_is_not_markup_is_not_used(doc: str) -> None:
    assert with_honeypot(doc).startswith(TAG)


def test_only_the_first_body_start_tag_counts() -> None:
    out = with_honeypot("<body><p>a</p><body><p>b</p>")
    assert out == "<body>" + TAG + "<p>a</p><body><p>b</p>"


def test_with_the_pixel_both_are_added_once() -> None:
    out = with_honeypot("<html><body><p>Hi</p></body></html>", pixel="https://t.example/o/p.gif")
    assert out.count(TAG) == 1 and out.count("/o/p.gif") == 1
    assert out.index(TAG) < out.index("<p>Hi</p>") < out.index("/o/p.gif")


def test_without_a_honeypot_url_nothing_is_added() -> None:
    doc = "<body><p>Hi</p></body>"
    assert rewrite_html(doc, pixel_url=None, click_url_for=track) == doc


def test_strip_tracking_takes_it_out_again() -> None:
    doc = '<body><a href="https://example.com/">x</a></body>'
    tracked = {"https://example.com/": "https://t.example/c/1"}
    out = rewrite_html(doc, pixel_url=None, click_url_for=tracked.get, honeypot_url=HONEYPOT)
    original = {v: k for k, v in tracked.items()}.get
    assert strip_tracking(out, pixel_url=None, original_for=original, honeypot_url=HONEYPOT) == doc


PIECES = [*"<>/!-ab =\"'\n", "<body>", "<BODY x>", "<!--", "-->", "<script>", "<!doctype html>"]


@given(st.lists(st.sampled_from(PIECES), max_size=30).map("".join))
def test_every_other_byte_is_kept_for_any_markup(doc: str) -> None:
    out = with_honeypot(doc)
    assert out.count(TAG) == 1 + doc.count(TAG)
    at = out.index(TAG)
    assert out[:at] + out[at + len(TAG) :] == rewrite_html(doc, pixel_url=None, click_url_for=track)


# -- where the Link row comes from: prepare() ----------------------------------------------

PROFILE = SenderProfile("me@example.com", "Me", True, True, True, True)


def prepared(**request: object) -> Prepared:
    result = prepare(PROFILE, SendInput(to=["you@example.com"], subject="s", **request), PUBLIC_URL)  # type: ignore[arg-type]
    assert isinstance(result, Prepared), result
    return result


def test_tracked_html_mail_gets_a_honeypot_leading_to_the_installation_root() -> None:
    result = prepared(html='<p><a href="https://example.com/">x</a></p>', track_links=True)
    assert result.honeypot_url == PUBLIC_URL + "/"
    assert result.links == ("https://example.com/",)  # not one of the message's links


@pytest.mark.parametrize(
    "request_",
    [
        {"html": '<p><a href="https://example.com/">x</a></p>', "track_links": False},
        {"text": "see https://example.com/", "track_links": True},  # plain text only
    ],
)
def test_no_honeypot_without_link_tracking_or_without_html(request_: dict[str, object]) -> None:
    assert prepared(**request_).honeypot_url is None


def test_the_honeypot_does_not_count_against_the_link_limit() -> None:
    links = "".join(f'<a href="https://example.com/{i}">{i}</a>' for i in range(MAX_LINKS))
    result = prepared(html=f"<body>{links}</body>", track_links=True)
    assert len(result.links) == MAX_LINKS and result.honeypot_url is not None


def test_the_plain_text_part_never_gets_the_honeypot() -> None:
    text = "see https://example.com/"
    assert HONEYPOT not in rewrite_text(text, track)
