"""Issue 9: bare URLs typed in an HTML body become links (and so are tracked).

Examples pin where a URL is text a reader sees (and where it is not: links, scripts, styles,
attributes, comments); hypothesis checks that only the two tags around each URL are added,
that a second pass changes nothing, and that every wrapped URL is then a link the rewriter
tracks.
"""

from __future__ import annotations

from html import escape, unescape

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailbeacon.core.addresses import Mailbox
from mailbeacon.core.compose import make_draft
from mailbeacon.core.linkify import bare_urls_in_html, linkify_html
from mailbeacon.core.rewrite import find_html_links, find_text_links, rewrite_html
from mailbeacon.core.text import html_to_text
from mailbeacon.core.urls import check_link


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ("see https://x.com/p", 'see <a href="https://x.com/p">https://x.com/p</a>'),
        ("<p>https://x.com/a, ok</p>", '<p><a href="https://x.com/a">https://x.com/a</a>, ok</p>'),
        (
            "<div>(https://en.wikipedia.org/wiki/A_(b))</div>",
            '<div>(<a href="https://en.wikipedia.org/wiki/A_(b)">'
            "https://en.wikipedia.org/wiki/A_(b)</a>)</div>",
        ),
        (
            "<p>https://x.com/?a=1&amp;b=2.</p>",
            '<p><a href="https://x.com/?a=1&amp;b=2">https://x.com/?a=1&amp;b=2</a>.</p>',
        ),
        ("HTTPS://X.COM", '<a href="https://x.com/">HTTPS://X.COM</a>'),
        (
            "&lt;https://x.com/a&gt;",
            '&lt;<a href="https://x.com/a">https://x.com/a</a>&gt;',
        ),
        (
            "<p>x</p>https://x.com/t <b",
            '<p>x</p><a href="https://x.com/t">https://x.com/t</a> <b',
        ),
    ],
)
def test_issue9_bare_urls_in_text_become_links(doc: str, expected: str) -> None:
    assert linkify_html(doc) == expected


@pytest.mark.parametrize(
    "doc",
    [
        '<a href="https://x.com/">https://x.com/</a>',
        "<a>https://x.com/ <b>https://y.com/</b></a>",
        "<style>a{background:url(https://x.com/i.png)}</style>",
        "<script>var u = 'https://x.com/';</script>",
        "<script>https://x.com/",
        '<img src="https://x.com/i.png" alt="https://x.com/">',
        "<!-- https://x.com/ -->",
        "<!-- https://x.com/",
        "<!--[if mso]><p>https://x.com/</p><![endif]-->",
        "<title>https://x.com/</title><textarea>https://x.com/</textarea>",
        "<head><meta name=x>https://x.com/</head>",
        "https:/x.com http://user:pw@x.com/ https://",
        "plain text without links",
    ],
)
def test_issue9_urls_that_are_not_reader_text_are_left_alone(doc: str) -> None:
    assert linkify_html(doc) == doc


def test_issue9_linkified_urls_are_tracked() -> None:
    """The defect: a typed URL stayed text in the HTML part, so no tracked link existed."""
    draft = make_draft(
        Mailbox("me@x.com", ""),
        to=[Mailbox("a@y.com", "")],
        cc=[],
        bcc=[],
        subject="s",
        html="<p>Prices: https://x.com/pricing.</p>",
        text=None,
    )
    assert draft.html == '<p>Prices: <a href="https://x.com/pricing">https://x.com/pricing</a>.</p>'
    assert draft.links() == ["https://x.com/pricing"]
    out = rewrite_html(draft.html, pixel_url=None, click_url_for=lambda u: "https://t.example/c/1")
    assert out == '<p>Prices: <a href="https://t.example/c/1">https://x.com/pricing</a>.</p>'


_FRAGMENTS = st.sampled_from(
    ["https://x.com/", "http://y.com/a?b=1&amp;c=2", "https://z.com/(q)", "HTTPS://W.COM",
     "&amp;", "&lt;", "&gt;", "&quot;", "&", "&#104;ttps://", ".", ",", ")", "(", " ", "\n",
     "<p>", "</p>", "<a href='u'>", "<a>", "</a>", "<b", ">", "<", "<!--", "-->", "<![endif]>",
     "<!--[if mso]>", "<![endif]-->", "<script>", "</script>", "<style>", "</style>",
     "<textarea>", "</textarea>", '<img alt="', '">', "x", "<head>", "</head>", "<a/>"]
)  # fmt: skip
_DOCS = st.lists(st.one_of(_FRAGMENTS, _FRAGMENTS, st.text(max_size=4)), max_size=25).map("".join)
_FAST = settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


@_FAST
@given(_DOCS)
def test_issue9_property_only_the_tags_around_urls_are_added(doc: str) -> None:
    """Every other byte kept; each wrapped span reads as its URL; a second pass is a no-op."""
    spans = bare_urls_in_html(doc)
    rebuilt: list[str] = []
    pos = 0
    for start, end, url in spans:
        assert pos <= start < end
        written = doc[start:end]
        assert "<" not in written
        assert check_link(unescape(written))[0] == url
        rebuilt += [doc[pos:start], f'<a href="{escape(url, quote=True)}">', written, "</a>"]
        pos = end
    rebuilt.append(doc[pos:])
    out = linkify_html(doc)
    assert out == "".join(rebuilt)
    assert linkify_html(out) == out
    assert set(url for _, _, url in spans) <= set(find_html_links(out))


@_FAST
@given(st.text())
def test_issue9_property_any_text_is_accepted(doc: str) -> None:
    linkify_html(doc)


def test_issue9_text_after_a_link_address_is_not_read_as_part_of_it() -> None:
    """The text part made from HTML wrote "0 (https://e.com/0)1": a reader's client (and
    our link finder) saw the URL "https://e.com/0)1", a broken link, counted twice."""
    html = '<a href="https://e.com/0">0</a>1 and <a href="https://e.com/1">x</a>.'
    text = html_to_text(html)
    assert text == "0 (https://e.com/0) 1 and x (https://e.com/1)."
    assert find_text_links(text) == ["https://e.com/0", "https://e.com/1"]
