"""Configuration that must not silently break every pixel (issue 6, DESIGN rules 1 and 6).

PUBLIC_URL ends up in every pixel and link of every mail sent, where it can
never be corrected: a path prefix must work, a bad value must stop start-up
with the variable's name, and `serve` must say when PUBLIC_URL does not reach it.
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from mailbeacon.settings import APP_PATHS, ConfigError, load_settings
from mailbeacon.store.db import make_engine, sessions
from mailbeacon.store.tables import HitRow
from tests.conftest import SmtpRecorder
from tests.helpers import HONEYPOT, delivered, free_port, reader_client
from tests.web_helpers import LOGIN_CSRF, PASSWORD

MAILBEACON = [sys.executable, "-m", "mailbeacon.cli"]
PIXEL = re.compile(r'<img src="(http://[^"]+\.gif)"')
CLICK = re.compile(r'href="(http://[^"]+/c/[A-Za-z0-9_-]+)"')


async def recorded_hits(url: str) -> list[HitRow]:
    engine = make_engine(url)
    try:
        async with sessions(engine)() as db:
            return list(await db.scalars(select(HitRow).order_by(HitRow.seq)))
    finally:
        await engine.dispose()


# --- PUBLIC_URL is validated strictly -------------------------------------------------


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("ftp://example.com", "absolute http(s) URL"),
        ("example.com", "absolute http(s) URL"),
        ("http://", "absolute http(s) URL"),
        ("http://user:pw@example.com", "user name or password"),
        ("http://user@example.com", "user name or password"),
        ("http://example.com/mb?x=1", "query"),
        ("http://example.com/?", "query"),
        ("http://example.com/#top", "fragment"),
        ("http://example.com:99999", "bad port"),
        ("http://example.com:0", "bad port"),
        ("http://example.com:", "empty port"),
        ("http://example.com/a/../b", "plain segments"),
        ("http://example.com//mb", "plain segments"),
        ("http://example.com/m%62", "plain segments"),
        ("http://example.com/m b", "without spaces"),
        ("http://exämple.com", "plain ASCII"),
    ],
)
def test_public_url_with_bad_parts_is_refused_naming_the_variable(
    tmp_path: Path, value: str, says: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(var_dir=tmp_path, public_url=value)
    assert "MAILBEACON_PUBLIC_URL" in str(caught.value)
    assert says in str(caught.value)


@pytest.mark.parametrize(
    ("value", "public_url", "public_path"),
    [
        ("https://track.example.com/", "https://track.example.com", ""),
        ("http://example.com:8080/mb/", "http://example.com:8080/mb", "/mb"),
        (
            "HTTPS://Example.com/mail-beacon/v1",
            "https://Example.com/mail-beacon/v1",
            "/mail-beacon/v1",
        ),
        ("http://[::1]:8000", "http://[::1]:8000", ""),
    ],
)
def test_public_url_is_normalised(
    tmp_path: Path, value: str, public_url: str, public_path: str
) -> None:
    settings = load_settings(var_dir=tmp_path, public_url=value)
    assert (settings.public_url, settings.public_path) == (public_url, public_path)


@pytest.mark.parametrize("prefix", ["/mail", "/o", "/Static/x", "/api"])
def test_public_url_prefix_that_collides_with_the_apps_own_paths_stops_start_up(
    tmp_path: Path, prefix: str
) -> None:
    """A stripping proxy would make /mail/... ambiguous: refused with the variable's name."""
    env = {
        **os.environ,
        "MAILBEACON_VAR_DIR": str(tmp_path),
        "MAILBEACON_PUBLIC_URL": f"http://127.0.0.1:8000{prefix}",
    }
    result = subprocess.run(
        [*MAILBEACON, "serve", "--port", str(free_port()), "--no-worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "MAILBEACON_PUBLIC_URL" in result.stderr, result.stderr
    assert "MailBeacon's own paths" in result.stderr, result.stderr


def test_trusted_proxies_setting_is_parsed_and_checked(tmp_path: Path) -> None:
    settings = load_settings(var_dir=tmp_path, trusted_proxies=" 10.0.0.0/8, ::1 ,192.0.2.7")
    assert [str(n) for n in settings.trusted_proxies] == ["10.0.0.0/8", "::1/128", "192.0.2.7/32"]
    assert load_settings(var_dir=tmp_path).trusted_proxies == ()
    with pytest.raises(ConfigError) as caught:
        load_settings(var_dir=tmp_path, trusted_proxies="10.0.0.0/8,nginx")
    assert "MAILBEACON_TRUSTED_PROXIES" in str(caught.value) and "'nginx'" in str(caught.value)


# --- PUBLIC_URL with a path prefix works ----------------------------------------------


async def test_public_url_path_prefix_pixel_and_click_are_answered_under_it(
    serve_app: Any, database_url: str, smtp_server: SmtpRecorder
) -> None:
    """Defect: PUBLIC_URL=http://host/mb was accepted, and every pixel in sent mail was a 404."""
    live = await serve_app(database_url, public_path="/mb", smtp_url=smtp_server.url)
    sent = await live.client.post(
        "/mb/api/v1/messages",
        headers=live.auth(),
        json={
            "to": ["ann@example.com"],
            "html": '<p>See <a href="https://example.com/offer">this</a></p>',
        },
    )
    assert sent.status_code == 201, sent.text
    await delivered(live.client, sent.json()["id"], live.auth())  # sending is queued
    html = smtp_server.to("ann@example.com").body("html") or ""
    [pixel] = PIXEL.findall(html)
    [click] = CLICK.findall(HONEYPOT.sub("", html))  # the reader's link, not the honeypot
    assert pixel.startswith(f"{live.base_url}/mb/o/")
    assert click.startswith(f"{live.base_url}/mb/c/")

    async with reader_client(timeout=15) as reader:
        image = await reader.get(pixel)
        assert image.status_code == 200 and image.headers["content-type"] == "image/gif"
        redirect = await reader.get(click)
        assert redirect.status_code == 302
        assert redirect.headers["location"] == "https://example.com/offer"
        # A proxy that strips the prefix passes /o/... on: answered just the same.
        stripped = await reader.get(pixel.replace("/mb/o/", "/o/"))
        assert stripped.status_code == 200 and stripped.headers["content-type"] == "image/gif"

    kinds = [h.kind for h in await recorded_hits(database_url)]
    assert kinds == ["open", "click", "open"]


async def test_web_app_works_under_a_path_prefix(serve_app: Any, database_url: str) -> None:
    """Links, redirects, static files, cookie paths, the API and the live stream, under /mb.

    (The same through nginx, forwarding the prefix and stripping it: tests/test_proxy.py.)
    """
    live = await serve_app(database_url, public_path="/mb")
    async with httpx.AsyncClient(base_url=live.base_url, timeout=15) as browser:
        for home in ("/mb", "/mb/"):
            answer = await browser.get(home)
            assert (answer.status_code, answer.headers["location"]) == (303, "/mb/login")
        gate = await browser.get("/mb/mail?tracked=1")
        assert gate.status_code == 303
        assert gate.headers["location"] == "/mb/login?next=/mail%3Ftracked%3D1"

        login = await browser.get("/mb/login")
        assert login.status_code == 200
        assert 'action="/mb/login"' in login.text
        assert 'href="/mb/static/app.css"' in login.text
        assert 'data-root="/mb"' in login.text
        assert re.search(r'(href|src|action)="/(?!mb/)', login.text) is None
        login_cookie = login.headers["set-cookie"]
        assert "Path=/mb/login" in login_cookie

        token = LOGIN_CSRF.search(login.text)
        assert token is not None
        signed = await browser.post(
            "/mb/login",
            data={
                "email": live.email,
                "password": PASSWORD,
                "login_csrf": token.group(1),
                "next": "/mail",
            },
        )
        assert signed.status_code == 303, signed.text
        assert signed.headers["location"] == "/mb/mail"
        session_cookie = next(
            c for c in signed.headers.get_list("set-cookie") if c.startswith("mb_session=")
        )
        assert re.search(r"Path=/mb(;|$)", session_cookie), session_cookie

        page = await browser.get("/mb/mail")
        assert page.status_code == 200
        links = re.findall(r'(?:href|src|action)="(/[^"]*)"', page.text)
        assert links and all(link.startswith("/mb/") for link in links), links
        # Every first segment the app links to is one a prefix may not start with.
        segments = {link.split("/")[2].split("?")[0] for link in links} - {""}
        assert segments <= APP_PATHS, segments - APP_PATHS
        assert 'aria-current="page"' in page.text.split('href="/mb/mail"', 1)[1][:40]

        css = await browser.get("/mb/static/app.css")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
        docs = await browser.get("/mb/api/v1/docs")
        assert '"../../static/api-docs.js"' in docs.text
        spec = await browser.get("/mb/api/v1/openapi.json")
        assert spec.json()["servers"] == [{"url": "/mb"}]
        api_error = await browser.get("/mb/api/v1/messages/999", headers=live.auth())
        assert api_error.status_code == 404 and api_error.json()

        async with browser.stream("GET", "/mb/notifications/stream") as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            first = await anext(stream.aiter_text())
            assert "event: unread" in first or "retry:" in first


# --- serve says when PUBLIC_URL does not reach it -------------------------------------


def serve_until(env: dict[str, str], port: int, wanted: re.Pattern[str]) -> str:
    """Run `serve`, read its log until `wanted` appears (or 40 s pass), stop it; the log."""
    server = subprocess.Popen(
        [*MAILBEACON, "serve", "--port", str(port), "--no-worker"],
        env={**os.environ, "MAILBEACON_EMBEDDED_WORKER": "false", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert server.stdout is not None
    log = ""
    deadline = time.monotonic() + 40
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(server.stdout, selectors.EVENT_READ)
            while not wanted.search(log) and time.monotonic() < deadline:
                if selector.select(timeout=deadline - time.monotonic()):
                    line = server.stdout.readline()
                    if not line:
                        break
                    log += line
    finally:
        server.send_signal(signal.SIGINT)
        rest, _ = server.communicate(timeout=30)
    return log + rest


def test_serve_warns_when_public_url_names_another_port(tmp_path: Path) -> None:
    """Defect: serving on another port than PUBLIC_URL's sent mail with dead links, silently."""
    port, other = free_port(), free_port()
    log = serve_until(
        {"MAILBEACON_VAR_DIR": str(tmp_path), "MAILBEACON_PUBLIC_URL": f"http://127.0.0.1:{other}"},
        port,
        re.compile(r"Uvicorn running|Application startup complete"),
    )
    assert re.search(
        rf"WARNING .*MAILBEACON_PUBLIC_URL is http://127.0.0.1:{other}, but serve listens on "
        rf"127.0.0.1:{port}",
        log,
    ), log


def test_serve_self_check_warns_when_public_url_does_not_answer(tmp_path: Path) -> None:
    """Not obviously wrong (a path prefix: a proxy?), so serve asks PUBLIC_URL itself."""
    port, nobody = free_port(), free_port()
    log = serve_until(
        {
            "MAILBEACON_VAR_DIR": str(tmp_path),
            "MAILBEACON_PUBLIC_URL": f"http://127.0.0.1:{nobody}/mb",
        },
        port,
        re.compile(r"could not be reached|reaches this server"),
    )
    assert re.search(
        rf"WARNING .*MAILBEACON_PUBLIC_URL is http://127.0.0.1:{nobody}/mb, but "
        rf"http://127.0.0.1:{nobody}/mb/o/public-url-check.gif could not be reached",
        log,
    ), log
    assert "Application startup complete" in log  # a warning, never a failed start


def test_serve_self_check_is_quiet_when_public_url_reaches_it(tmp_path: Path) -> None:
    port = free_port()
    log = serve_until(
        {
            "MAILBEACON_VAR_DIR": str(tmp_path),
            "MAILBEACON_PUBLIC_URL": f"http://localhost:{port}/mb",
        },
        port,
        re.compile(r"could not be reached|reaches this server|answered"),
    )
    assert f"MAILBEACON_PUBLIC_URL http://localhost:{port}/mb reaches this server" in log, log
    assert "WARNING" not in log, log


@pytest.mark.parametrize(
    ("public_url", "host", "port", "warned", "checked"),
    [
        ("http://127.0.0.1:8000", "127.0.0.1", 8000, False, False),
        ("http://localhost:8000", "0.0.0.0", 8000, False, False),  # noqa: S104
        ("http://127.0.0.1:8000", "127.0.0.1", 8001, True, False),
        ("http://localhost:8000", "::", 9000, True, False),
        ("http://[::1]:8000", "::1", 8000, False, False),
        ("http://127.0.0.1:8000/mb", "127.0.0.1", 8001, False, True),  # a proxy, perhaps
        ("https://track.example.com", "0.0.0.0", 8000, False, True),  # noqa: S104
        ("https://127.0.0.1:8000", "127.0.0.1", 8000, False, True),  # TLS in front?
    ],
)
def test_serve_decides_between_warning_checking_and_trusting_public_url(
    public_url: str, host: str, port: int, warned: bool, checked: bool
) -> None:
    from mailbeacon.reach import obvious_mismatch, plainly_reachable

    assert bool(obvious_mismatch(public_url, host, port)) is warned
    assert (not warned and not plainly_reachable(public_url, host, port)) is checked
