"""Every language is complete (B8): each string in the code and templates is translated
into German, Swedish, Polish, Italian and Estonian, with the same placeholders."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from mailbeacon.web.i18n import LANGUAGES, LOCALE_DIR, Localizer, negotiate

ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")


def extracted() -> set[str]:
    """The msgids the code uses now (singular forms)."""
    method_map = [
        ("src/mailbeacon/**.py", "python"),
        ("src/mailbeacon/web/templates/**.html", "jinja2"),
    ]
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}
    found: set[str] = set()
    for _, _, message, _, _ in extract_from_dir(
        str(ROOT),
        method_map=method_map,
        options_map={"src/mailbeacon/web/templates/**.html": {"extensions": "jinja2.ext.i18n"}},
        keywords=keywords,
    ):
        found.add(message[0] if isinstance(message, tuple) else message)
    return found


def catalog(language: str) -> Catalog:
    with (LOCALE_DIR / language / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        return read_po(handle, locale=language)


@pytest.mark.parametrize("language", [code for code in LANGUAGES if code != "en"])
def test_catalogue_is_complete(language: str) -> None:
    translations = catalog(language)
    missing, broken = [], []
    for msgid in sorted(extracted()):
        message = translations.get(msgid)
        if message is None or not message.string or message.fuzzy:
            missing.append(msgid)
            continue
        forms = message.string if isinstance(message.string, tuple) else (message.string,)
        for form in forms:
            if not form or set(PLACEHOLDER.findall(form)) - set(PLACEHOLDER.findall(msgid)):
                broken.append(msgid)
    assert not missing, f"{len(missing)} untranslated in {language}: {missing[:10]}"
    assert not broken, f"placeholders differ in {language}: {broken[:10]}"


def test_languages_load_and_differ() -> None:
    assert Localizer("de").gettext("Sign in") != "Sign in"
    assert Localizer("xx").language == "en"


@pytest.mark.parametrize(
    ("header", "language"),
    [
        ("de-DE,de;q=0.9,en;q=0.8", "de"),
        ("fr-FR, sv;q=0.5", "sv"),
        ("et", "et"),
        ("en-US", "en"),
        ("", "en"),
        ("garbage;;q=x,,", "en"),
        ("pl;q=0.2, it;q=0.9", "it"),
    ],
)
def test_accept_language(header: str, language: str) -> None:
    assert negotiate(header) == language
