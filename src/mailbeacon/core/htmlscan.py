"""One way to walk untrusted HTML in linear time: the stdlib tokenizer, fixed where it is slow.

Both the body rewriter and the plain-text rendering read user HTML with the stdlib
``HTMLParser``. On the interpreters we run (3.11), it has three traps for hostile input:

- every unfinished tag after the last ``>`` (``"x <b y " * 16000``) is rescanned to the end
  of the input at ``close()``, which is quadratic (220 s for 112 KB);
- every unclosed ``<!--`` searches the rest of the input for ``-->``, again quadratic, and
  reads differently from browsers (which let it swallow the rest of the document);
- a few malformed constructs (``<![foo[``) raise instead of being read.

:class:`TolerantParser` ends comments and ``<![...`` sections where browsers do, and
:func:`feed_tolerantly` parses only up to the last ``>`` (nothing after it can complete a
tag) and resumes after any construct the stdlib still fails on. What is after the last
``>`` is returned to the caller, which knows what that text means to it.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable
from html.parser import HTMLParser

__all__ = [
    "COMMENT_END",
    "TolerantParser",
    "absolute_offset",
    "feed_tolerantly",
    "line_starts",
    "unfinished_markup_start",
]

COMMENT_END = re.compile(r"--!?>")


class TolerantParser(HTMLParser):
    """An HTMLParser that reads comments and marked sections the way browsers do.

    Subclasses get :meth:`handle_unclosed` when a comment or CDATA section runs to the end
    of the input (anything after that point is inside it).
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)

    def handle_unclosed(self) -> None:
        """A comment or CDATA section starting at the current position never ends."""

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
        close = COMMENT_END.search(rawdata, i + 4)
        if close is not None:
            return close.end()
        self.handle_unclosed()
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
            self.handle_unclosed()
            return len(rawdata)
        close = rawdata.find(">", i + 3)
        return close + 1 if close >= 0 else len(rawdata)


def line_starts(text: str) -> list[int]:
    """The offset of every line of ``text``, to turn a parser's (line, column) into one."""
    starts = [0]
    newline = text.find("\n")
    while newline >= 0:
        starts.append(newline + 1)
        newline = text.find("\n", newline + 1)
    return starts


def absolute_offset(starts: list[int], base: int, line: int, column: int) -> int:
    """The offset in the whole text of (line, column) of a parser fed ``text[base:]``."""
    if line == 1:
        return base + column
    return starts[bisect_right(starts, base) - 1 + line - 1] + column


def feed_tolerantly(
    text: str, starts: list[int], parser_at: Callable[[int], TolerantParser]
) -> int:
    """Parse ``text`` up to its last ``>`` with parsers from ``parser_at(offset)``.

    ``parser_at(base)`` returns a parser for ``text[base:]`` (a fresh one after a failure,
    carrying on the caller's state); ``starts`` is ``line_starts(text)``. Should the stdlib
    parser raise, the construct it failed on is read as browsers read an unknown ``<!...``:
    a bogus comment up to the next ``>``, and parsing resumes after it. Returns where the
    unparsed tail starts.
    """
    end = text.rfind(">") + 1
    base = 0
    while base < end:
        parser = parser_at(base)
        try:
            parser.feed(text[base:end])
            parser.close()
        except Exception:  # the stdlib parser's failures are not ours to leak
            failed_at = absolute_offset(starts, base, *parser.getpos())
            close = text.find(">", failed_at)
            base = max(close + 1 if close >= 0 else end, failed_at + 1, base + 1)
            continue
        break
    return end


def unfinished_markup_start(tail: str) -> int:
    """Where markup that the end of the input cut short begins in ``tail``, or -1.

    ``tail`` is what follows the last ``>``. A ``<`` followed by a letter, ``/``, ``!`` or
    ``?`` opens a tag, comment or declaration that can no longer end, and browsers drop it;
    any other ``<`` (``a < b``) is text.
    """
    at = tail.find("<")
    while 0 <= at < len(tail) - 1:
        following = tail[at + 1]
        if (following.isascii() and following.isalpha()) or following in "/!?":
            return at
        at = tail.find("<", at + 1)
    return -1
