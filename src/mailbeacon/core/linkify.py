"""Bare URLs typed into an HTML body become links, so they can be tracked.

A person writing in the composer types ``https://example.com/pricing`` and expects a link.
Left as text, the HTML part carries no ``<a>`` for us to track, and Gmail or Outlook turn it
into a link of their own to the untracked original. So before a body is checked and stored,
every bare http(s) URL in its *text* is wrapped in ``<a href="...">`` with the text kept as
written. Never inside an ``<a>`` (it is a link already), inside ``<script>``, ``<style>`` and
the other raw-text elements, ``<head>``, attributes or comments (Outlook's conditional ones
included): none of that is text a reader sees.

Same rules as everywhere else: the body is spliced, never re-serialised (every byte outside
the inserted tags is kept), the scan is :mod:`mailbeacon.core.htmlscan`'s linear one, URLs
end where :func:`mailbeacon.core.urls.bare_url_spans` ends them (sentence punctuation
trimmed), and only URLs :func:`mailbeacon.core.urls.check_link` accepts are wrapped.
"""

from __future__ import annotations

import re
from html import escape, unescape

from mailbeacon.core.htmlscan import (
    TolerantParser,
    absolute_offset,
    feed_tolerantly,
    line_starts,
    unfinished_markup_start,
)
from mailbeacon.core.urls import bare_url_spans, check_link

__all__ = ["bare_urls_in_html", "linkify_html"]

# Elements whose content is not text a reader sees (or is text the tokenizer reads raw).
_NOT_TEXT = frozenset(
    {
        "script",
        "style",
        "textarea",
        "title",
        "xmp",
        "iframe",
        "noembed",
        "noframes",
        "noscript",
        "plaintext",
        "head",
        "template",
        "svg",
        "math",
    }
)
_RAW_TEXT = frozenset(
    {"script", "style", "textarea", "title", "xmp", "iframe", "noembed", "noframes", "plaintext"}
)
_CHARREF = re.compile(r"&(?:#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[A-Za-z][A-Za-z0-9]{0,31};?)")


class _State:
    """What the pass has learnt so far; survives a parser restart after a failure."""

    def __init__(self) -> None:
        self.in_link = False
        self.hidden: dict[str, int] = {}  # open elements whose content is not text
        self.runs: list[tuple[int, int]] = []  # raw text spans a reader sees
        self.swallowed = False  # an unclosed comment or raw-text element runs to the end
        # The parser gave up on an unfinished tag (``<img alt="-->...``): to a browser the
        # rest is inside it, so nothing after it is text.
        self.lost = False

    def visible(self) -> bool:
        return not self.in_link and not self.lost and not any(self.hidden.values())


class _TextFinder(TolerantParser):
    """Records where the visible text of the document is, as raw offsets."""

    def __init__(self, text: str, base: int, starts: list[int], limit: int, state: _State):
        super().__init__()
        self._mb_text = text
        self._mb_base = base
        self._mb_starts = starts
        self._mb_limit = limit
        self._mb_state = state

    def _offset(self) -> int:
        return absolute_offset(self._mb_starts, self._mb_base, *self.getpos())

    def handle_unclosed(self) -> None:
        self._mb_state.swallowed = True

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        state = self._mb_state
        if tag == "a":
            state.in_link = True  # a second <a> closes the first: still inside a link
        elif tag in _NOT_TEXT:
            state.hidden[tag] = state.hidden.get(tag, 0) + 1
            if tag in _RAW_TEXT and self.cdata_elem is None:
                self.set_cdata_mode(tag)
                state.swallowed = True  # until its end tag

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """``<a/>`` and ``<script/>`` open an element in HTML: the slash is ignored."""
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        state = self._mb_state
        if tag == "a":
            state.in_link = False
        elif tag in _NOT_TEXT and state.hidden.get(tag):
            state.hidden[tag] -= 1
            if tag in _RAW_TEXT:
                state.swallowed = False
                if self.cdata_elem == tag:
                    self.clear_cdata_mode()

    def handle_data(self, data: str) -> None:
        state = self._mb_state
        if not state.visible() or self.cdata_elem is not None:
            return
        start = self._offset()
        if self._mb_text.startswith("<", start):
            state.lost = len(data) > 1  # markup the parser gave up on (a stray "<" is text)
            return
        end = self._mb_text.find("<", start, self._mb_limit)
        state.runs.append((start, self._mb_limit if end < 0 else end))


def _decoded(raw: str) -> tuple[str, list[int]]:
    """``raw`` with character references decoded, and the raw offset of each decoded char
    (plus one past the end), so a URL found in the decoded text maps back to raw offsets.

    Every character a reference expands to maps to the reference's start.
    """
    pieces: list[str] = []
    offsets: list[int] = []
    pos = 0
    for match in _CHARREF.finditer(raw):
        offsets.extend(range(pos, match.start()))
        pieces.append(raw[pos : match.start()])
        written = match.group(0)
        value = unescape(written)
        if value == written:  # not a reference: text as written
            offsets.extend(range(match.start(), match.end()))
        else:
            offsets.extend([match.start()] * len(value))
        pieces.append(value)
        pos = match.end()
    offsets.extend(range(pos, len(raw) + 1))
    pieces.append(raw[pos:])
    return "".join(pieces), offsets


def _urls_in(html: str, start: int, end: int, found: list[tuple[int, int, str]]) -> None:
    """Add each trackable bare URL of the raw text ``html[start:end]`` to ``found``."""
    raw = html[start:end]
    if "://" not in raw:
        return
    text, offsets = _decoded(raw)
    for url_start, url_end in bare_url_spans(text):
        url, _problem = check_link(text[url_start:url_end])
        if url is not None:  # otherwise left as written; the composer's note says why
            found.append((start + offsets[url_start], start + offsets[url_end], url))


def bare_urls_in_html(html: str) -> list[tuple[int, int, str]]:
    """(start, end, URL) of every bare web URL in the visible text of ``html``, in order.

    ``html[start:end]`` is the URL as written (character references included); the URL is
    the one a browser would open. Linear in the input.
    """
    if "://" not in html:
        return []
    state = _State()
    starts = line_starts(html)
    limit = html.rfind(">") + 1
    end = feed_tolerantly(html, starts, lambda base: _TextFinder(html, base, starts, limit, state))
    runs = state.runs
    if not state.swallowed and state.visible():
        tail = html[end:]
        cut = unfinished_markup_start(tail)
        runs.append((end, end + cut if cut >= 0 else len(html)))
    found: list[tuple[int, int, str]] = []
    for run_start, run_end in _merged(runs):
        _urls_in(html, run_start, run_end, found)
    return found


def linkify_html(html: str) -> str:
    """``html`` with every bare web URL in its visible text made a link to itself.

    Inserts only ``<a href="URL">`` before and ``</a>`` after each URL; calling it again
    changes nothing (the URLs are inside links now). Linear in the input.
    """
    parts: list[str] = []
    pos = 0
    for start, end, url in bare_urls_in_html(html):
        parts += [html[pos:start], f'<a href="{escape(url, quote=True)}">', html[start:end], "</a>"]
        pos = end
    if not parts:
        return html
    parts.append(html[pos:])
    return "".join(parts)


def _merged(runs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Adjacent text runs as one (the parser may report one text in pieces)."""
    merged: list[tuple[int, int]] = []
    for start, end in runs:
        if start >= end:
            continue
        if merged and merged[-1][1] == start:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged
