"""Issue 9: mail with only HTML goes out as multipart/alternative from the API and the CLI
too (a text part made from the HTML), and bare URLs typed in HTML are links, tracked.

Checked where it matters, at a real SMTP server (aiosmtpd).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from mailbeacon.core.limits import MAX_LINKS
from mailbeacon.mail.prepare import Prepared, SenderProfile, SendInput, prepare
from tests.conftest import LiveApp, SmtpRecorder
from tests.helpers import click_urls, delivered

MAILBEACON = [sys.executable, "-m", "mailbeacon.cli"]
PROFILE = SenderProfile("me@example.com", "Me", True, True, True, True)
HTML = (
    "<h1>Offer</h1><p>Prices are on https://example.com/pricing, "
    '<a href="https://example.com/demo">book a demo</a>.</p>'
)


async def test_issue9_api_html_only_mail_has_a_text_part_and_tracked_bare_urls(
    live: LiveApp, smtp_server: SmtpRecorder
) -> None:
    response = await live.client.post(
        "/api/v1/messages",
        json={"to": ["ann@example.com"], "subject": "Offer", "html": HTML, "track_links": True},
        headers=live.auth(),
    )
    assert response.status_code == 201, response.text
    sent = await delivered(live.client, response.json()["id"], live.auth())
    assert sent["status"] == "sent"
    assert {link["url"] for link in sent["links"]} == {
        "https://example.com/pricing",
        "https://example.com/demo",
    }
    mail = smtp_server.to("ann@example.com")
    assert mail.message.get_content_type() == "multipart/alternative"
    text, html = mail.body("plain"), mail.body("html")
    assert text is not None and html is not None
    assert text.startswith("Offer\r\n\r\nPrices are on ") and "book a demo" in text
    # The typed URL is a tracked link in both parts; nobody gets the untracked original.
    assert 'href="https://example.com/pricing"' not in html
    assert "https://example.com/pricing" not in text
    assert len(click_urls(html)) == 2 and len(click_urls(text)) == 2


async def test_issue9_api_text_given_is_kept_as_given(
    live: LiveApp, smtp_server: SmtpRecorder
) -> None:
    body = {"to": ["bo@example.com"], "subject": "x", "html": HTML, "text": "My own words."}
    response = await live.client.post("/api/v1/messages", json=body, headers=live.auth())
    assert response.status_code == 201, response.text
    await delivered(live.client, response.json()["id"], live.auth())
    assert (smtp_server.to("bo@example.com").body("plain") or "").strip() == "My own words."


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        MAILBEACON + args,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_issue9_cli_html_only_mail_is_multipart_alternative(
    tmp_path: Path, smtp_server: SmtpRecorder
) -> None:
    env = {"MAILBEACON_VAR_DIR": str(tmp_path / "var"), "MAILBEACON_SMTP_URL": smtp_server.url}
    assert run(["migrate"], env).returncode == 0
    added = run(["user", "add", "seller@example.com", "--password", "correct horse"], env)
    assert added.returncode == 0, added.stderr
    body = tmp_path / "body.html"
    body.write_text(HTML, encoding="utf-8")
    args = ["send", "--from", "seller@example.com", "--to", "cy@example.com", "--html", str(body)]
    sent = run([*args, "--subject", "Offer"], env)
    assert sent.returncode == 0, sent.stderr
    drained = run(["worker", "--until-idle"], env)
    assert drained.returncode == 0, drained.stderr
    mail = smtp_server.to("cy@example.com")
    assert mail.message.get_content_type() == "multipart/alternative"
    text = mail.body("plain")
    assert text is not None and "book a demo" in text and len(click_urls(text)) == 2


def test_issue9_html_only_request_at_the_link_limit_is_accepted() -> None:
    """With the text part made from the HTML, its links are the same links, not new ones."""
    links = "".join(f'<a href="https://example.com/{i}">{i}</a>' for i in range(MAX_LINKS))
    result = prepare(PROFILE, SendInput(to=["a@example.com"], html=links), "https://t.example")
    assert isinstance(result, Prepared) and result.link_count == MAX_LINKS
    assert result.generated_text is not None
