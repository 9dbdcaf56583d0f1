"""What the mail and contact pages share: the tracking icons (S8), URLs, paging, dependencies.

The open and link icons are built only here (`track_icons`), so the list, the
message page and the contact page always agree on faded, solid and untracked.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request

from mailbeacon.core.policy import N_, REASON_TEXT, Untracked
from mailbeacon.core.readership import ReaderCounts, Reading, ReadingStatus, reading_status
from mailbeacon.store import queries
from mailbeacon.store.db import sessions
from mailbeacon.store.queries import Activity
from mailbeacon.store.tables import Message, Recipient
from mailbeacon.web import signals_text
from mailbeacon.web.auth import SignedIn, require_csrf, require_user
from mailbeacon.web.i18n import Localizer
from mailbeacon.web.inputs import parse_page
from mailbeacon.web.paging import url_with

Current = Annotated[SignedIn, Depends(require_user)]
Checked = Annotated[SignedIn, Depends(require_csrf)]

# Which stored reasons explain missing open tracking, and which missing link tracking.
OPEN_REASONS = frozenset(
    {
        Untracked.OPENS_SWITCH_OFF,
        Untracked.OPENS_TOGGLE_OFF,
        Untracked.NO_HTML_PART,
        Untracked.EMPTY_BODY,
    }
)
LINK_REASONS = frozenset(
    {Untracked.LINKS_SWITCH_OFF, Untracked.LINKS_TOGGLE_OFF, Untracked.NO_LINKS}
)


# ---------------------------------------------------------------------------
# Tracking icons (S8): one builder for the list, the message and the contact.


@dataclass(frozen=True, slots=True)
class TipLine:
    """One line of a tooltip: when, by whom, and for clicks which link."""

    at: datetime
    who: str
    url: str | None


@dataclass(frozen=True, slots=True)
class TrackIcon:
    """An open or link icon and its tooltip, ready for `macros/tracking.html`."""

    kind: str  # "open" or "click"
    dom_id: str
    tracked: bool
    reason: str  # English text (translated in the template) when not tracked
    count: int
    lines: tuple[TipLine, ...]
    more: int
    failed: bool = False
    status: str = ""  # the reading status in words, on a recipient's open icon (B3)
    undelivered: bool = False  # the copy has not arrived: its tip never says "not opened yet"
    readers: tuple[tuple[str, str], ...] = ()  # (who, status in words) on a message's icon

    @property
    def state(self) -> str:
        """The icon's CSS state, so "not tracked" never looks like "not opened yet"."""
        if not self.tracked:
            return "untracked"
        return "solid" if self.count else "faded"


def known_reasons(codes: Iterable[str]) -> list[Untracked]:
    """The stored reason codes this version knows; an unknown one is skipped, not an error."""
    known = {reason.value for reason in Untracked}
    return [Untracked(code) for code in codes if code in known]


def _icon(
    kind: str,
    dom_id: str,
    *,
    tracked: bool,
    reasons: list[Untracked],
    count: int,
    activity: Iterable[Activity],
    failed: bool,
    status: str = "",
    readers: tuple[tuple[str, str], ...] = (),
    undelivered: bool = False,
) -> TrackIcon:
    """One icon; an untracked one always says why, generically when no stored reason fits."""
    relevant = OPEN_REASONS if kind == "open" else LINK_REASONS
    fallback = (
        N_("Open tracking was off for this email.")
        if kind == "open"
        else N_("Link tracking was off for this email.")
    )
    reason = next((REASON_TEXT[r] for r in reasons if r in relevant), fallback)
    lines = tuple(
        TipLine(a.occurred_at, a.name or a.address, a.url) for a in activity if a.kind == kind
    )[: queries.TIP_LINES]
    return TrackIcon(
        kind=kind,
        dom_id=dom_id,
        tracked=tracked,
        reason="" if tracked else reason,
        count=count,
        lines=lines,
        more=max(0, count - len(lines)),
        failed=failed,
        status=status if tracked else "",
        readers=readers if tracked else (),
        undelivered=undelivered,
    )


def track_icons(
    scope: str,
    row: Message | Recipient,
    message: Message,
    activity: Iterable[Activity],
    *,
    reading: str = "",
    readers: Iterable[tuple[str, str]] = (),
    undelivered: bool = False,
) -> tuple[TrackIcon, TrackIcon]:
    """The open and link icons for a message, or for one recipient's copy of it.

    `reading` is a copy's status in words ("Opened via an image proxy"), `readers`
    each recipient's (name, status) for a message's icon; both go on the open
    icon's tooltip, so hovering says what kind of open it was, not only when.
    """
    lines = list(activity)
    reasons = known_reasons(message.untracked_reasons)
    failed = isinstance(row, Recipient) and row.status == "failed"
    common: dict[str, Any] = {
        "reasons": reasons,
        "activity": lines,
        "failed": failed,
        "undelivered": undelivered,
    }
    return (
        _icon(
            "open",
            f"{scope}-open",
            tracked=message.track_opens,
            count=row.open_count,
            status=reading,
            readers=tuple(readers)[: queries.TIP_LINES],
            **common,
        ),
        _icon(
            "click",
            f"{scope}-click",
            tracked=message.track_links,
            count=row.click_count,
            **common,
        ),
    )


# ---------------------------------------------------------------------------
# A recipient's reading status in words (B3, B4), on the message and contact pages.


@dataclass(frozen=True, slots=True)
class RecipientItem:
    """One recipient's row: their reading status and client in words, icons, clicked links."""

    recipient: Recipient
    opens: TrackIcon
    clicks: TrackIcon
    clicked: list[tuple[str, int]]
    reading: Reading
    reading_text: str
    client: str  # the first counted reader's client in words ("" when none yet)


def reading_of(recipient: Recipient) -> Reading:
    """The recipient's reading status from the counts the processor keeps."""
    return reading_status(
        recipient.status,
        ReaderCounts(
            open_count=recipient.open_count,
            click_count=recipient.click_count,
            person_open_count=recipient.person_open_count,
            proxy_open_count=recipient.proxy_open_count,
            inferred_open_count=recipient.inferred_open_count,
            machine_event_count=recipient.machine_event_count,
            forwarded_count=recipient.forwarded_count,
        ),
    )


def recipient_item(
    recipient: Recipient,
    message: Message,
    activity: Iterable[Activity],
    clicked: list[tuple[str, int]],
    l10n: Localizer,
) -> RecipientItem:
    """One copy's row, the same on the message page and the contact page."""
    reading = reading_of(recipient)
    opens, clicks = track_icons(
        f"r{recipient.id}",
        recipient,
        message,
        activity,
        reading=reading_text(reading, l10n),
        undelivered=reading.status is ReadingStatus.NOT_DELIVERED,
    )
    return RecipientItem(
        recipient,
        opens,
        clicks,
        clicked,
        reading,
        reading_text(reading, l10n),
        signals_text.client_words(recipient.reader_agent, l10n),
    )


def reading_text(reading: Reading, l10n: Localizer) -> str:
    """ "Opened by a person", with ", possibly forwarded" when that too."""
    words = signals_text.reading_text(reading.status, l10n)
    if reading.possibly_forwarded:
        words += " · " + l10n.gettext(signals_text.POSSIBLY_FORWARDED)
    return words


# ---------------------------------------------------------------------------
# Small helpers for query strings, paging and the database.


def page_number(value: str) -> int:
    """A lenient ?page=: anything odd is page 1, never an error page (see `inputs`)."""
    return parse_page(value)


def contact_url(address: str) -> str:
    """A contact page's URL; only `@` stays readable, so any address comes back intact."""
    return "/contacts/" + quote(address, safe="@")


def compose_url(address: str) -> str:
    """The composer prefilled for one address (the contact page's "Write to")."""
    return url_with("/mail/new", to=address)


def database(request: Request) -> Any:
    """A session on the runtime's engine; callers scope every query by user (S7)."""
    return sessions(request.app.state.runtime.engine)()


def url_builders() -> dict[str, Any]:
    """Template context entries, so templates build these links as the handlers do."""
    return {"contact_url": contact_url, "compose_url": compose_url}
