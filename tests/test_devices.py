"""The sender's own browsers (B2): recorded, throttled, listed and forgotten.

The store's upsert runs on SQLite and PostgreSQL; the web part signs in over
real HTTP, behind a trusted proxy, to prove the network recorded is the
truncated address of the client the app trusts, not the proxy's.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from mailbeacon.store.accounts import add_user
from mailbeacon.store.db import make_engine, sessions
from mailbeacon.store.devices import devices_of, forget_device, remember_device
from mailbeacon.store.tables import UserDevice
from mailbeacon.web.devices import DeviceThrottle
from tests.conftest import LiveApp
from tests.web_helpers import client_for, login_token

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


async def test_upsert_keeps_one_row_per_device_and_moves_last_seen(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        async with sessions(engine)() as db, db.begin():
            user = await add_user(db, "me@example.com", "a long password")
            other = await add_user(db, "other@example.com", "a long password")
        for moment in (T0, T0 + timedelta(minutes=30), T0 + timedelta(minutes=5)):
            async with sessions(engine)() as db, db.begin():
                await remember_device(db, user.id, FIREFOX, "192.0.2.0", moment)
        async with sessions(engine)() as db, db.begin():
            await remember_device(db, user.id, FIREFOX, "198.51.100.0", T0)
            await remember_device(db, user.id, "x" * 600, "192.0.2.0", T0)  # cut to the column
            await remember_device(db, other.id, FIREFOX, "192.0.2.0", T0)
        async with sessions(engine)() as db:
            mine = await devices_of(db, user.id)
        assert len(mine) == 3
        same = next(d for d in mine if d.network == "192.0.2.0" and d.user_agent == FIREFOX)
        assert same.first_seen_at == T0
        assert same.last_seen_at == T0 + timedelta(minutes=30)  # an older write never rewinds
        assert any(len(d.user_agent) == 512 for d in mine)
        async with sessions(engine)() as db, db.begin():
            assert not await forget_device(db, other.id, same.id)  # not theirs (S7)
            assert await forget_device(db, user.id, same.id)
            assert not await forget_device(db, user.id, same.id)
        async with sessions(engine)() as db:
            assert len(await devices_of(db, user.id)) == 2
            assert len(await devices_of(db, other.id)) == 1
    finally:
        await engine.dispose()


def test_throttle_allows_one_write_per_session_per_interval() -> None:
    now = [0.0]
    throttle = DeviceThrottle(interval=600, clock=lambda: now[0])
    assert throttle.due("a")
    assert not throttle.due("a")
    assert throttle.due("b")  # another session is its own
    now[0] = 599
    assert not throttle.due("a")
    assert throttle.due("a", force=True)  # a sign-in always writes
    now[0] = 599 + 600
    assert throttle.due("a")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_sign_in_records_the_trusted_client_and_settings_can_forget_it(
    serve_app: object, database_url: str
) -> None:
    live: LiveApp = await serve_app(database_url, trusted_proxies="127.0.0.1")  # type: ignore[operator]
    client = client_for(live)
    headers = {"User-Agent": FIREFOX, "X-Forwarded-For": "203.0.113.77"}
    try:
        response = await client.post(
            "/login",
            data={
                "email": live.email,
                "password": "a long password",
                "login_csrf": await login_token(client),
                "next": "/settings",
            },
            headers=headers,
        )
        assert response.status_code == 303, response.text
        engine = make_engine(live.settings.effective_database_url)
        try:
            async with sessions(engine)() as db:
                rows = (
                    await db.scalars(select(UserDevice).where(UserDevice.user_id == live.user_id))
                ).all()
            assert [(d.user_agent, d.network) for d in rows] == [(FIREFOX, "203.0.113.0")]
            seen = rows[0].last_seen_at
            for _ in range(3):  # page loads within ten minutes write nothing more
                page = await client.get("/settings", headers=headers)
            async with sessions(engine)() as db:
                again = await db.scalar(
                    select(UserDevice.last_seen_at).where(UserDevice.user_id == live.user_id)
                )
            assert again == seen
        finally:
            await engine.dispose()
        text = page.text
        devices = text.split('<section class="card devices"', 1)[1].split("</section>", 1)[0]
        assert "Firefox on Linux" in devices and "This browser" in devices
        assert "203.0.113.0" in devices
        csrf = re.search(r'data-csrf="([^"]+)"', text)
        assert csrf
        action = re.search(r'action="(/settings/devices/\d+/forget)"', devices)
        assert action
        gone = await client.post(action.group(1), data={"csrf_token": csrf.group(1)})
        assert gone.status_code == 303 and "device-forgotten" in gone.headers["location"]
        again_page = await client.get("/settings?done=device-forgotten", headers=headers)
        assert "The browser is forgotten." in again_page.text
        assert "No browser recognised yet." in again_page.text
        missing = await client.post(action.group(1), data={"csrf_token": csrf.group(1)})
        assert missing.status_code == 404
        refused = await client.post(action.group(1), data={})  # no CSRF token
        assert refused.status_code in (400, 403)
    finally:
        await client.aclose()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_reopen_quiet_hours_are_saved_and_checked(
    serve_app: object, database_url: str
) -> None:
    from tests.web_helpers import sign_in

    live: LiveApp = await serve_app(database_url)  # type: ignore[operator]
    browser = await sign_in(live, live.email)
    form = {
        "display_name": "",
        "language": "en",
        "timezone": "UTC",
        "open_tracking": "1",
        "link_tracking": "1",
        "notify_tracking": "1",
    }
    try:
        page = await browser.get("/settings")
        assert 'name="reopen_quiet_hours"' in page.text and 'value="3"' in page.text
        for bad in ("169", "-1", "2.5", "three", "٣", "0x10", "1000"):
            refused = await browser.post("/settings", {**form, "reopen_quiet_hours": bad})
            assert refused.status_code == 400, bad
            assert "Enter a whole number of hours from 0 to 168." in refused.text
        saved = await browser.post("/settings", {**form, "reopen_quiet_hours": "12"})
        assert saved.status_code == 303
        assert 'value="12"' in (await browser.get("/settings")).text
        kept = await browser.post("/settings", form)  # an older form without the field
        assert kept.status_code == 303
        assert 'value="12"' in (await browser.get("/settings")).text
        zero = await browser.post("/settings", {**form, "reopen_quiet_hours": "0"})
        assert zero.status_code == 303
        field = re.search(
            r'<input type="number" name="reopen_quiet_hours"[^>]*>',
            (await browser.get("/settings")).text,
        )
        assert field and 'value="0"' in field.group(0)
    finally:
        await browser.aclose()
