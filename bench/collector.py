"""Collector benchmark: MailBeacon's pixel endpoint against nginx serving a static GIF.

Run as `.venv/bin/python bench/collector.py` (or `make bench`). It answers two
questions on this machine:

* How fast is the hot path? nginx handing out a static 1x1 GIF from one worker
  is the ceiling for "answer a pixel"; MailBeacon, also one process, has to
  verify a token and commit the hit before it answers. The ratio of the two
  is a figure that carries across machines far better than raw requests/s.
* Is every answered hit recorded (DESIGN rule 3)? The hits table is counted
  before and after the measured run and compared with the responses wrk read,
  and a final sequential run must add exactly as many hits as it sent.

The measuring side is the stdlib, wrk and nginx; from MailBeacon it takes only
the token signer (to mint a valid pixel URL) and the GIF bytes (so both
servers answer the same 43 bytes). See bench/README.md for how to read it.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType

from mailbeacon.collector.app import TRANSPARENT_GIF
from mailbeacon.core.tokens import KeyRing

RATIO_TARGET = 0.25
WARMUP_SECONDS = 2
EXACT_REQUESTS = 500
HOST = "127.0.0.1"
NGINX_CANDIDATES = ("/usr/sbin/nginx", "/usr/bin/nginx")
WRK_MARKER = "BENCH_RESULT "

# wrk runs one Lua state per thread: each counts its own non-2xx answers in
# `response`, and `done` (run once, in the main state) sums them through the
# thread handles kept in `setup`. wrk's own "status errors" only count >= 400,
# which would let a 3xx or 1xx pixel pass unnoticed.
WRK_SCRIPT = """
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  non2xx = 0
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
end

function done(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do
    bad = bad + thread:get("non2xx")
  end
  local e = summary.errors
  io.write(string.format(
    '%s{"requests":%d,"duration_us":%d,"non2xx":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d}\\n',
    "MARKER", summary.requests, summary.duration, bad, e.connect, e.read,
    e.write, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99)))
end
""".replace("MARKER", WRK_MARKER)

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    types {{ image/gif gif; }}
    server {{
        listen {host}:{port};
        root {prefix}/www;
        location /o/ {{ add_header Cache-Control no-store; }}
    }}
}}
"""


class BenchError(RuntimeError):
    """The benchmark could not run (a tool missing, a server that did not start)."""


@dataclass(frozen=True)
class LoadResult:
    """What wrk saw for one target during the measured run."""

    name: str
    requests: int
    duration_s: float
    non2xx: int
    socket_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        """Answers read per second over the measured run."""
        return self.requests / self.duration_s if self.duration_s else 0.0


@dataclass(frozen=True)
class HitCheck:
    """Answered versus recorded hits: the durability half of the benchmark."""

    answered: int
    recorded: int
    in_flight_allowance: int
    spool_bytes: int
    log_problems: int
    exact_sent: int
    exact_recorded: int

    @property
    def load_ok(self) -> bool:
        """Each answer implies a commit; only unread in-flight answers may be extra."""
        return self.answered <= self.recorded <= self.answered + self.in_flight_allowance

    @property
    def exact_ok(self) -> bool:
        """Sequential requests leave no in-flight slack, so the counts must match."""
        return self.exact_recorded == self.exact_sent


# --- tools -----------------------------------------------------------------


def _privileged(command: list[str]) -> list[str]:
    """apt-get needs root; we may be root already (CI, containers) or have sudo."""
    return command if os.geteuid() == 0 else ["sudo", *command]


def _nginx_binary() -> str | None:
    """nginx lives in /usr/sbin, which a non-root PATH often lacks."""
    found = shutil.which("nginx")
    if found:
        return found
    return next((path for path in NGINX_CANDIDATES if os.access(path, os.X_OK)), None)


def _apt_has(package: str) -> bool:
    """nginx-light is gone from newer Debian releases; fall back to nginx there."""
    probe = subprocess.run(["apt-cache", "show", package], capture_output=True, check=False)
    return probe.returncode == 0 and bool(probe.stdout.strip())


def ensure_tools() -> tuple[str, str]:
    """Install wrk and nginx from Debian when missing; return their paths."""
    wrk, nginx = shutil.which("wrk"), _nginx_binary()
    if wrk and nginx:
        return wrk, nginx
    print("installing wrk and nginx from Debian ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(_privileged(["apt-get", "update", "-qq"]), check=True, env=env)
    packages = ["wrk", "nginx-light" if _apt_has("nginx-light") else "nginx"]
    subprocess.run(_privileged(["apt-get", "install", "-y", "-qq", *packages]), check=True, env=env)
    wrk, nginx = shutil.which("wrk"), _nginx_binary()
    if not (wrk and nginx):
        raise BenchError("wrk or nginx is still missing after apt-get install")
    return wrk, nginx


# --- processes -------------------------------------------------------------


def free_port() -> int:
    """A port the kernel just had free; good enough for a local, short-lived server."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def running(
    name: str, command: list[str], log_path: Path, env: dict[str, str]
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `command` in its own session for the `with` block, then end it and its children.

    Its own session keeps a terminal's Ctrl-C away from it, so the shutdown
    here (TERM, then KILL of the whole group) is the only one and always runs.
    """
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        yield process
    finally:
        _stop(name, process)


def _stop(name: str, process: subprocess.Popen[bytes]) -> None:
    """TERM lets uvicorn flush pending hits and nginx stop its worker; KILL if it will not.

    Signals go to the process group only while its leader is not yet reaped,
    so the group id cannot have been handed to anything else.
    """
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        print(f"{name} ignored SIGTERM; killing it", file=sys.stderr)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def wait_for_http(
    url: str, process: subprocess.Popen[bytes], log_path: Path, timeout: float = 60.0
) -> None:
    """Poll until `url` answers 200, so no measurement includes start-up (migrations).

    A server that exits or answers an HTTP error will not get better by
    waiting, so either ends the wait at once, with its log.
    """
    deadline = time.monotonic() + timeout
    problem = f"did not answer 200 within {timeout:.0f} s"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            problem = f"exited with {process.returncode} before answering"
            break
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except urllib.error.HTTPError as exc:
            problem = f"answered {exc.code}"
            break
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    tail = log_path.read_text(errors="replace")[-3000:] if log_path.exists() else ""
    raise BenchError(f"{url} {problem}; log:\n{tail}")


def write_nginx_prefix(prefix: Path, port: int, pixel_path: str) -> Path:
    """An nginx prefix of its own (config, temp dirs, the GIF), so nothing system-wide is used.

    Run as root, nginx's worker drops to an unprivileged user, which must be
    able to walk into the (0700) temp dir to reach the GIF: traverse only,
    no listing, so the database beside it stays out of sight.
    """
    prefix.parent.chmod(0o711)
    target = prefix / "www" / pixel_path.lstrip("/")
    target.parent.mkdir(parents=True)
    target.write_bytes(TRANSPARENT_GIF)
    conf = prefix / "nginx.conf"
    conf.write_text(NGINX_CONF.format(prefix=prefix, host=HOST, port=port))
    return conf


def mailbeacon_env(tmp: Path, port: int, secret: str) -> dict[str, str]:
    """A MailBeacon of its own on a fresh SQLite file under the temp dir."""
    var = tmp / "var"
    var.mkdir(mode=0o700, exist_ok=True)  # the temp dir is 0711 for nginx's sake
    return {
        **os.environ,
        "MAILBEACON_VAR_DIR": str(var),
        "MAILBEACON_DATABASE_URL": f"sqlite+aiosqlite:///{var / 'bench.db'}",
        "MAILBEACON_SECRET_KEYS": secret,
        "MAILBEACON_PUBLIC_URL": f"http://{HOST}:{port}",
    }


def mailbeacon_command(port: int) -> list[str]:
    """The console script of the interpreter running us, i.e. the project's venv."""
    script = Path(sys.executable).with_name("mailbeacon")
    head = [str(script)] if script.exists() else [sys.executable, "-m", "mailbeacon.cli"]
    return [*head, "serve", "--host", HOST, "--port", str(port)]


# --- load ------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """How wrk is run; the same for both targets so the ratio compares like with like."""

    wrk: str
    script: Path
    threads: int
    connections: int
    duration: int


def run_wrk(load: Load, name: str, url: str, duration: int) -> LoadResult:
    """One wrk run; the figures come from the Lua `done` callback, not from scraping text."""
    command = [
        load.wrk,
        f"-t{load.threads}",
        f"-c{load.connections}",
        f"-d{duration}s",
        "--latency",
        "-s",
        str(load.script),
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60)
    line = next((x for x in done.stdout.splitlines() if x.startswith(WRK_MARKER)), None)
    if done.returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    raw = json.loads(line[len(WRK_MARKER) :])
    return LoadResult(
        name=name,
        requests=raw["requests"],
        duration_s=raw["duration_us"] / 1e6,
        non2xx=raw["non2xx"],
        socket_errors=raw["connect"] + raw["read"] + raw["write"] + raw["timeout"],
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
    )


# --- hits ------------------------------------------------------------------


def count_hits(db: Path) -> int:
    """Rows in the hits table, read straight from the file the server commits to."""
    with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn:
        (count,) = conn.execute("SELECT count(*) FROM hits").fetchone()
        return int(count)


def settled_count(db: Path, quiet: float = 0.5, limit: float = 5.0) -> int:
    """The hit count once it stops moving: requests still in flight when wrk quit land first."""
    deadline = time.monotonic() + limit
    last = count_hits(db)
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = count_hits(db)
        if now == last:
            return now
        last = now
    return last


def sequential_hits(port: int, path: str, count: int) -> None:
    """`count` requests, one after the other on one connection, each checked as a GIF."""
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        for _ in range(count):
            conn.request("GET", path)
            answer = conn.getresponse()
            body = answer.read()
            if answer.status != 200 or body != TRANSPARENT_GIF:
                raise BenchError(f"sequential request got {answer.status}, {len(body)} bytes")
    finally:
        conn.close()


def log_problems(log_path: Path) -> int:
    """WARNING/ERROR lines in the server's log: a refused batch or a failed hit shows here."""
    text = log_path.read_text(errors="replace") if log_path.exists() else ""
    return sum(line.startswith(("WARNING", "ERROR")) for line in text.splitlines())


def spool_size(spool: Path) -> int:
    """Bytes in the spool directory: non-zero means the database refused hits during the run."""
    return sum(path.stat().st_size for path in spool.glob("*.spool")) if spool.exists() else 0


# --- phases ----------------------------------------------------------------


def bench_nginx(load: Load, nginx: str, tmp: Path, pixel_path: str) -> LoadResult:
    """The ceiling: one nginx worker handing out the same GIF from a static file."""
    prefix = tmp / "nginx"
    port = free_port()
    conf = write_nginx_prefix(prefix, port, pixel_path)
    command = [nginx, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")]
    url = f"http://{HOST}:{port}{pixel_path}"
    with running("nginx", command, prefix / "stdout.log", dict(os.environ)) as process:
        wait_for_http(url, process, prefix / "error.log")
        run_wrk(load, "warm-up", url, WARMUP_SECONDS)
        return run_wrk(load, "nginx (static GIF)", url, load.duration)


def bench_mailbeacon(
    load: Load, tmp: Path, pixel_path: str, secret: str
) -> tuple[LoadResult, HitCheck]:
    """MailBeacon's pixel endpoint, with the hit counts that prove nothing was lost."""
    port = free_port()
    db, spool, log_path = tmp / "var" / "bench.db", tmp / "var" / "spool", tmp / "server.log"
    url = f"http://{HOST}:{port}{pixel_path}"
    env = mailbeacon_env(tmp, port, secret)
    with running("mailbeacon", mailbeacon_command(port), log_path, env) as process:
        wait_for_http(f"http://{HOST}:{port}/api/v1/openapi.json", process, log_path)
        run_wrk(load, "warm-up", url, WARMUP_SECONDS)
        before = settled_count(db)
        result = run_wrk(load, "MailBeacon (/o/)", url, load.duration)
        recorded = settled_count(db) - before
        exact_before = count_hits(db)
        sequential_hits(port, pixel_path, EXACT_REQUESTS)
        # No settling here: each answer came after its commit, so the rows must be visible.
        exact_recorded = count_hits(db) - exact_before
        check = HitCheck(
            answered=result.requests,
            recorded=recorded,
            in_flight_allowance=load.connections,
            spool_bytes=spool_size(spool),
            log_problems=log_problems(log_path),
            exact_sent=EXACT_REQUESTS,
            exact_recorded=exact_recorded,
        )
    return result, check


# --- report ----------------------------------------------------------------


def format_table(results: list[LoadResult]) -> str:
    """One row per target; latencies in ms as wrk measured them (per request, from send)."""
    header = f"{'target':<20} {'req/s':>9} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}"
    header += f" {'non-2xx':>8} {'errors':>7} {'answers':>9}"
    rows = [header, "-" * len(header)]
    for r in results:
        row = f"{r.name:<20} {r.rps:>9.0f} {r.p50_ms:>8.2f} {r.p90_ms:>8.2f} {r.p99_ms:>8.2f}"
        rows.append(row + f" {r.non2xx:>8} {r.socket_errors:>7} {r.requests:>9}")
    return "\n".join(rows)


def format_verdicts(ratio: float, check: HitCheck, mailbeacon: LoadResult) -> str:
    """Plain sentences under the table: what was compared and whether it held."""
    ok = "OK"
    high = check.answered + check.in_flight_allowance
    spool = "absent or empty" if check.spool_bytes == 0 else f"{check.spool_bytes} bytes (!)"
    lines = [
        f"ratio MailBeacon/nginx: {ratio:.3f} (target >= {RATIO_TARGET}): "
        + (ok if ratio >= RATIO_TARGET else "below target"),
        f"hits under load: answered {check.answered}, recorded {check.recorded} "
        f"(must be {check.answered}..{high}): " + (ok if check.load_ok else "FAILED"),
        f"hits lost: {max(0, check.answered - check.recorded)}",
        f"sequential check: sent {check.exact_sent}, recorded {check.exact_recorded}: "
        + (ok if check.exact_ok else "FAILED"),
        f"spool: {spool}",
        f"MailBeacon non-2xx: {mailbeacon.non2xx}: " + (ok if mailbeacon.non2xx == 0 else "FAILED"),
    ]
    if check.log_problems:
        lines.append(f"note: {check.log_problems} WARNING/ERROR lines in the server log")
    if mailbeacon.socket_errors:
        lines.append(f"note: {mailbeacon.socket_errors} socket errors (timeouts?) from MailBeacon")
    return "\n".join(lines)


def write_json(
    path: Path, results: list[LoadResult], ratio: float, check: HitCheck, load_before: float
) -> None:
    """The same figures for machines to compare across runs."""
    figures = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cpus": os.cpu_count(),
        "loadavg_1min_before": load_before,
        "targets": [{**asdict(r), "rps": r.rps} for r in results],
        "ratio": ratio,
        "ratio_target": RATIO_TARGET,
        "hits": {**asdict(check), "load_ok": check.load_ok, "exact_ok": check.exact_ok},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures, indent=2) + "\n")


# --- main ------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Defaults match the figures in bench/README.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=int, default=10, help="measured seconds per target")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write figures as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, db)")
    args = parser.parse_args(argv)
    if args.duration < 1 or args.connections < 1 or args.threads < 1:
        parser.error("--duration, --connections and --threads must be positive")
    if args.connections < args.threads:
        parser.error("wrk needs at least one connection per thread")
    return args


def _raise_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """Turn SIGTERM into SystemExit so the `finally` blocks stop the servers."""
    raise SystemExit(128 + signum)


def run(args: argparse.Namespace, wrk: str, nginx: str, tmp: Path) -> int:
    """Both phases, the report, and the exit code (non-zero only for lost hits or bad answers)."""
    secret = secrets.token_urlsafe(32)
    token = KeyRing.from_secrets([secret]).sign_open(message_id=1, recipient_id=1)
    pixel_path = f"/o/{token}.gif"
    script = tmp / "count.lua"
    script.write_text(WRK_SCRIPT)
    load = Load(wrk, script, args.threads, args.connections, args.duration)
    shape = f"-t{load.threads} -c{load.connections} -d{load.duration}s"
    load_before = os.getloadavg()[0]
    # A busy shared machine skews both targets; the load average says how busy it was.
    print(f"machine: {os.cpu_count()} CPUs, 1-min load average {load_before:.2f} before the run")
    print(f"wrk {shape} --latency against each, after a {WARMUP_SECONDS} s warm-up")
    print("nginx ...", flush=True)
    reference = bench_nginx(load, nginx, tmp, pixel_path)
    print("MailBeacon ...", flush=True)
    mailbeacon, check = bench_mailbeacon(load, tmp, pixel_path, secret)
    results = [reference, mailbeacon]
    ratio = mailbeacon.rps / reference.rps if reference.rps else 0.0
    print()
    print(format_table(results))
    print()
    print(format_verdicts(ratio, check, mailbeacon))
    if args.json:
        write_json(args.json, results, ratio, check, load_before)
    return 0 if check.load_ok and check.exact_ok and mailbeacon.non2xx == 0 else 1


def main(argv: list[str] | None = None) -> int:
    """Set up, run, and always clean up: temp dir and every process started here."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    try:
        wrk, nginx = ensure_tools()
    except (BenchError, subprocess.CalledProcessError) as exc:
        print(f"cannot benchmark: {exc}", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="mailbeacon-bench-"))
    try:
        return run(args, wrk, nginx, tmp)
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; servers stopped", file=sys.stderr)
        return 130
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
