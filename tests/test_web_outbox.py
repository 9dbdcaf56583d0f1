"""The embedded outbox pages, over real HTTP on SQLite and PostgreSQL (day-one flow, S7).

The app runs without SMTP_URL, so mail sent through the API crosses a real
SMTP hop into the embedded outbox; opening it there fires the real pixel.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest

from mailbeacon.store.accounts import add_user
from mailbeacon.store.db import make_engine, sessions
from mailbeacon.store.tables import OutboxMail
from mailbeacon.web.pages.outbox import linkify, preview_document, read_mail
from tests.conftest import LiveApp
from tests.helpers import PIXEL, eventually, reader_client
from tests.test_web_notifications import send
from tests.web_helpers import PASSWORD, sign_in

HTML = (
    "<!DOCTYPE html><html><body><p>Hello, see "
    '<a href="https://example.com/pricing?a=1&amp;b=2">our prices</a>.</p></body></html>'
)
TEXT = "Hello, see our prices: https://example.com/pricing?a=1&b=2."
OUTBOX_LINK = re.compile(r'href="/outbox/(\d+)"')


class Frames(HTMLParser):
    """Collects the attributes of every <iframe> (entities decoded, as a browser would)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.frames: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "iframe":
            self.frames.append(dict(attrs))


def frames(page: str) -> list[dict[str, str | None]]:
    parser = Frames()
    parser.feed(page)
    return parser.frames


@pytest.fixture
async def outbox_app(serve_app: Any, database_url: str) -> LiveApp:
    """The app with no SMTP server configured: sent mail lands in the embedded outbox."""
    live: LiveApp = await serve_app(database_url)
    return live


async def captured_ids(browser: Any) -> list[int]:
    page = (await browser.get("/outbox")).text
    return [int(i) for i in OUTBOX_LINK.findall(page)]


async def insert_captured(live: LiveApp, envelope_from: str, raw: bytes) -> int:
    engine = make_engine(live.settings.effective_database_url)
    try:
        async with sessions(engine)() as db, db.begin():
            row = OutboxMail(
                envelope_from=envelope_from, envelope_to=["x@example.com"], subject="", raw=raw
            )
            db.add(row)
            await db.flush()
            return row.id
    finally:
        await engine.dispose()


async def add_admin(live: LiveApp, email: str) -> None:
    engine = make_engine(live.settings.effective_database_url)
    try:
        async with sessions(engine)() as db, db.begin():
            await add_user(db, email, PASSWORD, is_admin=True)
    finally:
        await engine.dispose()


async def test_outbox_shows_the_copy_as_the_recipient_sees_it(outbox_app: LiveApp) -> None:
    live = outbox_app
    owner = await sign_in(live, live.email)
    empty = (await owner.get("/outbox")).text
    assert "Nothing captured yet" in empty and 'href="/mail/new"' in empty

    sent = await send(
        live,
        to=['"Anna <b>A</b>" <anna@example.com>'],
        subject="Offer <script>alert(1)</script>",
        html=HTML,
        text=TEXT,
    )
    assert sent["status"] == "sent"
    listing = (await owner.get("/outbox")).text
    assert "anna@example.com" in listing
    assert "Offer &lt;script&gt;alert(1)&lt;/script&gt;" in listing
    assert "<script>alert" not in listing
    (mail_id,) = await captured_ids(owner)

    page = (await owner.get(f"/outbox/{mail_id}")).text
    assert "<script>alert" not in page and "Anna &lt;b&gt;A&lt;/b&gt;" in page
    assert "This is what anna@example.com receives." in page
    # In the page the document is one escaped attribute value; the frame decodes it.
    assert 'srcdoc="&lt;!DOCTYPE html&gt;&lt;base target=&#34;_blank&#34;&gt;&lt;html&gt;' in page
    (frame,) = frames(page)
    assert frame["sandbox"] == "allow-popups allow-popups-to-escape-sandbox"
    document = frame["srcdoc"] or ""
    assert document.startswith('<!DOCTYPE html><base target="_blank"><html>')
    pixel = PIXEL.search(document)
    assert pixel, document
    assert f"&lt;img src=&#34;{pixel.group(1)}&#34;" in page
    assert "/c/" in document and "https://example.com/pricing" not in document
    # The plain-text part: escaped, links clickable (the tracked redirect).
    assert re.search(r'<pre class="outbox-text">Hello, see our prices: <a href="http://', page)
    assert "View source" in page and "Content-Type: multipart/alternative" in page

    async with reader_client() as browser_frame:
        assert (await browser_frame.get(pixel.group(1))).status_code == 200

    async def opened() -> bool:
        response = await live.client.get(f"/api/v1/messages/{sent['id']}", headers=live.auth())
        return bool(response.json()["opens"]["count"] == 1)

    await eventually(opened)
    await owner.aclose()


async def test_outbox_belongs_to_its_sender_admins_included(outbox_app: LiveApp) -> None:
    """S7 (issue 9, bug 10): no other user lists or opens a captured copy, admins included.

    Before, an admin listed everyone's mail and read its plain text and source without the
    preview's guard, and a click there counted in the sender's tracking.
    """
    live = outbox_app
    await send(live, to=["anna@example.com"], subject="Private offer", html=HTML)
    owner = await sign_in(live, live.email)
    (mail_id,) = await captured_ids(owner)

    await live.add_user("other@example.com")
    other = await sign_in(live, "other@example.com")
    listing = (await other.get("/outbox")).text
    assert "Private offer" not in listing and "Nothing captured yet" in listing
    assert (await other.get(f"/outbox/{mail_id}")).status_code == 404
    assert (await other.get(f"/outbox/{mail_id}?preview=true")).status_code == 404

    await add_admin(live, "admin@example.com")
    admin = await sign_in(live, "admin@example.com")
    assert await captured_ids(admin) == []
    assert "Private offer" not in (await admin.get("/outbox")).text
    for url in (f"/outbox/{mail_id}", f"/outbox/{mail_id}?preview=true"):
        response = await admin.get(url)
        # Not the preview, nor the plain text, nor the source: no tracked link to click.
        assert response.status_code == 404
        assert "/c/" not in response.text and "Private offer" not in response.text
    own = await insert_captured(live, "admin@example.com", b"Subject: Mine\r\n\r\nHi")
    assert await captured_ids(admin) == [own]
    for browser in (owner, other, admin):
        await browser.aclose()


async def test_envelope_sender_matches_case_insensitively(outbox_app: LiveApp) -> None:
    live = outbox_app
    mail_id = await insert_captured(live, live.email.upper(), b"Subject: Shouting\r\n\r\nHi")
    owner = await sign_in(live, live.email)
    assert await captured_ids(owner) == [mail_id]
    assert (await owner.get(f"/outbox/{mail_id}")).status_code == 200
    await owner.aclose()


GARBAGE = [
    b"\x00\xff\xfe\x80 not mime at all <script>alert(1)</script>\r\n\xc3\x28",
    b"Content-Type: multipart/mixed; boundary=\r\n\r\n--\r\nbroken",
    (
        b"Subject: =?x-unknown?q?caf=E9?=\r\nDate: not a date\r\nFrom: <<@>>\r\n"
        b"Content-Type: text/html; charset=x-no-such-charset\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n%%%not base64%%%"
    ),
    b"",
]


async def test_broken_mime_still_shows_what_it_can(outbox_app: LiveApp) -> None:
    live = outbox_app
    owner = await sign_in(live, live.email)
    for raw in GARBAGE:
        mail_id = await insert_captured(live, live.email, raw)
        response = await owner.get(f"/outbox/{mail_id}")
        assert response.status_code == 200, raw
        assert "<script>alert" not in response.text
        assert "View source" in response.text
    await owner.aclose()


def test_big_source_is_truncated() -> None:
    raw = b"Subject: big\r\n\r\n" + b"x" * (300 * 1024)
    view = read_mail(raw)
    assert view.truncated and len(view.source) == 200 * 1024
    assert (view.shown_kb, view.size_kb) == (200, 301)


def test_preview_and_linkify_helpers() -> None:
    assert preview_document("<p>Hi</p>") == '<base target="_blank"><p>Hi</p>'
    assert (
        preview_document(" <!doctype html>\n<p>") == ' <!doctype html><base target="_blank">\n<p>'
    )
    linked = linkify('See (https://x.example/a_(b)). Or <http://y.example/?q="1">')
    assert str(linked) == (
        'See (<a href="https://x.example/a_(b)" target="_blank" rel="noopener">'
        "https://x.example/a_(b)</a>). Or &lt;"
        '<a href="http://y.example/?q=" target="_blank" rel="noopener">http://y.example/?q=</a>'
        "&#34;1&#34;&gt;"
    )
    assert str(linkify("just http:// and text")) == "just http:// and text"


async def test_no_outbox_when_smtp_is_configured(live: LiveApp) -> None:
    owner = await sign_in(live, live.email)
    assert (await owner.get("/outbox")).status_code == 404
    assert (await owner.get("/outbox/1")).status_code == 404
    assert 'href="/outbox"' not in (await owner.get("/notifications")).text
    await owner.aclose()


async def test_outbox_pages_need_sign_in_and_sane_ids(outbox_app: LiveApp) -> None:
    live = outbox_app
    response = await live.client.get("/outbox", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login?next=/outbox"
    owner = await sign_in(live, live.email)
    assert (await owner.get(f"/outbox/{2**70}")).status_code == 404
    assert (await owner.get("/outbox/0")).status_code == 404
    assert (await owner.get("/outbox?page=0")).status_code == 200  # an odd page is page 1
    await owner.aclose()
