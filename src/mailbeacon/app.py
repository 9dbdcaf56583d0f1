"""Composing the ASGI application: the collector in front of the web app."""

from __future__ import annotations

from mailbeacon.collector.app import ASGIApp, Collector
from mailbeacon.proxy import TrustedProxies
from mailbeacon.runtime import Runtime
from mailbeacon.settings import Settings, load_settings
from mailbeacon.store.links import StoredLinks
from mailbeacon.store.networks import NetworkSource
from mailbeacon.web.app import create_web_app


def create_app(settings: Settings | None = None, *, run_processor: bool = True) -> ASGIApp:
    """The whole app. Hits to /o/ and /c/ never reach the web framework.

    With `run_processor` (and EMBEDDED_WORKER) the app's runtime also runs the
    worker's services in process: the processor, the send worker and the outbox.
    Behind trusted proxies, the client address is resolved once, in front of
    both: hits and sign-in throttling see the same client.
    """
    settings = settings or load_settings()
    runtime = Runtime(settings, run_worker=run_processor and settings.embedded_worker)
    web = create_web_app(runtime)
    links = StoredLinks(runtime.engine)
    app: ASGIApp = Collector(
        runtime.keys,
        runtime.hits,
        web,
        prefix=settings.public_path,
        links=links,
        networks=NetworkSource(settings),
    )
    if settings.trusted_proxies:
        app = TrustedProxies(app, settings.trusted_proxies, settings.proxy_header)
    return app
