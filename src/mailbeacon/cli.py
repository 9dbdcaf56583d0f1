"""The `mailbeacon` command line (B9)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailbeacon.settings import ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

Command = Callable[[Settings, argparse.Namespace], int]


def _run(coro: Awaitable[Any]) -> Any:
    async def wrapper() -> Any:
        return await coro

    return asyncio.run(wrapper())


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from mailbeacon.store.db import migrate

    migrate(settings.effective_database_url)
    worker = None
    if settings.embedded_worker and not args.no_worker:
        # The processor gets a process of its own: deriving events is real
        # work, and on the web process it would slow down every pixel answer.
        worker = subprocess.Popen(
            [sys.executable, "-m", "mailbeacon.cli", "worker", "--exit-with-parent"]
        )
    # Never in the web process itself: with --no-worker (or EMBEDDED_WORKER=false)
    # the operator runs `mailbeacon worker`, and serve runs no processor at all.
    settings = settings.model_copy(update={"embedded_worker": False})
    try:
        _serve(settings, args)
    finally:
        if worker is not None:
            worker.terminate()
            try:
                worker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                worker.kill()
    return 0


def _serve(settings: Settings, args: argparse.Namespace) -> None:
    import threading

    import uvicorn

    from mailbeacon.app import create_app
    from mailbeacon.reach import check_public_url, obvious_mismatch

    settings = _with_cli_proxies(settings, args)
    mismatch = obvious_mismatch(settings.public_url, args.host, args.port)
    if mismatch:
        logging.getLogger("mailbeacon.serve").warning(mismatch)
    # No access log: it would cost the collector throughput and write
    # recipients' addresses and agents to a file nobody is asked about.
    # Forwarding headers are resolved by the app itself (MAILBEACON_TRUSTED_PROXIES),
    # for the collector and the web app alike, never by uvicorn.
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host=args.host,
            port=args.port,
            loop="uvloop",
            http="httptools",
            access_log=False,
            proxy_headers=False,
            log_level="info",
            # Open live streams (the bell) would otherwise hold shutdown for 30 s.
            timeout_graceful_shutdown=3,
        )
    )
    if not mismatch:
        # Not obviously wrong: unless PUBLIC_URL is plainly this address, ask it
        # once the server is up. Only ever a warning; start-up never waits for it.
        threading.Thread(
            target=check_public_url,
            args=(settings.public_url, args.host, args.port, lambda: server.started),
            name="public-url-check",
            daemon=True,
        ).start()
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how serve is meant to stop
        server.run()
    if not server.started:
        raise SystemExit(3)  # uvicorn logged why (e.g. the port is taken)


def _with_cli_proxies(settings: Settings, args: argparse.Namespace) -> Settings:
    """`--proxy-headers` / `--forwarded-allow-ips` add to MAILBEACON_TRUSTED_PROXIES."""
    if not args.proxy_headers and args.forwarded_allow_ips is None:
        return settings
    from mailbeacon.core.forwarded import parse_networks

    allowed = args.forwarded_allow_ips or "127.0.0.1,::1"
    if allowed.strip() == "*":
        allowed = "0.0.0.0/0,::/0"
    try:
        extra = parse_networks(allowed)
    except ValueError as exc:
        raise ConfigError(f"--forwarded-allow-ips: {exc}") from None
    merged = tuple(dict.fromkeys((*settings.trusted_proxies, *extra)))
    return settings.model_copy(update={"trusted_proxies": merged})


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from mailbeacon.store.db import migrate

    migrate(settings.effective_database_url)
    print("database is up to date")
    return 0


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    """The worker process: processor, send queue and (without SMTP_URL) the embedded outbox.

    SIGTERM or SIGINT stop it gracefully: a copy being handed to the mail
    server is finished and recorded first, so a restart never sends it twice.
    """
    from mailbeacon.processor.derive import judging_rules, rebuild
    from mailbeacon.runtime import Runtime
    from mailbeacon.store.db import make_engine, sessions
    from mailbeacon.store.replies import reapply_reply_opens

    async def work() -> None:
        if args.rebuild:
            engine = make_engine(settings.effective_database_url)
            try:
                count = await rebuild(
                    engine,
                    judging_rules(settings.signal_settle_seconds, settings.scanner_click_seconds),
                )
                print(f"rebuilt events from {count} hits")
                async with sessions(engine)() as db, db.begin():
                    # Replies count as opens where no hit does (B11); hits know nothing of them.
                    await reapply_reply_opens(db)
            finally:
                await engine.dispose()
            return
        runtime = Runtime(settings, run_worker=True, serve_hits=False)
        if args.until_idle:
            delivered = await runtime.drain()
            print(f"worked on {delivered} queued messages; nothing more is due")
            return
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, runtime.request_stop)
        await runtime.start()
        try:
            if args.exit_with_parent:
                asyncio.create_task(_stop_when_orphaned(runtime.request_stop))  # noqa: RUF006
            await runtime.wait()
        finally:
            await runtime.stop()

    with contextlib.suppress(KeyboardInterrupt):
        _run(work())
    return 0


async def _stop_when_orphaned(stop: Callable[[], None]) -> None:
    """A worker started by `serve` ends when `serve` is gone, whatever killed it."""
    parent = os.getppid()
    while os.getppid() == parent:  # noqa: ASYNC110 - nothing to wait on but time
        await asyncio.sleep(1)
    stop()


@contextlib.asynccontextmanager
async def _transaction(settings: Settings) -> AsyncIterator[AsyncSession]:
    """One transaction on an engine of its own: a command runs once, then exits."""
    from mailbeacon.store.db import make_engine, sessions

    engine = make_engine(settings.effective_database_url)
    try:
        async with sessions(engine)() as db, db.begin():
            yield db
    finally:
        await engine.dispose()


async def _add_user(settings: Settings, email: str, password: str, admin: bool) -> str:
    from mailbeacon.core.addresses import parse_mailbox
    from mailbeacon.store.accounts import add_user, create_api_token

    address = parse_mailbox(email).address
    async with _transaction(settings) as db:
        user = await add_user(db, address, password, is_admin=admin)
        return await create_api_token(db, user, "created with the user")


def cmd_user_add(settings: Settings, args: argparse.Namespace) -> int:
    password = args.password or _ask_password()
    if password is None:
        return 1
    token = _run(_add_user(settings, args.email, password, args.admin))
    print(f"added {args.email}")
    print(f"API token: {token}")
    return 0


def cmd_user_password(settings: Settings, args: argparse.Namespace) -> int:
    """Set a new password (for a forgotten one); signs the user out everywhere."""
    from sqlalchemy import delete

    from mailbeacon.store.accounts import hash_password, user_by_email
    from mailbeacon.store.tables import WebSession

    password = args.password or _ask_password()
    if password is None:
        return 1
    if len(password) < 8:
        print("the password must be at least 8 characters long", file=sys.stderr)
        return 1

    async def change() -> bool:
        async with _transaction(settings) as db:
            user = await user_by_email(db, args.email)
            if user is None:
                return False
            user.password_hash = await asyncio.to_thread(hash_password, password)
            await db.execute(delete(WebSession).where(WebSession.user_id == user.id))
            return True

    if not _run(change()):
        print(f"no user {args.email}", file=sys.stderr)
        return 1
    print(f"new password set for {args.email}; their sessions were ended")
    return 0


def _ask_password() -> str | None:
    password = getpass.getpass("Password: ")
    if password != getpass.getpass("Again: "):
        print("the passwords differ", file=sys.stderr)
        return None
    return password


def cmd_demo_user(settings: Settings, args: argparse.Namespace) -> int:
    from sqlalchemy import func, select

    from mailbeacon.store.tables import User

    async def count_users() -> int:
        async with _transaction(settings) as db:
            return int(await db.scalar(select(func.count(User.id))) or 0)

    if _run(count_users()):
        print("users exist already; sign in with yours (or `mailbeacon user add EMAIL`)")
        return 0
    email, password = "demo@mailbeacon.example", secrets.token_urlsafe(9)
    token = _run(_add_user(settings, email, password, True))
    print("created a demo user")
    print(f"  sign in at {settings.public_url}/ as {email} with password {password}")
    print(f"  API token: {token}")
    return 0


def cmd_token_create(settings: Settings, args: argparse.Namespace) -> int:
    from mailbeacon.store.accounts import create_api_token, user_by_email

    async def create() -> str | None:
        async with _transaction(settings) as db:
            user = await user_by_email(db, args.email)
            if user is None:
                return None
            return await create_api_token(db, user, args.name)

    token = _run(create())
    if token is None:
        print(f"no user {args.email}", file=sys.stderr)
        return 1
    print(token)
    return 0


def _read_body(path: str | None) -> str | None:
    if path is None:
        return None
    if path == "-":
        return sys.stdin.read()
    return Path(path).read_text(encoding="utf-8")


def cmd_classify(settings: Settings, args: argparse.Namespace) -> int:
    """Judge hits given as JSON lines on stdin (see mailbeacon/classify_lines.py)."""
    from mailbeacon.classify_lines import classify_lines
    from mailbeacon.store.networks import load_network_table

    table = load_network_table(settings)
    for answer in classify_lines(sys.stdin, table.tag_of):
        print(answer)
    return 0


def cmd_send(settings: Settings, args: argparse.Namespace) -> int:
    """Queue an email and print its id and status ("queued").

    A running worker (`serve` starts one; or `mailbeacon worker`) delivers it.
    This command starts no hit log and never touches the spool: it only
    checks the request and stores it, like the API does.
    """
    from mailbeacon.core.compose import InvalidRequest
    from mailbeacon.cpupool import CpuPool
    from mailbeacon.mail.sending import Sender, SendInput, load_message
    from mailbeacon.store.accounts import user_by_email
    from mailbeacon.store.db import make_engine, sessions

    async def send() -> int:
        engine = make_engine(settings.effective_database_url)
        cpu = CpuPool(workers=1)
        try:
            async with sessions(engine)() as db:
                user = await user_by_email(db, args.sender)
            if user is None:
                print(f"no user {args.sender}", file=sys.stderr)
                return 1
            sender = Sender(engine, settings.public_url, cpu)
            message_id = await sender.enqueue(
                user.id,
                SendInput(
                    to=args.to,
                    cc=args.cc,
                    bcc=args.bcc,
                    subject=args.subject,
                    html=_read_body(args.html),
                    text=_read_body(args.text),
                    track_opens=args.track_opens,
                    track_links=args.track_links,
                ),
            )
            message = await load_message(engine, user.id, message_id)
        except InvalidRequest as exc:
            print(f"cannot send: {exc}", file=sys.stderr)
            return 2
        finally:
            await cpu.close()
            await engine.dispose()
        assert message is not None
        summary = {
            "id": message.id,
            "status": message.status,
            "track_opens": message.track_opens,
            "track_links": message.track_links,
            "untracked": message.untracked_reasons,
            "recipients": [{"address": r.address, "status": r.status} for r in message.recipients],
        }
        print(json.dumps(summary, indent=2))
        return 0

    result: int = _run(send())
    return result


def cmd_networks_refresh(settings: Settings, args: argparse.Namespace) -> int:
    """Replace one network list from a file or URL; a bad source leaves the old list."""
    from mailbeacon.core.networks import NoRanges
    from mailbeacon.store.networks import FetchError, refresh

    try:
        done = refresh(settings, args.tag, args.source, args.format)
    except (FetchError, NoRanges) as exc:
        print(f"error: {exc}; the current {args.tag} list is unchanged", file=sys.stderr)
        return 1
    parsed = done.parsed
    print(
        f"{done.tag}: loaded {len(parsed.networks)} ranges ({done.fmt}), "
        f"wrote {done.written} after collapsing to {done.path}"
    )
    if parsed.skipped:
        print(f"skipped {parsed.skipped} lines that are not ranges, e.g.:")
        for example in parsed.examples:
            print(f"  {example}")
    print("a running serve picks the new list up within a minute")
    return 0


def cmd_networks_list(settings: Settings, args: argparse.Namespace) -> int:
    """Print the lists the network table is built from."""
    from mailbeacon.store.networks import read_lists

    _, infos = read_lists(settings)
    print(f"{'tag':<12} {'ranges':>8}  {'from':<40} {'updated':<25} source")
    for info in infos:
        print(
            f"{info.tag:<12} {info.ranges:>8}  {info.origin:<40} "
            f"{info.updated or '-':<25} {info.source}"
        )
    return 0


NEEDS_SCHEMA = frozenset({"worker", "user", "demo-user", "token", "send"})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mailbeacon", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the web app and the collector")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--proxy-headers",
        action="store_true",
        help="believe X-Forwarded-For from --forwarded-allow-ips "
        "(same as adding them to MAILBEACON_TRUSTED_PROXIES)",
    )
    serve.add_argument(
        "--forwarded-allow-ips",
        default=None,
        metavar="IPS",
        help="comma-separated proxy IPs/CIDRs to trust ('*': any; default with "
        "--proxy-headers: 127.0.0.1,::1)",
    )
    serve.add_argument(
        "--no-worker",
        action="store_true",
        help="do not start the processor (run `worker` yourself)",
    )
    serve.set_defaults(handler=cmd_serve)

    commands.add_parser("migrate", help="create or upgrade the database").set_defaults(
        handler=cmd_migrate
    )

    worker = commands.add_parser(
        "worker", help="run the processor and the send queue (and the embedded outbox)"
    )
    worker.add_argument("--rebuild", action="store_true", help="re-derive all events and stop")
    worker.add_argument(
        "--until-idle", action="store_true", help="deliver the queued mail that is due, then stop"
    )
    worker.add_argument("--exit-with-parent", action="store_true", help=argparse.SUPPRESS)
    worker.set_defaults(handler=cmd_worker)

    user = commands.add_parser("user", help="manage users").add_subparsers(
        dest="user_command", required=True
    )
    add = user.add_parser("add", help="add a user (prints an API token)")
    add.add_argument("email")
    add.add_argument("--password", help="prompted for when omitted")
    add.add_argument("--admin", action="store_true")
    add.set_defaults(handler=cmd_user_add)
    reset = user.add_parser("password", help="set a new password for a user")
    reset.add_argument("email")
    reset.add_argument("--password", help="prompted for when omitted")
    reset.set_defaults(handler=cmd_user_password)

    commands.add_parser("demo-user", help="create a demo user if there is none").set_defaults(
        handler=cmd_demo_user
    )

    token = commands.add_parser("token", help="manage API tokens").add_subparsers(
        dest="token_command", required=True
    )
    create = token.add_parser("create", help="print a new API token on the last line")
    create.add_argument("email")
    create.add_argument("--name", default="")
    create.set_defaults(handler=cmd_token_create)

    commands.add_parser(
        "classify", help="judge hits given as JSON lines on stdin (class, reason, client)"
    ).set_defaults(handler=cmd_classify)
    send = commands.add_parser("send", help="queue an email (a running worker delivers it)")
    send.add_argument("--from", dest="sender", required=True, help="the sending user's email")
    send.add_argument("--to", action="append", default=[])
    send.add_argument("--cc", action="append", default=[])
    send.add_argument("--bcc", action="append", default=[])
    send.add_argument("--subject", default="")
    send.add_argument("--html", metavar="FILE", help="HTML body file ('-' for stdin)")
    send.add_argument(
        "--text",
        metavar="FILE",
        help="plain-text body file ('-' for stdin); without it, made from the HTML",
    )
    send.add_argument("--track-opens", action=argparse.BooleanOptionalAction, default=None)
    send.add_argument("--track-links", action=argparse.BooleanOptionalAction, default=None)
    send.set_defaults(handler=cmd_send)

    networks = commands.add_parser(
        "networks", help="the network lists hits are tagged with (Apple relay, scanners, clouds)"
    ).add_subparsers(dest="networks_command", required=True)
    refresh = networks.add_parser(
        "refresh", help="replace a list (e.g. apple-relay) from a file or an http(s) URL"
    )
    refresh.add_argument("tag", help="the list's tag, e.g. apple-relay, datacenter, proofpoint")
    refresh.add_argument("--from", dest="source", required=True, metavar="PATH_OR_URL")
    refresh.add_argument(
        "--format",
        choices=("apple", "cidr", "json"),
        default=None,
        help="default: json for JSON, apple for the apple-relay tag, else cidr",
    )
    refresh.set_defaults(handler=cmd_networks_refresh)
    networks.add_parser("list", help="show the lists, their ranges and where from").set_defaults(
        handler=cmd_networks_list
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # Alembic narrates every plugin it loads; `migrate` says the outcome itself.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    handler: Command = args.handler
    try:
        if args.command in NEEDS_SCHEMA:
            # A fresh install works from any command: the schema comes first.
            from mailbeacon.store.db import migrate

            migrate(settings.effective_database_url)
        return handler(settings, args)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
