# ruff: noqa: E501  (template markup keeps the long lines real templates have)
"""Issue 9: Outlook bulletproof buttons are tracked.

Outlook for Windows renders what is inside ``<!--[if mso]>`` and ignores the HTML button
that follows (often marked ``mso-hide:all``), so a template's only Outlook link is the VML
shape's ``href``. The documents below have the shapes real template kits produce (written
here for the test, with the same structure): mailgen's default theme (a ``v:roundrect``
inside ``<center>`` in the comment, the HTML button in ``<![if !mso]>``), Cerberus
(``<!--[if gte mso 9]>`` VML backgrounds and ghost tables split over two comments), and MJML
(``<!--[if mso | IE]>`` ghost tables and a VML button from a bulletproof-button component).
Only the href values change; every other byte stays.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbeacon.core.rewrite import find_html_links, rewrite_html, strip_tracking
from tests.core.test_rewrite import OURS, Tracker, _assert_only_hrefs_changed, soup

MAILGEN = """<p>Click below to confirm your account:</p>
                        <!--[if mso]>
                          <center>
                            <v:roundrect xmlns:v="urn:schemas-microsoft-com:vml" xmlns:w="urn:schemas-microsoft-com:office:word" href="https://app.example/confirm?token=a1&amp;u=7" style="height: 45px; v-text-anchor: middle; width: 200px;" arcsize="10%" stroke="f" fillcolor="#22BC66">
                              <w:anchorlock/>
                              <center style="color: #ffffff; font-family: sans-serif; font-size: 15px;">
                                Confirm your account
                              </center>
                            </v:roundrect>
                          </center>
                        <![endif]-->
                        <![if !mso]>
                          <table class="body-action" align="center" cellpadding="0" cellspacing="0">
                            <tr><td align="center">
                              <a href="https://app.example/confirm?token=a1&amp;u=7" class="button" target="_blank" style="background-color: #22BC66;">Confirm your account</a>
                            </td></tr>
                          </table>
                        <![endif]>"""

CERBERUS = """<body width="100%" style="margin: 0; padding: 0 !important; mso-line-height-rule: exactly;">
<center role="article" aria-roledescription="email" lang="en" style="width: 100%;">
<!--[if mso | IE]>
<table role="presentation" border="0" cellpadding="0" cellspacing="0" width="100%"><tr><td>
<![endif]-->
<td valign="middle" style="text-align: center; background-image: url('https://via.example/bg.png');">
<!--[if gte mso 9]>
<v:rect xmlns:v="urn:schemas-microsoft-com:vml" fill="true" stroke="false" style="width:600px;height:175px;">
<v:fill type="tile" src="https://via.example/bg.png" color="#222222" />
<v:textbox inset="0,0,0,0">
<![endif]-->
<!--[if mso]>
<v:roundrect xmlns:v="urn:schemas-microsoft-com:vml" href='https://shop.example/sale' style="height:44px;v-text-anchor:middle;width:200px;" arcsize="10%" stroke="f" fillcolor="#222222"><w:anchorlock/><center style="color:#ffffff;">Shop the sale</center></v:roundrect>
<![endif]-->
<a class="button-a" href="https://shop.example/sale" style="background: #222222; mso-hide: all;">Shop the sale</a>
<!--[if gte mso 9]>
</v:textbox>
</v:rect>
<![endif]-->
</td>
<!--[if mso | IE]>
</td></tr></table>
<![endif]-->
</center>
</body>"""

MJML = """<div style="margin:0px auto;max-width:600px;">
<!--[if mso | IE]><table align="center" border="0" cellpadding="0" cellspacing="0" class="" style="width:600px;" width="600" ><tr><td style="line-height:0px;font-size:0px;mso-line-height-rule:exactly;"><![endif]-->
<!--[if mso | IE]><v:roundrect xmlns:v="urn:schemas-microsoft-com:vml" xmlns:w="urn:schemas-microsoft-com:office:word" style="v-text-anchor:middle;height:40px;width:180px;" arcsize="10%" strokecolor="#414141" fillcolor="#414141" href=https://news.example/read?id=9 ><w:anchorlock/><center style="color:#ffffff;font-size:13px;">Read it</center></v:roundrect><![endif]-->
<!--[if !mso]><!--><a href="https://news.example/read?id=9" style="display:inline-block;background:#414141;color:#ffffff;mso-hide:all;" target="_blank">Read it</a><!--<![endif]-->
<!--[if mso | IE]></td></tr></table><![endif]-->
</div>"""


def _tracked(url: str) -> str:
    return "https://t.example/c/" + str(abs(hash(url)) % 1000)


@pytest.mark.parametrize(
    ("doc", "links", "vml_links"),
    [
        (MAILGEN, ["https://app.example/confirm?token=a1&u=7"], 1),
        (CERBERUS, ["https://shop.example/sale"], 1),
        (MJML, ["https://news.example/read?id=9"], 1),
    ],
    ids=["mailgen", "cerberus", "mjml"],
)
def test_issue9_outlook_vml_buttons_are_tracked(doc: str, links: list[str], vml_links: int) -> None:
    assert find_html_links(doc) == links
    out = rewrite_html(doc, pixel_url=None, click_url_for=_tracked)
    for url in links:
        assert url.replace("&", "&amp;") not in out  # no link a reader can click untracked
    originals = {_tracked(url): url for url in links}
    # Every other byte kept: restoring the originals gives the document back, byte for byte.
    assert strip_tracking(out, pixel_url=None, original_for=originals.get) == doc
    assert sum(out.count(f"{_tracked(u)}") for u in links) >= vml_links + 1


def test_issue9_only_outlook_conditional_comments_are_read() -> None:
    """Ordinary comments and unclosed conditional ones stay untouched (nobody renders them)."""
    doc = (
        '<!-- <a href="https://x.com/old">old</a> -->'
        '<!--[if IE]><a href="https://x.com/ie">ie</a><![endif]-->'
        '<!--[if mso]><v:roundrect href="https://x.com/cut">'
    )
    assert find_html_links(doc) == []
    assert rewrite_html(doc, pixel_url=None, click_url_for=_tracked) == doc


def test_issue9_only_vml_shapes_and_links_in_outlook_comments() -> None:
    doc = (
        '<!--[if mso]><v:fill src="https://x.com/bg.png" href="https://x.com/fill"/>'
        '<link href="https://x.com/s.css"><img href="https://x.com/img"><![endif]-->'
        '<v:roundrect href="https://x.com/outside">'
    )
    assert find_html_links(doc) == ["https://x.com/fill"]


_MSO_FRAGMENTS = st.sampled_from(
    ["<!--[if mso]>", "<!--[if gte mso 9]>", "<!--[if mso | IE]>", "<![endif]-->", "<!--",
     "-->", '<v:roundrect href="https://x.com/v">', "<v:roundrect href=https://y.com/?a=1&amp;b",
     "<v:rect href='", "</v:roundrect>", "<w:anchorlock/>", "<center>", " ", "\n", ">", "<",
     '<a href="https://z.com/">', "</a>", "<![if !mso]>", "<![endif]>", "https://t.com/"]
)  # fmt: skip
_MSO_SOUP = st.lists(st.one_of(_MSO_FRAGMENTS, soup), max_size=20).map("".join)


@settings(max_examples=300, deadline=None, database=None)
@given(_MSO_SOUP)
def test_issue9_property_outlook_comments_change_only_href_values(doc: str) -> None:
    """Whatever the markup around them, only href values change, and nothing is left over."""
    tracker = Tracker()
    out = rewrite_html(doc, pixel_url=None, click_url_for=tracker)
    _assert_only_hrefs_changed(doc, out, tracker)
    assert all(url.startswith(OURS) for url in find_html_links(out))
