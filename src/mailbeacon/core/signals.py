"""Honest signals (B2, B3, B4): what a hit says about a person, and why.

`judge` labels one hit of one recipient's copy with a class and a reason a
person can read, from the hit itself and what the processor knows about the
copy: when it was delivered, its links, the sender's own devices, the hits
around it (judged ones before it, raw ones shortly after it), and the first
client a person read it with. Pure and deterministic, so a better rule can be
re-run over the whole hit log (`mailbeacon worker --rebuild`).

The rules, first match wins (each names its source in RULES.md terms in the
README's "Honest signals" section):

1. The request itself: HEAD, or a browser's `Purpose: prefetch`, is software.
2. The honeypot link, and afterwards the client that followed it, on this copy.
3. The agent (core.agents): no agent at all is software; Apple Mail Privacy Protection's bare
   "Mozilla/5.0" and Gmail's delivery-time fetcher are prefetches; scanners,
   link previews, HTTP libraries and bots are scanners.
4. The network (tagged at the collector before truncation, core.networks):
   mail-security vendors' networks are scanners.
5. Clicks by timing: several links within a second, every link at once, a
   click within seconds of delivery with no earlier open by that client, or a
   click with no open on a copy that carries a pixel from a data-centre network.
6. The sender: their own copy, or one of their signed-in browsers (except on
   copies the embedded outbox captured: it stands in for the recipients' inboxes).
7. Image proxies are real opens whose device is unknown; the rest is a person.

Then, for what would count: a repeat of the same client within the dedupe
window is a duplicate (kept, counted once); a person's open or click from a
clearly different client AND network than the copy's first reader is
"possibly forwarded" (not the recipient's own); a counted click on a copy with
no counted open counts as the open too ("inferred from a click").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from mailbeacon.core.agents import Agent, AgentKind, describe_agent
from mailbeacon.core.hits import HitKind


class SignalClass(StrEnum):
    """Who or what made a hit."""

    HUMAN = "human"  # a person's mail client or browser
    PROXY = "proxy"  # an image proxy fetching for a person (time known, device not)
    PREFETCH = "prefetch"  # a privacy prefetch: says nothing about a person
    SCANNER = "scanner"  # security, preview or other software
    SELF = "self"  # the sender


COUNTED_CLASSES = frozenset({SignalClass.HUMAN, SignalClass.PROXY})
MACHINE_CLASSES = frozenset({SignalClass.PREFETCH, SignalClass.SCANNER})


class Reason(StrEnum):
    """Why a hit got its class: each has a sentence a person can read (web layer)."""

    # human
    MAIL_CLIENT = "mail_client"  # a known mail app
    BROWSER = "browser"  # a browser (webmail, or a link opened)
    UNKNOWN_AGENT = "unknown_agent"  # nothing says software: taken as a person
    # proxy
    IMAGE_PROXY = "image_proxy"  # Gmail, Yahoo and other image proxies
    # prefetch
    APPLE_MPP = "apple_mpp"  # Apple Mail Privacy Protection
    DELIVERY_FETCH = "delivery_fetch"  # Gmail's fetch at delivery
    # scanner
    PREFETCH_HEADER = "prefetch_header"  # Purpose/Sec-Purpose: prefetch
    HEAD_REQUEST = "head_request"
    SCANNER_AGENT = "scanner_agent"  # a known security scanner's agent
    LINK_PREVIEW = "link_preview"  # chat and social link previews
    HTTP_LIBRARY = "http_library"  # curl, python-requests, Go, Java ...
    BOT_AGENT = "bot_agent"  # other crawlers and headless browsers
    NO_AGENT = "no_agent"  # no User-Agent at all: every mail app and browser sends one
    SCANNER_NETWORK = "scanner_network"  # from a mail-security vendor's network
    HONEYPOT = "honeypot"  # followed the invisible link
    HONEYPOT_CLIENT = "honeypot_client"  # the client that followed it, on this copy
    CLICK_AT_DELIVERY = "click_at_delivery"  # seconds after delivery
    CLICK_BURST = "click_burst"  # several links within the same second
    ALL_LINKS = "all_links"  # every link of the message at once
    DATACENTER_CLICK = "datacenter_click"  # no open, from a data-centre network
    # self
    OWN_COPY = "own_copy"  # the sender's own copy
    OWN_DEVICE = "own_device"  # one of the sender's signed-in browsers


# Network tags (core.networks, set by the collector) that mean "a mail-security
# vendor's scanner", and those that mean "a data centre, not a home or office".
SCANNER_NETWORKS = frozenset(
    {
        "microsoft",
        "proofpoint",
        "mimecast",
        "barracuda",
        "cisco",
        "trendmicro",
        "sophos",
        "forcepoint",
        "fortinet",
        "symantec",
        "zscaler",
    }
)
DATACENTER_NETWORKS = frozenset({"datacenter"}) | SCANNER_NETWORKS

_AGENT_RULES: dict[AgentKind, tuple[SignalClass, Reason]] = {
    AgentKind.PRIVACY_PREFETCH: (SignalClass.PREFETCH, Reason.APPLE_MPP),
    AgentKind.DELIVERY_FETCHER: (SignalClass.PREFETCH, Reason.DELIVERY_FETCH),
    AgentKind.SCANNER: (SignalClass.SCANNER, Reason.SCANNER_AGENT),
    AgentKind.LINK_PREVIEW: (SignalClass.SCANNER, Reason.LINK_PREVIEW),
    AgentKind.HTTP_LIBRARY: (SignalClass.SCANNER, Reason.HTTP_LIBRARY),
    AgentKind.BOT: (SignalClass.SCANNER, Reason.BOT_AGENT),
}
_PERSON_REASONS: dict[AgentKind, Reason] = {
    AgentKind.MAIL_CLIENT: Reason.MAIL_CLIENT,
    AgentKind.BROWSER: Reason.BROWSER,
}


@dataclass(frozen=True, slots=True)
class Rules:
    """The thresholds. Defaults are what we ship; the processor may take
    others from settings (tests turn the delivery window off)."""

    # Repeats of one client's open (or one link's click) closer than this are one.
    dedupe_window: timedelta = timedelta(minutes=5)
    # Clicks on different links closer than this are one burst: no person.
    burst_window: timedelta = timedelta(seconds=1)
    # Every link of the message clicked within this window: no person.
    all_links_window: timedelta = timedelta(seconds=5)
    # A click this soon after delivery, with no earlier open by that client.
    delivery_click_window: timedelta = timedelta(seconds=60)
    # ...where an open counts as "earlier" only this long before the click.
    open_before_click: timedelta = timedelta(seconds=3)
    # How far past a hit the rules look (a burst's later clicks, the honeypot
    # followed next): the processor lets each hit settle this long first.
    lookahead: timedelta = timedelta(seconds=5)

    @property
    def lookback(self) -> timedelta:
        """How far back the processor must load judged events of a copy."""
        return max(
            self.dedupe_window,
            self.burst_window,
            self.all_links_window,
            self.delivery_click_window,
        )


DEFAULT_RULES = Rules()

Client = tuple[str, str]  # (user agent, truncated ip)


@dataclass(frozen=True, slots=True)
class Sighting:
    """One hit as the rules see it."""

    hit_id: str
    kind: HitKind
    at: datetime
    link_id: int | None
    user_agent: str
    ip: str
    network: str = ""
    method: str = "GET"
    prefetch: bool = False

    @property
    def client(self) -> Client:
        return (self.user_agent, self.ip)


@dataclass(frozen=True, slots=True)
class CopyFacts:
    """What the processor knows about the recipient's copy a hit belongs to."""

    delivered_at: datetime | None = None
    pixel: bool = True  # the copy carries the open pixel (HTML with open tracking)
    link_ids: frozenset[int] = frozenset()  # its tracked links, the honeypot excluded
    honeypot_ids: frozenset[int] = frozenset()
    own_copy: bool = False  # addressed to the sender
    outbox: bool = False  # captured by the embedded outbox (the day-one demo)
    sender_devices: frozenset[Client] = frozenset()
    marked_clients: frozenset[Client] = frozenset()  # followed the honeypot earlier


@dataclass(frozen=True, slots=True)
class Judged:
    """An earlier hit of the same copy and what was decided about it."""

    sighting: Sighting
    signal: SignalClass
    reason: Reason
    counted: bool
    duplicate: bool = False
    forwarded: bool = False
    inferred_open: bool = False


@dataclass(frozen=True, slots=True)
class Judgement:
    """The class and reason of a hit, and whether it counts."""

    signal: SignalClass
    reason: Reason
    counted: bool = False
    duplicate: bool = False
    forwarded: bool = False
    inferred_open: bool = False

    @property
    def machine(self) -> bool:
        return self.signal in MACHINE_CLASSES


@dataclass(slots=True)
class CopyHistory:
    """What the rules know of one copy's hits around the one being judged.

    `earlier` are judged hits in time order (the processor loads those within
    `Rules.lookback` and appends each new judgement); `later` are raw hits up
    to the processor's settle time after the batch; `reader` is the client of
    the first counted person event (B4); `counted_opens` is how many counted
    opens the copy has so far (inferred ones included).
    """

    earlier: list[Judged] = field(default_factory=list)
    later: Sequence[Sighting] = ()
    reader: Client | None = None
    counted_opens: int = 0


def judge(
    hit: Sighting, copy: CopyFacts, history: CopyHistory, rules: Rules = DEFAULT_RULES
) -> Judgement:
    """Class, reason and counting of one hit. Pure; see the module docstring."""
    history = _within_reach(hit, history, rules)
    agent = describe_agent(hit.user_agent)
    signal, reason = _classify(hit, agent, copy, history, rules)
    if signal not in COUNTED_CLASSES:
        return Judgement(signal, reason)
    duplicate = _is_repeat(hit, signal, history.earlier, rules)
    forwarded = (
        signal is SignalClass.HUMAN
        and history.reader is not None
        and _clearly_different(hit.client, history.reader)
    )
    counted = not duplicate and not forwarded
    inferred = counted and hit.kind is HitKind.CLICK and history.counted_opens == 0
    return Judgement(signal, reason, counted, duplicate, forwarded, inferred)


def _within_reach(hit: Sighting, history: CopyHistory, rules: Rules) -> CopyHistory:
    """Only what lies within the look-back before and the look-ahead after the hit.

    The judgement must not depend on how the processor cut its batches: it
    loads at least this much around every hit, and never uses more.
    """
    since, until = hit.at - rules.lookback, hit.at + rules.lookahead
    return CopyHistory(
        earlier=[judged for judged in history.earlier if since <= judged.sighting.at <= hit.at],
        later=[sighting for sighting in history.later if since <= sighting.at <= until],
        reader=history.reader,
        counted_opens=history.counted_opens,
    )


def record(hit: Sighting, judgement: Judgement, history: CopyHistory) -> None:
    """Fold a judgement into the copy's history, for the hits after it."""
    history.earlier.append(
        Judged(
            hit,
            judgement.signal,
            judgement.reason,
            judgement.counted,
            judgement.duplicate,
            judgement.forwarded,
            judgement.inferred_open,
        )
    )
    if judgement.counted and judgement.signal is SignalClass.HUMAN and history.reader is None:
        history.reader = hit.client
    if judgement.counted and (hit.kind is HitKind.OPEN or judgement.inferred_open):
        history.counted_opens += 1


def _classify(
    hit: Sighting,
    agent: Agent,
    copy: CopyFacts,
    history: CopyHistory,
    rules: Rules,
) -> tuple[SignalClass, Reason]:
    if hit.method == "HEAD":
        return SignalClass.SCANNER, Reason.HEAD_REQUEST
    if hit.prefetch:
        return SignalClass.SCANNER, Reason.PREFETCH_HEADER
    if hit.link_id is not None and hit.link_id in copy.honeypot_ids:
        return SignalClass.SCANNER, Reason.HONEYPOT
    if not hit.user_agent.strip():
        return SignalClass.SCANNER, Reason.NO_AGENT
    by_agent = _AGENT_RULES.get(agent.kind)
    if by_agent is not None:
        return by_agent
    if agent.kind is AgentKind.IMAGE_PROXY and hit.kind is HitKind.CLICK:
        # Image proxies fetch images; one that follows a link is previewing it.
        return SignalClass.SCANNER, Reason.LINK_PREVIEW
    if hit.network in SCANNER_NETWORKS and agent.kind is not AgentKind.IMAGE_PROXY:
        return SignalClass.SCANNER, Reason.SCANNER_NETWORK
    if _followed_honeypot(hit, copy, history):
        return SignalClass.SCANNER, Reason.HONEYPOT_CLIENT
    if hit.kind is HitKind.CLICK:
        by_timing = _click_timing(hit, copy, history, rules)
        if by_timing is not None:
            return SignalClass.SCANNER, by_timing
    if copy.own_copy:
        return SignalClass.SELF, Reason.OWN_COPY
    if not copy.outbox and hit.client in copy.sender_devices:
        return SignalClass.SELF, Reason.OWN_DEVICE
    if agent.kind is AgentKind.IMAGE_PROXY:
        return SignalClass.PROXY, Reason.IMAGE_PROXY
    return SignalClass.HUMAN, _PERSON_REASONS.get(agent.kind, Reason.UNKNOWN_AGENT)


def _followed_honeypot(hit: Sighting, copy: CopyFacts, history: CopyHistory) -> bool:
    """This client followed the copy's honeypot, before this hit or just after."""
    if hit.client in copy.marked_clients:
        return True
    if any(
        judged.reason is Reason.HONEYPOT and judged.sighting.client == hit.client
        for judged in history.earlier
    ):
        return True
    return any(
        later.link_id in copy.honeypot_ids and later.client == hit.client
        for later in history.later
        if later.link_id is not None
    )


def _click_timing(
    hit: Sighting, copy: CopyFacts, history: CopyHistory, rules: Rules
) -> Reason | None:
    """Clicks no person makes: too fast, too many, too soon, from a data centre."""
    nearby = [
        sighting
        for sighting in _neighbours(hit, history)
        if sighting.kind is HitKind.CLICK
        and sighting.link_id is not None
        and sighting.link_id not in copy.honeypot_ids
    ]
    if any(
        other.link_id != hit.link_id and abs(other.at - hit.at) <= rules.burst_window
        for other in nearby
    ):
        return Reason.CLICK_BURST
    if len(copy.link_ids) >= 2 and _all_links_at_once(hit, nearby, copy, rules):
        return Reason.ALL_LINKS
    if (
        not copy.outbox
        and copy.delivered_at is not None
        and timedelta(0) <= hit.at - copy.delivered_at < rules.delivery_click_window
        and not _opened_before(hit, history, rules.open_before_click)
    ):
        return Reason.CLICK_AT_DELIVERY
    if copy.pixel and hit.network in DATACENTER_NETWORKS and history.counted_opens == 0:
        return Reason.DATACENTER_CLICK
    return None


def _neighbours(hit: Sighting, history: CopyHistory) -> list[Sighting]:
    """The copy's other hits, judged or not yet, without this one."""
    seen = {hit.hit_id}
    neighbours: list[Sighting] = []
    for sighting in [judged.sighting for judged in history.earlier] + list(history.later):
        if sighting.hit_id not in seen:
            seen.add(sighting.hit_id)
            neighbours.append(sighting)
    return neighbours


def _all_links_at_once(
    hit: Sighting, clicks: Sequence[Sighting], copy: CopyFacts, rules: Rules
) -> bool:
    """Some window of `all_links_window` around this click holds every link."""
    close = sorted(
        [hit, *(other for other in clicks if abs(other.at - hit.at) <= rules.all_links_window)],
        key=lambda other: other.at,
    )
    for start in close:
        window_end = start.at + rules.all_links_window
        links = {hit.link_id} | {
            other.link_id for other in close if start.at <= other.at <= window_end
        }
        if start.at <= hit.at <= window_end and copy.link_ids <= links:
            return True
    return False


def _opened_before(hit: Sighting, history: CopyHistory, margin: timedelta) -> bool:
    """A counted open of the copy by this client at least `margin` before this hit."""
    return any(
        judged.counted
        and judged.sighting.kind is HitKind.OPEN
        and judged.sighting.at <= hit.at - margin
        and judged.sighting.client == hit.client
        for judged in history.earlier
    )


def _is_repeat(hit: Sighting, signal: SignalClass, earlier: Sequence[Judged], rules: Rules) -> bool:
    """The same client did the same thing within the dedupe window (sliding).

    An image proxy's address changes from fetch to fetch, so for proxies the
    agent alone is the client.
    """
    for judged in earlier:
        if not timedelta(0) <= hit.at - judged.sighting.at <= rules.dedupe_window:
            continue
        if judged.signal is not signal or judged.sighting.kind is not hit.kind:
            continue
        if hit.kind is HitKind.CLICK and judged.sighting.link_id != hit.link_id:
            continue
        if judged.sighting.user_agent != hit.user_agent:
            continue
        if signal is SignalClass.PROXY or judged.sighting.ip == hit.ip:
            return True
    return False


def _clearly_different(client: Client, reader: Client) -> bool:
    """Another app or system AND another network than the first reader's.

    Either alone is the same person on a second device or away from the
    office; both together is most likely someone else (B4).
    """
    if client[1] == reader[1]:
        return False
    this, first = describe_agent(client[0]), describe_agent(reader[0])
    return (this.app, this.platform) != (first.app, first.platform)
