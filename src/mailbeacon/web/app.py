"""The FastAPI application: pages, the JSON API, static files, error pages."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from mailbeacon.core.policy import N_
from mailbeacon.runtime import Runtime
from mailbeacon.web import api, signals_text
from mailbeacon.web.auth import CsrfFailed, LoginRequired, has_credentials
from mailbeacon.web.guard import InputGuard
from mailbeacon.web.pages import auth
from mailbeacon.web.prefix import PublicPrefix, app_path
from mailbeacon.web.render import render
from mailbeacon.web.security import BodyLimit, SecurityHeaders
from mailbeacon.web.throttle import LoginThrottle

STATIC = Path(__file__).parent / "static"
TEMPLATES = Path(__file__).parent / "templates"


def create_web_app(runtime: Runtime) -> BodyLimit:
    """The web app; its lifespan starts and stops the runtime's services."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        # The user-agent parser builds its rules on first use (~0.4 s measured): done
        # here, off the loop, so the first page naming a client never stalls a hit.
        await asyncio.to_thread(signals_text.warm_up)
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(
        title="MailBeacon",
        version="1",
        description="Send email and learn, per recipient, when it was opened and clicked.",
        openapi_url="/api/v1/openapi.json",
        docs_url=None,  # served below from our own files: no CDN, and our CSP holds
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.login_throttle = LoginThrottle()
    app.include_router(api.router)
    for router in page_routers():
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/v1/docs", include_in_schema=False)
    async def api_docs() -> Response:
        """The browsable API reference (B9), in English like the API itself."""
        return FileResponse(TEMPLATES / "api_docs.html", media_type="text/html")

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        """For clients that ask the root for it: pages link static/favicon.svg (no 404)."""
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")

    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, exc: LoginRequired) -> Response:
        return RedirectResponse(f"/login?next={quote(exc.next_path, safe='/')}", status_code=303)

    @app.exception_handler(CsrfFailed)
    async def csrf_failed(request: Request, exc: CsrfFailed) -> Response:
        return await error_page(request, 403, "csrf")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if app_path(request).startswith("/api/") or exc.status_code < 400:
            return await http_exception_handler(request, exc)
        return await error_page(request, exc.status_code, "http")

    guarded = InputGuard(app, error_page)
    prefix = runtime.settings.public_path
    routed = PublicPrefix(guarded, prefix) if prefix else guarded
    return BodyLimit(SecurityHeaders(routed), partial(has_credentials, runtime.engine))


def page_routers() -> list[APIRouter]:
    """Every page module's router (imported here so the modules stay independent)."""
    from mailbeacon.web.pages import account, analytics, mail, notifications, outbox

    return [
        *(auth.router, mail.router, account.router, notifications.router, outbox.router),
        analytics.router,
    ]


async def error_page(request: Request, status_code: int, kind: str) -> Response:
    """An HTML error page in the visitor's language (the API keeps JSON errors)."""
    titles: dict[int, str] = {
        400: N_("Please check what you sent"),
        403: N_("Not allowed"),
        404: N_("Not found"),
        405: N_("Not allowed"),
        413: N_("Too large"),
        422: N_("Please check the form"),
    }
    messages: dict[str | int, str] = {
        "csrf": N_(
            "This form expired or came from another site. Go back, reload the page and try again."
        ),
        "nul": N_(
            "What you sent contains a NUL character, which no field accepts. "
            "Remove it and try again."
        ),
        404: N_("There is nothing here. It may have been removed, or it belongs to someone else."),
    }
    title = titles.get(status_code, N_("Something went wrong"))
    message = messages.get(kind) or messages.get(status_code) or N_("Please go back and try again.")
    return await render(
        request,
        "error.html",
        {"title_key": title, "message_key": message},
        status_code=status_code,
    )
