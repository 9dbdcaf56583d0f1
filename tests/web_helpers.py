"""Signing in over real HTTP, as a browser would, for page tests."""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx

from tests.conftest import LiveApp

CSRF = re.compile(r'data-csrf="([^"]+)"')
LOGIN_CSRF = re.compile(r'name="login_csrf" value="([^"]+)"')
PASSWORD = "a long password"  # what LiveApp.add_user gives every user


@dataclass
class Browser:
    """An httpx client holding a signed-in session cookie."""

    client: httpx.AsyncClient
    csrf: str

    async def get(self, path: str, **kw: object) -> httpx.Response:
        return await self.client.get(path, **kw)  # type: ignore[arg-type]

    async def post(
        self, path: str, data: dict[str, object] | None = None, **kw: object
    ) -> httpx.Response:
        """A form post carrying the session's CSRF token."""
        form = {"csrf_token": self.csrf, **(data or {})}
        return await self.client.post(path, data=form, **kw)  # type: ignore[arg-type]

    async def aclose(self) -> None:
        await self.client.aclose()


def client_for(live: LiveApp) -> httpx.AsyncClient:
    """A browser-like client of the live app that does not follow redirects."""
    return httpx.AsyncClient(base_url=live.base_url, timeout=15, follow_redirects=False)


async def login_token(client: httpx.AsyncClient) -> str:
    """The login form's own CSRF token (its cookie lands in the client's jar)."""
    page = await client.get("/login")
    assert page.status_code == 200, page.text
    match = LOGIN_CSRF.search(page.text)
    assert match, page.text
    return match.group(1)


async def sign_in(live: LiveApp, email: str, password: str = PASSWORD) -> Browser:
    """Sign in through the login form; fails the test if that does not work."""
    client = client_for(live)
    response = await client.post(
        "/login",
        data={
            "email": email,
            "password": password,
            "login_csrf": await login_token(client),
            "next": "/settings",
        },
    )
    assert response.status_code == 303, response.text
    page = await client.get("/settings")
    assert page.status_code == 200, page.text
    match = CSRF.search(page.text)
    assert match, page.text
    return Browser(client, match.group(1))
