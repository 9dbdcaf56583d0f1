"""The FastAPI application: API routes and, in front of it, the collector."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from mailbeacon.runtime import Runtime
from mailbeacon.web import api


def create_web_app(runtime: Runtime) -> FastAPI:
    """The web app; its lifespan starts and stops the runtime's services."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(
        title="MailBeacon",
        version="1",
        description="Send email and learn, per recipient, when it was opened and clicked.",
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.include_router(api.router)
    return app
