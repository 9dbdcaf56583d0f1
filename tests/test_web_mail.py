"""Mail pages over real HTTP: composer -> SMTP -> pixel/click -> processor -> list, message,
contacts. Runs on SQLite and PostgreSQL.

Requirements: S3, S5, S6, S8, S10, S11, S13, B1; security: S7 (404 across users), CSRF, XSS.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import update

from mailbeacon.store.db import make_engine, sessions
from mailbeacon.store.tables import User
from mailbeacon.web.i18n import Localizer
from tests.conftest import LiveApp, SmtpRecorder
from tests.helpers import click_urls, delivered, eventually, pixel_url, reader_client
from tests.web_helpers import Browser, sign_in

BODY = '<p>Hello, see <a href="https://example.com/pricing">our prices</a>.</p>'
TRACKED: dict[str, Any] = {"html": BODY, "track_opens": True, "track_links": True}
UTC_EN = Localizer("en", "UTC")


# --- helpers -------------------------------------------------------------------------


def row(page: str, message_id: int) -> str:
    """The list row of one message."""
    match = re.search(rf'<tr data-message-id="{message_id}">(.*?)</tr>', page, re.S)
    assert match, f"no row for message {message_id}"
    return match.group(1)


def row_ids(page: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr data-message-id="(\d+)"', page)]


def icon_state(html: str, scope: str, kind: str) -> str:
    """faded, solid or untracked: the state class of one tracking icon."""
    match = re.search(rf'<div class="track track-{kind} (\w+)" id="icon-{scope}-{kind}"', html)
    assert match, f"no {kind} icon for {scope}"
    return match.group(1)


def tip(html: str, scope: str, kind: str) -> str:
    """The tooltip text of one icon (it holds no nested div)."""
    match = re.search(
        rf'<div class="tip" role="tooltip" id="tip-{scope}-{kind}">(.*?)</div>', html, re.S
    )
    assert match, f"no {kind} tooltip for {scope}"
    return match.group(1)


async def compose(browser: Browser, **fields: str) -> httpx.Response:
    form = {"to": "", "cc": "", "bcc": "", "subject": "", "format": "html", "body": ""}
    return await browser.post("/mail/new", {**form, **fields})


def queued_id(response: httpx.Response) -> int:
    assert response.status_code == 303, response.text
    match = re.fullmatch(r"/mail/(\d+)\?sent=1", response.headers["location"])
    assert match, response.headers["location"]
    return int(match.group(1))


async def sent_via(live: LiveApp, response: httpx.Response) -> int:
    """The composer queued a message: wait until the worker has delivered it."""
    message_id = queued_id(response)
    await delivered(live.client, message_id, live.auth())
    return message_id


async def api_detail(live: LiveApp, message_id: int, token: str | None = None) -> dict[str, Any]:
    response = await live.client.get(f"/api/v1/messages/{message_id}", headers=live.auth(token))
    assert response.status_code == 200, response.text
    return dict(response.json())


async def api_send(live: LiveApp, token: str | None = None, **body: Any) -> int:
    response = await live.client.post("/api/v1/messages", json=body, headers=live.auth(token))
    assert response.status_code == 201, response.text
    message_id = int(response.json()["id"])
    await delivered(live.client, message_id, live.auth(token))
    return message_id


def when(value: str) -> str:
    """How the page shows an API timestamp to an English user in UTC."""
    return UTC_EN.when(datetime.fromisoformat(value))


async def set_user(live: LiveApp, user_id: int, **values: Any) -> None:
    engine = make_engine(live.settings.effective_database_url)
    try:
        async with sessions(engine)() as db, db.begin():
            await db.execute(update(User).where(User.id == user_id).values(**values))
    finally:
        await engine.dispose()


# --- the whole flow --------------------------------------------------------------------


async def test_compose_send_open_click_and_icons(live: LiveApp, smtp_server: SmtpRecorder) -> None:
    """S5/S8/B1: send through the composer, open one copy, click another, watch the icons."""
    browser = await sign_in(live, live.email)
    try:
        empty = await browser.get("/mail")
        assert "Send your first tracked email" in empty.text
        assert 'href="/mail/new"' in empty.text

        form = await browser.get("/mail/new")
        assert re.search(r'name="track_opens" value="1"\s+checked', form.text)
        assert re.search(r'name="track_links" value="1"\s+checked', form.text)
        assert "Track email opening" in form.text and "Track link clicks" in form.text

        message_id = await sent_via(
            live,
            await compose(
                browser,
                to="Anna Berg <anna@example.com>, ben@example.com",
                cc="cleo@example.com",
                subject="Pricing for 2027",
                body=BODY,
                track_opens="1",
                track_links="1",
            ),
        )
        assert len(smtp_server.mails) == 3
        anna, ben = smtp_server.to("anna@example.com"), smtp_server.to("ben@example.com")
        anna_html, ben_html = anna.body("html"), ben.body("html")
        assert anna_html and ben_html
        plain = anna.body("plain")  # generated from the HTML with html_to_text
        assert plain and "Hello, see our prices" in plain

        listed = await browser.get("/mail")
        assert "Pricing for 2027" in listed.text
        assert icon_state(row(listed.text, message_id), f"m{message_id}", "open") == "faded"
        assert "Not opened yet" in tip(listed.text, f"m{message_id}", "open")

        async with reader_client() as reader:
            assert (await reader.get(pixel_url(anna_html))).status_code == 200
            assert (await reader.head(pixel_url(ben_html))).status_code == 200  # not counted

        async def opened() -> str | None:
            page = (await browser.get("/mail")).text
            state = icon_state(row(page, message_id), f"m{message_id}", "open")
            return page if state == "solid" else None

        page = await eventually(opened)
        detail = await api_detail(live, message_id)
        counted = [e for e in detail["events"] if e["counted"]]
        assert [(e["kind"], e["recipient"]) for e in counted] == [("open", "anna@example.com")]
        open_tip = tip(page, f"m{message_id}", "open")
        assert "Anna Berg" in open_tip and when(counted[0]["occurred_at"]) in open_tip
        assert "Opened 1 time" in open_tip
        assert "ben@example.com" not in open_tip  # the HEAD hit is not an open
        assert icon_state(row(page, message_id), f"m{message_id}", "click") == "faded"
        assert 'tabindex="0"' in row(page, message_id)
        assert f'aria-describedby="tip-m{message_id}-open"' in page

        async with reader_client() as reader:
            click = await reader.get(click_urls(ben_html)[0], follow_redirects=False)
            assert click.headers["location"] == "https://example.com/pricing"

        async def clicked() -> str | None:
            page = (await browser.get("/mail")).text
            state = icon_state(row(page, message_id), f"m{message_id}", "click")
            return page if state == "solid" else None

        page = await eventually(clicked)
        click_tip = tip(page, f"m{message_id}", "click")
        assert "ben@example.com" in click_tip and "https://example.com/pricing" in click_tip

        # The message page: per-recipient delivery, icons, timeline, links, the body as sent.
        detail = await api_detail(live, message_id)
        ids = {r["address"]: r["id"] for r in detail["recipients"]}
        message = await browser.get(f"/mail/{message_id}?sent=1")
        assert message.status_code == 200
        text = message.text
        assert "Your email was sent." in text
        assert text.count(">Delivered<") == 3
        assert ">Cc<" in text and ">To<" in text
        assert icon_state(text, f"r{ids['anna@example.com']}", "open") == "solid"
        # Ben's images were blocked: his click counts as his open too (B3).
        assert icon_state(text, f"r{ids['ben@example.com']}", "open") == "solid"
        assert icon_state(text, f"r{ids['ben@example.com']}", "click") == "solid"
        assert icon_state(text, f"r{ids['cleo@example.com']}", "click") == "faded"
        timeline = text.split('class="list responsive timeline"', 1)[1].split("</table>", 1)[0]
        assert timeline.count("<tr class=") == 2  # the counted open and click
        assert "Person" in timeline and "https://example.com/pricing" in timeline
        machine = text.split('<details class="folded machine-events">', 1)[1].split("</details>")[0]
        assert "1 machine event" in machine and "Scanner" in machine  # the HEAD, folded (B3)
        assert "A HEAD request" in machine
        links = text.split('class="list responsive links-table"', 1)[1].split("</table>", 1)[0]
        assert "https://example.com/pricing" in links and ">1<" in links
        assert 'sandbox=""' in text
        assert 'srcdoc="&lt;meta http-equiv=&#34;Content-Security-Policy&#34;' in text
        assert "&lt;p&gt;Hello, see &lt;a href=&#34;https://example.com/pricing" in text
        assert "/o/" not in text.split("srcdoc=", 1)[1].split(">", 1)[0]  # no pixel in the copy

        # Contacts: every address, and the same icons scoped to that recipient's copy.
        contacts = await browser.get("/contacts")
        for address in ("anna@example.com", "ben@example.com", "cleo@example.com"):
            assert f'href="/contacts/{address}"' in contacts.text
        anna_page = await browser.get("/contacts/anna@example.com")
        assert anna_page.status_code == 200 and "Anna Berg" in anna_page.text
        scope = f"r{ids['anna@example.com']}"
        assert icon_state(anna_page.text, scope, "open") == "solid"
        assert icon_state(anna_page.text, scope, "click") == "faded"
        assert when(counted[0]["occurred_at"]) in tip(anna_page.text, scope, "open")
        assert 'href="/mail/new?to=anna%40example.com"' in anna_page.text
        ben_page = await browser.get("/contacts/BEN@example.com")  # addresses match any case
        scope = f"r{ids['ben@example.com']}"
        assert icon_state(ben_page.text, scope, "open") == "solid"  # inferred from the click
        assert icon_state(ben_page.text, scope, "click") == "solid"

        prefilled = await browser.get("/mail/new?to=anna%40example.com")
        # "Write to Anna Berg" keeps her name (#9 bug 5).
        assert 'name="to" value="Anna Berg &lt;anna@example.com&gt;"' in prefilled.text
    finally:
        await browser.aclose()


# --- filters, search, paging -----------------------------------------------------------


async def test_tracked_filter_search_and_paging(live: LiveApp) -> None:
    """S13: "Tracked emails"; search by recipient or subject; filters survive paging."""
    untracked = await api_send(
        live,
        to=["zed@example.com"],
        subject="Untracked note",
        text="Just text.",
        track_opens=False,
        track_links=False,
    )
    bulk = [
        await api_send(live, to=["bulk@example.com"], subject=f"Bulk {n:02d}", **TRACKED)
        for n in range(26)
    ]
    percent = await api_send(
        live,
        to=["Maria Lopez <maria@example.com>"],
        subject="Quarterly 100% report_final",
        **TRACKED,
    )
    browser = await sign_in(live, live.email)
    try:
        first = await browser.get("/mail")
        assert row_ids(first.text) == [percent, *reversed(bulk[-24:])]
        assert "28 emails" in first.text and "Page 1 of 2" in first.text
        second = await browser.get("/mail?page=2")
        assert row_ids(second.text) == [bulk[1], bulk[0], untracked]
        assert icon_state(row(second.text, untracked), f"m{untracked}", "open") == "untracked"
        assert "Open tracking was not chosen" in tip(second.text, f"m{untracked}", "open")

        tracked = await browser.get("/mail?tracked=1&page=2")
        assert untracked not in row_ids(tracked.text)
        assert row_ids(tracked.text) == [bulk[1], bulk[0]]
        assert 'aria-pressed="true"' in tracked.text

        for query in ("maria", "MARIA", "Lopez", "quarterly", "%", "_"):
            found = await browser.get("/mail", params={"q": query})
            assert row_ids(found.text) == [percent], query
        assert row_ids((await browser.get("/mail?q=zed")).text) == [untracked]

        combined = await browser.get("/mail?q=bulk&tracked=1")
        assert len(row_ids(combined.text)) == 25
        assert 'href="/mail?tracked=1&amp;q=bulk&amp;page=2"' in combined.text
        rest = await browser.get("/mail?tracked=1&q=bulk&page=2")
        assert row_ids(rest.text) == [bulk[0]]

        none = await browser.get("/mail?q=zed&tracked=1")
        assert row_ids(none.text) == []
        assert "No emails match these filters" in none.text and 'href="/mail"' in none.text

        odd = await browser.get("/mail?page=banana")
        assert odd.status_code == 200 and row_ids(odd.text)[0] == percent

        contacts = await browser.get("/contacts?q=lopez")
        assert "maria@example.com" in contacts.text and "bulk@example.com" not in contacts.text
        bulk_contact = await browser.get("/contacts/bulk@example.com")
        assert len(row_ids(bulk_contact.text)) == 25 and "Page 1 of 2" in bulk_contact.text
    finally:
        await browser.aclose()


# --- composer: toggles, preview, errors ------------------------------------------------


async def test_toggles_follow_switches_and_last_choice(live: LiveApp) -> None:
    """S5: toggles only with the account switch on; S6: the last choice is the default."""
    browser = await sign_in(live, live.email)
    try:
        await set_user(live, live.user_id, open_tracking=False)
        form = await browser.get("/mail/new")
        assert 'name="track_opens"' not in form.text and "Track email opening" not in form.text
        assert 'name="track_links"' in form.text
        assert "Open tracking is switched off in your settings." in form.text

        await set_user(live, live.user_id, open_tracking=True)
        await sent_via(
            live,
            await compose(browser, to="x@example.com", subject="S6", body=BODY, track_links="1"),
        )
        again = await browser.get("/mail/new")
        assert re.search(r'name="track_opens" value="1"\s*>', again.text)  # now unchecked
        assert re.search(r'name="track_links" value="1"\s+checked', again.text)
    finally:
        await browser.aclose()


async def preview(browser: Browser, **fields: str) -> httpx.Response:
    form = {"to": "", "format": "html", "body": "", "track_opens": "1", "track_links": "1"}
    return await browser.client.post(
        "/mail/tracking-preview", data={**form, **fields}, headers={"X-CSRF-Token": browser.csrf}
    )


async def test_tracking_preview_says_what_is_not_tracked(live: LiveApp) -> None:
    """S3, S10: the composer says before sending what will not be tracked, and why."""
    browser = await sign_in(live, live.email)
    try:
        text = await preview(browser, format="text", body="See https://example.com/a")
        assert text.status_code == 200
        assert "Plain-text email cannot be open-tracked" in text.text
        assert "Clicks on 1 link will be tracked." in text.text

        empty = await preview(browser, body="  ")
        assert "The body is empty" in empty.text

        html = await preview(browser, body=BODY, to="not an address")  # still previews
        assert "Opens will be tracked" in html.text

        off = await preview(browser, body="<p>No links</p>", track_opens="")
        assert "Open tracking was not chosen for this email." in off.text
        assert "There are no web links to track." in off.text

        await set_user(live, live.user_id, link_tracking=False)
        switched = await preview(browser, body=BODY)
        assert "Link tracking is switched off in your settings." in switched.text
        assert 'href="/settings"' in switched.text

        forged = await browser.client.post("/mail/tracking-preview", data={"body": "x"})
        assert forged.status_code == 403
    finally:
        await browser.aclose()


async def test_composer_keeps_input_and_shows_field_errors(
    live: LiveApp, smtp_server: SmtpRecorder
) -> None:
    """Bad input gets a clear error next to its field, the form keeps what was typed,
    and nothing is sent (DESIGN rule 6)."""
    browser = await sign_in(live, live.email)
    try:
        bad = await compose(browser, to="ok@example.com, not-an-address", subject="Kept", body=BODY)
        assert bad.status_code == 422
        assert 'id="to-error"' in bad.text and "is not a valid email address" in bad.text
        assert 'name="to" value="ok@example.com, not-an-address"' in bad.text
        assert 'value="Kept"' in bad.text and "&lt;p&gt;Hello, see" in bad.text

        injected = await compose(
            browser, to="ok@example.com", subject="Hi\r\nBcc: x@example.com", body=BODY
        )
        assert injected.status_code == 422
        assert 'id="subject-error"' in injected.text
        assert "must be one line" in injected.text

        cc = await compose(
            browser, to="ok@example.com", cc="a@example.com\r\nBcc: evil@example.com", body=BODY
        )
        # Lines are addresses pasted one per line (#9 bug 4): the injected header is
        # then just a bad address, refused by its field.
        assert cc.status_code == 422 and 'id="cc-error"' in cc.text
        assert "“Bcc: evil@example.com” is not a valid email address." in cc.text

        nobody = await compose(browser, subject="To nobody", body=BODY)
        assert nobody.status_code == 422 and "Add at least one recipient." in nobody.text
        assert smtp_server.mails == []
        assert row_ids((await browser.get("/mail")).text) == []
    finally:
        await browser.aclose()


async def test_tooltip_is_capped_newest_first(live: LiveApp, smtp_server: SmtpRecorder) -> None:
    """A much-opened email's tooltip lists the ten newest opens and says how many more."""
    message_id = await api_send(live, to=["busy@example.com"], subject="Busy", **TRACKED)
    html = smtp_server.to("busy@example.com").body("html")
    assert html
    async with reader_client() as reader:
        # Twelve readers' clients (one client's repeats would be one open, B3).
        for n in range(12):
            agent = (
                f"Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Thunderbird/115.{n}.0"
            )
            await reader.get(pixel_url(html), headers={"User-Agent": agent})

    async def all_counted() -> dict[str, Any] | None:
        detail = await api_detail(live, message_id)
        return detail if detail["opens"]["count"] == 12 else None

    detail = await eventually(all_counted)
    browser = await sign_in(live, live.email)
    try:
        open_tip = tip((await browser.get("/mail")).text, f"m{message_id}", "open")
        assert open_tip.count("<li>") == 10 and "and 2 more" in open_tip
        assert "Opened 12 times" in open_tip
        newest = max(e["occurred_at"] for e in detail["events"])
        assert when(newest) in open_tip.split("</li>", 1)[0]
    finally:
        await browser.aclose()


async def test_failed_recipient_is_shown(live: LiveApp, smtp_server: SmtpRecorder) -> None:
    """A refused recipient does not stop the others; the pages say who failed and why."""
    smtp_server.refuse.add("gone@example.com")
    browser = await sign_in(live, live.email)
    try:
        message_id = await sent_via(
            live,
            await compose(browser, to="ok@example.com, gone@example.com", subject="Two", body=BODY),
        )
        page = (await browser.get(f"/mail/{message_id}?sent=1")).text
        assert "some recipients could not be reached" in page
        assert "Partly sent" in page and "Not delivered" in page and "550" in page
        assert ">Delivered<" in page
        listed = await browser.get("/mail")
        assert "Partly sent" in row(listed.text, message_id)
    finally:
        await browser.aclose()


# --- security ----------------------------------------------------------------------------


async def test_other_users_mail_never_shows(live: LiveApp, smtp_server: SmtpRecorder) -> None:
    """S7: another user's message and contact are 404 and never listed or searchable."""
    _, other_token = await live.add_user("other@example.com")
    theirs = await api_send(
        live, other_token, to=["secret-contact@example.com"], subject="Their secret", html=BODY
    )
    mine = await api_send(live, to=["mine@example.com"], subject="My own", html=BODY)
    browser = await sign_in(live, live.email)
    try:
        listed = await browser.get("/mail")
        assert row_ids(listed.text) == [mine]
        assert "secret" not in listed.text.lower()
        assert row_ids((await browser.get("/mail?q=secret")).text) == []
        assert "secret-contact" not in (await browser.get("/contacts")).text
        assert "secret-contact" not in (await browser.get("/contacts?q=secret")).text
        for path in (
            f"/mail/{theirs}",
            "/contacts/secret-contact@example.com",
            "/mail/999999999",
            "/mail/99999999999999999999999",
            "/contacts/nobody@example.com",
        ):
            response = await browser.get(path)
            assert response.status_code == 404, path
            assert "Their secret" not in response.text
        assert (await browser.get(f"/mail/{mine}")).status_code == 200
    finally:
        await browser.aclose()

    signed_out = await live.client.get("/mail", follow_redirects=False)
    assert signed_out.status_code == 303 and signed_out.headers["location"].startswith("/login")


async def test_send_needs_csrf_token(live: LiveApp, smtp_server: SmtpRecorder) -> None:
    browser = await sign_in(live, live.email)
    try:
        form = {"to": "a@example.com", "subject": "Forged", "format": "html", "body": BODY}
        missing = await browser.client.post("/mail/new", data=form)
        wrong = await browser.client.post("/mail/new", data={**form, "csrf_token": "nope"})
        assert missing.status_code == 403 and wrong.status_code == 403
        assert smtp_server.mails == []
        assert row_ids((await browser.get("/mail")).text) == []
    finally:
        await browser.aclose()


async def test_markup_is_shown_escaped(live: LiveApp, smtp_server: SmtpRecorder) -> None:
    """XSS: subjects, recipient names, bodies and user agents are data, never markup."""
    browser = await sign_in(live, live.email)
    try:
        message_id = await sent_via(
            live,
            await compose(
                browser,
                to='"<b>Bold</b>" <bold@example.com>',
                subject="<script>alert(1)</script>",
                body='<p>Hi</p><script>alert(2)</script><img src="x" onerror="alert(3)">',
                track_opens="1",
            ),
        )
        html = smtp_server.to("bold@example.com").body("html")
        assert html
        async with reader_client() as reader:
            await reader.get(
                pixel_url(html), headers={"User-Agent": "<img src=x onerror=alert(4)>"}
            )

        async def opened() -> bool:
            return bool((await api_detail(live, message_id))["opens"]["count"])

        await eventually(opened)
        for path in ("/mail", f"/mail/{message_id}", "/contacts", "/contacts/bold@example.com"):
            page = (await browser.get(path)).text
            scripts = re.findall(r"<script[^>]*>", page)
            assert all(re.fullmatch(r'<script src="/static/\w+\.js" defer>', s) for s in scripts)
            assert "<b>Bold</b>" not in page and "<img src=x" not in page
            assert '<img src="x"' not in page
            assert "&lt;b&gt;Bold&lt;/b&gt;" in page, path
        page = (await browser.get(f"/mail/{message_id}")).text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert "&lt;img src=x onerror=alert(4)&gt;" in page  # the user agent in the timeline
        assert "&gt;&lt;p&gt;Hi&lt;/p&gt;&lt;script&gt;alert(2)&lt;/script&gt;" in page
    finally:
        await browser.aclose()
