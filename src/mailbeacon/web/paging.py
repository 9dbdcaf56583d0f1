"""Paged lists: previous/next links that keep every filter of the current view."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode


def url_with(path: str, **params: str | int | None) -> str:
    """`path` with the given non-empty query parameters, properly encoded."""
    kept = {k: v for k, v in params.items() if v not in (None, "", 0)}
    return f"{path}?{urlencode(kept)}" if kept else path


def pager(
    path: str, page: int, per_page: int, total: int, **params: str | int | None
) -> dict[str, Any]:
    """What templates/_pager.html needs: the page, the page count and both links."""
    pages = max(1, -(-total // per_page))
    return {
        "page": page,
        "pages": pages,
        "prev": url_with(path, **params, page=page - 1) if page > 1 else None,
        "next": url_with(path, **params, page=page + 1) if page < pages else None,
    }
