"""Hits: the raw facts the collector records, and how we judge them.

A hit is what happened on the wire (a GET or HEAD of a pixel or a click URL)
and nothing more; judgement lives in `classify`, so a better classifier can be
re-run over old hits without losing anything.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import lru_cache


class HitKind(StrEnum):
    """Which endpoint was hit."""

    OPEN = "open"
    CLICK = "click"


class Verdict(StrEnum):
    """Why a hit does or does not count as a person opening or clicking."""

    HUMAN = "human"
    PREFETCH = "prefetch"  # a browser or client fetching ahead, not a person
    HEAD = "head"  # a HEAD request: a link checker, never a reader


COUNTED_VERDICTS = frozenset({Verdict.HUMAN})


@dataclass(frozen=True, slots=True)
class Hit:
    """One request to a tracking endpoint, as recorded by the collector.

    `hit_id` is made at the collector, so replaying a spooled hit can never
    count it twice.
    """

    hit_id: str
    received_at: datetime
    kind: HitKind
    message_id: int
    recipient_id: int
    link_id: int | None
    method: str
    prefetch: bool
    ip: str
    user_agent: str
    network: str = ""

    def to_row(self) -> dict[str, object]:
        """The hit as a row of the hits table: its fields are the column names."""
        return {
            "hit_id": self.hit_id,
            "received_at": self.received_at,
            "kind": self.kind.value,
            "message_id": self.message_id,
            "recipient_id": self.recipient_id,
            "link_id": self.link_id,
            "method": self.method,
            "prefetch": self.prefetch,
            "ip": self.ip,
            "user_agent": self.user_agent,
            "network": self.network,
        }

    def to_record(self) -> dict[str, object]:
        """The row in JSON-friendly form (the spool format): the time as ISO 8601."""
        return {**self.to_row(), "received_at": self.received_at.isoformat()}

    @classmethod
    def from_record(cls, record: dict[str, object]) -> Hit:
        """The inverse of `to_record`; raises ValueError/KeyError/TypeError on bad data."""
        link_id = record["link_id"]
        return cls(
            hit_id=str(record["hit_id"]),
            received_at=datetime.fromisoformat(str(record["received_at"])),
            kind=HitKind(str(record["kind"])),
            message_id=int(str(record["message_id"])),
            recipient_id=int(str(record["recipient_id"])),
            link_id=None if link_id is None else int(str(link_id)),
            method=str(record["method"]),
            prefetch=bool(record["prefetch"]),
            ip=str(record["ip"]),
            user_agent=str(record["user_agent"]),
            network=str(record.get("network", "")),
        )


def new_hit_id() -> str:
    """A collector-made unique id (random, 128 bits, hex)."""
    return os.urandom(16).hex()


def classify(hit: Hit) -> Verdict:
    """Judge one hit. Kept pure so it can be re-run over the whole log."""
    if hit.method == "HEAD":
        return Verdict.HEAD
    if hit.prefetch:
        return Verdict.PREFETCH
    return Verdict.HUMAN


@lru_cache(maxsize=65536)
def truncate_ip(ip: str) -> str:
    """Keep only the network part of an address: /24 for IPv4, /48 for IPv6.

    Enough to tell networks apart, not enough to find a person.
    """
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ""
    prefix = 24 if address.version == 4 else 48
    network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    return str(network.network_address)
