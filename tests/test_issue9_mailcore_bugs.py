"""Issue 9, the bugs a new user found (6, 7, 9 and 11), each proven over real HTTP and SMTP."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import LiveApp, SmtpRecorder
from tests.helpers import delivered, eventually
from tests.test_web_account import general_form
from tests.web_helpers import Browser, login_token, sign_in

GERMAN_BROWSER = "de-DE,de;q=0.9,en;q=0.5"
README = Path(__file__).resolve().parent.parent / "README.md"


async def sign_in_from(live: LiveApp, email: str, accept_language: str) -> Browser:
    """Sign in through the form from a browser that asks for ``accept_language``."""
    client = httpx.AsyncClient(
        base_url=live.base_url,
        timeout=15,
        follow_redirects=False,
        headers={"Accept-Language": accept_language},
    )
    response = await client.post(
        "/login",
        data={
            "email": email,
            "password": "a long password",
            "login_csrf": await login_token(client),
            "next": "/settings",
        },
    )
    assert response.status_code == 303, response.text
    page = await client.get("/settings")
    match = re.search(r'data-csrf="([^"]+)"', page.text)
    assert match, page.text
    return Browser(client, match.group(1))


async def test_bug6_a_new_user_gets_the_app_in_their_browsers_language(live: LiveApp) -> None:
    """Before: German sign-in page, then an English app (the stored default won)."""
    await live.add_user("neu@example.com")  # as an admin adds one: no language picked
    browser = await sign_in_from(live, "neu@example.com", GERMAN_BROWSER)
    page = (await browser.get("/mail")).text
    assert '<html lang="de">' in page
    await browser.aclose()

    # Once the user picks a language, the browser's no longer applies.
    browser = await sign_in_from(live, "neu@example.com", GERMAN_BROWSER)
    saved = await browser.post("/settings", general_form(language="sv"))
    assert saved.status_code == 303
    await browser.aclose()
    browser = await sign_in_from(live, "neu@example.com", GERMAN_BROWSER)
    assert '<html lang="sv">' in (await browser.get("/mail")).text
    await browser.aclose()


async def test_bug6_a_browser_without_languages_changes_nothing(live: LiveApp) -> None:
    await live.add_user("plain@example.com")
    browser = await sign_in_from(live, "plain@example.com", GERMAN_BROWSER)
    await browser.aclose()
    browser = await sign_in(live, "plain@example.com")  # no Accept-Language at all
    assert '<html lang="de">' in (await browser.get("/mail")).text
    await browser.aclose()


async def _send(live: LiveApp, **body: Any) -> dict[str, Any]:
    response = await live.client.post("/api/v1/messages", json=body, headers=live.auth())
    assert response.status_code == 201, response.text
    return dict(await delivered(live.client, response.json()["id"], live.auth()))


async def test_bug7_nothing_tracked_says_so(live: LiveApp, smtp_server: SmtpRecorder) -> None:
    """Before: "Not everything was tracked" on an email where nothing was."""
    browser = await sign_in(live, live.email)
    html = '<p><a href="https://example.com/">x</a></p>'
    untracked = await _send(
        live, to=["a@example.com"], html=html, track_opens=False, track_links=False
    )
    page = (await browser.get(f"/mail/{untracked['id']}")).text
    assert "Nothing was tracked:" in page and "Not everything was tracked" not in page

    partly = await _send(live, to=["b@example.com"], html=html, track_opens=True, track_links=False)
    page = (await browser.get(f"/mail/{partly['id']}")).text
    assert "Not everything was tracked:" in page and "Nothing was tracked" not in page
    await browser.aclose()


async def test_bug9_send_again_sends_only_the_failed_copies_once(
    live: LiveApp, smtp_server: SmtpRecorder
) -> None:
    """Before: a failed send had no way to go again. Now only failed copies go, once."""
    smtp_server.refuse = {"down@example.com"}
    sent = await _send(
        live, to=["up@example.com", "down@example.com"], subject="Offer", html="<p>Hi</p>"
    )
    assert sent["status"] == "partial"
    browser = await sign_in(live, live.email)
    page = (await browser.get(f"/mail/{sent['id']}")).text
    assert "Send again" in page and "Only the copies that were not delivered go again" in page

    # Someone else cannot send it again (S7): nothing is queued.
    await live.add_user("other@example.com")
    other = await sign_in(live, "other@example.com")
    await other.post(f"/mail/{sent['id']}/send-again")
    assert len(smtp_server.mails) == 1

    smtp_server.refuse = set()
    again = await browser.post(f"/mail/{sent['id']}/send-again")
    assert again.status_code == 303 and again.headers["location"] == f"/mail/{sent['id']}?sent=1"
    await browser.post(f"/mail/{sent['id']}/send-again")  # a double click queues nothing more

    async def done() -> dict[str, Any] | None:
        detail = await delivered(live.client, sent["id"], live.auth())
        return detail if detail["status"] == "sent" else None

    detail = await eventually(done)
    assert [r["status"] for r in detail["recipients"]] == ["sent", "sent"]
    assert sorted(m.envelope_to[0] for m in smtp_server.mails) == [
        "down@example.com",
        "up@example.com",
    ]
    page = (await browser.get(f"/mail/{sent['id']}")).text
    assert "Send again" not in page
    for each in (browser, other):
        await each.aclose()


async def test_bug9_no_send_again_without_a_failed_copy(
    live: LiveApp, smtp_server: SmtpRecorder
) -> None:
    sent = await _send(live, to=["ok@example.com"], html="<p>Hi</p>")
    browser = await sign_in(live, live.email)
    assert "Send again" not in (await browser.get(f"/mail/{sent['id']}")).text
    await browser.post(f"/mail/{sent['id']}/send-again")
    detail = await delivered(live.client, sent["id"], live.auth())
    assert detail["status"] == "sent" and len(smtp_server.mails) == 1
    await browser.aclose()


def test_bug11_readme_stands_on_its_own() -> None:
    """Before: the README linked ../shared/PRODUCT.md and leaned on DESIGN.md, which a
    user of the repository does not have."""
    text = README.read_text(encoding="utf-8")
    assert "../" not in text
    for name in re.findall(r"\b[A-Z]+\.md\b", text):
        places = (README.parent, README.parent / "docs", README.parent / "bench")
        assert any((place / name).exists() for place in places), name
    for target in re.findall(r"\]\(([^)#\s]+)", text):
        if not re.match(r"[a-z]+:", target):
            assert (README.parent / target).exists(), target


async def test_composer_note_counts_typed_urls_as_tracked_links(live: LiveApp) -> None:
    """The composer's note promised typed URLs are tracked; now the HTML part agrees."""
    browser = await sign_in(live, live.email)
    response = await browser.client.post(
        "/mail/tracking-preview",
        data={
            "to": "",
            "format": "html",
            "body": "<p>See https://example.com/a and https://example.com/b.</p>",
            "track_opens": "1",
            "track_links": "1",
        },
        headers={"X-CSRF-Token": browser.csrf},
    )
    assert response.status_code == 200
    assert "Clicks on 2 links will be tracked." in response.text
    await browser.aclose()
