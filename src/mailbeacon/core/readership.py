"""What a recipient did with their copy, in one word (B3, B4).

The counts on a recipient row say how many opens of each kind were counted;
this module turns them, with the copy's delivery status, into the one status
the pages, tooltips and API show. It exists so that every place says the same
thing, and so that a copy still queued or refused reads "not delivered",
never "0 opens" (which would suggest it arrived and was ignored).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

DELIVERED = frozenset({"sent"})  # recipients.status of a copy the server accepted


class ReadingStatus(StrEnum):
    """Ordered from the strongest evidence of a reader to none."""

    NOT_DELIVERED = "not_delivered"  # queued, sending, refused or unknown
    OPENED_BY_PERSON = "opened_by_person"  # a person's mail client loaded the pixel
    OPENED_VIA_PROXY = "opened_via_proxy"  # an image proxy fetched it for a person
    OPENED_INFERRED = "opened_inferred"  # a person clicked; images were blocked
    MACHINE_ONLY = "machine_only"  # only prefetches, scanners or the sender
    NOT_OPENED = "not_opened"


@dataclass(frozen=True, slots=True)
class ReaderCounts:
    """A recipient's counts as the processor keeps them (recipients table)."""

    open_count: int = 0  # every counted open, inferred ones included
    click_count: int = 0  # counted clicks
    person_open_count: int = 0
    proxy_open_count: int = 0
    inferred_open_count: int = 0
    machine_event_count: int = 0  # events that are not counted (not human, not proxy)
    forwarded_count: int = 0  # opens that look like someone else's


@dataclass(frozen=True, slots=True)
class Reading:
    status: ReadingStatus
    possibly_forwarded: bool

    @property
    def opened(self) -> bool:
        return self.status in OPENED


OPENED = frozenset(
    {
        ReadingStatus.OPENED_BY_PERSON,
        ReadingStatus.OPENED_VIA_PROXY,
        ReadingStatus.OPENED_INFERRED,
    }
)


def reading_status(delivery: str, counts: ReaderCounts) -> Reading:
    """The status of one copy from its delivery status and counts.

    Any activity at all proves the copy arrived, whatever the delivery status
    says (an interrupted hand-over is "unknown" yet may have been delivered).
    A person's own open beats a proxy's, which beats one inferred from a
    click. Counts from before the processor kept them by kind (open_count
    without a kind) still read as opened by a person rather than as nothing.
    """
    forwarded = counts.forwarded_count > 0
    active = (
        counts.open_count
        or counts.click_count
        or counts.machine_event_count
        or counts.forwarded_count
    )
    if delivery not in DELIVERED and not active:
        return Reading(ReadingStatus.NOT_DELIVERED, False)
    if counts.person_open_count > 0:
        status = ReadingStatus.OPENED_BY_PERSON
    elif counts.proxy_open_count > 0:
        status = ReadingStatus.OPENED_VIA_PROXY
    elif counts.inferred_open_count > 0 or (counts.click_count > 0 and not counts.open_count):
        status = ReadingStatus.OPENED_INFERRED
    elif counts.open_count > 0:
        status = ReadingStatus.OPENED_BY_PERSON
    elif counts.machine_event_count > 0:
        status = ReadingStatus.MACHINE_ONLY
    else:
        status = ReadingStatus.NOT_OPENED
    return Reading(status, forwarded)
