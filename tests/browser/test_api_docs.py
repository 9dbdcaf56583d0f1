"""The API reference renders in a real browser, offline and under our CSP (B9)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.async_api import BrowserContext, expect

from mailbeacon.store.db import migrate_async


async def test_api_reference_renders(
    serve_app: Any, tmp_path: Path, desktop: BrowserContext
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'docs.db'}"
    await migrate_async(url)
    live = await serve_app(url)
    page = await desktop.new_page()
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security" in m.text else None)
    response = await page.goto(f"{live.base_url}/api/v1/docs")
    assert response is not None and response.status == 200
    await expect(page.locator(".swagger-ui .info .title")).to_contain_text("MailBeacon")
    await expect(
        page.locator(".opblock-summary-path", has_text="/api/v1/messages").first
    ).to_be_visible()
    await expect(page.locator("button.authorize")).to_be_visible()  # bearer tokens
    assert refused == []
