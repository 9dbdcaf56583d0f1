"""Honest signals (B2, B3, B4): what a hit says about a person, and why.

Interface first; the rules follow in this module.
"""

from __future__ import annotations

from enum import StrEnum


class SignalClass(StrEnum):
    """Who or what made a hit."""

    HUMAN = "human"  # a person's mail client or browser
    PROXY = "proxy"  # an image proxy fetching for a person (time known, device not)
    PREFETCH = "prefetch"  # a privacy prefetch: says nothing about a person
    SCANNER = "scanner"  # security, preview or other software
    SELF = "self"  # the sender


COUNTED_CLASSES = frozenset({SignalClass.HUMAN, SignalClass.PROXY})


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
    PREFETCH_HEADER = "prefetch_header"  # Purpose/Sec-Purpose: prefetch
    # scanner
    HEAD_REQUEST = "head_request"
    SCANNER_AGENT = "scanner_agent"  # a known security scanner's agent
    LINK_PREVIEW = "link_preview"  # chat and social link previews
    HTTP_LIBRARY = "http_library"  # curl, python-requests, Go, Java ...
    BOT_AGENT = "bot_agent"  # other crawlers and headless browsers
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
