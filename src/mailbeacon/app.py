"""Composing the ASGI application: the collector in front of the web app."""

from __future__ import annotations

from mailbeacon.collector.app import Collector
from mailbeacon.runtime import Runtime
from mailbeacon.settings import Settings, load_settings
from mailbeacon.web.app import create_web_app


def create_app(settings: Settings | None = None, *, run_processor: bool = True) -> Collector:
    """The whole app. Hits to /o/ and /c/ never reach the web framework.

    With `run_processor` (and EMBEDDED_WORKER) the app's runtime also runs the
    worker's services in process: the processor, the send worker and the outbox.
    """
    settings = settings or load_settings()
    runtime = Runtime(settings, run_worker=run_processor and settings.embedded_worker)
    return Collector(runtime.keys, runtime.hits, create_web_app(runtime))
