"""What gets tracked, and why not: account switches x email toggles x body (S3-S5, S10).

The answer carries its reasons, so the composer can tell the user before
sending and the message can say afterwards (DESIGN rule 5).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from mailbeacon.core.text import N_, html_to_text
from mailbeacon.core.urls import LINK_PROBLEM_TEXT, LinkProblem

__all__ = [
    "LINK_PROBLEM_PREFIX",
    "N_",
    "REASON_TEXT",
    "Switches",
    "TrackingDecision",
    "Untracked",
    "decide",
    "link_problem_codes",
    "reason_text",
]


class Untracked(StrEnum):
    """A reason something is not tracked. Values are stable: stored and translated."""

    OPENS_SWITCH_OFF = "opens_switch_off"
    LINKS_SWITCH_OFF = "links_switch_off"
    OPENS_TOGGLE_OFF = "opens_toggle_off"
    LINKS_TOGGLE_OFF = "links_toggle_off"
    NO_HTML_PART = "no_html_part"
    EMPTY_BODY = "empty_body"
    NO_LINKS = "no_links"
    SEALED = "signed_or_encrypted"


REASON_TEXT = {
    Untracked.OPENS_SWITCH_OFF: N_("Open tracking is switched off in your settings."),
    Untracked.LINKS_SWITCH_OFF: N_("Link tracking is switched off in your settings."),
    Untracked.OPENS_TOGGLE_OFF: N_("Open tracking was not chosen for this email."),
    Untracked.LINKS_TOGGLE_OFF: N_("Link tracking was not chosen for this email."),
    Untracked.NO_HTML_PART: N_(
        "Plain-text email cannot be open-tracked: the tracking pixel needs an HTML body."
    ),
    Untracked.EMPTY_BODY: N_("The body is empty, so there is nowhere to place the tracking pixel."),
    Untracked.NO_LINKS: N_("There are no web links to track."),
    Untracked.SEALED: N_(
        "The email is signed or encrypted, so it was sent exactly as written, without tracking."
    ),
}

# Links left untracked on purpose (a backslash, a tab, a password in the link) are
# stored beside the policy's reasons as "link_<problem>", so the message can say why.
LINK_PROBLEM_PREFIX = "link_"


def link_problem_codes(problems: Iterable[LinkProblem]) -> list[str]:
    """The stored codes for the kinds of untracked links found, each kind once."""
    return list(dict.fromkeys(f"{LINK_PROBLEM_PREFIX}{problem.value}" for problem in problems))


def reason_text(code: str) -> str | None:
    """The (untranslated) text for a stored reason code; None for a code this version
    does not know (stored by a newer one), which callers skip rather than fail on."""
    try:
        if code.startswith(LINK_PROBLEM_PREFIX):
            return LINK_PROBLEM_TEXT[LinkProblem(code.removeprefix(LINK_PROBLEM_PREFIX))]
        return REASON_TEXT[Untracked(code)]
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Switches:
    """The account switches (S4)."""

    open_tracking: bool
    link_tracking: bool


@dataclass(frozen=True, slots=True)
class TrackingDecision:
    """What will be tracked for one email, and every reason something won't be."""

    track_opens: bool
    track_links: bool
    reasons: tuple[Untracked, ...] = field(default=())


def _is_blank(body: str | None) -> bool:
    return body is None or not body.strip()


def html_is_empty(html: str | None) -> bool:
    """True when an HTML body shows nothing: no text and no image."""
    if _is_blank(html):
        return True
    assert html is not None
    lowered = html.lower()
    return not html_to_text(html).strip() and "<img" not in lowered


def decide(
    switches: Switches,
    *,
    want_opens: bool,
    want_links: bool,
    html: str | None,
    text: str | None,
    has_links: bool,
) -> TrackingDecision:
    """Decide tracking for one email. Pure: the same inputs always give the same answer."""
    reasons: list[Untracked] = []
    html_empty = html_is_empty(html)  # parses the whole body: once
    empty = html_empty and _is_blank(text)

    track_opens = False
    if not switches.open_tracking:
        reasons.append(Untracked.OPENS_SWITCH_OFF)
    elif not want_opens:
        reasons.append(Untracked.OPENS_TOGGLE_OFF)
    elif empty:
        reasons.append(Untracked.EMPTY_BODY)
    elif html_empty:
        reasons.append(Untracked.NO_HTML_PART)
    else:
        track_opens = True

    track_links = False
    if not switches.link_tracking:
        reasons.append(Untracked.LINKS_SWITCH_OFF)
    elif not want_links:
        reasons.append(Untracked.LINKS_TOGGLE_OFF)
    elif not has_links:
        reasons.append(Untracked.NO_LINKS)
    else:
        track_links = True

    return TrackingDecision(track_opens, track_links, tuple(reasons))
