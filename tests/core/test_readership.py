"""The one status per recipient that pages, tooltips and the API show (B3, B4)."""

from __future__ import annotations

import pytest

from mailbeacon.core.readership import ReaderCounts, ReadingStatus, reading_status

S = ReadingStatus


@pytest.mark.parametrize(
    ("delivery", "counts", "expected"),
    [
        ("queued", ReaderCounts(), S.NOT_DELIVERED),
        ("sending", ReaderCounts(), S.NOT_DELIVERED),
        ("failed", ReaderCounts(), S.NOT_DELIVERED),
        ("unknown", ReaderCounts(), S.NOT_DELIVERED),
        ("sent", ReaderCounts(), S.NOT_OPENED),
        ("sent", ReaderCounts(open_count=2, person_open_count=2), S.OPENED_BY_PERSON),
        (
            "sent",
            ReaderCounts(open_count=3, person_open_count=1, proxy_open_count=2),
            S.OPENED_BY_PERSON,
        ),
        ("sent", ReaderCounts(open_count=1, proxy_open_count=1), S.OPENED_VIA_PROXY),
        (
            "sent",
            ReaderCounts(open_count=1, click_count=1, inferred_open_count=1),
            S.OPENED_INFERRED,
        ),
        ("sent", ReaderCounts(click_count=1), S.OPENED_INFERRED),
        ("sent", ReaderCounts(machine_event_count=4), S.MACHINE_ONLY),
        ("sent", ReaderCounts(open_count=1), S.OPENED_BY_PERSON),  # counted before kinds
        # activity proves delivery even when the hand-over's outcome is unknown
        ("unknown", ReaderCounts(open_count=1, person_open_count=1), S.OPENED_BY_PERSON),
        ("unknown", ReaderCounts(machine_event_count=1), S.MACHINE_ONLY),
    ],
)
def test_status_follows_the_strongest_evidence(
    delivery: str, counts: ReaderCounts, expected: ReadingStatus
) -> None:
    assert reading_status(delivery, counts).status is expected


def test_undelivered_copy_never_reads_as_not_opened() -> None:
    for delivery in ("queued", "failed", "unknown", "sending"):
        assert reading_status(delivery, ReaderCounts()).status is S.NOT_DELIVERED


def test_possibly_forwarded_is_kept_beside_the_status() -> None:
    reading = reading_status(
        "sent", ReaderCounts(open_count=1, person_open_count=1, forwarded_count=2)
    )
    assert reading.status is S.OPENED_BY_PERSON
    assert reading.possibly_forwarded
    assert reading.opened
    only_forwarded = reading_status("sent", ReaderCounts(forwarded_count=1))
    assert only_forwarded.possibly_forwarded
    assert not only_forwarded.opened
    assert not reading_status("sent", ReaderCounts()).possibly_forwarded
