"""`mailbeacon classify`: the classifier over hits described as JSON lines.

For an operator asking "why was this a scanner?", and for scoring the rules on
a labelled set: each input line is one hit, e.g.

    {"copy": "anna", "kind": "open", "user_agent": "Mozilla/5.0", "ip": "172.225.1.2",
     "seconds_after_delivery": 12}

(`copy` groups the hits of one recipient's copy, judged in time order as the
processor would; `kind` is open or click; `link` names a link of the copy,
`"honeypot"` the invisible one; optional `method`, `purpose` ("prefetch"),
`links` (how many links the message has, default 3), `pixel` (the copy
carries one, default true), `own_copy`, `outbox`). The full IP is tagged with
the network table as the collector does, then truncated. Each output line is
the input with `class`, `reason`, `counted`, `duplicate`, `forwarded`,
`inferred_open` and `client` added; a line that is not a JSON object gets
`{"error": ...}` and the rest go on.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from mailbeacon.core.agents import describe_agent
from mailbeacon.core.hits import HitKind, truncate_ip
from mailbeacon.core.signals import (
    DEFAULT_RULES,
    CopyFacts,
    CopyHistory,
    Judgement,
    Rules,
    Sighting,
    judge,
    record,
)

DELIVERED = datetime(2026, 1, 1, tzinfo=UTC)  # any fixed moment: only differences matter
HONEYPOT = 0


@dataclass
class _Copy:
    facts: CopyFacts
    lines: list[tuple[int, dict[str, Any], Sighting]] = field(default_factory=list)


def classify_lines(
    lines: Iterable[str], tag_of: Callable[[str], str], rules: Rules = DEFAULT_RULES
) -> Iterator[str]:
    """Judge every hit described in `lines`; yields one JSON line per input line, in order."""
    copies: dict[str, _Copy] = {}
    answers: dict[int, str] = {}
    count = 0
    for count, line in enumerate(lines, start=1):
        try:
            spec = json.loads(line)
            if not isinstance(spec, dict):
                raise ValueError("each line must be a JSON object")
            key = str(spec.get("copy", f"line {count}"))
            copy = copies.get(key) or copies.setdefault(key, _Copy(_facts(spec)))
            copy.lines.append((count, spec, _sighting(count, spec, tag_of)))
        except (ValueError, TypeError) as exc:
            answers[count] = json.dumps({"error": str(exc)})
    for copy in copies.values():
        ordered = sorted(copy.lines, key=lambda entry: entry[2].at)
        history = CopyHistory(later=[sighting for _, _, sighting in ordered])
        for number, spec, sighting in ordered:
            judgement = judge(sighting, copy.facts, history, rules)
            record(sighting, judgement, history)
            answers[number] = json.dumps(spec | _answer(sighting, judgement), ensure_ascii=False)
    for number in range(1, count + 1):
        yield answers[number]


def _facts(spec: dict[str, Any]) -> CopyFacts:
    links = int(spec.get("links", 3))
    return CopyFacts(
        delivered_at=DELIVERED,
        pixel=bool(spec.get("pixel", True)),
        link_ids=frozenset(range(1, links + 1)),
        honeypot_ids=frozenset({HONEYPOT}),
        own_copy=bool(spec.get("own_copy", False)),
        outbox=bool(spec.get("outbox", False)),
    )


def _sighting(number: int, spec: dict[str, Any], tag_of: Callable[[str], str]) -> Sighting:
    link = spec.get("link")
    link_id = HONEYPOT if link == "honeypot" else None if link is None else int(link)
    kind = HitKind(str(spec.get("kind", "click" if link_id is not None else "open")))
    if kind is HitKind.CLICK and link_id is None:
        link_id = 1
    ip = str(spec.get("ip", ""))
    return Sighting(
        hit_id=str(number),
        kind=kind,
        at=DELIVERED + timedelta(seconds=float(spec.get("seconds_after_delivery", 3600))),
        link_id=link_id if kind is HitKind.CLICK else None,
        user_agent=str(spec.get("user_agent", ""))[:512],
        ip=truncate_ip(ip),
        network=str(spec.get("network") or tag_of(ip)),
        method=str(spec.get("method", "GET")).upper(),
        prefetch="prefetch" in str(spec.get("purpose", "")).lower(),
    )


def _answer(sighting: Sighting, judgement: Judgement) -> dict[str, Any]:
    return {
        "class": judgement.signal.value,
        "reason": judgement.reason.value,
        "counted": judgement.counted,
        "duplicate": judgement.duplicate,
        "forwarded": judgement.forwarded,
        "inferred_open": judgement.inferred_open,
        "client": describe_agent(sighting.user_agent).words(),
        "network": sighting.network,
    }
