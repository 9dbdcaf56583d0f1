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
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from html import escape as _escape
from html import unescape as _unescape
from html.entities import html5 as _HTML5_ENTITIES
from html.parser import HTMLParser
from typing import TypeAlias
from urllib.parse import urlsplit

__all__ = [
    "ClickUrlFor",
    "find_html_links",
    "find_text_links",
    "is_trackable_url",
    "pixel_tag",
    "rewrite_html",
    "rewrite_text",
    "strip_tracking",
]

ClickUrlFor: TypeAlias = Callable[[str], str | None]
"""Given an original absolute http(s) URL (HTML entities already decoded), return the
tracked URL to put in its place, or None to leave that link alone."""

# What a browser's URL parser strips from both ends of a URL (C0 controls and space). Using
# the same set means we call a link "the same URL" exactly when the recipient's client would.
_URL_STRIP = "".join(chr(c) for c in range(0x21))

# Whitespace as the HTML tokenizer sees it inside a tag (not Python's wider str.isspace()).
_TAG_WS = "\t\n\f\r "

_TRACKABLE_PREFIX = re.compile(r"https?://", re.IGNORECASE)
_CONTROL_CHAR = re.compile(r"[\x00-\x1f\x7f]")

# Elements whose content the HTML tokenizer treats as text. HTMLParser (3.11) only knows
# script and style; a tag inside e.g. <textarea> or <title> is not a link a reader can click.
_RAW_TEXT_ELEMENTS = frozenset(
    {"script", "style", "textarea", "title", "xmp", "iframe", "noembed", "noframes", "plaintext"}
)
_LINK_ELEMENTS = frozenset({"a", "area"})

# A spec-conformant end tag starts with "</body" followed by one of these (or EOF).
_END_TAG_NAME_END = frozenset(_TAG_WS + "/>")

_COMMENT_END = re.compile(r"--!?>")

_CHARREF = re.compile(r"&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)")

# Bare URLs in plain text: stop at whitespace and at characters that cannot be part of a URL
# as written by people (<>" are not URL code points; <http://x> is the classic angle form).
_BARE_URL = re.compile(r"(?<![\w+.\-])https?://[^\s<>\"]+", re.IGNORECASE)
# Punctuation that ends a sentence rather than a URL. The typographic quotes and ellipsis are
# there because bodies written in word processors produce them, and a URL that swallowed one
# would become a broken link once redirected.
_TRAILING_PUNCTUATION = frozenset(".,;:!?'\"”’»…")
_CLOSERS = {")": "(", "]": "[", "}": "{"}

_PIXEL_TEMPLATE = (
    '<img src="{src}" width="1" height="1" alt="" '
    'style="display:block;border:0;width:1px;height:1px" />'
)


def is_trackable_url(url: str) -> bool:
    """Tell whether a link may be sent through the click redirect.

    Only absolute http(s) URLs with a host qualify: anything else (mailto:, tel:, anchors,
    relative paths, javascript:, protocol-relative) either does not leave the mail client
    through a browser or would resolve differently once it sits behind our redirect. URLs
    carrying control characters are refused too: they are not valid URLs, and a redirect
    target must never smuggle a line break into a Location header.
    """
    candidate = url.strip(_URL_STRIP)
    if not _TRACKABLE_PREFIX.match(candidate) or _CONTROL_CHAR.search(candidate):
        return False
    try:
        host = urlsplit(candidate).hostname
    except ValueError:  # e.g. an unbalanced "[" in an IPv6 host
        return False
    return bool(host)


def pixel_tag(pixel_url: str) -> str:
    """Build the open-tracking image.

    The inline size and display:block keep it from adding a visible gap in clients that
    ignore width/height attributes, and the empty alt keeps screen readers and image-blocking
    clients from announcing anything.
    """
    return _PIXEL_TEMPLATE.format(src=_escape(pixel_url, quote=True))


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
    last_body_end: int | None = None
    unclosed_start: int | None = None


class _LocatingParser(HTMLParser):
    """An HTMLParser that records positions instead of building anything.

    It parses ``text[base:end]`` so that a pass can be restarted after the point where the
    stdlib parser gave up; ``line_starts`` (offsets of every line of the whole text) turns
    its line/column positions back into offsets.
    """

    def __init__(self, text: str, base: int, line_starts: list[int], scan: _Scan) -> None:
        super().__init__(convert_charrefs=True)
        self._mb_text = text
        self._mb_base = base
        self._mb_base_line = bisect_right(line_starts, base) - 1
        self._mb_line_starts = line_starts
        self._mb_scan = scan

    def abs_offset(self) -> int:
        """The offset in the whole text of the construct being handled."""
        line, column = self.getpos()
        if line == 1:
            return self._mb_base + column
        return self._mb_line_starts[self._mb_base_line + line - 1] + column

    def parse_comment(self, i: int, report: bool = True) -> int:
        """End comments where browsers end them.

        The stdlib (3.11) closes a comment at ``-- >`` and never at ``--!>``, ``<!-->`` or
        ``<!--->``, and treats an unclosed one as text; browsers do the opposite in each
        case, and an unclosed comment swallows the rest of the document. Doing it the
        browsers' way keeps links inside comments untouched and keeps the scan linear.
        """
        rawdata = self.rawdata
        if rawdata.startswith("<!-->", i):
            return i + 5
        if rawdata.startswith("<!--->", i):
            return i + 6
        close = _COMMENT_END.search(rawdata, i + 4)
        if close is not None:
            return close.end()
        self._mb_scan.unclosed_start = self.abs_offset()
        return len(rawdata)

    def parse_marked_section(self, i: int, report: bool = True) -> int:
        """Read ``<![...`` the way browsers do instead of raising.

        The stdlib asserts on unknown keywords (``<![foo[``) and searches the rest of the
        input for ``]>`` on every unfinished ``<![if``. A browser sees a bogus comment up
        to the next ``>`` (which also covers Outlook's ``<![if !mso]>`` / ``<![endif]>``),
        or, for ``<![CDATA[`` in SVG/MathML, a section up to ``]]>``; taking the longer of
        the two readings for CDATA means its content is never rewritten either way.
        """
        rawdata = self.rawdata
        if rawdata.startswith("<![CDATA[", i):
            close = rawdata.find("]]>", i + 9)
            if close >= 0:
                return close + 3
            self._mb_scan.unclosed_start = self.abs_offset()
            return len(rawdata)
        close = rawdata.find(">", i + 3)
        return close + 1 if close >= 0 else len(rawdata)

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
        if tag in _LINK_ELEMENTS:
            href = _locate_href(raw, start)
            if href is not None:
                self._mb_scan.hrefs.append(href)
        elif tag in _RAW_TEXT_ELEMENTS and not self_closing:
            self._mb_scan.unclosed_start = start
            if self.cdata_elem is None:
                self.set_cdata_mode(tag)

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
    """Find every link href and the last real </body>, surviving any input.

    Only the text up to the last ``>`` is parsed: nothing after it can complete a tag, and
    the stdlib parser (3.11) rescans to the end of the input for every unfinished tag there,
    which turns a long body with many stray ``<`` quadratic.

    Should the stdlib parser still raise (it asserts on malformed markup in places, and the
    known one is handled in ``parse_marked_section``), the construct it failed on is read as
    browsers read an unknown ``<!...``: a bogus comment up to the next ``>``, and parsing
    resumes after it.
    """
    scan = _Scan(hrefs=[])
    end = text.rfind(">") + 1
    line_starts = [0]
    newline = text.find("\n")
    while newline >= 0:
        line_starts.append(newline + 1)
        newline = text.find("\n", newline + 1)
    base = 0
    while base < end:
        parser = _LocatingParser(text, base, line_starts, scan)
        try:
            parser.feed(text[base:end])
            parser.close()
        except Exception:  # the stdlib parser's failures are not ours to leak
            failed_at = parser.abs_offset()
            close = text.find(">", failed_at)
            base = max(close + 1 if close >= 0 else end, failed_at + 1, base + 1)
            continue
        break
    return scan


def _locate_href(tag: str, tag_start: int) -> _Href | None:
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
            return _make_href(tag, tag_start, value_start, value_end, quote)
    return None


def _make_href(tag: str, tag_start: int, start: int, end: int, quote: str) -> _Href | None:
    """Describe a trackable href value, or None when it is not a link we may rewrite."""
    raw = tag[start:end]
    core = raw.strip(_URL_STRIP)
    if not core:
        return None
    lead = len(raw) - len(raw.lstrip(_URL_STRIP))
    url = _decode_attribute_value(core).strip(_URL_STRIP)
    if not is_trackable_url(url):
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


def find_html_links(html: str) -> list[str]:
    """List the links a recipient could click, as they will be tracked.

    The sender stores one Link row per distinct URL before rewriting, so the URLs are given
    decoded and in first-seen order, each once.
    """
    return _dedup([href.url for href in _scan_html(html).hrefs])


def rewrite_html(html: str, *, pixel_url: str | None, click_url_for: ClickUrlFor | None) -> str:
    """Add the open pixel and route links through the click endpoint, changing nothing else.

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
    return _splice(html, edits)


# --------------------------------------------------------------------------------------------
# Plain text


def _trim_bare_url(candidate: str) -> str:
    """Cut what a reader would see as sentence punctuation off the end of a bare URL.

    Closing brackets are kept when balanced, so Wikipedia-style ``/Foo_(bar)`` survives
    while ``(see http://x.com)`` does not drag the parenthesis into the link. Counts are
    kept up to date rather than recomputed so a run of punctuation costs linear time.
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


def _bare_urls(text: str) -> list[tuple[int, int, str]]:
    """(start, end, url) of every trackable bare URL, in order."""
    found: list[tuple[int, int, str]] = []
    for match in _BARE_URL.finditer(text):
        url = _trim_bare_url(match.group(0))
        if is_trackable_url(url):
            found.append((match.start(), match.start() + len(url), url))
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
    html_or_text: str, *, pixel_url: str | None, original_for: Callable[[str], str | None]
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
    if pixel_url is not None:
        tag = pixel_tag(pixel_url)
        at = out.rfind(tag)
        if at >= 0:
            out = out[:at] + out[at + len(tag) :]
    out = _splice(out, _link_edits(out, _scan_html(out), original_for))
    return rewrite_text(out, original_for)
