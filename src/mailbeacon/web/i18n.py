"""Languages (B8): gettext catalogues read from .po files at start-up, no build step.

The .po files under `locale/` are the source of truth; they are compiled in
memory when the app starts, so a checkout runs as it is.
"""

from __future__ import annotations

import io
import logging
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from babel import Locale, UnknownLocaleError
from babel.dates import format_datetime, format_timedelta
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from markupsafe import Markup

log = logging.getLogger(__name__)

LOCALE_DIR = Path(__file__).parent / "locale"
DEFAULT_LANGUAGE = "en"
# The article's languages (PRODUCT.md B8), each named in itself.
LANGUAGES: dict[str, str] = {
    "en": "English",
    "de": "Deutsch",
    "sv": "Svenska",
    "pl": "Polski",
    "it": "Italiano",
    "et": "Eesti",
}


@cache
def translations_for(language: str) -> NullTranslations:
    """The compiled catalogue of a language (English is the source: no catalogue)."""
    path = LOCALE_DIR / language / "LC_MESSAGES" / "messages.po"
    if language == DEFAULT_LANGUAGE or not path.exists():
        return NullTranslations()
    with path.open("rb") as handle:
        catalog = read_po(handle, locale=language)
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return Translations(fp=buffer)


def language_or_default(language: str | None) -> str:
    return language if language in LANGUAGES else DEFAULT_LANGUAGE


def negotiate(accept_language: str) -> str:
    """The best of our languages for an Accept-Language header (signed-out pages)."""
    wanted: list[tuple[float, str]] = []
    for index, item in enumerate(accept_language.split(",")):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag:
            wanted.append((quality - index * 1e-6, tag.strip()))
    for _, tag in sorted(wanted, reverse=True):
        try:
            code = Locale.parse(tag.replace("-", "_")).language
        except (ValueError, UnknownLocaleError):
            continue
        if code in LANGUAGES:
            return code
    return DEFAULT_LANGUAGE


@cache
def time_zones() -> frozenset[str]:
    """The zones a user may pick; 'localtime' is the server's own zone, meaningless to them."""
    return frozenset(available_timezones() - {"localtime"})


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


class Localizer:
    """gettext and date formatting for one request, bound to a language and time zone."""

    def __init__(self, language: str, timezone: str = "UTC") -> None:
        self.language = language_or_default(language)
        self.translations = translations_for(self.language)
        self.tz = zone(timezone)

    def gettext(self, message: str, **variables: Any) -> str:
        text = self.translations.gettext(message)
        return text % variables if variables else text

    def ngettext(self, singular: str, plural: str, n: int, **variables: Any) -> str:
        text = self.translations.ngettext(singular, plural, n)
        return text % {"num": n, **variables}

    def when(self, value: datetime | None, fmt: str = "medium") -> str:
        """A moment in the user's time zone and language."""
        if value is None:
            return ""
        return format_datetime(value, format=fmt, tzinfo=self.tz, locale=self.language)

    def ago(self, value: datetime | None, now: datetime) -> str:
        """'5 minutes ago', in the user's language."""
        if value is None:
            return ""
        delta: timedelta = value - now
        return format_timedelta(delta, add_direction=True, locale=self.language)

    def template_globals(self) -> dict[str, Any]:
        """gettext callables for Jinja (newstyle: %(name)s variables, escaped)."""

        def gettext(message: str, **variables: Any) -> str:
            text = Markup(self.translations.gettext(message))  # noqa: S704 - our own catalogue
            return text % variables if variables else text

        def ngettext(singular: str, plural: str, n: int, **variables: Any) -> str:
            text = Markup(self.translations.ngettext(singular, plural, n))  # noqa: S704
            return text % {"num": n, **variables}

        return {"gettext": gettext, "ngettext": ngettext, "_": gettext}
