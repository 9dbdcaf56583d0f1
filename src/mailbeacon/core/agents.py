"""User agents in words: which mail client, browser, proxy or software.

Interface first; the implementation follows in this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

import ua_parser


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
    the system ("Windows", "macOS", "Android"; "" when unknown or part of app).
    """

    kind: AgentKind
    app: str
    platform: str = ""

    def words(self) -> str:
        """English words: "Outlook on Windows", "Gmail, image proxy"."""
        if self.kind is AgentKind.IMAGE_PROXY:
            return f"{self.app}, image proxy"
        if self.platform:
            return f"{self.app} on {self.platform}"
        return self.app or "Unknown client"


_PLATFORMS = {"Mac OS X": "macOS", "iOS": "iPhone", "Chrome OS": "ChromeOS"}


@lru_cache(maxsize=4096)
def describe_agent(user_agent: str) -> Agent:
    """The agent behind a user-agent string (cached; cheap on repeats).

    A first cut on ua-parser alone; the email-specific rules come next.
    """
    if user_agent.strip() == "Mozilla/5.0":
        return Agent(AgentKind.PRIVACY_PREFETCH, "Apple Mail")
    result = ua_parser.parse(user_agent)
    family = result.user_agent.family if result.user_agent else ""
    os_family = result.os.family if result.os else ""
    platform = _PLATFORMS.get(os_family, os_family)
    if family == "GmailImageProxy":
        return Agent(AgentKind.IMAGE_PROXY, "Gmail")
    if result.device and result.device.family == "Spider":
        return Agent(AgentKind.BOT, family)
    if family in ("Apple Mail", "Outlook", "Thunderbird"):
        return Agent(AgentKind.MAIL_CLIENT, family, platform)
    if family:
        return Agent(AgentKind.BROWSER, family, platform)
    return Agent(AgentKind.UNKNOWN, "")
