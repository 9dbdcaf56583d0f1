"""Mail shown inside our pages without letting it reach out.

The message view shows the stored, untracked body "as sent" and promises that
viewing it fires nothing. The frame's sandbox stops scripts, forms and
navigation of the page, but images, stylesheets and fonts would still load
from wherever the mail points (the page's own policy allows images from
anywhere, for the outbox), telling a sender's server that someone looked.
A policy inside the framed document, which can only narrow the one it
inherits, allows nothing remote: inline styles and data: images only.
"""

from __future__ import annotations

import re

from markupsafe import Markup

QUIET_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; font-src data:"
QUIET_META = f'<meta http-equiv="Content-Security-Policy" content="{QUIET_POLICY}">'
_DOCTYPE = re.compile(r"\A\s*<!doctype[^>]*>", re.IGNORECASE)


def quiet_document(html: str | Markup) -> str:
    """The document for a srcdoc frame that may fetch nothing remote.

    The policy goes right after a leading doctype (if any), so the document
    keeps its rendering mode, and before anything else, so the parser puts
    it into the head ahead of every element that could load something.
    """
    text = str(html)
    match = _DOCTYPE.match(text)
    cut = match.end() if match else 0
    return text[:cut] + QUIET_META + text[cut:]
