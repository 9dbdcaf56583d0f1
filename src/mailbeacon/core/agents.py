"""User agents in words: which mail client, browser, proxy or software.

`describe_agent` turns a raw User-Agent header into an `Agent` (a kind, an app and a
platform) that the classifier judges and the web layer shows in words ("Outlook on
Windows", "iPhone Mail", "Gmail, image proxy").

Two steps, in this order:

1. our email-specific rules (`agent_rules.RULES`): image proxies, Gmail's delivery
   fetcher, Apple's privacy prefetch, mail clients, security scanners, link previews,
   HTTP libraries, headless browsers. A small table, each row with its source;
2. the general parser, ua-parser with uap-core's regexes on the `ua-parser-rs` backend.
   Measured on this machine class (2026-11-29, uncached, per string): ua-parser-rs
   21-27 µs; crawlerdetect 275-480 µs, and it calls Outlook desktop ("Microsoft Outlook
   14.0..."), Outlook for Mac, Outlook for iOS and Apple Mail's CFNetwork agent crawlers;
   device_detector 12-42 ms. ua-parser names browsers and operating systems and calls
   thousands of crawlers a "Spider" device.

Anything neither knows is UNKNOWN with app "". The result depends on the string alone,
so it is cached: most hits repeat a handful of agents.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailbeacon.core.agent_rules import Rule


class AgentKind(StrEnum):
    MAIL_CLIENT = "mail_client"
    BROWSER = "browser"
    IMAGE_PROXY = "image_proxy"  # fetches images on a reader's behalf
    DELIVERY_FETCHER = "delivery_fetcher"  # fetches at delivery, for nobody
    PRIVACY_PREFETCH = "privacy_prefetch"  # Apple MPP's bare "Mozilla/5.0"
    SCANNER = "scanner"
    LINK_PREVIEW = "link_preview"
    HTTP_LIBRARY = "http_library"
    BOT = "bot"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Agent:
    """What a user-agent string says, in parts the web layer can translate.

    `app` is the product ("Outlook", "iPhone Mail", "Chrome", "Gmail"), `platform`
    the system ("Windows", "macOS", "Android"; "" when unknown or part of app),
    `vendor` who runs it, for proxies, scanners and previews ("Google", "Barracuda").
    """

    kind: AgentKind
    app: str
    platform: str = ""
    vendor: str = ""

    def words(self) -> str:
        """English words: "Outlook on Windows", "Gmail, image proxy"."""
        if self.kind is AgentKind.IMAGE_PROXY:
            return f"{self.app}, image proxy"
        if self.platform:
            return f"{self.app} on {self.platform}"
        return self.app or "Unknown client"


UNKNOWN = Agent(AgentKind.UNKNOWN, "")
# A rule's platform that says: read it from the string (`platform_of`).
FROM_UA = "*"

# Longer strings are cut before matching and caching: no real agent is near this long,
# and it bounds both the work per hit and the memory the cache can hold.
MAX_LENGTH = 1024
CACHE_SIZE = 4096


def describe_agent(user_agent: str) -> Agent:
    """The agent behind a user-agent string (cached; cheap on repeats; never raises)."""
    return _describe(user_agent[:MAX_LENGTH].strip())


@lru_cache(maxsize=CACHE_SIZE)
def _describe(user_agent: str) -> Agent:
    if not user_agent:
        return UNKNOWN
    rule = _first_rule(user_agent)
    if rule is not None:
        platform = platform_of(user_agent) if rule.platform == FROM_UA else rule.platform
        return Agent(rule.kind, rule.app, platform, rule.vendor)
    try:
        return _general(user_agent)
    except Exception:  # a parser failure must never cost a hit its answer
        return UNKNOWN


# -- step 1: our rules ---------------------------------------------------------------


@lru_cache(maxsize=1)
def _compiled() -> tuple[tuple[Rule, str | None, re.Pattern[str] | None], ...]:
    """The table with each substring lower-cased once (imported late: it imports us)."""
    from mailbeacon.core.agent_rules import RULES

    return tuple(
        (rule, rule.match.lower(), None)
        if isinstance(rule.match, str)
        else (rule, None, rule.match)
        for rule in RULES
    )


def _first_rule(user_agent: str) -> Rule | None:
    lowered = user_agent.lower()
    for rule, needle, pattern in _compiled():
        if needle is not None:
            if needle in lowered:
                return rule
        elif pattern is not None and pattern.search(user_agent):
            return rule
    return None


# -- step 2: the general parser ------------------------------------------------------

# ua-parser's families that are mail clients, with the name we show.
_MAIL_FAMILIES = {
    "Apple Mail": "Apple Mail",
    "Outlook": "Outlook",
    "Thunderbird": "Thunderbird",
    "Windows Live Mail": "Windows Mail",
    "Airmail": "Airmail",
    "YahooMobileMail": "Yahoo Mail",
}
# Families shown under a shorter, familiar name.
_BROWSER_NAMES = {
    "Chrome Mobile": "Chrome",
    "Chrome Mobile iOS": "Chrome",
    "Chrome Mobile WebView": "Android web view",
    "Firefox Mobile": "Firefox",
    "Firefox iOS": "Firefox",
    "Mobile Safari": "Safari",
    "Mobile Safari UI/WKWebView": "iOS web view",
    "Edge Mobile": "Edge",
    "Opera Mobile": "Opera",
    "Samsung Internet": "Samsung Internet",
}
# Words that name software, for agents ua-parser does not know at all ("Other"). A
# known browser family comes first, so a phone brand such as "CUBOT" does not count.
_SOFTWARE_WORDS = re.compile(r"bot\b|crawler|spider|scanner|fetcher|monitor", re.IGNORECASE)


def _general(user_agent: str) -> Agent:
    from ua_parser import Domain

    result = _parser()(user_agent, Domain.ALL)
    family = result.user_agent.family if result.user_agent else "Other"
    device = result.device.family if result.device else ""
    os_family = result.os.family if result.os else ""
    if device == "Spider":
        return Agent(AgentKind.BOT, "" if family == "Other" else family)
    platform = _platform_from_parser(os_family, device) or platform_of(user_agent)
    if family in _MAIL_FAMILIES:
        return Agent(AgentKind.MAIL_CLIENT, _MAIL_FAMILIES[family], platform)
    if family != "Other":
        return Agent(AgentKind.BROWSER, _BROWSER_NAMES.get(family, family), platform)
    if _SOFTWARE_WORDS.search(user_agent):
        return Agent(AgentKind.BOT, "")
    return Agent(AgentKind.UNKNOWN, "", platform)


@lru_cache(maxsize=1)
def _parser() -> _Resolver:
    """ua-parser with uap-core's compiled regexes, on the Rust backend when present.

    No cache of its own: `_describe` caches whole answers.
    """
    import ua_parser
    from ua_parser import load_lazy_builtins

    if ua_parser.RegexResolver is not None:
        return ua_parser.RegexResolver(load_lazy_builtins())
    return ua_parser.BasicResolver(ua_parser.load_builtins())


if TYPE_CHECKING:
    from ua_parser import Resolver as _Resolver


def _platform_from_parser(os_family: str, device: str) -> str:
    if os_family.startswith("Windows"):
        return "Windows"
    if os_family in ("Mac OS X", "macOS"):
        return "macOS"
    if os_family in ("iOS", "iPadOS"):
        return "iPad" if device.startswith("iPad") else "iPhone"
    if os_family == "Android":
        return "Android"
    if os_family == "Chrome OS":
        return "ChromeOS"
    if os_family in ("Linux", "Ubuntu", "Debian", "Fedora", "Red Hat", "SUSE", "Arch Linux"):
        return "Linux"
    return ""


_PLATFORM_TOKENS = (
    # order matters: iPhone agents say "like Mac OS X", Android ones say "Linux"
    ("ipad", "iPad"),
    ("iphone", "iPhone"),
    ("ipod", "iPhone"),
    ("android", "Android"),
    ("cros", "ChromeOS"),
    ("windows", "Windows"),
    ("macintosh", "macOS"),
    ("mac os x", "macOS"),
    ("darwin", "macOS"),
    ("linux", "Linux"),
    ("x11", "Linux"),
)


def platform_of(user_agent: str) -> str:
    """The platform word from the string's own tokens ("" when it names none)."""
    lowered = user_agent.lower()
    for token, platform in _PLATFORM_TOKENS:
        if token in lowered:
            return platform
    return ""
