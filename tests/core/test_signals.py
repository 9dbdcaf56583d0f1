"""The classifier's rules (B2, B3, B4), one request shape or history at a time.

Agents here are real strings (sources in tests/core/test_agents.py, which
checks how each agent is recognised); this module checks what the rules
make of a hit given its copy and the hits around it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailbeacon.core.hits import HitKind
from mailbeacon.core.signals import (
    COUNTED_CLASSES,
    DEFAULT_RULES,
    CopyFacts,
    CopyHistory,
    Judgement,
    Reason,
    Sighting,
    SignalClass,
    judge,
    record,
)

DELIVERED = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)

OUTLOOK_WINDOWS = "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17029; Pro)"
APPLE_MAIL_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
)
THUNDERBIRD = "Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Thunderbird/115.5.0"
CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)
GMAIL_PROXY = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
)
GMAIL_DELIVERY = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/42.0.2311.135 Safari/537.36 Edge/12.246"
)
YAHOO_PROXY = "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html"
APPLE_MPP = "Mozilla/5.0"
CURL = "curl/8.4.0"
REQUESTS = "python-requests/2.31.0"
SLACK = "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"
HEADLESS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/120.0.0.0 Safari/537.36"
)

_ids = count()
LINKS = frozenset({11, 12, 13})
HONEYPOT = 99
COPY = CopyFacts(delivered_at=DELIVERED, link_ids=LINKS, honeypot_ids=frozenset({HONEYPOT}))


def hit(
    agent: str,
    after: timedelta = HOUR,
    *,
    kind: HitKind = HitKind.OPEN,
    link: int | None = None,
    ip: str = "198.51.100.0",
    network: str = "",
    method: str = "GET",
    prefetch: bool = False,
) -> Sighting:
    return Sighting(
        hit_id=f"h{next(_ids)}",
        kind=HitKind.CLICK if link is not None else kind,
        at=DELIVERED + after,
        link_id=link,
        user_agent=agent,
        ip=ip,
        network=network,
        method=method,
        prefetch=prefetch,
    )


def run(hits: list[Sighting], copy: CopyFacts = COPY) -> list[Judgement]:
    """Judge hits in order as the processor does, every hit visible as `later`."""
    history = CopyHistory(later=hits)
    judgements = []
    for sighting in hits:
        judgement = judge(sighting, copy, history, DEFAULT_RULES)
        record(sighting, judgement, history)
        judgements.append(judgement)
    return judgements


def one(sighting: Sighting, copy: CopyFacts = COPY) -> tuple[SignalClass, Reason]:
    judgement = run([sighting], copy)[0]
    return judgement.signal, judgement.reason


# Sources: Samsung Email sends the plain Android web view agent (matomo device-detector
# fixtures); Outlook on the web is the browser itself; Safe Links' detonation and
# Proofpoint's URL Defense click with ordinary Chrome/Edge agents from their own networks
# (Proofpoint TAP sample click, rapid7/insightconnect-plugins#895).
SAMSUNG_EMAIL = (
    "Mozilla/5.0 (Linux; Android 13; SM-S911B Build/TP1A.220624.014; wv) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Version/4.0 Chrome/119.0.6045.163 Mobile Safari/537.36"
)
IPHONE_MAIL = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148"
)
EDGE = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0"
)
BARRACUDA = "Mozilla/5.0 (compatible; Barracuda Sentinel (EE))"

# (what, hit, class, reason): request shapes on their own, an hour after delivery.
SHAPES = [
    ("Samsung Email opens", hit(SAMSUNG_EMAIL), SignalClass.HUMAN, Reason.MAIL_CLIENT),
    ("iPhone Mail opens", hit(IPHONE_MAIL), SignalClass.HUMAN, Reason.MAIL_CLIENT),
    ("Outlook on the web (Edge) opens", hit(EDGE), SignalClass.HUMAN, Reason.BROWSER),
    (
        "Safe Links from Microsoft's network",
        hit(EDGE, link=11, network="microsoft"),
        SignalClass.SCANNER,
        Reason.SCANNER_NETWORK,
    ),
    ("Barracuda's scanner", hit(BARRACUDA, link=11), SignalClass.SCANNER, Reason.SCANNER_AGENT),
    ("Outlook desktop opens", hit(OUTLOOK_WINDOWS), SignalClass.HUMAN, Reason.MAIL_CLIENT),
    ("Apple Mail on macOS opens", hit(APPLE_MAIL_MAC), SignalClass.HUMAN, Reason.MAIL_CLIENT),
    ("Thunderbird opens", hit(THUNDERBIRD), SignalClass.HUMAN, Reason.MAIL_CLIENT),
    ("a browser clicks", hit(CHROME_WINDOWS, link=11), SignalClass.HUMAN, Reason.BROWSER),
    (
        "Gmail's image proxy",
        hit(GMAIL_PROXY, network="google"),
        SignalClass.PROXY,
        Reason.IMAGE_PROXY,
    ),
    ("Yahoo's image proxy", hit(YAHOO_PROXY), SignalClass.PROXY, Reason.IMAGE_PROXY),
    (
        "Gmail at delivery",
        hit(GMAIL_DELIVERY, timedelta(seconds=2)),
        SignalClass.PREFETCH,
        Reason.DELIVERY_FETCH,
    ),
    (
        "Apple MPP from Apple's relay",
        hit(APPLE_MPP, timedelta(seconds=30), network="apple-relay"),
        SignalClass.PREFETCH,
        Reason.APPLE_MPP,
    ),
    ("Apple MPP's agent elsewhere", hit(APPLE_MPP), SignalClass.PREFETCH, Reason.APPLE_MPP),
    (
        "a HEAD request",
        hit(CHROME_WINDOWS, method="HEAD"),
        SignalClass.SCANNER,
        Reason.HEAD_REQUEST,
    ),
    (
        "a browser's prefetch",
        hit(CHROME_WINDOWS, link=11, prefetch=True),
        SignalClass.SCANNER,
        Reason.PREFETCH_HEADER,
    ),
    ("curl", hit(CURL, link=11), SignalClass.SCANNER, Reason.HTTP_LIBRARY),
    ("python-requests", hit(REQUESTS), SignalClass.SCANNER, Reason.HTTP_LIBRARY),
    ("Slack's link preview", hit(SLACK, link=11), SignalClass.SCANNER, Reason.LINK_PREVIEW),
    ("a headless browser", hit(HEADLESS, link=11), SignalClass.SCANNER, Reason.BOT_AGENT),
    (
        "a browser in Proofpoint's network",
        hit(CHROME_WINDOWS, link=11, network="proofpoint"),
        SignalClass.SCANNER,
        Reason.SCANNER_NETWORK,
    ),
    (
        "a browser in Mimecast's network",
        hit(CHROME_WINDOWS, network="mimecast"),
        SignalClass.SCANNER,
        Reason.SCANNER_NETWORK,
    ),
    ("the honeypot link", hit(CHROME_WINDOWS, link=HONEYPOT), SignalClass.SCANNER, Reason.HONEYPOT),
    ("no user agent at all", hit(""), SignalClass.SCANNER, Reason.NO_AGENT),
    (
        "an image proxy following a link",
        hit(GMAIL_PROXY, link=11),
        SignalClass.SCANNER,
        Reason.LINK_PREVIEW,
    ),
]


@pytest.mark.parametrize(
    ("sighting", "signal", "reason"),
    [pytest.param(s, c, r, id=what) for what, s, c, r in SHAPES],
)
def test_each_request_shape_gets_its_class_and_reason(
    sighting: Sighting, signal: SignalClass, reason: Reason
) -> None:
    assert one(sighting) == (signal, reason)


def test_only_people_and_image_proxies_count() -> None:
    judgements = run([hit(a) for a in (OUTLOOK_WINDOWS, GMAIL_PROXY, APPLE_MPP, CURL)])
    assert [j.counted for j in judgements] == [True, True, False, False]
    assert {SignalClass.HUMAN, SignalClass.PROXY} == COUNTED_CLASSES


def test_a_scanner_clicking_every_link_within_a_second_is_no_person() -> None:
    """The issue's scanner: three links in one second, each its own click."""
    clicks = [
        hit(CHROME_WINDOWS, HOUR + timedelta(milliseconds=300 * n), link=11 + n) for n in range(3)
    ]
    judgements = run(clicks)
    assert {(j.signal, j.reason) for j in judgements} == {(SignalClass.SCANNER, Reason.CLICK_BURST)}
    assert not any(j.counted for j in judgements)


def test_every_link_within_seconds_is_no_person_even_a_little_apart() -> None:
    clicks = [hit(CHROME_WINDOWS, HOUR + timedelta(seconds=1.5 * n), link=11 + n) for n in range(3)]
    assert {j.reason for j in run(clicks)} == {Reason.ALL_LINKS}


def test_a_person_clicking_two_links_a_minute_apart_counts_both() -> None:
    clicks = [
        hit(CHROME_WINDOWS, HOUR, link=11),
        hit(CHROME_WINDOWS, HOUR + timedelta(minutes=1), link=12),
    ]
    assert [(j.signal, j.counted) for j in run(clicks)] == [
        (SignalClass.HUMAN, True),
        (SignalClass.HUMAN, True),
    ]


def test_a_click_seconds_after_delivery_without_an_open_is_a_scanner() -> None:
    assert one(hit(CHROME_WINDOWS, timedelta(seconds=4), link=11)) == (
        SignalClass.SCANNER,
        Reason.CLICK_AT_DELIVERY,
    )


def test_a_quick_click_after_the_same_client_opened_is_a_person() -> None:
    judgements = run(
        [
            hit(OUTLOOK_WINDOWS, timedelta(seconds=10)),
            hit(OUTLOOK_WINDOWS, timedelta(seconds=25), link=11),
        ]
    )
    assert [(j.signal, j.counted) for j in judgements] == [
        (SignalClass.HUMAN, True),
        (SignalClass.HUMAN, True),
    ]


def test_a_quick_click_in_the_outbox_demo_is_the_recipient() -> None:
    """Day one: the outbox stands in for inboxes; no scanner sits on that path."""
    demo = CopyFacts(delivered_at=DELIVERED, link_ids=LINKS, outbox=True)
    assert one(hit(CHROME_WINDOWS, timedelta(seconds=4), link=11), demo)[0] is SignalClass.HUMAN


def test_a_data_centre_click_with_no_open_on_an_html_copy_is_a_scanner() -> None:
    assert one(hit(CHROME_WINDOWS, link=11, network="datacenter")) == (
        SignalClass.SCANNER,
        Reason.DATACENTER_CLICK,
    )
    text_only = CopyFacts(delivered_at=DELIVERED, pixel=False, link_ids=LINKS)
    assert one(hit(CHROME_WINDOWS, link=11, network="datacenter"), text_only)[0] is (
        SignalClass.HUMAN
    )


def test_a_data_centre_click_after_a_counted_open_is_a_person() -> None:
    judgements = run(
        [
            hit(OUTLOOK_WINDOWS),
            hit(CHROME_WINDOWS, HOUR + timedelta(minutes=2), link=11, network="datacenter"),
        ]
    )
    assert judgements[1].signal is SignalClass.HUMAN


def test_the_client_that_follows_the_honeypot_is_a_scanner_on_that_copy_before_and_after() -> None:
    """A sandbox loads the pixel, then follows every link, the honeypot first."""
    sandbox = dict(ip="203.0.113.0")
    judgements = run(
        [
            hit(CHROME_WINDOWS, HOUR, **sandbox),  # type: ignore[arg-type]
            hit(CHROME_WINDOWS, HOUR + timedelta(seconds=2), link=HONEYPOT, **sandbox),  # type: ignore[arg-type]
            hit(CHROME_WINDOWS, HOUR + timedelta(minutes=3), link=12, **sandbox),  # type: ignore[arg-type]
            hit(CHROME_WINDOWS, HOUR + timedelta(minutes=4), link=12),  # another network: a person
        ]
    )
    assert [j.reason for j in judgements] == [
        Reason.HONEYPOT_CLIENT,
        Reason.HONEYPOT,
        Reason.HONEYPOT_CLIENT,
        Reason.BROWSER,
    ]


def test_the_senders_own_copy_and_devices_are_self() -> None:
    own = CopyFacts(delivered_at=DELIVERED, own_copy=True)
    assert one(hit(OUTLOOK_WINDOWS), own) == (SignalClass.SELF, Reason.OWN_COPY)
    device = (CHROME_WINDOWS, "192.0.2.0")
    mine = CopyFacts(delivered_at=DELIVERED, sender_devices=frozenset({device}))
    assert one(hit(CHROME_WINDOWS, ip="192.0.2.0"), mine) == (SignalClass.SELF, Reason.OWN_DEVICE)
    assert one(hit(CHROME_WINDOWS, ip="198.51.100.0"), mine)[0] is SignalClass.HUMAN


def test_the_senders_browser_reading_the_outbox_demo_is_the_recipient() -> None:
    device = (CHROME_WINDOWS, "127.0.0.0")
    demo = CopyFacts(delivered_at=DELIVERED, outbox=True, sender_devices=frozenset({device}))
    assert one(hit(CHROME_WINDOWS, ip="127.0.0.0"), demo) == (SignalClass.HUMAN, Reason.BROWSER)


def test_three_hundred_fetches_in_seconds_are_one_open() -> None:
    fetches = [hit(OUTLOOK_WINDOWS, HOUR + timedelta(milliseconds=20 * n)) for n in range(300)]
    judgements = run(fetches)
    assert sum(j.counted for j in judgements) == 1
    assert all(j.duplicate for j in judgements[1:])
    assert {j.signal for j in judgements} == {SignalClass.HUMAN}


def test_a_reopen_after_the_dedupe_window_counts_again() -> None:
    judgements = run([hit(OUTLOOK_WINDOWS), hit(OUTLOOK_WINDOWS, 2 * HOUR)])
    assert [j.counted for j in judgements] == [True, True]


def test_proxy_repeats_from_changing_addresses_are_one_open() -> None:
    judgements = run(
        [
            hit(GMAIL_PROXY, HOUR, ip="66.249.84.0"),
            hit(GMAIL_PROXY, HOUR + timedelta(seconds=40), ip="66.249.88.0"),
        ]
    )
    assert [(j.counted, j.duplicate) for j in judgements] == [(True, False), (False, True)]


def test_a_click_with_no_open_counts_as_the_open_inferred() -> None:
    judgements = run(
        [hit(CHROME_WINDOWS, link=11), hit(CHROME_WINDOWS, HOUR + timedelta(minutes=9), link=12)]
    )
    assert [j.inferred_open for j in judgements] == [True, False]
    assert not run(
        [hit(OUTLOOK_WINDOWS), hit(CHROME_WINDOWS, HOUR + timedelta(minutes=1), link=11)]
    )[1].inferred_open


def test_a_clearly_different_client_and_network_later_is_possibly_forwarded() -> None:
    """B4: Outlook at the office, then Thunderbird on Linux elsewhere."""
    judgements = run(
        [
            hit(OUTLOOK_WINDOWS, HOUR, ip="198.51.100.0"),
            hit(THUNDERBIRD, 3 * HOUR, ip="203.0.113.0"),
            hit(THUNDERBIRD, 4 * HOUR, ip="203.0.113.0", link=11),
        ]
    )
    assert [(j.counted, j.forwarded) for j in judgements] == [
        (True, False),
        (False, True),
        (False, True),
    ]


@pytest.mark.parametrize(
    ("agent", "ip"),
    [
        pytest.param(OUTLOOK_WINDOWS, "203.0.113.0", id="same client, another network (home)"),
        pytest.param(THUNDERBIRD, "198.51.100.0", id="another client, same network (office)"),
    ],
)
def test_the_same_person_elsewhere_or_on_a_second_device_is_not_forwarded(
    agent: str, ip: str
) -> None:
    judgements = run([hit(OUTLOOK_WINDOWS, HOUR, ip="198.51.100.0"), hit(agent, 3 * HOUR, ip=ip)])
    assert [(j.counted, j.forwarded) for j in judgements] == [(True, False), (True, False)]


def test_image_proxies_are_never_taken_for_a_forward() -> None:
    judgements = run([hit(OUTLOOK_WINDOWS, HOUR), hit(GMAIL_PROXY, 3 * HOUR, ip="66.249.84.0")])
    assert [(j.signal, j.counted, j.forwarded) for j in judgements][1] == (
        SignalClass.PROXY,
        True,
        False,
    )


AGENTS = st.sampled_from(
    [OUTLOOK_WINDOWS, CHROME_WINDOWS, GMAIL_PROXY, APPLE_MPP, CURL, "", "\x00" * 3]
)


@given(
    st.lists(
        st.tuples(
            AGENTS,
            st.integers(0, 7200),
            st.sampled_from([None, 11, 12, 13, HONEYPOT]),
            st.sampled_from(["a", "b"]),
        ),
        max_size=30,
    )
)
def test_judging_never_fails_and_only_counted_classes_count(
    specs: list[tuple[str, int, int | None, str]],
) -> None:
    hits = [
        hit(agent, timedelta(seconds=seconds), link=link, ip=f"198.51.100.{ord(net)}")
        for agent, seconds, link, net in sorted(specs, key=lambda spec: spec[1])
    ]
    for judgement in run(hits):
        assert not judgement.counted or judgement.signal in COUNTED_CLASSES
        assert not (judgement.counted and (judgement.duplicate or judgement.forwarded))
