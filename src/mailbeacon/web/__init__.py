"""The web app: pages, the JSON API, auth."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from mailbeacon.runtime import Runtime


def runtime_of(request: HTTPConnection) -> Runtime:
    """The process's services, which the app keeps on its state (typed, for handlers)."""
    runtime: Runtime = request.app.state.runtime
    return runtime
