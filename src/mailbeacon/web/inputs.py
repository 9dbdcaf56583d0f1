"""Reading untrusted values once, in one way: row ids, page numbers, cursors, JSON bodies.

Each parser accepts plain ASCII digits of a bounded length only. `int()` alone
would take '²', '١' or '+1' and raise on 5,000 digits (Python's digit limit),
and a value past 2**63 - 1 overflows both databases' 64-bit ids: each of those
was a 500. Here an id that cannot name a row is None (a 404 to the caller), a
page number that makes no sense is page 1, and a JSON body that Python's parser
would take but nothing downstream can store or answer with (NaN, 1e999, a lone
UTF-16 surrogate, NUL) is a 422 before any handler runs (DESIGN rule 6).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import HTTPException, Path, Request, Response, status
from fastapi.routing import APIRoute

MAX_ID = 2**63 - 1  # ids are signed 64-bit integers on SQLite and PostgreSQL
MAX_ID_DIGITS = len(str(MAX_ID))
MAX_PAGE = 100_000

# A path parameter of the JSON API that names a row: anything else is a 422.
ApiId = Annotated[int, Path(ge=1, le=MAX_ID, description="A row id (1 to 2^63-1).")]


def _ascii_digits(value: str, max_digits: int) -> int | None:
    value = value.strip()
    if not value or len(value) > max_digits or not value.isascii() or not value.isdigit():
        return None
    return int(value)


def parse_id(value: str) -> int | None:
    """A row id written in plain digits, or None when it cannot name a row."""
    number = _ascii_digits(value, MAX_ID_DIGITS)
    return number if number is not None and 0 < number <= MAX_ID else None


def id_or_404(value: str) -> int:
    """For page handlers: an id that names nothing is a 404, like another user's row (S7)."""
    number = parse_id(value)
    if number is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND)
    return number


def parse_page(value: str) -> int:
    """A lenient ?page=: anything odd is page 1, a huge one the last page we serve."""
    number = _ascii_digits(value, MAX_ID_DIGITS)
    if number is None or number < 1:
        return 1
    return min(number, MAX_PAGE)


def parse_cursor(value: str) -> int | None:
    """An event-stream cursor (Last-Event-ID) we could have sent, or None."""
    number = _ascii_digits(value, MAX_ID_DIGITS)
    return number if number is not None and number <= MAX_ID else None


# ---------------------------------------------------------------------------
# JSON bodies


class UnusableJson(ValueError):
    """JSON that parses in Python but holds a value nothing downstream accepts."""


def _refuse_constant(name: str) -> float:
    raise UnusableJson(f"{name} is not a number JSON allows; send a finite number")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise UnusableJson("a number is too large; send a finite number")
    return number


def _check_text(value: str) -> None:
    if "\x00" in value:
        raise UnusableJson("text must not contain NUL (\\u0000)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UnusableJson(
            "text must not contain a lone UTF-16 surrogate (\\ud800-\\udfff outside a pair)"
        ) from exc


def _check_tree(value: Any) -> None:
    """Every key and string in a parsed document, without recursion (depth is the client's)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, dict):
            for key, child in item.items():
                _check_text(key)
                stack.append(child)
        elif isinstance(item, list):
            stack.extend(item)


def strict_json(body: bytes) -> Any:
    """Parse a JSON body, refusing what Python's json module lets through (UnusableJson).

    Raises ValueError (json.JSONDecodeError, UnicodeDecodeError) for text that is not JSON.
    """
    document = json.loads(body, parse_constant=_refuse_constant, parse_float=_finite)
    _check_tree(document)
    return document


class StrictJsonRequest(Request):
    """A request whose `.json()` is `strict_json`: FastAPI reads API bodies through it."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            try:
                self._json = strict_json(await self.body())
            except UnusableJson as exc:
                raise HTTPException(
                    status.HTTP_422_UNPROCESSABLE_CONTENT,
                    [{"type": "json_invalid", "loc": ["body"], "msg": str(exc)}],
                ) from exc
            except RecursionError as exc:
                raise HTTPException(
                    status.HTTP_422_UNPROCESSABLE_CONTENT,
                    [{"type": "json_invalid", "loc": ["body"], "msg": "JSON nested too deeply"}],
                ) from exc
        return self._json


class StrictJsonRoute(APIRoute):
    """An API route that reads its JSON body with `strict_json`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            return await handler(StrictJsonRequest(request.scope, request.receive))

        return strict_handler
