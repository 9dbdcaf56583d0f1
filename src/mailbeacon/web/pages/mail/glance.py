"""At a glance (S8, B5): a row's activity in words beside its icons.

"Opened 3× · last 5 minutes ago · Anna", "Clicked example.com/pricing",
"Replied": what a salesperson otherwise learns only by hovering each icon.
Built from the counted aggregates the processor keeps (B3: only human and
proxy events count) and the newest tooltip lines the page already loaded, so
words cost no query of their own. The same words serve the mail list and the
contacts list.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from mailbeacon.store.queries import Activity, ContactRow
from mailbeacon.store.tables import Message
from mailbeacon.web.i18n import Localizer
from mailbeacon.web.pages.mail.replies import ReplyIcon

LINK_CHARS = 40


@dataclass(frozen=True, slots=True)
class Phrase:
    """One line of words: `kind` (open, click, reply, quiet) picks its colour."""

    kind: str
    text: str


@dataclass(frozen=True, slots=True)
class Glance:
    """A row's activity in words, and its latest counted activity (the sort key)."""

    phrases: tuple[Phrase, ...]
    last_activity: datetime | None


def short_link(url: str | None) -> str:
    """A link as a person names it: host and path, no scheme, no `www.`, at most 40 chars.

    The link's visible text is not stored (only the address is), so the address
    is shortened instead: `https://www.example.com/pricing?utm=x` reads
    `example.com/pricing`.
    """
    if not url:
        return ""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").removeprefix("www.")
        name = (host + parts.path.rstrip("/")) or url
    except ValueError:
        name = url
    return name if len(name) <= LINK_CHARS else name[: LINK_CHARS - 1] + "…"


def latest(*moments: datetime | None) -> datetime | None:
    """The latest of some moments, None when there are none."""
    known = [m for m in moments if m is not None]
    return max(known) if known else None


def _ago(l10n: Localizer, moment: datetime, now: datetime) -> str:
    # A clock a little ahead of ours must not read "in 2 seconds".
    return l10n.gettext("last %(ago)s", ago=l10n.ago(min(moment, now), now))


def _opened(l10n: Localizer, count: int, last: datetime | None, who: str, now: datetime) -> str:
    parts = [l10n.gettext("Opened %(num)d×", num=count)]
    if last is not None:
        parts.append(_ago(l10n, last, now))
    if who:
        parts.append(who)
    return " · ".join(parts)


def _clicked(l10n: Localizer, count: int, url: str | None) -> str:
    link = short_link(url)
    if count > 1:
        return " · ".join(p for p in (l10n.gettext("Clicked %(num)d×", num=count), link) if p)
    return l10n.gettext("Clicked %(link)s", link=link) if link else l10n.gettext("Clicked a link")


def _replied(l10n: Localizer, count: int, who: str) -> str:
    words = l10n.gettext("Replied") if count == 1 else l10n.gettext("Replied %(num)d×", num=count)
    return f"{words} · {who}" if who else words


def message_glance(
    message: Message,
    activity: Iterable[Activity],
    reply: ReplyIcon,
    l10n: Localizer,
    now: datetime,
) -> Glance:
    """A sent email's words: who opened last and when, which link, whether anyone replied."""
    lines = list(activity)  # newest first (queries.counted_activity)
    newest_open = next((a for a in lines if a.kind == "open"), None)
    newest_click = next((a for a in lines if a.kind == "click"), None)
    phrases: list[Phrase] = []
    if message.open_count:
        who = (newest_open.name or newest_open.address) if newest_open else ""
        text = _opened(l10n, message.open_count, message.last_open_at, who, now)
        phrases.append(Phrase("open", text))
    if message.click_count:
        url = newest_click.url if newest_click else None
        phrases.append(Phrase("click", _clicked(l10n, message.click_count, url)))
    if message.reply_count:
        who = next((line.who for line in reply.lines if not line.automatic), "")
        phrases.append(Phrase("reply", _replied(l10n, message.reply_count, who)))
    if not phrases and message.status in ("sent", "partial"):
        if message.track_opens or message.track_links:
            phrases.append(Phrase("quiet", l10n.gettext("No activity yet")))
        else:
            phrases.append(Phrase("quiet", l10n.gettext("Not tracked")))
    return Glance(
        tuple(phrases),
        latest(message.last_open_at, message.last_click_at, message.last_reply_at),
    )


def contact_glance(row: ContactRow, l10n: Localizer, now: datetime) -> Glance:
    """A contact's words over every email sent to them."""
    phrases: list[Phrase] = []
    if row.opens:
        phrases.append(Phrase("open", _opened(l10n, row.opens, row.last_open_at, "", now)))
    if row.clicks:
        phrases.append(Phrase("click", _clicked(l10n, row.clicks, row.last_click_url)))
    if row.replies:
        phrases.append(Phrase("reply", _replied(l10n, row.replies, "")))
    if not phrases:
        phrases.append(Phrase("quiet", l10n.gettext("No activity yet")))
    return Glance(tuple(phrases), latest(row.last_open_at, row.last_click_at, row.last_reply_at))
