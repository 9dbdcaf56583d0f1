"""Links as a browser sees them: which ones we may track, and the exact URL to sign.

A tracked link is signed and later redirected to, so what we sign must be what the
recipient's browser would have opened without us. Browsers parse links by the WHATWG URL
standard, which differs from RFC 3986 (and from ``urllib``) in ways an attacker can use:
``https://example.com\\@evil.example/`` is ``example.com`` to a browser (a backslash ends
the host) but ``evil.example`` to ``urlsplit``. So every link is parsed here with
``ada-url``, a WHATWG implementation, and the URL we sign is the one it serialises; links
whose meaning depends on things we cannot see (a base URL), that browsers repair silently
(tabs, newlines) or that carry credentials are left as written, with a reason.

Bare URLs in plain text are found here too, with one linear trimmer of sentence punctuation
shared by the body rewriter and the outbox's viewer.
"""

from __future__ import annotations

import re
from enum import StrEnum

from ada_url import URL

from mailbeacon.core.limits import MAX_TRACKED_URL_CHARS
from mailbeacon.core.text import N_

__all__ = [
    "LINK_PROBLEM_TEXT",
    "URL_STRIP",
    "LinkProblem",
    "bare_url_spans",
    "browser_url",
    "check_link",
    "trim_bare_url",
]

# What a browser's URL parser strips from both ends of a URL (C0 controls and space).
URL_STRIP = "".join(chr(c) for c in range(0x21))

# "http://" or "https://" with two forward slashes: only then is a link absolute whatever
# base URL the mail client renders it against (``https:evil`` is relative to an https base).
_ABSOLUTE_WEB = re.compile(r"https?://", re.IGNORECASE)
_STRIPPED_BY_BROWSERS = re.compile(r"[\t\n\r]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# Bare URLs in plain text: stop at whitespace and at characters that cannot be part of a URL
# as written by people (<>" are not URL code points; <http://x> is the classic angle form).
_BARE_URL = re.compile(r"(?<![\w+.\-])https?://[^\s<>\"]+", re.IGNORECASE)
# Punctuation that ends a sentence rather than a URL. The typographic quotes and ellipsis are
# there because bodies written in word processors produce them, and a URL that swallowed one
# would become a broken link once redirected.
_TRAILING_PUNCTUATION = frozenset(".,;:!?'\"”’»…")
_CLOSERS = {")": "(", "]": "[", "}": "{"}


class LinkProblem(StrEnum):
    """Why a web link is left untracked. Values are stable: stored and translated."""

    ODD_SPELLING = "odd_spelling"
    WHITESPACE = "whitespace"
    CONTROL_CHARACTER = "control_character"
    CREDENTIALS = "credentials"
    INVALID = "invalid"
    TOO_LONG = "too_long"


LINK_PROBLEM_TEXT = {
    LinkProblem.ODD_SPELLING: N_(
        "The link is not written as http:// or https:// (for example https:/ or backslashes), "
        "so browsers may read it differently; it is left as written."
    ),
    LinkProblem.WHITESPACE: N_(
        "The link contains a tab or line break, which browsers remove; it is left as written."
    ),
    LinkProblem.CONTROL_CHARACTER: N_("The link contains a control character."),
    LinkProblem.CREDENTIALS: N_(
        "The link contains a user name or password; it is left as written."
    ),
    LinkProblem.INVALID: N_("A browser could not open this link."),
    LinkProblem.TOO_LONG: N_("The link is too long to track."),
}


def check_link(raw: str) -> tuple[str | None, LinkProblem | None]:
    """The URL to sign for a link as written (entities already decoded), or why not.

    Returns ``(url, None)`` for a trackable link, ``(None, problem)`` for a web link we leave
    alone on purpose, and ``(None, None)`` for anything that is not a web link at all
    (``mailto:``, anchors, relative paths).
    """
    candidate = raw.strip(URL_STRIP)
    prefix = _ABSOLUTE_WEB.match(candidate)
    if prefix is None or candidate[prefix.end() : prefix.end() + 1] in ("/", "\\"):
        return None, (LinkProblem.ODD_SPELLING if _is_web(candidate) else None)
    if _STRIPPED_BY_BROWSERS.search(candidate):
        return None, LinkProblem.WHITESPACE
    if _CONTROL.search(candidate):
        return None, LinkProblem.CONTROL_CHARACTER
    if len(candidate) > MAX_TRACKED_URL_CHARS:
        return None, LinkProblem.TOO_LONG
    try:
        parsed = URL(candidate)
    except ValueError:
        return None, LinkProblem.INVALID
    if parsed.protocol not in ("http:", "https:") or not parsed.hostname:
        return None, LinkProblem.INVALID
    if parsed.username or parsed.password:
        return None, LinkProblem.CREDENTIALS
    href = str(parsed.href)
    if len(href) > MAX_TRACKED_URL_CHARS:
        return None, LinkProblem.TOO_LONG
    return href, None


def browser_url(raw: str) -> str | None:
    """The URL to sign for a link as written, or None when it is not tracked."""
    return check_link(raw)[0]


def _is_web(candidate: str) -> bool:
    """Whether a browser would open this as a web page when there is no base URL."""
    if not candidate[:6].lower().startswith(("http:", "https:")):
        return False
    try:
        parsed = URL(candidate)
    except ValueError:
        return False
    return parsed.protocol in ("http:", "https:") and bool(parsed.hostname)


def trim_bare_url(candidate: str) -> str:
    """Cut what a reader would see as sentence punctuation off the end of a bare URL.

    Closing brackets are kept when balanced, so Wikipedia-style ``/Foo_(bar)`` survives
    while ``(see http://x.com)`` does not drag the parenthesis into the link. Counts are
    taken once and kept up to date, so a run of punctuation costs linear time.
    """
    unbalanced = {
        closer: candidate.count(closer) - candidate.count(opener)
        for closer, opener in _CLOSERS.items()
    }
    end = len(candidate)
    while end > 0:
        last = candidate[end - 1]
        if last in _TRAILING_PUNCTUATION:
            end -= 1
        elif last in _CLOSERS and unbalanced[last] > 0:
            unbalanced[last] -= 1
            end -= 1
        else:
            break
    return candidate[:end]


def bare_url_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of every http(s) URL a reader sees in plain text, punctuation trimmed."""
    spans: list[tuple[int, int]] = []
    for match in _BARE_URL.finditer(text):
        url = trim_bare_url(match.group(0))
        if len(url) > url.index("://") + 3:
            spans.append((match.start(), match.start() + len(url)))
    return spans
