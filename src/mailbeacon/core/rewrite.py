"""Rewriting message bodies for tracking: links through the click endpoint, one open pixel.

The rule that shapes everything here: a body is *spliced*, never re-serialised. Email HTML is
full of markup that only survives if nobody touches it (Outlook conditional comments, broken
tags, odd entities, templates pasted from word processors), and a recipient must never get a
message that renders differently because we tracked it. So the HTML is tokenised with the
stdlib ``HTMLParser`` only to learn *where* the ``href`` values of ``<a>``/``<area>`` start
tags and the last real ``</body>`` are; the output is the input with just those spans
replaced and one ``<img>`` inserted.

Everything is pure string work: no I/O, stdlib only, and no input makes these functions
raise (bodies come from users and are never trusted to be well formed).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from html import escape as _escape
from html import unescape as _unescape
from html.entities import html5 as _HTML5_ENTITIES
from typing import TypeAlias

from mailbeacon.core.htmlscan import (
    COMMENT_END,
    TolerantParser,
    absolute_offset,
    feed_tolerantly,
    line_starts,
)
from mailbeacon.core.urls import URL_STRIP, LinkProblem, bare_url_spans, check_link

__all__ = [
    "ClickUrlFor",
    "find_html_links",
    "find_link_problems",
    "find_text_links",
    "honeypot_tag",
    "is_trackable_url",
    "pixel_tag",
    "rewrite_html",
    "rewrite_text",
    "strip_tracking",
]

ClickUrlFor: TypeAlias = Callable[[str], str | None]
"""Given an original absolute http(s) URL (HTML entities already decoded), return the
tracked URL to put in its place, or None to leave that link alone."""

_URL_STRIP = URL_STRIP

# Whitespace as the HTML tokenizer sees it inside a tag (not Python's wider str.isspace()).
_TAG_WS = "\t\n\f\r "

# Elements whose content the HTML tokenizer treats as text. HTMLParser (3.11) only knows
# script and style; a tag inside e.g. <textarea> or <title> is not a link a reader can click.
_RAW_TEXT_ELEMENTS = frozenset(
    {"script", "style", "textarea", "title", "xmp", "iframe", "noembed", "noframes", "plaintext"}
)
_LINK_ELEMENTS = frozenset({"a", "area"})

# Outlook for Windows renders the content of a downlevel-hidden conditional comment whose
# condition names it (``<!--[if mso]>``, ``<!--[if gte mso 9]>``, MJML's ``<!--[if mso | IE]>``);
# every other client sees a comment. Bulletproof buttons put Outlook's only link there, as a
# VML shape (``<v:roundrect href=...>``) or an ``<a>``.
# The condition is read only this far, so a comment never costs more than its length.
_MSO_CONDITIONAL = re.compile(r"<!--\[if\b([^\]>]{0,100})\]>", re.IGNORECASE)
_MSO = re.compile(r"\bmso\b", re.IGNORECASE)
_VML_PREFIX = "v:"

# A spec-conformant end tag starts with "</body" followed by one of these (or EOF).
_END_TAG_NAME_END = frozenset(_TAG_WS + "/>")

_CHARREF = re.compile(r"&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)")

_PIXEL_TEMPLATE = (
    '<img src="{src}" width="1" height="1" alt="" '
    'style="display:block;border:0;width:1px;height:1px" />'
)


# The honeypot: a link no person can see, reach or click, which software that follows every
# link (security scanners pre-clicking mail) follows anyway. Empty, so there is nothing to
# see or click; display:none for every client, mso-hide:all for Outlook's Word renderer;
# aria-hidden and tabindex="-1" keep it out of screen readers and keyboard navigation.
_HONEYPOT_TEMPLATE = (
    '<a href="{href}" aria-hidden="true" tabindex="-1" '
    'style="display:none;mso-hide:all;max-height:0;overflow:hidden;font-size:0"></a>'
)
_LEADING_DOCTYPE = re.compile(r"\s*<!doctype[^>]*>", re.IGNORECASE)


def is_trackable_url(url: str) -> bool:
    """Tell whether a link may be sent through the click redirect.

    Only absolute http(s) URLs with a host that a browser would open as written qualify
    (see :func:`mailbeacon.core.urls.check_link`, which also gives the URL to sign).
    """
    return check_link(url)[0] is not None


def pixel_tag(pixel_url: str) -> str:
    """Build the open-tracking image.

    The inline size and display:block keep it from adding a visible gap in clients that
    ignore width/height attributes, and the empty alt keeps screen readers and image-blocking
    clients from announcing anything.
    """
    return _PIXEL_TEMPLATE.format(src=_escape(pixel_url, quote=True))


def honeypot_tag(click_url: str) -> str:
    """Build the invisible link that only software follows (see _HONEYPOT_TEMPLATE)."""
    return _HONEYPOT_TEMPLATE.format(href=_escape(click_url, quote=True))


# --------------------------------------------------------------------------------------------
# HTML: locating the spans


@dataclass(frozen=True, slots=True)
class _Href:
    """Where one link's href value sits in the document (absolute offsets).

    ``value_*`` is the whole value between the quotes (or the unquoted run); ``core_*`` is the
    part without surrounding URL whitespace, which is what gets replaced so that the padding
    an author left inside the quotes survives.
    """

    value_start: int
    value_end: int
    core_start: int
    core_end: int
    quote: str
    url: str


@dataclass(slots=True)
class _Scan:
    """What a pass over the document found.

    ``unclosed_start`` is where a comment or raw-text element that runs to the end of the
    document begins: anything appended to the document would land inside it.
    """

    hrefs: list[_Href]
    # True while scanning the inside of an Outlook conditional comment, where VML shapes
    # (``v:roundrect``, ``v:rect``...) carry links too.
    in_mso: bool = False
    last_body_end: int | None = None
    first_body_open_end: int | None = None  # right after the first <body ...> start tag
    unclosed_start: int | None = None
    problems: list[tuple[str, LinkProblem]] = field(default_factory=list)


class _LocatingParser(TolerantParser):
    """A parser that records positions instead of building anything.

    It parses ``text[base:end]`` so that a pass can be restarted after the point where the
    stdlib parser gave up; ``line_starts`` (offsets of every line of the whole text) turns
    its line/column positions back into offsets.
    """

    def __init__(self, text: str, base: int, starts: list[int], scan: _Scan) -> None:
        super().__init__()
        self._mb_text = text
        self._mb_base = base
        self._mb_line_starts = starts
        self._mb_scan = scan

    def abs_offset(self) -> int:
        """The offset in the whole text of the construct being handled."""
        return absolute_offset(self._mb_line_starts, self._mb_base, *self.getpos())

    def handle_unclosed(self) -> None:
        self._mb_scan.unclosed_start = self.abs_offset()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._start(tag, self_closing=False)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._start(tag, self_closing=True)
        self.handle_endtag(tag)

    def _start(self, tag: str, *, self_closing: bool) -> None:
        raw = self.get_starttag_text()
        start = self.abs_offset()
        if raw is None or not self._mb_text.startswith(raw, start):
            return  # positions disagree with the text: touching it could corrupt the body
        if tag == "body" and self._mb_scan.first_body_open_end is None:
            self._mb_scan.first_body_open_end = start + len(raw)
        if tag in _LINK_ELEMENTS or (self._mb_scan.in_mso and tag.startswith(_VML_PREFIX)):
            href = _locate_href(raw, start, self._mb_scan.problems)
            if href is not None:
                self._mb_scan.hrefs.append(href)
        elif tag in _RAW_TEXT_ELEMENTS and not self_closing:
            self._mb_scan.unclosed_start = start
            if self.cdata_elem is None:
                self.set_cdata_mode(tag)

    def parse_comment(self, i: int, report: bool = True) -> int:
        """End the comment where browsers do; for Outlook's, also find the links inside."""
        end = super().parse_comment(i, report)
        conditional = _MSO_CONDITIONAL.match(self.rawdata, i)
        if conditional and _MSO.search(conditional.group(1)) and not self._mb_scan.in_mso:
            close = COMMENT_END.search(self.rawdata, i + 4, end)
            if close is not None:  # an unclosed one swallows the rest: nobody renders it
                at = self.abs_offset()  # the parser's position is the comment's start
                inside = (at + 4, at + close.start() - i)
                _scan_mso_comment(self._mb_text, *inside, self._mb_scan)
        return end

    def handle_endtag(self, tag: str) -> None:
        if tag in _RAW_TEXT_ELEMENTS:
            self._mb_scan.unclosed_start = None
            if self.cdata_elem == tag:
                self.clear_cdata_mode()
        elif tag == "body":
            start = self.abs_offset()
            # HTMLParser also reports "</ body>" (a bogus comment to browsers) and the end
            # half of "<body/>"; only a spec end tag is a place a browser closes the body.
            if self._mb_text[start : start + 6].lower() == "</body" and (
                start + 6 == len(self._mb_text) or self._mb_text[start + 6] in _END_TAG_NAME_END
            ):
                self._mb_scan.last_body_end = start


def _scan_html(text: str) -> _Scan:
    """Find every link href and the last real </body>, surviving any input, in linear time.

    Only the text up to the last ``>`` is parsed (see :mod:`mailbeacon.core.htmlscan`):
    nothing after it can complete a tag, so nothing there is a link or a ``</body>``.
    """
    scan = _Scan(hrefs=[])
    starts = line_starts(text)
    feed_tolerantly(text, starts, lambda base: _LocatingParser(text, base, starts, scan))
    return scan


def _scan_mso_comment(text: str, start: int, end: int, scan: _Scan) -> None:
    """Add the links inside one Outlook conditional comment (``text[start:end]``) to ``scan``.

    The inside is read as a document of its own (Outlook renders it as one), which keeps the
    whole pass linear: comments do not nest, so every character is scanned at most twice.
    Only links are taken from it; a ``</body>`` there is not where other clients end the body.
    """
    inner = _Scan(hrefs=[], in_mso=True)
    inside = text[start:end]
    starts = line_starts(inside)
    feed_tolerantly(inside, starts, lambda base: _LocatingParser(inside, base, starts, inner))
    scan.hrefs.extend(
        replace(
            href,
            value_start=href.value_start + start,
            value_end=href.value_end + start,
            core_start=href.core_start + start,
            core_end=href.core_end + start,
        )
        for href in inner.hrefs
    )
    scan.problems.extend(inner.problems)


def _locate_href(tag: str, tag_start: int, problems: list[tuple[str, LinkProblem]]) -> _Href | None:
    """Find the first href attribute's value inside one raw start tag.

    This follows the HTML tokenizer's attribute states rather than HTMLParser's looser
    regexes, because what matters is the value a browser will follow: the first of duplicate
    attributes wins, ``=`` may be surrounded by whitespace, quotes are optional. A value with
    a missing closing quote is not returned: rewriting it could not be done safely.
    """
    n = len(tag)
    i = 1
    while i < n and tag[i] not in _TAG_WS and tag[i] not in "/>":
        i += 1
    while i < n:
        c = tag[i]
        if c in _TAG_WS or c == "/":
            i += 1
            continue
        if c == ">":
            return None
        name_start = i
        i += 1  # a leading "=" belongs to the name in the tokenizer
        while i < n and tag[i] not in _TAG_WS and tag[i] not in "/>=":
            i += 1
        is_href = tag[name_start:i].lower() == "href"
        while i < n and tag[i] in _TAG_WS:
            i += 1
        if i >= n or tag[i] != "=":
            if is_href:
                return None  # a valueless href is the one that counts; nothing to track
            continue
        i += 1
        while i < n and tag[i] in _TAG_WS:
            i += 1
        if i < n and tag[i] in "\"'":
            quote = tag[i]
            value_start = i + 1
            value_end = tag.find(quote, value_start)
            if value_end < 0:
                return None
            i = value_end + 1
        else:
            quote = ""
            value_start = i
            while i < n and tag[i] not in _TAG_WS and tag[i] != ">":
                i += 1
            value_end = i
        if is_href:
            return _make_href(tag, tag_start, value_start, value_end, quote, problems)
    return None


def _make_href(
    tag: str,
    tag_start: int,
    start: int,
    end: int,
    quote: str,
    problems: list[tuple[str, LinkProblem]],
) -> _Href | None:
    """Describe a trackable href value, or None when it is not a link we may rewrite.

    The URL kept is the one a browser would open (WHATWG parsing), which is what gets
    signed; a web link left alone on purpose is added to ``problems`` with its reason.
    """
    raw = tag[start:end]
    core = raw.strip(_URL_STRIP)
    if not core:
        return None
    lead = len(raw) - len(raw.lstrip(_URL_STRIP))
    written = _decode_attribute_value(core)
    url, problem = check_link(written)
    if url is None:
        if problem is not None:
            problems.append((written.strip(_URL_STRIP), problem))
        return None
    return _Href(
        value_start=tag_start + start,
        value_end=tag_start + end,
        core_start=tag_start + start + lead,
        core_end=tag_start + start + lead + len(core),
        quote=quote,
        url=url,
    )


def _decode_attribute_value(raw: str) -> str:
    """Decode character references the way browsers do inside attribute values.

    ``html.unescape`` is not enough: in an attribute, a legacy entity name without ``;``
    that is followed by ``=`` or an alphanumeric is left alone, which is what keeps
    ``?a=1&copy=2`` or ``&region=eu`` in a query string from turning into © or ®.
    """
    if "&" not in raw:
        return raw
    return _CHARREF.sub(_replace_attribute_charref, raw)


def _replace_attribute_charref(match: re.Match[str]) -> str:
    ref = match.group(1)
    if ref.startswith("#"):
        return _unescape(match.group(0))
    if ref in _HTML5_ENTITIES:
        # Ends with ";" or is a legacy name stopped by a delimiter (never alnum or "=").
        return _HTML5_ENTITIES[ref]
    for length in range(len(ref) - 1, 1, -1):
        name = ref[:length]
        if name in _HTML5_ENTITIES:
            rest = ref[length:]
            following = rest[0]
            if following == "=" or (following.isascii() and following.isalnum()):
                return match.group(0)
            return _HTML5_ENTITIES[name] + rest
    return match.group(0)


def _is_safe_unquoted(value: str) -> bool:
    """Tell whether an (already escaped) value reads back the same without quotes.

    "=" is allowed: browsers and HTMLParser both take it as part of an unquoted value, and
    unquoted hrefs with query strings are exactly the ones met in the wild.
    """
    return bool(value) and not any(
        c.isspace() or c in "\"'<>`" or ord(c) < 0x20 or c == "\x7f" for c in value
    )


def _href_edit(text: str, href: _Href, new_url: str) -> tuple[int, int, str]:
    """The splice that puts ``new_url`` in place of one href value, keeping its quoting."""
    escaped = _escape(new_url, quote=True)
    if href.quote or _is_safe_unquoted(escaped):
        return (href.core_start, href.core_end, escaped)
    lead = text[href.value_start : href.core_start]
    trail = text[href.core_end : href.value_end]
    return (href.value_start, href.value_end, f'"{lead}{escaped}{trail}"')


def _splice(text: str, edits: list[tuple[int, int, str]]) -> str:
    """Apply non-overlapping (start, end, replacement) edits; every other byte is kept."""
    if not edits:
        return text
    edits.sort(key=lambda e: (e[0], e[1]))
    parts: list[str] = []
    pos = 0
    for start, end, replacement in edits:
        parts.append(text[pos:start])
        parts.append(replacement)
        pos = end
    parts.append(text[pos:])
    return "".join(parts)


def _link_edits(text: str, scan: _Scan, url_for: ClickUrlFor) -> list[tuple[int, int, str]]:
    edits: list[tuple[int, int, str]] = []
    for href in scan.hrefs:
        new_url = url_for(href.url)
        # An unchanged URL keeps its original spelling (entities, quoting, padding).
        if new_url is not None and new_url != href.url:
            edits.append(_href_edit(text, href, new_url))
    return edits


def _dedup(urls: list[str]) -> list[str]:
    return list(dict.fromkeys(urls))


# --------------------------------------------------------------------------------------------
# HTML: public functions


def find_link_problems(html: str | None, text: str | None) -> list[tuple[str, LinkProblem]]:
    """Web links in either body that are left untracked on purpose, each with its reason."""
    problems = _scan_html(html).problems if html else []
    if text:
        _bare_urls(text, problems)
    return list(dict.fromkeys(problems))


def find_html_links(html: str) -> list[str]:
    """List the links a recipient could click, as they will be tracked.

    The sender stores one Link row per distinct URL before rewriting, so the URLs are given
    decoded and in first-seen order, each once.
    """
    return _dedup([href.url for href in _scan_html(html).hrefs])


def _honeypot_at(html: str, scan: _Scan) -> int:
    """Right after the first ``<body ...>``; without one, at the very start (after a leading
    doctype, which must stay first or the page would render in quirks mode)."""
    if scan.first_body_open_end is not None:
        return scan.first_body_open_end
    doctype = _LEADING_DOCTYPE.match(html)
    return doctype.end() if doctype else 0


def rewrite_html(
    html: str,
    *,
    pixel_url: str | None,
    click_url_for: ClickUrlFor | None,
    honeypot_url: str | None = None,
) -> str:
    """Add the open pixel and route links through the click endpoint, changing nothing else.

    With ``honeypot_url`` (a tracked click URL), one invisible link (:func:`honeypot_tag`)
    is inserted right after the first ``<body ...>`` start tag, or at the very start of a
    document without one.

    The pixel goes right before the last real ``</body>`` so that it is rendered inside the
    body in every client. Without one it is appended, unless the document ends inside an
    unclosed comment or raw-text element (``<script>``, ``<textarea>``…): appended there the
    pixel would never load, or would even be shown as text, so it goes right before the
    start of that construct instead.
    """
    scan = _scan_html(html)
    edits = _link_edits(html, scan, click_url_for) if click_url_for is not None else []
    if pixel_url is not None:
        if scan.last_body_end is not None:
            at = scan.last_body_end
        elif scan.unclosed_start is not None:
            at = scan.unclosed_start
        else:
            at = len(html)
        edits.append((at, at, pixel_tag(pixel_url)))
    if honeypot_url is not None:
        at = _honeypot_at(html, scan)
        edits.append((at, at, honeypot_tag(honeypot_url)))
    return _splice(html, edits)


# --------------------------------------------------------------------------------------------
# Plain text


def _bare_urls(
    text: str, problems: list[tuple[str, LinkProblem]] | None = None
) -> list[tuple[int, int, str]]:
    """(start, end, url to sign) of every trackable bare URL, in order."""
    found: list[tuple[int, int, str]] = []
    for start, end in bare_url_spans(text):
        url, problem = check_link(text[start:end])
        if url is not None:
            found.append((start, end, url))
        elif problem is not None and problems is not None:
            problems.append((text[start:end], problem))
    return found


def find_text_links(text: str) -> list[str]:
    """List the bare URLs of a plain-text body, each once, in first-seen order."""
    return _dedup([url for _, _, url in _bare_urls(text)])


def rewrite_text(text: str, click_url_for: ClickUrlFor) -> str:
    """Route the bare URLs of a plain-text body through the click endpoint.

    Plain text has no escaping: the tracked URL is written as is, and every character
    around it is kept.
    """
    edits: list[tuple[int, int, str]] = []
    for start, end, url in _bare_urls(text):
        new_url = click_url_for(url)
        if new_url is not None and new_url != url:
            edits.append((start, end, new_url))
    return _splice(text, edits)


# --------------------------------------------------------------------------------------------
# The inverse


def strip_tracking(
    html_or_text: str,
    *,
    pixel_url: str | None,
    original_for: Callable[[str], str | None],
    honeypot_url: str | None = None,
) -> str:
    """Undo :func:`rewrite_html` / :func:`rewrite_text`: drop the pixel, restore the links.

    Used to show a message "as sent without tracking" and to prove in tests that rewriting
    touches nothing else. Hrefs are restored first, written escaped exactly as
    :func:`rewrite_html` writes a value; then remaining bare URLs are restored verbatim, as
    :func:`rewrite_text` wrote them. The result equals the original body whenever its hrefs
    were written in that canonical escaped form (``&amp;`` for ``&`` and so on); an href
    originally spelled differently (a raw ``&``, ``&#38;``) comes back equivalent, not
    byte-identical, since only its decoded URL was kept.
    """
    out = html_or_text
    if honeypot_url is not None:
        tag = honeypot_tag(honeypot_url)
        at = out.find(tag)
        if at >= 0:
            out = out[:at] + out[at + len(tag) :]
    if pixel_url is not None:
        tag = pixel_tag(pixel_url)
        at = out.rfind(tag)
        if at >= 0:
            out = out[:at] + out[at + len(tag) :]
    out = _splice(out, _link_edits(out, _scan_html(out), original_for))
    return rewrite_text(out, original_for)
