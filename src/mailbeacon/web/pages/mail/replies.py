"""The "replied" icon and the replies card (B11), for the list, message and contact pages.

Built here, beside the open and link icons of `shared.track_icons`, and drawn by
`macros/replies.html`. One icon per message (every reply to it) and per copy
(that recipient's replies). Auto-replies are shown, labelled, and never make
the icon solid; a reply from someone who was not a recipient says so. Without
IMAP set up the icon says that replies are not being watched, rather than
"no reply yet", which would be a guess.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mailbeacon.store.replies import ReplyLine, replies_for_messages
from mailbeacon.store.tables import Mailbox

TIP_LINES = 5


@dataclass(frozen=True, slots=True)
class ReplyTip:
    """One tooltip line: who answered, when, and whether automatically."""

    at: datetime
    who: str
    automatic: bool
    stranger: bool  # not a recipient of the message


@dataclass(frozen=True, slots=True)
class ReplyIcon:
    """The third icon: solid once someone replied, labelled for auto-replies only."""

    dom_id: str
    watching: bool
    count: int
    automatic: int
    lines: tuple[ReplyTip, ...]
    more: int

    @property
    def state(self) -> str:
        if not self.watching and not (self.count or self.automatic):
            return "untracked"
        if self.count:
            return "solid"
        return "auto" if self.automatic else "faded"


def _icon(dom_id: str, watching: bool, lines: Sequence[ReplyLine]) -> ReplyIcon:
    answers = [line for line in lines if line.kind in ("reply", "auto_reply")]
    tips = tuple(
        ReplyTip(
            line.received_at,
            line.from_name or line.from_address,
            line.kind == "auto_reply",
            line.recipient_id is None,
        )
        for line in sorted(answers, key=lambda line: line.received_at, reverse=True)
    )
    return ReplyIcon(
        dom_id=f"{dom_id}-reply",
        watching=watching,
        count=sum(1 for line in answers if line.kind == "reply"),
        automatic=sum(1 for line in answers if line.kind == "auto_reply"),
        lines=tips[:TIP_LINES],
        more=max(0, len(tips) - TIP_LINES),
    )


@dataclass(frozen=True, slots=True)
class ReplyView:
    """What a page needs: icons by scope ("m<id>", "r<id>") and each message's lines."""

    icons: dict[str, ReplyIcon]
    lines: dict[int, list[ReplyLine]]

    def icon(self, scope: str) -> ReplyIcon:
        return self.icons.get(scope) or _icon(scope, self.watching, [])

    @property
    def watching(self) -> bool:
        return any(icon.watching for icon in self.icons.values())

    def context(self) -> dict[str, Any]:
        return {"replies": self}


async def watching(db: AsyncSession, user_id: int) -> bool:
    """Whether the user's inbox is watched (IMAP set up in Settings)."""
    host = await db.scalar(select(Mailbox.imap_host).where(Mailbox.user_id == user_id))
    return bool(host)


async def reply_view(
    db: AsyncSession,
    user_id: int,
    message_ids: Iterable[int],
    recipients: Iterable[tuple[int, int]] = (),
) -> ReplyView:
    """Icons for some of the user's messages and for some copies ((message id, recipient id))."""
    wanted = list(dict.fromkeys(message_ids))
    copies = list(recipients)
    lines = await replies_for_messages(
        db, user_id, list(dict.fromkeys([*wanted, *(m for m, _ in copies)]))
    )
    on = await watching(db, user_id)
    icons = {f"m{m}": _icon(f"m{m}", on, lines.get(m, [])) for m in wanted}
    for message_id, recipient_id in copies:
        mine = [line for line in lines.get(message_id, []) if line.recipient_id == recipient_id]
        icons[f"r{recipient_id}"] = _icon(f"r{recipient_id}", on, mine)
    return ReplyView(icons, lines)
