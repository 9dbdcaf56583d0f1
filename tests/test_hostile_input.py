"""Hostile input at the web app's edges gets a clear 4xx (or a safe answer), never a 500
(DESIGN rule 6), on SQLite and PostgreSQL, over real HTTP."""

from __future__ import annotations

import ipaddress
import logging
import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import select

from mailbeacon.mail import destinations
from mailbeacon.settings import load_settings
from mailbeacon.store.db import migrate
from mailbeacon.store.tables import Message, User
from tests.conftest import TEST_SECRET, LiveApp
from tests.test_web_auth import runtime_of
from tests.web_helpers import client_for, login_token, sign_in

TOO_BIG = 2**63  # one past the largest 64-bit id
HUGE = "9" * 5000  # past Python's int() digit limit (4,300)


async def message_count(live: LiveApp) -> int:
    async with runtime_of(live).engine.connect() as conn:
        return len((await conn.execute(select(Message.id))).all())


@pytest.mark.parametrize(
    "body",
    [
        b'{"to": ["ann@example.com"], "subject": NaN}',
        b'{"to": ["ann@example.com"], "track_opens": Infinity}',
        b'{"to": ["ann@example.com"], "track_opens": -Infinity}',
        b'{"to": ["ann@example.com"], "track_links": 1e999}',
        b'{"to": NaN}',
        b'{"to": [1e999]}',
    ],
)
async def test_json_nan_and_infinite_numbers_are_refused(live: LiveApp, body: bytes) -> None:
    response = await live.client.post(
        "/api/v1/messages",
        content=body,
        headers={**live.auth(), "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert "number" in response.text
    assert await message_count(live) == 0


@pytest.mark.parametrize(
    "body",
    [
        b'{"to": ["ann@example.com"], "subject": "Hi \\ud800"}',
        b'{"to": ["ann@example.com"], "text": "\\udc80 lone low half"}',
        b'{"to": ["ann\\udfff@example.com"], "text": "x"}',
        b'{"to": ["ann@example.com"], "subject": "NUL \\u0000 inside", "text": "x"}',
        b'{"to": ["ann@example.com"], "\\ud800": 1, "text": "x"}',
    ],
)
async def test_json_lone_surrogates_and_nul_are_refused(live: LiveApp, body: bytes) -> None:
    response = await live.client.post(
        "/api/v1/messages",
        content=body,
        headers={**live.auth(), "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert await message_count(live) == 0


async def test_json_surrogate_pairs_still_work(live: LiveApp) -> None:
    """A character outside the BMP written as an escaped pair is fine JSON."""
    response = await live.client.post(
        "/api/v1/messages",
        content=b'{"to": ["ann@example.com"], "subject": "Hi \\ud83d\\ude00", "text": "x"}',
        headers={**live.auth(), "Content-Type": "application/json"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["subject"] == "Hi \U0001f600"


async def test_ids_of_64_bits_and_more_are_refused(live: LiveApp) -> None:
    api = [f"/api/v1/messages/{TOO_BIG}", f"/api/v1/messages/{HUGE}", "/api/v1/messages/0"]
    for path in api:
        response = await live.client.get(path, headers=live.auth())
        assert response.status_code in (404, 422), (path, response.text)
    browser = await sign_in(live, live.email)
    for path in (f"/mail/{TOO_BIG}", f"/mail/{HUGE}", f"/outbox/{TOO_BIG}", f"/outbox/{HUGE}"):
        response = await browser.get(path)
        assert response.status_code == 404, (path, response.text)
    for path in (
        f"/notifications/{TOO_BIG}/read",
        f"/notifications/{HUGE}/read",
        f"/settings/tokens/{TOO_BIG}/revoke",
        f"/settings/tokens/{HUGE}/revoke",
    ):
        response = await browser.post(path)
        assert response.status_code == 404, (path, response.text)
    await browser.aclose()


@pytest.mark.parametrize("page", ["²", "١", HUGE, "-1", "0", "1e3", " 2", ""])
async def test_odd_page_numbers_are_page_one_or_refused(live: LiveApp, page: str) -> None:
    browser = await sign_in(live, live.email)
    for path in ("/mail", "/contacts", "/contacts/ann@example.com", "/notifications", "/outbox"):
        response = await browser.get(path, params={"page": page})
        assert response.status_code in (200, 404), (path, response.status_code)
    response = await live.client.get("/api/v1/messages", params={"page": page}, headers=live.auth())
    assert response.status_code in (200, 422), response.text
    await browser.aclose()


@pytest.mark.parametrize("value", [b"\xb2", b"\xd9\xa1", b"9" * 40, b"-1", b"12x"])
async def test_last_event_id_that_is_not_a_number_starts_afresh(
    live: LiveApp, value: bytes
) -> None:
    browser = await sign_in(live, live.email)
    async with browser.client.stream(
        "GET", "/notifications/stream", headers={"Last-Event-ID": value}
    ) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                assert '"unread": 0' in line
                break
    await browser.aclose()


async def test_nul_bytes_in_search_contact_paths_and_sign_in_are_refused(live: LiveApp) -> None:
    browser = await sign_in(live, live.email)
    for path, params in (
        ("/mail", {"q": "a\x00b"}),
        ("/contacts", {"q": "\x00"}),
        ("/contacts/ann%00@example.com", {}),
        ("/contacts/ann@example.com", {"page": "\x00"}),
    ):
        response = await browser.get(path, params=params)
        assert response.status_code == 400, (path, response.text)
        assert "NUL" in response.text
    await browser.aclose()
    client = client_for(live)
    token = await login_token(client)
    response = await client.post(
        "/login",
        data={"email": live.email + "\x00", "password": "x" * 10, "login_csrf": token},
    )
    assert response.status_code == 400, response.text
    await client.aclose()


@pytest.mark.parametrize("name", ["Ann\u2028Bcc: evil@example.com", "Ann\x85Berg", "A\u2029B"])
async def test_display_name_with_line_separators_is_refused(live: LiveApp, name: str) -> None:
    browser = await sign_in(live, live.email)
    response = await browser.post(
        "/settings",
        {"display_name": name, "language": "en", "timezone": "UTC", "open_tracking": "1"},
    )
    assert response.status_code == 400, response.text
    assert "line breaks" in response.text
    async with runtime_of(live).engine.connect() as conn:
        query = select(User.display_name).where(User.id == live.user_id)
        assert (await conn.execute(query)).scalar_one() == ""
    await browser.aclose()


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_local_state_is_created_owner_only(tmp_path: Path) -> None:
    """Another account on the machine reads nothing: var/, the SQLite file (and its WAL),
    the generated keys."""
    old_umask = os.umask(0o022)
    try:
        settings = load_settings(var_dir=tmp_path / "var", secret_keys="", data_key="")
        migrate(settings.effective_database_url)
    finally:
        os.umask(old_umask)
    var = tmp_path / "var"
    assert mode_of(var) == 0o700
    for name in ("mailbeacon.db", "secret_keys", "data_key"):
        assert mode_of(var / name) == 0o600, name
    for extra in var.glob("mailbeacon.db-*"):
        assert mode_of(extra) == 0o600, extra


def test_local_state_left_readable_is_repaired_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    var = tmp_path / "var"
    var.mkdir(mode=0o755)
    os.chmod(var, 0o755)  # noqa: S103 - what an older version left
    for name in ("mailbeacon.db", "secret_keys", "hits.spool"):
        (var / name).write_text("x\n" if name != "mailbeacon.db" else "")
        os.chmod(var / name, 0o644)
    (var / "secret_keys").write_text(TEST_SECRET + "\n")
    with caplog.at_level(logging.WARNING):
        load_settings(var_dir=var, secret_keys="", data_key="")
    assert mode_of(var) == 0o700
    for name in ("mailbeacon.db", "secret_keys", "hits.spool", "data_key"):
        assert mode_of(var / name) == 0o600, name
    repaired = [r.getMessage() for r in caplog.records if "open to other users" in r.getMessage()]
    assert len(repaired) == 4, repaired  # var/ and the three files it found readable


@pytest.mark.parametrize(
    "address",
    [
        "0.0.0.0",  # noqa: S104
        "127.0.0.1",
        "127.255.255.254",
        "10.1.2.3",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.0.1",
        "169.254.169.254",
        "100.64.0.1",
        "198.18.0.1",
        "224.0.0.1",
        "255.255.255.255",
        "::",
        "::1",
        "fe80::1",
        "fc00::1",
        "fd12:3456::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "64:ff9b::7f00:1",
        "2002:7f00:1::1",  # 6to4 around 127.0.0.1
    ],
)
def test_destination_check_refuses_inside_addresses(address: str) -> None:
    assert not destinations.is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.216.34", "2606:4700::1111"])
def test_destination_check_accepts_public_addresses(address: str) -> None:
    assert destinations.is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "name", ["localhost", "LocalHost.", "a.localhost", "metadata.google.internal", "x.internal"]
)
def test_destination_check_refuses_local_and_metadata_names(name: str) -> None:
    assert destinations.name_is_blocked(name)
