"""Issue 6: core's text transforms on hostile bodies, against an ordinary body of the same size.

Prints, for each transform and each pathological body, the CPU time at 112 KB and 224 KB,
the growth when the input doubles (linear: about 2), and the time relative to an ordinary
HTML body of the same size measured in the same run. Run: .venv/bin/python bench/text_transforms.py
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

from mailbeacon.core.addresses import InvalidAddress, parse_mailboxes
from mailbeacon.core.rewrite import find_html_links, rewrite_html, rewrite_text
from mailbeacon.core.text import html_to_text
from mailbeacon.core.urls import bare_url_spans

SIZE = 112_000
ORDINARY = '<p>Hello, see <a href="https://example.com/offer?a=1&amp;b=2">our offer</a>.</p>\n'
HOSTILE = {
    "unterminated tags": "x <b y ",
    "unterminated tags, then >": "x <b y ",  # with a closing ">" at the very end
    "unclosed comments": "<!--a>",
    "marked sections": "<![if ",
    "quotes in tags": "<a x='",
    "punctuation after URLs": "https://x.com/a).",
}


def _addresses(text: str) -> None:
    with contextlib.suppress(InvalidAddress):
        parse_mailboxes([text[i : i + 900] for i in range(0, len(text), 900)][:100])


TRANSFORMS: dict[str, Callable[[str], object]] = {
    "html_to_text": html_to_text,
    "rewrite_html": lambda t: rewrite_html(
        t, pixel_url="https://t.example/o/p.gif", click_url_for=lambda u: "https://t.example/c/x"
    ),
    "find_html_links": find_html_links,
    "rewrite_text": lambda t: rewrite_text(t, lambda u: "https://t.example/c/x"),
    "bare_url_spans": bare_url_spans,
    "addresses (100 KB cap)": _addresses,
}


def body(unit: str, size: int, close: bool = False) -> str:
    text = (unit * (size // len(unit) + 1))[:size]
    return text[:-1] + ">" if close else text


def cpu(transform: Callable[[str], object], text: str, runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.process_time()
        transform(text)
        best = min(best, time.process_time() - started)
    return best


def main() -> None:
    header = f"{'transform':24} {'body':28} {'112 KB':>9} {'224 KB':>9} {'x2 growth':>9}"
    print(f"{header} {'vs ordinary':>11}")
    for name, transform in TRANSFORMS.items():
        reference = cpu(transform, body(ORDINARY, SIZE))
        for label, unit in HOSTILE.items():
            close = label.endswith("then >")
            small = cpu(transform, body(unit, SIZE, close))
            large = cpu(transform, body(unit, 2 * SIZE, close))
            growth = large / small if small > 1e-4 else float("nan")
            versus = small / reference if reference > 1e-4 else float("nan")
            print(
                f"{name:24} {label:28} {small * 1000:7.1f}ms {large * 1000:7.1f}ms "
                f"{growth:9.2f} {versus:10.2f}x"
            )
        print(f"{name:24} {'(ordinary HTML)':28} {reference * 1000:7.1f}ms")


if __name__ == "__main__":
    main()
