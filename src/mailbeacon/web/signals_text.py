"""Honest signals in words (B3, B4): classes, reasons, reading statuses and clients.

The classifier (core.signals) and the processor store codes; this module is
the one place that says what each code means to a person, in the user's
language, so the pages, tooltips, the bell and the API never disagree. Every
text is marked with N_ so `make messages` extracts it; a code this version
does not know still reads as something ("Other"), never as an error.
"""

from __future__ import annotations

from mailbeacon.core.agents import Agent, AgentKind, describe_agent
from mailbeacon.core.policy import N_
from mailbeacon.core.readership import ReadingStatus
from mailbeacon.core.signals import Reason, SignalClass
from mailbeacon.web.i18n import Localizer

CLASS_TEXT: dict[str, str] = {
    SignalClass.HUMAN: N_("Person"),
    SignalClass.PROXY: N_("Image proxy"),
    SignalClass.PREFETCH: N_("Privacy prefetch"),
    SignalClass.SCANNER: N_("Scanner"),
    SignalClass.SELF: N_("You"),
}
OTHER_CLASS = N_("Other")

REASON_TEXT: dict[str, str] = {
    Reason.MAIL_CLIENT: N_("A mail app loaded the email's images."),
    Reason.BROWSER: N_("A web browser: webmail, or a link opened by a person."),
    Reason.UNKNOWN_AGENT: N_(
        "Nothing about this request points to software, so it counts as a person."
    ),
    Reason.IMAGE_PROXY: N_(
        "An image proxy (such as Gmail's) loads images when the reader opens the email: "
        "the time is real, the reader's device and place are hidden."
    ),
    Reason.APPLE_MPP: N_(
        "Apple Mail Privacy Protection loads images when mail arrives, "
        "whether or not anyone reads it."
    ),
    Reason.DELIVERY_FETCH: N_(
        "The mail service fetched the images when the email arrived, before anyone read it."
    ),
    Reason.PREFETCH_HEADER: N_("The request said it was a prefetch, made ahead of any reader."),
    Reason.HEAD_REQUEST: N_(
        "A HEAD request: made by link checkers and scanners, never by a person reading."
    ),
    Reason.SCANNER_AGENT: N_(
        "A security scanner checked the email before or while it was delivered."
    ),
    Reason.LINK_PREVIEW: N_("A chat or social app fetched the link to show a preview."),
    Reason.HTTP_LIBRARY: N_("A program, not a mail app or browser, made this request."),
    Reason.BOT_AGENT: N_("A crawler or automated browser made this request."),
    Reason.NO_AGENT: N_("The request named no client at all; every mail app and browser does."),
    Reason.SCANNER_NETWORK: N_("The request came from a mail-security company's network."),
    Reason.HONEYPOT: N_("It followed an invisible link that no person can see or click."),
    Reason.HONEYPOT_CLIENT: N_(
        "The same client followed an invisible link in this copy, so it is software."
    ),
    Reason.CLICK_AT_DELIVERY: N_(
        "The link was clicked seconds after delivery, as security scanners do."
    ),
    Reason.CLICK_BURST: N_("Several links were clicked within the same second."),
    Reason.ALL_LINKS: N_("Every link of the email was clicked at once."),
    Reason.DATACENTER_CLICK: N_(
        "A click from a data-centre network on a copy never opened: typical of scanners."
    ),
    Reason.OWN_COPY: N_("You opened your own copy of the email."),
    Reason.OWN_DEVICE: N_("This came from one of your own signed-in browsers."),
}
OTHER_REASON = N_("Not counted as a person opening or clicking.")

READING_TEXT: dict[str, str] = {
    ReadingStatus.NOT_DELIVERED: N_("Not delivered"),
    ReadingStatus.OPENED_BY_PERSON: N_("Opened by a person"),
    ReadingStatus.OPENED_VIA_PROXY: N_("Opened via an image proxy"),
    ReadingStatus.OPENED_INFERRED: N_("Opened (images blocked, seen from a click)"),
    ReadingStatus.MACHINE_ONLY: N_("Only machine activity"),
    ReadingStatus.NOT_OPENED: N_("Not opened"),
}
POSSIBLY_FORWARDED = N_("Possibly forwarded")

UNKNOWN_CLIENT = N_("Unknown client")
# How the kind of an agent is said after its name ("Gmail, image proxy").
KIND_SUFFIX: dict[AgentKind, str] = {
    AgentKind.IMAGE_PROXY: N_("%(app)s, image proxy"),
    AgentKind.DELIVERY_FETCHER: N_("%(app)s, fetch at delivery"),
    AgentKind.PRIVACY_PREFETCH: N_("%(app)s, privacy prefetch"),
    AgentKind.SCANNER: N_("%(app)s, security scanner"),
    AgentKind.LINK_PREVIEW: N_("%(app)s, link preview"),
    AgentKind.HTTP_LIBRARY: N_("%(app)s, a program"),
    AgentKind.BOT: N_("%(app)s, automated"),
}
ON_PLATFORM = N_("%(app)s on %(platform)s")

# Verdicts stored before the classes of core.signals (until `worker --rebuild`).
LEGACY_VERDICTS: dict[str, tuple[str, str]] = {
    "head": (SignalClass.SCANNER, Reason.HEAD_REQUEST),
    "prefetch": (SignalClass.PREFETCH, Reason.PREFETCH_HEADER),
}


def class_and_reason(verdict: str, reason: str) -> tuple[str, str]:
    """The stored class and reason, with verdicts of older versions read as their class."""
    if verdict in LEGACY_VERDICTS and not reason:
        return LEGACY_VERDICTS[verdict]
    return verdict, reason


def class_text(code: str, l10n: Localizer) -> str:
    """ "Person", "Image proxy", ... for a stored class (events.verdict)."""
    return l10n.gettext(CLASS_TEXT.get(code, OTHER_CLASS))


def reason_text(code: str, l10n: Localizer) -> str:
    """The sentence behind a stored reason (events.reason); empty when there is none."""
    if not code:
        return ""
    return l10n.gettext(REASON_TEXT.get(code, OTHER_REASON))


def reading_text(status: ReadingStatus, l10n: Localizer) -> str:
    return l10n.gettext(READING_TEXT[status])


def agent_words(agent: Agent, l10n: Localizer) -> str:
    """An Agent in the user's language: "Outlook on Windows", "Gmail, image proxy"."""
    if not agent.app:
        return l10n.gettext(UNKNOWN_CLIENT)
    suffix = KIND_SUFFIX.get(agent.kind)
    if suffix is not None:
        return l10n.gettext(suffix, app=agent.app)
    if agent.platform:
        return l10n.gettext(ON_PLATFORM, app=agent.app, platform=agent.platform)
    return agent.app


def client_words(user_agent: str, l10n: Localizer) -> str:
    """A raw user-agent string in words; empty when nothing was sent at all."""
    if not user_agent.strip():
        return ""
    return agent_words(describe_agent(user_agent), l10n)


def warm_up() -> None:
    """Parse one agent, so the parser's one-time set-up is paid at start-up, not by a page."""
    describe_agent("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")
