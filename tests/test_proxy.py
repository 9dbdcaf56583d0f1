"""Behind a reverse proxy: the client's address, never the proxy's, never a forged one.

Debian's nginx runs as the test's own child process (config, pid, logs and
temp files in the test's tmp dir) in front of the app, with PUBLIC_URL under a
path prefix, configured with the snippet the README gives operators. Clients
connect from their own loopback addresses (127.0.5.9, 127.0.6.9), nginx
reaches the app from 127.0.0.1: three different /24 networks, so a recorded
(truncated) address says who was believed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from mailbeacon.cli import _with_cli_proxies, build_parser
from mailbeacon.core.forwarded import (
    client_address,
    forwarded_chain,
    parse_networks,
    x_forwarded_for_chain,
)
from mailbeacon.settings import ConfigError, load_settings
from mailbeacon.store.db import make_engine, sessions
from mailbeacon.store.tables import HitRow
from tests.conftest import LiveApp, SmtpRecorder
from tests.helpers import HONEYPOT, delivered, free_port
from tests.web_helpers import LOGIN_CSRF, PASSWORD

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
PIXEL = re.compile(r'<img src="(http://[^"]+\.gif)"')
CLICK = re.compile(r'href="(http://[^"]+/c/[A-Za-z0-9_-]+)"')
CLIENT_A, CLIENT_B = "127.0.5.9", "127.0.6.9"

# The README's operator snippet (MAILBEACON_PUBLIC_URL=https://example.com/mailbeacon),
# here with the test's prefix and ports: what is documented is what is tested.
OPERATOR_LOCATION = """
    location {prefix}/ {{
        proxy_pass http://127.0.0.1:{app_port};
        proxy_http_version 1.1;
        proxy_set_header Host $http_host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header Connection "";
        proxy_buffering off;
        proxy_read_timeout 1h;
        client_max_body_size 12m;
    }}
"""
# The same, for a proxy that strips the prefix (proxy_pass with a URI part).
STRIPPING_LOCATION = OPERATOR_LOCATION.replace(
    "proxy_pass http://127.0.0.1:{app_port};", "proxy_pass http://127.0.0.1:{app_port}/;"
)
NGINX_CONF = """
{user}
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        {forwarding}
    }}
    server {{
        listen 127.0.0.1:{strip_port};
        {stripping}
    }}
}}
"""


# --- the rule itself, without any server ---------------------------------------------

TRUSTED = parse_networks("127.0.0.1, 10.0.0.0/8")


@pytest.mark.parametrize(
    ("peer", "header", "client"),
    [
        ("198.51.100.7", "203.0.113.9", "198.51.100.7"),  # not from a proxy: header ignored
        ("127.0.0.1", "198.51.100.7", "198.51.100.7"),
        ("127.0.0.1", "203.0.113.66, 198.51.100.7", "198.51.100.7"),  # forged left part
        ("127.0.0.1", "198.51.100.7, 10.1.2.3", "198.51.100.7"),  # two proxies of ours
        ("127.0.0.1", "10.9.9.9, 10.1.2.3", "10.9.9.9"),  # all ours: the left-most
        ("127.0.0.1", "garbage, 10.1.2.3", "10.1.2.3"),  # garbage stops at our last hop
        ("127.0.0.1", "", "127.0.0.1"),
        ("::ffff:127.0.0.1", "198.51.100.7", "198.51.100.7"),  # IPv4-mapped peer
        ("127.0.0.1", "2001:db8::1", "2001:db8::1"),
    ],
)
def test_client_is_the_right_most_untrusted_x_forwarded_for_hop(
    peer: str, header: str, client: str
) -> None:
    assert client_address(peer, x_forwarded_for_chain([header]), TRUSTED) == client


def test_forwarded_header_is_read_like_x_forwarded_for() -> None:
    chain = forwarded_chain(
        ['for=203.0.113.66;proto=https, for="198.51.100.7:4711"', 'for="[2001:db8::1]:80";by=x']
    )
    assert chain == ["203.0.113.66", "198.51.100.7", "2001:db8::1"]
    assert client_address("127.0.0.1", chain[:2], TRUSTED) == "198.51.100.7"
    assert forwarded_chain(["by=10.0.0.1, for=unknown"]) == ["", "unknown"]


def test_cli_proxy_flags_add_to_trusted_proxies(tmp_path: Path) -> None:
    """`serve --proxy-headers [--forwarded-allow-ips]` keeps working: it feeds the setting."""
    settings = load_settings(var_dir=tmp_path, trusted_proxies="10.0.0.0/8")
    parse = build_parser().parse_args

    def trusted(*flags: str) -> list[str]:
        resolved = _with_cli_proxies(settings, parse(["serve", *flags]))
        return [str(n) for n in resolved.trusted_proxies]

    assert trusted() == ["10.0.0.0/8"]
    assert trusted("--proxy-headers") == ["10.0.0.0/8", "127.0.0.1/32", "::1/128"]
    assert trusted("--forwarded-allow-ips", "192.0.2.0/24") == ["10.0.0.0/8", "192.0.2.0/24"]
    assert trusted("--proxy-headers", "--forwarded-allow-ips", "*") == [
        "10.0.0.0/8",
        "0.0.0.0/0",
        "::/0",
    ]
    with pytest.raises(ConfigError, match="--forwarded-allow-ips"):
        trusted("--forwarded-allow-ips", "proxy.local")


# --- nginx in front, for real ------------------------------------------------------------


@dataclass
class Front:
    """nginx forwarding /mb/ (the prefix kept) and, on a second port, stripping it."""

    url: str
    strip_url: str
    port: int
    strip_port: int
    tmp: Path

    def client(self, source: str, *, stripping: bool = False) -> httpx.AsyncClient:
        """A client connecting from `source`, as a reader or browser on its own network."""
        return httpx.AsyncClient(
            base_url=self.strip_url if stripping else self.url,
            transport=httpx.AsyncHTTPTransport(local_address=source),
            timeout=15,
        )


def nginx_config(tmp: Path, port: int, strip_port: int, app_port: int, prefix: str) -> str:
    return NGINX_CONF.format(
        # As root, nginx's workers would otherwise become `nobody`, locked out of tmp.
        user="user root;" if os.geteuid() == 0 else "",
        tmp=tmp,
        port=port,
        strip_port=strip_port,
        forwarding=OPERATOR_LOCATION.format(prefix=prefix, app_port=app_port),
        stripping=STRIPPING_LOCATION.format(prefix=prefix, app_port=app_port),
    )


@pytest.fixture
def nginx_ports() -> Iterator[tuple[int, int]]:
    if not os.path.exists(NGINX):
        if os.environ.get("CI") == "true":
            pytest.fail("nginx is required under CI (`make nginx-deps` installs Debian's)")
        pytest.skip("nginx is not installed (`make nginx-deps` installs Debian's)")
    yield free_port(), free_port()


async def start_nginx(tmp: Path, conf: str, ports: tuple[int, int]) -> subprocess.Popen[bytes]:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "nginx.conf").write_text(conf)
    files = ["-p", str(tmp), "-c", str(tmp / "nginx.conf"), "-e", str(tmp / "error.log")]
    process = subprocess.Popen(
        [NGINX, *files, "-g", "daemon off;"],  # in the foreground: our child, stopped by us
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = asyncio.get_running_loop().time() + 15
    for port in ports:
        while True:
            assert process.poll() is None, process.stderr.read() if process.stderr else b""
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                assert asyncio.get_running_loop().time() < deadline, "nginx did not listen"
                await asyncio.sleep(0.05)
                continue
            writer.close()
            await writer.wait_closed()
            break
    return process


@pytest.fixture
async def front(
    serve_app: Any,
    database_url: str,
    smtp_server: SmtpRecorder,
    nginx_ports: tuple[int, int],
    tmp_path: Path,
) -> AsyncIterator[tuple[Front, LiveApp]]:
    """The app behind nginx at http://127.0.0.1:<port>/mb, trusting nginx (127.0.0.1) only."""
    port, strip_port = nginx_ports
    live: LiveApp = await serve_app(
        database_url,
        public_url=f"http://127.0.0.1:{port}",
        public_path="/mb",
        trusted_proxies="127.0.0.1",
        smtp_url=smtp_server.url,
    )
    app_port = int(live.base_url.rsplit(":", 1)[1])
    tmp = tmp_path / "nginx"
    process = await start_nginx(
        tmp, nginx_config(tmp, port, strip_port, app_port, "/mb"), (port, strip_port)
    )
    try:
        yield (
            Front(
                f"http://127.0.0.1:{port}/mb",
                f"http://127.0.0.1:{strip_port}/mb",
                port,
                strip_port,
                tmp,
            ),
            live,
        )
    finally:
        process.send_signal(signal.SIGTERM)  # nginx's fast shutdown
        process.wait(timeout=15)
        if process.stderr:
            process.stderr.close()


async def recorded_hits(live: LiveApp) -> list[HitRow]:
    engine = make_engine(live.settings.effective_database_url)
    try:
        async with sessions(engine)() as db:
            return list(await db.scalars(select(HitRow).order_by(HitRow.seq)))
    finally:
        await engine.dispose()


def network(address: str) -> str:
    return str(ipaddress.ip_network(f"{address}/24", strict=False).network_address)


async def test_behind_nginx_with_a_prefix_pixel_and_click_record_the_client(
    front: tuple[Front, LiveApp], smtp_server: SmtpRecorder
) -> None:
    """Defects: a prefix 404'd every pixel; behind a proxy every hit recorded the proxy."""
    proxy, live = front
    async with proxy.client(CLIENT_B) as sender:
        sent = await sender.post(
            "/api/v1/messages",
            headers=live.auth(),
            json={
                "to": ["ann@example.com"],
                "html": '<p><a href="https://example.com/x">x</a></p>',
            },
        )
    assert sent.status_code == 201, sent.text
    await delivered(live.client, sent.json()["id"], live.auth())  # sending is queued
    html = smtp_server.to("ann@example.com").body("html") or ""
    [pixel] = PIXEL.findall(html)
    [click] = CLICK.findall(HONEYPOT.sub("", html))  # the reader's link, not the honeypot
    assert pixel.startswith(f"{proxy.url}/o/") and click.startswith(f"{proxy.url}/c/")

    async with proxy.client(CLIENT_A) as reader:
        # What the reader's mail client fetches, once plainly and once with a forged header.
        assert (await reader.get(pixel)).headers["content-type"] == "image/gif"
        forged = await reader.get(pixel, headers={"X-Forwarded-For": "203.0.113.66"})
        assert forged.status_code == 200
        redirect = await reader.get(click, headers={"X-Forwarded-For": "10.0.0.1, 127.0.0.1"})
        assert redirect.status_code == 302
        assert redirect.headers["location"] == "https://example.com/x"
    async with proxy.client(CLIENT_A, stripping=True) as reader:
        path = pixel.removeprefix(proxy.url)
        assert (await reader.get(path)).headers["content-type"] == "image/gif"

    hits = await recorded_hits(live)
    assert [h.kind for h in hits] == ["open", "open", "click", "open"]
    assert {h.ip for h in hits} == {network(CLIENT_A)}  # not nginx's 127.0.0.0, not forged


async def wrong_password(client: httpx.AsyncClient, email: str, forged: str = "") -> int:
    form = await client.get("/login")
    token = LOGIN_CSRF.search(form.text)
    assert token is not None, form.text
    headers = {"X-Forwarded-For": forged} if forged else {}
    response = await client.post(
        "/login",
        data={"email": email, "password": "not it", "login_csrf": token.group(1), "next": "/"},
        headers=headers,
    )
    return response.status_code


async def test_behind_nginx_sign_in_throttling_counts_the_client_not_nginx(
    front: tuple[Front, LiveApp],
) -> None:
    """Defect: behind a proxy, anyone's wrong passwords locked everybody out."""
    proxy, live = front
    async with proxy.client(CLIENT_A) as attacker:
        # Five wrong passwords for the account, each claiming another address.
        statuses = [
            await wrong_password(attacker, live.email, forged=f"198.51.{i}.1") for i in range(5)
        ]
        assert statuses == [401] * 5
        assert await wrong_password(attacker, live.email, forged="192.0.2.1") == 429

    async with proxy.client(CLIENT_B) as owner:
        form = await owner.get("/login")
        token = LOGIN_CSRF.search(form.text)
        assert token is not None
        signed = await owner.post(
            "/login",
            data={
                "email": live.email,
                "password": PASSWORD,
                "login_csrf": token.group(1),
                "next": "/mail",
            },
        )
        assert signed.status_code == 303, signed.text
        assert signed.headers["location"] == "/mb/mail"
        assert (await owner.get("/mail")).status_code == 200


@pytest.mark.parametrize("stripping", [False, True], ids=["prefix-forwarded", "prefix-stripped"])
async def test_behind_nginx_the_web_app_works_under_the_prefix(
    front: tuple[Front, LiveApp], stripping: bool
) -> None:
    """Sign in, follow redirects, load a page, its stylesheet and the live stream via nginx."""
    proxy, live = front
    async with proxy.client(CLIENT_B, stripping=stripping) as browser:
        gate = await browser.get("/settings")
        assert gate.status_code == 303
        assert gate.headers["location"] == "/mb/login?next=/settings"
        form = await browser.get("/login")
        token = LOGIN_CSRF.search(form.text)
        assert token is not None
        signed = await browser.post(
            "/login",
            data={
                "email": live.email,
                "password": PASSWORD,
                "login_csrf": token.group(1),
                "next": "/settings",
            },
        )
        assert signed.status_code == 303 and signed.headers["location"] == "/mb/settings"
        page = await browser.get("/settings")
        assert page.status_code == 200
        links = re.findall(r'(?:href|src|action)="(/[^"]*)"', page.text)
        assert links and all(link.startswith("/mb/") for link in links), links
        css = await browser.get("/static/app.css")
        assert css.status_code == 200
        async with browser.stream("GET", "/notifications/stream") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            first = await anext(stream.aiter_text())
            assert "event: unread" in first


def test_operator_snippet_is_valid_nginx(tmp_path: Path, nginx_ports: tuple[int, int]) -> None:
    """`nginx -t` accepts the configuration built around the README's snippet."""
    port, strip_port = nginx_ports
    conf = tmp_path / "nginx.conf"
    conf.write_text(nginx_config(tmp_path, port, strip_port, 8000, "/mailbeacon"))
    result = subprocess.run(
        [NGINX, "-t", "-p", str(tmp_path), "-c", str(conf), "-e", str(tmp_path / "error.log")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
