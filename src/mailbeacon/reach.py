"""Does PUBLIC_URL reach this server? Warned about at `serve` start-up, never enforced.

Every pixel and link in mail sent from now on points at PUBLIC_URL, forever.
If it names another port than the one `serve` listens on (a second instance
on 8001 with the default PUBLIC_URL, say), every one of them is broken, and
nothing else would say so. Two checks, both only ever log a warning:

- `obvious_mismatch`: PUBLIC_URL names this machine (localhost, a loopback
  address, the bind address) but another port, with no proxy path in sight;
- `check_public_url`: otherwise, unless PUBLIC_URL is plainly the bind
  address, one request to PUBLIC_URL's pixel path once the server is up. It
  must answer like MailBeacon's pixel (200, image/gif); an invalid token
  records nothing.
"""

from __future__ import annotations

import ipaddress
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from urllib.parse import urlsplit

log = logging.getLogger("mailbeacon.serve")

CHECK_PATH = "/o/public-url-check.gif"
WAIT_FOR_START_SECONDS = 60.0
REQUEST_TIMEOUT_SECONDS = 5.0
WILDCARDS = frozenset({"", "0.0.0.0", "::"})  # noqa: S104 - names, not a bind


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _public_host_port(public_url: str) -> tuple[str, int, str]:
    parts = urlsplit(public_url)
    default = 443 if parts.scheme == "https" else 80
    return parts.hostname or "", parts.port or default, parts.path


def _same_host(public_host: str, bind_host: str) -> bool:
    if public_host == bind_host:
        return True
    return _is_loopback(public_host) and (bind_host in WILDCARDS or _is_loopback(bind_host))


def obvious_mismatch(public_url: str, bind_host: str, bind_port: int) -> str | None:
    """A warning when PUBLIC_URL names this host but not the port we listen on."""
    host, port, path = _public_host_port(public_url)
    if path or port == bind_port or not _same_host(host, bind_host):
        return None
    return (
        f"MAILBEACON_PUBLIC_URL is {public_url}, but serve listens on {bind_host}:{bind_port}: "
        f"every pixel and link in mail sent from now on points at port {port}, where this "
        f"server is not. Unless a reverse proxy on port {port} forwards to this one, set "
        f"MAILBEACON_PUBLIC_URL=http://{bind_host if bind_host not in WILDCARDS else host}"
        f":{bind_port} (or serve on --port {port})."
    )


def plainly_reachable(public_url: str, bind_host: str, bind_port: int) -> bool:
    """PUBLIC_URL is http://<this bind address>:<this port>: nothing to check."""
    host, port, path = _public_host_port(public_url)
    return (
        public_url.startswith("http://")
        and not path
        and port == bind_port
        and _same_host(host, bind_host)
    )


def check_public_url(
    public_url: str, bind_host: str, bind_port: int, started: Callable[[], bool]
) -> None:
    """Once `started()`, fetch PUBLIC_URL's pixel path and warn unless our GIF comes back.

    Runs on a thread of its own: start-up never waits for it and it cannot fail it.
    """
    if plainly_reachable(public_url, bind_host, bind_port):
        return
    deadline = time.monotonic() + WAIT_FOR_START_SECONDS
    while not started():
        if time.monotonic() > deadline:
            return  # the server never came up; uvicorn says why
        time.sleep(0.1)
    problem = _pixel_problem(public_url + CHECK_PATH)
    if problem is None:
        log.info("MAILBEACON_PUBLIC_URL %s reaches this server", public_url)
        return
    log.warning(
        "MAILBEACON_PUBLIC_URL is %s, but %s%s %s. Pixels and links in mail sent from now on "
        "point there; readers may never reach this server (listening on %s:%s). Set "
        "MAILBEACON_PUBLIC_URL to the address readers reach it at, or fix the proxy in front.",
        public_url,
        public_url,
        CHECK_PATH,
        problem,
        bind_host,
        bind_port,
    )


def _pixel_problem(url: str) -> str | None:
    """None when `url` answers like MailBeacon's pixel, else what went wrong."""
    # Straight to PUBLIC_URL: an HTTP(S)_PROXY of the environment is not the readers' path.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=REQUEST_TIMEOUT_SECONDS) as response:
            kind = response.headers.get("content-type", "")
            if response.status == 200 and kind == "image/gif":
                return None
            return f"answered {response.status} {kind or 'without a content type'}, not a pixel"
    except urllib.error.HTTPError as exc:
        return f"answered {exc.code} {exc.reason}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"could not be reached ({reason})"
