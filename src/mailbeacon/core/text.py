"""Plain text from HTML: the alternative part for mail composed as HTML."""

from __future__ import annotations

import re
from html.parser import HTMLParser


def N_(text: str) -> str:
    """Marks English text for the translation catalogues; it is translated where shown."""
    return text


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


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0
        self._href: str | None = None
        self._link_text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self._skipping += 1
        elif tag in _BLOCK:
            self.parts.append("\n")
        if tag == "li":
            self.parts.append("- ")
        if tag == "a":
            self._href = dict(attrs).get("href")
            self._link_text = []

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in _BLOCK:
            self.parts.append("\n")
        if tag == "a" and self._href:
            shown = "".join(self._link_text).strip()
            href = self._href.strip()
            if href.lower().startswith(("http://", "https://")) and href != shown:
                self.parts.append(f" ({href})")
            self._href = None

    def handle_data(self, data: str) -> None:
        if self._skipping:
            return
        self.parts.append(data)
        if self._href is not None:
            self._link_text.append(data)


def html_to_text(html: str) -> str:
    """Readable plain text: block elements become line breaks, links keep their address."""
    collector = _TextCollector()
    collector.feed(html)
    collector.close()
    text = "".join(collector.parts)
    text = re.sub(r"[ \t\r\f\v]+", " ", text)
    text = re.sub(r" *\n *", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()
