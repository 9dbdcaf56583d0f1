"""User agents in words: which mail client, browser, proxy or software.

Interface first; the implementation follows in this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


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


def describe_agent(user_agent: str) -> Agent:
    """The agent behind a user-agent string (cached; cheap on repeats)."""
    raise NotImplementedError  # filled in by the signals work in this session
