"""Placeholders in a template ({{first_name}}, {{name}}, {{email}}), filled per recipient.

Filled when each copy is rendered (in the delivery process), so every recipient gets
their own name, and escaped for the part they land in: a name like ``<b>Bob</b>`` is
text in the HTML part, never markup. Unknown placeholders stay as written. One
regular-expression pass, linear in the text.
"""

from __future__ import annotations

import html
import re

__all__ = ["PLACEHOLDERS", "fill", "has_placeholders", "values_for"]

PLACEHOLDERS = ("first_name", "name", "email")
_PLACEHOLDER = re.compile(r"\{\{\s*(first_name|name|email)\s*\}\}")


def has_placeholders(text: str | None) -> bool:
    """Whether `text` holds any placeholder we fill."""
    return bool(text) and _PLACEHOLDER.search(text or "") is not None


def values_for(address: str, name: str) -> dict[str, str]:
    """What a recipient's placeholders become. Without a name, first_name and name are
    empty rather than the address: "Hi {{first_name}}," reads "Hi ," but never "Hi anna@"."""
    clean = " ".join(name.split())
    return {"first_name": clean.split(" ")[0] if clean else "", "name": clean, "email": address}


def fill(text: str, values: dict[str, str], *, as_html: bool = False) -> str:
    """`text` with each placeholder replaced by its value (HTML-escaped when `as_html`)."""

    def value(match: re.Match[str]) -> str:
        found = values.get(match.group(1), "")
        return html.escape(found) if as_html else found

    return _PLACEHOLDER.sub(value, text)
