"""Plain text from HTML: the alternative part for mail composed as HTML."""

from __future__ import annotations

import re
from html import unescape

from mailbeacon.core.htmlscan import (
    TolerantParser,
    feed_tolerantly,
    line_starts,
    unfinished_markup_start,
)


def N_(text: str) -> str:
    """Marks English text for the translation catalogues; it is translated where shown."""
    return text


# Every character that ends a line somewhere (str.splitlines, the email package, mail
# clients): C0 and C1 controls (CR, LF, VT, FF, FS, GS, RS, NEL U+0085...), DEL, and the
# Unicode line and paragraph separators U+2028 / U+2029. Lone surrogates cannot be encoded
# at all. One-line fields (a subject, a display name) get a space for the first kind and
# U+FFFD for the second, so no input can split a header or fail to encode.
_ONE_LINE = {c: " " for c in (*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029)}
_SURROGATES = re.compile("[\ud800-\udfff]")
_C0_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def one_line(text: str) -> str:
    """Text for a one-line field: every line or paragraph break and control is a space.

    Tabs become spaces too. Lone surrogates (possible from JSON escapes) become U+FFFD.
    """
    return _SURROGATES.sub("\ufffd", text.translate(_ONE_LINE))


def has_c0_controls(text: str) -> bool:
    """CR, LF, NUL and the other ASCII controls except tab: what users are told to remove."""
    return bool(_C0_CONTROL.search(text))


def has_lone_surrogates(text: str) -> bool:
    """Characters no UTF-8 encoder accepts; only JSON escapes can produce them."""
    return bool(_SURROGATES.search(text))


_BLOCK = frozenset(
    {
        "p",
        "div",
        "br",
        "tr",
        "li",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "table",
        "blockquote",
        "ul",
        "ol",
        "hr",
        "section",
        "article",
        "header",
        "footer",
        "pre",
    }
)
_SKIP = frozenset({"script", "style", "head", "title"})
_ENDS_A_SENTENCE = frozenset(".,;:!?)]}'\"”’»…")


class _TextState:
    """What the text rendering has gathered; survives a parser restart."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.skipping = 0
        self.href: str | None = None
        self.link_text: list[str] = []
        # A link's address was just written as " (URL)": text right after it must not
        # touch the ")" or a reader (and our link finder) would take it as part of the URL.
        self.after_address = False


class _TextCollector(TolerantParser):
    def __init__(self, state: _TextState) -> None:
        super().__init__()
        self.state = state

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        state = self.state
        if tag in _SKIP:
            state.skipping += 1
        elif tag in _BLOCK:
            state.parts.append("\n")
        if tag == "li":
            state.parts.append("- ")
        if tag == "a":
            state.href = dict(attrs).get("href")
            state.link_text = []

    def handle_endtag(self, tag: str) -> None:
        state = self.state
        if tag in _SKIP:
            state.skipping = max(0, state.skipping - 1)
        elif tag in _BLOCK:
            state.parts.append("\n")
        if tag == "a" and state.href:
            shown = "".join(state.link_text).strip()
            href = state.href.strip()
            if href.lower().startswith(("http://", "https://")) and href != shown:
                state.parts.append(f" ({href})")
                state.after_address = True
            state.href = None

    def handle_data(self, data: str) -> None:
        state = self.state
        if state.skipping:
            return
        if state.after_address and data:
            state.after_address = False
            if not data[0].isspace() and data[0] not in _ENDS_A_SENTENCE:
                state.parts.append(" ")
        state.parts.append(data)
        if state.href is not None:
            state.link_text.append(data)


def html_to_text(html: str) -> str:
    """Readable plain text: block elements become line breaks, links keep their address.

    Linear in the input whatever it holds (see :mod:`mailbeacon.core.htmlscan`): after the
    last ``>`` only text can follow, and markup cut short there is dropped as browsers do.
    """
    state = _TextState()
    end = feed_tolerantly(html, line_starts(html), lambda _base: _TextCollector(state))
    tail = html[end:]
    cut = unfinished_markup_start(tail)
    if cut >= 0:
        tail = tail[:cut]
    if tail and not state.skipping:
        _TextCollector(state).handle_data(unescape(tail))
    text = "".join(state.parts)
    text = re.sub(r"[ \t\r\f\v]+", " ", text)
    text = re.sub(r" *\n *", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()
