"""The tracking decision and its reasons (S3, S4, S5, S10; DESIGN rule 5)."""

from __future__ import annotations

from mailbeacon.core.policy import Switches, Untracked, decide

ON = Switches(open_tracking=True, link_tracking=True)


def test_everything_on_tracks_both() -> None:
    decision = decide(
        ON, want_opens=True, want_links=True, html="<p>Hi</p>", text=None, has_links=True
    )
    assert (decision.track_opens, decision.track_links, decision.reasons) == (True, True, ())


def test_plain_text_cannot_be_open_tracked_s3() -> None:
    decision = decide(ON, want_opens=True, want_links=True, html=None, text="hi", has_links=True)
    assert not decision.track_opens and decision.track_links
    assert decision.reasons == (Untracked.NO_HTML_PART,)


def test_empty_body_s10() -> None:
    for html in (None, "", "   ", "<html><body> </body></html>"):
        decision = decide(
            ON, want_opens=True, want_links=True, html=html, text=" ", has_links=False
        )
        assert not decision.track_opens
        assert Untracked.EMPTY_BODY in decision.reasons


def test_image_only_html_is_not_empty() -> None:
    decision = decide(
        ON, want_opens=True, want_links=False, html='<img src="x.png">', text=None, has_links=False
    )
    assert decision.track_opens


def test_switches_win_over_toggles_s4() -> None:
    off = Switches(open_tracking=False, link_tracking=False)
    decision = decide(
        off, want_opens=True, want_links=True, html="<p>x</p>", text=None, has_links=True
    )
    assert not decision.track_opens and not decision.track_links
    assert decision.reasons == (Untracked.OPENS_SWITCH_OFF, Untracked.LINKS_SWITCH_OFF)


def test_toggles_off_s5() -> None:
    decision = decide(
        ON, want_opens=False, want_links=False, html="<p>x</p>", text=None, has_links=True
    )
    assert decision.reasons == (Untracked.OPENS_TOGGLE_OFF, Untracked.LINKS_TOGGLE_OFF)
