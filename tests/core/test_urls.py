"""Issue 6: the URL we sign is the one a browser opens (WHATWG), or the link stays untracked.

Each case names a differential between how browsers (WHATWG) and RFC 3986 parsers such as
``urllib`` read a link; the redirect must go where the untracked link would have gone.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from mailbeacon.core.addresses import Mailbox
from mailbeacon.core.compose import make_draft
from mailbeacon.core.rewrite import find_html_links, find_text_links, rewrite_html, rewrite_text
from mailbeacon.core.urls import LinkProblem, bare_url_spans, browser_url, check_link, trim_bare_url


def test_backslash_link_is_signed_as_the_browser_reads_it() -> None:
    written = "https://example.com\\@evil.example/"
    assert urlsplit(written).hostname == "evil.example"  # what we used to sign
    assert browser_url(written) == "https://example.com/@evil.example/"  # what browsers open
    signed: list[str] = []

    def url_for(url: str) -> str:
        signed.append(url)
        return "https://t.example/c/1"

    out = rewrite_html(f'<a href="{written}">x</a>', pixel_url=None, click_url_for=url_for)
    assert signed == ["https://example.com/@evil.example/"]
    assert out == '<a href="https://t.example/c/1">x</a>'


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        # the host as a browser reads it
        ("https://EXAMPLE.com", "https://example.com/"),
        ("https://example.com\\path\\x", "https://example.com/path/x"),
        ("https://%65xample.com/", "https://example.com/"),  # percent-encoded host is decoded
        ("https://bücher.example/ä", "https://xn--bcher-kva.example/%C3%A4"),  # IDN
        ("https://127.1/", "https://127.0.0.1/"),  # legacy IPv4 forms
        ("https://0x7f.0.0.1/", "https://127.0.0.1/"),
        (" \x01https://example.com/\x00 ", "https://example.com/"),  # leading/trailing C0 and space
        ("https://example.com:443/", "https://example.com/"),
        ("https://example.com/a/../b", "https://example.com/b"),
        ("https://example.com/a b", "https://example.com/a%20b"),
        ("https://example.com/?q=<x>", "https://example.com/?q=%3Cx%3E"),
    ],
)
def test_links_are_signed_in_their_browser_form(written: str, expected: str) -> None:
    assert check_link(written) == (expected, None)


@pytest.mark.parametrize(
    ("written", "problem"),
    [
        ("https://exam\tple.com/", LinkProblem.WHITESPACE),  # browsers strip tab and newline
        ("https://example.com/a\nb", LinkProblem.WHITESPACE),
        ("https://example.com/a\rb", LinkProblem.WHITESPACE),
        ("https:\\\\evil.example/", LinkProblem.ODD_SPELLING),
        ("https:/evil.example/", LinkProblem.ODD_SPELLING),
        ("https:evil.example", LinkProblem.ODD_SPELLING),  # relative to an https base
        ("https:///evil.example", LinkProblem.ODD_SPELLING),
        ("https://\\evil.example", LinkProblem.ODD_SPELLING),
        ("https://user:pw@example.com/", LinkProblem.CREDENTIALS),
        ("https://example.com@evil.example/", LinkProblem.CREDENTIALS),
        ("https://example.com/a\x07b", LinkProblem.CONTROL_CHARACTER),
        ("http://[::1", LinkProblem.INVALID),
        ("https://exa mple.com/", LinkProblem.INVALID),
        ("https://%zz.com/", LinkProblem.INVALID),
        ("https://example.com/" + "a" * 70_000, LinkProblem.TOO_LONG),
    ],
)
def test_ambiguous_links_are_left_untracked_with_a_reason(
    written: str, problem: LinkProblem
) -> None:
    assert check_link(written) == (None, problem)
    html = f'<a href="{written}">x</a>'
    assert rewrite_html(html, pixel_url=None, click_url_for=lambda u: "https://t/c/1") == html


@pytest.mark.parametrize(
    "written", ["mailto:a@b.example", "#top", "/relative", "//host/x", "ftp://x/"]
)
def test_non_web_links_have_no_problem_to_report(written: str) -> None:
    assert check_link(written) == (None, None)


def test_the_draft_tells_which_links_stay_untracked_and_why() -> None:
    draft = make_draft(
        Mailbox("me@example.com"),
        to=[Mailbox("a@example.com")],
        cc=[],
        bcc=[],
        subject="s",
        html='<a href="https://x.example/">a</a><a href="https://u:p@y.example/">b</a>'
        '<a href="https://z.exa\tmple/">c</a><a href="mailto:a@b.example">d</a>',
        text="see https://u:p@w.example/ now",
    )
    assert draft.links() == ["https://x.example/"]
    assert draft.link_problems() == [
        ("https://u:p@y.example/", LinkProblem.CREDENTIALS),
        ("https://z.exa\tmple/", LinkProblem.WHITESPACE),
        ("https://u:p@w.example/", LinkProblem.CREDENTIALS),
    ]


def test_text_links_are_signed_in_browser_form() -> None:
    text = "Go to https://example.com\\@evil.example/ now."
    assert find_text_links(text) == ["https://example.com/@evil.example/"]
    out = rewrite_text(text, lambda u: "https://t.example/c/1")
    assert out == "Go to https://t.example/c/1 now."


def test_one_trimmer_for_bare_urls() -> None:
    assert trim_bare_url("https://x.com/a_(b)).") == "https://x.com/a_(b)"
    assert trim_bare_url("https://x.com/…”") == "https://x.com/"
    text = "(see https://x.com/a), and http:// alone"
    assert [text[s:e] for s, e in bare_url_spans(text)] == ["https://x.com/a"]
    assert find_html_links('<a href="HTTPS://X.COM">') == ["https://x.com/"]
