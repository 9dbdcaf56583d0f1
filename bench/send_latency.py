"""Pixel latency during a big send, against the same machine idle (DESIGN rule 1).

Run as `.venv/bin/python bench/send_latency.py [--database-url URL] [--copies N]`.

It starts MailBeacon as an operator would (`mailbeacon serve`: the web process
plus the worker process it spawns) on a fresh var directory, with an SMTP sink
(aiosmtpd, a process of its own) as the mail server. Two clients fetch a valid
pixel over HTTP back to back and time every answer:

1. idle, for `--idle` seconds;
2. while the largest message the limits allow (MAX_BODY_CHARS of HTML with
   MAX_LINKS links, to MAX_RECIPIENTS recipients) is sent through the API,
   from the POST until the worker has delivered `--copies` copies.

It prints the percentiles of both runs and their ratio (send / idle): the
ratio is the figure that carries across machines. Every pixel must be a 200.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from mailbeacon.core.compose import MAX_BODY_CHARS, MAX_LINKS, MAX_RECIPIENTS
from mailbeacon.core.tokens import KeyRing

HOST = "127.0.0.1"
SECRET = "bench-secret-key-0123456789abcdef"  # noqa: S105 - a throwaway key for this run
MAILBEACON = [sys.executable, "-m", "mailbeacon.cli"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"a server on port {port} did not start") from None
            time.sleep(0.1)


def largest_html() -> str:
    links = "".join(
        f'<p><a href="https://example.com/p/{n}">link {n}</a></p>' for n in range(MAX_LINKS)
    )
    filler = "<p>" + "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 16 + "</p>\n"
    body = links + filler * ((MAX_BODY_CHARS - len(links)) // len(filler))
    return body + "x" * (MAX_BODY_CHARS - len(body))


def api(port: int, token: str, method: str, path: str, body: bytes | None = None) -> dict:
    request = urllib.request.Request(
        f"http://{HOST}:{port}{path}",
        data=body,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=300) as response:
        return dict(json.loads(response.read()))


class PixelClients:
    """Two threads fetching one pixel over keep-alive HTTP and timing each answer."""

    def __init__(self, port: int, path: str) -> None:
        self.port, self.path = port, path
        self.latencies: list[float] = []
        self.bad = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(2)]

    def _run(self) -> None:
        connection = http.client.HTTPConnection(HOST, self.port, timeout=30)
        while not self._stop.is_set():
            started = time.perf_counter()
            connection.request("GET", self.path)
            response = connection.getresponse()
            response.read()
            self.latencies.append(time.perf_counter() - started)
            if response.status != 200:
                self.bad += 1
            time.sleep(0.005)
        connection.close()

    def __enter__(self) -> PixelClients:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(fraction: float) -> float:
        return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] * 1000

    return {"n": len(ordered), "p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": at(1.0)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="", help="default: SQLite in a temp dir")
    parser.add_argument("--copies", type=int, default=10, help="copies delivered while timed")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of idle timing")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="mb-send-bench-"))
    port, smtp_port = free_port(), free_port()
    env = {
        **os.environ,
        "MAILBEACON_VAR_DIR": str(workdir / "var"),
        "MAILBEACON_PUBLIC_URL": f"http://{HOST}:{port}",
        "MAILBEACON_SECRET_KEYS": SECRET,
        "MAILBEACON_SMTP_URL": f"smtp://{HOST}:{smtp_port}",
        "MAILBEACON_DATABASE_URL": args.database_url,
        "PYTHONWARNINGS": "ignore",
    }
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    sink = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aiosmtpd",
            "-n",
            "-c",
            "aiosmtpd.handlers.Sink",
            "-l",
            f"{HOST}:{smtp_port}",
        ],
        env=env,
        **quiet,
    )
    added = subprocess.run(
        [*MAILBEACON, "user", "add", "bench@example.com", "--password", "a long password"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    token = added.stdout.strip().splitlines()[-1].removeprefix("API token: ")
    server = subprocess.Popen([*MAILBEACON, "serve", "--port", str(port)], env=env, **quiet)
    try:
        wait_for_port(smtp_port, sink)
        wait_for_port(port, server)
        first = api(
            port,
            token,
            "POST",
            "/api/v1/messages",
            json.dumps({"to": ["warm@example.com"], "html": "<p>Hi</p>"}).encode(),
        )
        while api(port, token, "GET", f"/api/v1/messages/{first['id']}")["status"] != "sent":
            time.sleep(0.2)
        keys = KeyRing.from_secrets([SECRET])
        pixel = f"/o/{keys.sign_open(first['id'], first['recipients'][0]['id'])}.gif"

        with PixelClients(port, pixel) as idle:
            time.sleep(args.idle)
        request = json.dumps(
            {
                "to": [f"reader{n}@example.com" for n in range(MAX_RECIPIENTS)],
                "subject": "The largest message the limits allow",
                "html": largest_html(),
                "track_opens": True,
                "track_links": True,
            }
        ).encode()
        with PixelClients(port, pixel) as busy:
            started = time.perf_counter()
            queued = api(port, token, "POST", "/api/v1/messages", request)
            answered = time.perf_counter() - started
            while True:
                detail = api(port, token, "GET", f"/api/v1/messages/{queued['id']}")
                sent = sum(1 for r in detail["recipients"] if r["status"] == "sent")
                if sent >= args.copies or detail["status"] in ("sent", "partial", "failed"):
                    break
                time.sleep(0.5)
            elapsed = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(timeout=30)
        sink.terminate()
        sink.wait(timeout=10)

    idle_figures, busy_figures = percentiles(idle.latencies), percentiles(busy.latencies)
    print(f"database: {args.database_url or 'SQLite (embedded)'}")
    print(
        f"largest send: {MAX_RECIPIENTS} recipients, {MAX_BODY_CHARS:,} chars of HTML, "
        f"{MAX_LINKS} links; API answered in {answered * 1000:.0f} ms ({queued['status']}); "
        f"{sent} copies delivered in {elapsed:.1f} s while timed"
    )
    for name, figures in (("idle", idle_figures), ("sending", busy_figures)):
        print(
            f"{name:8} {figures['n']:6.0f} pixels  p50 {figures['p50']:7.1f} ms  "
            f"p90 {figures['p90']:7.1f} ms  p99 {figures['p99']:7.1f} ms  "
            f"max {figures['max']:7.1f} ms"
        )
    print(
        f"ratio sending/idle: p50 {busy_figures['p50'] / idle_figures['p50']:.2f}  "
        f"p99 {busy_figures['p99'] / idle_figures['p99']:.2f}"
    )
    bad = idle.bad + busy.bad
    print(f"non-200 pixel answers: {bad}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
