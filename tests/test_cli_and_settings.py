"""The command line and configuration, run as a user would (B9; DESIGN rule 6)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from mailbeacon.settings import ConfigError, load_settings
from tests.helpers import READER_AGENT, free_port

MAILBEACON = [sys.executable, "-m", "mailbeacon.cli"]


def run(args: list[str], env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        MAILBEACON + args,
        env={**os.environ, **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("PUBLIC_URL", "ftp://example.com", "MAILBEACON_PUBLIC_URL"),
        ("DATABASE_URL", "mysql://x", "MAILBEACON_DATABASE_URL"),
        ("SMTP_URL", "http://mail.example.com", "MAILBEACON_SMTP_URL"),
        ("SMTP_URL", "smtp://mail.example.com:99999", "MAILBEACON_SMTP_URL"),
        ("SECRET_KEYS", "short", "MAILBEACON_SECRET_KEYS"),
        ("OUTBOX_PORT", "seventy", "MAILBEACON_OUTBOX_PORT"),
    ],
)
def test_a_wrong_setting_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str, says: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(f"MAILBEACON_{name}", value)
    with pytest.raises(ConfigError) as caught:
        load_settings(var_dir=tmp_path / "var")
    assert says in str(caught.value)
    result = run(["migrate"], {f"MAILBEACON_{name}": value, "MAILBEACON_VAR_DIR": str(tmp_path)})
    assert result.returncode == 2
    assert says in result.stderr


def test_secret_is_generated_once_and_kept(tmp_path: Path) -> None:
    first = load_settings(var_dir=tmp_path, secret_keys="").key_ring()
    second = load_settings(var_dir=tmp_path, secret_keys="").key_ring()
    assert first == second
    assert (tmp_path / "secret_keys").stat().st_mode & 0o777 == 0o600


def test_user_token_and_send_through_the_embedded_outbox(tmp_path: Path) -> None:
    env = {"MAILBEACON_VAR_DIR": str(tmp_path / "var"), "MAILBEACON_SMTP_URL": ""}
    assert run(["migrate"], env).returncode == 0
    added = run(["user", "add", "seller@example.com", "--password", "correct horse"], env)
    assert added.returncode == 0, added.stderr
    assert "API token: mbk_" in added.stdout
    again = run(["user", "add", "seller@example.com", "--password", "correct horse"], env)
    assert again.returncode == 1 and "already exists" in again.stderr
    reset = run(["user", "password", "seller@example.com", "--password", "battery staple"], env)
    assert reset.returncode == 0 and "new password set" in reset.stdout
    assert (
        run(["user", "password", "nobody@example.com", "--password", "x" * 9], env).returncode == 1
    )
    assert (
        run(["user", "password", "seller@example.com", "--password", "short"], env).returncode == 1
    )
    token = run(["token", "create", "seller@example.com"], env)
    assert token.returncode == 0
    assert token.stdout.strip().splitlines()[-1].startswith("mbk_")
    assert run(["token", "create", "nobody@example.com"], env).returncode == 1

    body = tmp_path / "body.html"
    body.write_text('<p>Hi, <a href="https://example.com/x">look</a></p>', encoding="utf-8")
    sent = run(
        [
            "send",
            "--from",
            "seller@example.com",
            "--to",
            "ann@example.com",
            "--subject",
            "Hi",
            "--html",
            str(body),
        ],
        env,
    )
    assert sent.returncode == 0, sent.stderr
    assert '"status": "queued"' in sent.stdout and '"track_opens": true' in sent.stdout
    assert not (tmp_path / "var" / "hits.spool").exists()  # send starts no hit log
    drained = run(["worker", "--until-idle"], env)
    assert drained.returncode == 0, drained.stderr
    assert "worked on 1 queued messages" in drained.stdout
    bad = run(["send", "--from", "seller@example.com", "--to", "nope", "--html", str(body)], env)
    assert bad.returncode == 2 and "to:" in bad.stderr


def test_demo_user_is_created_once(tmp_path: Path) -> None:
    env = {"MAILBEACON_VAR_DIR": str(tmp_path / "var")}
    assert run(["migrate"], env).returncode == 0
    first = run(["demo-user"], env)
    assert "created a demo user" in first.stdout and "password" in first.stdout
    second = run(["demo-user"], env)
    assert "users exist already" in second.stdout


def test_serve_runs_web_collector_and_worker_until_stopped(tmp_path: Path) -> None:
    """`mailbeacon serve` as `make run` starts it: the web app, the collector and the
    processor in its own process; stopping serve stops the worker too."""
    import time

    import httpx

    port = free_port()
    env = {
        **os.environ,
        "MAILBEACON_VAR_DIR": str(tmp_path / "var"),
        "MAILBEACON_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "MAILBEACON_SMTP_URL": "",
        "MAILBEACON_PROCESS_INTERVAL": "0.1",
    }
    added = run(["user", "add", "seller@example.com", "--password", "correct horse"], env)
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip().splitlines()[-1].removeprefix("API token: ")
    server = subprocess.Popen(
        [*MAILBEACON, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/api/v1/openapi.json", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "serve did not come up"
            assert server.poll() is None, server.stdout.read() if server.stdout else ""
            time.sleep(0.2)
        auth = {"Authorization": f"Bearer {token}"}
        sent = httpx.post(
            f"{base}/api/v1/messages",
            headers=auth,
            json={"to": ["ann@example.com"], "html": "<p>Hi</p>"},
            timeout=30,
        ).json()
        assert sent["status"] == "queued"
        while sent["status"] != "sent":  # the worker process delivers it, to its outbox
            assert time.monotonic() < deadline + 30, sent
            time.sleep(0.2)
            sent = httpx.get(f"{base}/api/v1/messages/{sent['id']}", headers=auth).json()
        from mailbeacon.core.tokens import KeyRing

        keys = KeyRing.from_secrets([(tmp_path / "var" / "secret_keys").read_text().strip()])
        recipient = sent["recipients"][0]["id"]
        pixel = f"{base}/o/{keys.sign_open(sent['id'], recipient)}.gif"
        reader = {"User-Agent": READER_AGENT}  # a mail client (B3: httpx's agent is software)
        assert httpx.get(pixel, headers=reader).status_code == 200
        while True:  # the worker process derives the open
            detail = httpx.get(f"{base}/api/v1/messages/{sent['id']}", headers=auth).json()
            if detail["opens"]["count"] == 1:
                break
            assert time.monotonic() < deadline + 30, detail
            time.sleep(0.2)
        workers = workers_of(server.pid)
        assert len(workers) == 1, workers
    finally:
        server.send_signal(signal.SIGINT)
        output, _ = server.communicate(timeout=30)
    assert server.returncode == 0, output
    assert not Path(f"/proc/{workers[0]}").exists()  # serve stopped (and reaped) its worker


def workers_of(pid: int) -> list[int]:
    """The `mailbeacon worker` processes whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # ended while we looked
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == pid and b"worker" in command and b"mailbeacon.cli" in command:
            found.append(int(entry.name))
    return found


def test_serve_no_worker_runs_no_processor_anywhere(tmp_path: Path) -> None:
    """`serve --no-worker` means what its help says: no worker process and no
    processor inside the web process; hits wait for a `mailbeacon worker`."""
    import asyncio
    import time

    import httpx

    from mailbeacon.core.tokens import KeyRing
    from mailbeacon.store.db import make_engine, sessions
    from mailbeacon.store.tables import Event, Message, ProcessorCursor, Recipient, User

    port = free_port()
    secret = "serve-test-secret-0123456789abcdef"
    env = {
        **os.environ,
        "MAILBEACON_VAR_DIR": str(tmp_path / "var"),
        "MAILBEACON_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "MAILBEACON_SECRET_KEYS": secret,
        "MAILBEACON_PROCESS_INTERVAL": "0.05",
    }
    added = run(["user", "add", "seller@example.com", "--password", "correct horse"], env)
    assert added.returncode == 0, added.stderr
    url = load_settings(var_dir=tmp_path / "var").effective_database_url

    async def in_database(work: Any) -> Any:
        engine = make_engine(url)
        try:
            async with sessions(engine)() as db, db.begin():
                return await work(db)
        finally:
            await engine.dispose()

    async def add_message(db: Any) -> tuple[int, int]:
        message = Message(
            user_id=await db.scalar(select(User.id)),
            message_id_header="<m@example.com>",
            from_address="seller@example.com",
            requested_opens=True,
            requested_links=True,
            track_opens=True,
            track_links=True,
            recipients=[Recipient(address="ann@example.com", field="to")],
        )
        db.add(message)
        await db.flush()
        return message.id, message.recipients[0].id

    async def derived(db: Any) -> tuple[int, bool]:
        events = len(list(await db.scalars(select(Event.id))))
        return events, await db.get(ProcessorCursor, "events") is not None

    message_id, recipient_id = asyncio.run(in_database(add_message))
    pixel = KeyRing.from_secrets([secret]).sign_open(message_id, recipient_id)
    server = subprocess.Popen(
        [*MAILBEACON, "serve", "--no-worker", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/o/{pixel}.gif", timeout=1).status_code == 200:
                    break  # answered, so the hit is in the database
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "serve did not come up"
            assert server.poll() is None, server.stdout.read() if server.stdout else ""
            time.sleep(0.2)
        assert workers_of(server.pid) == []
        # Forty process intervals: an in-process processor would have run by now.
        watch_until = time.monotonic() + 2
        while time.monotonic() < watch_until:
            assert asyncio.run(in_database(derived)) == (0, False)
            time.sleep(0.1)
        worker = subprocess.Popen([*MAILBEACON, "worker"], env=env)  # the operator's own
        try:
            while asyncio.run(in_database(derived)) != (1, True):
                assert time.monotonic() < watch_until + 30, "the worker derived nothing"
                time.sleep(0.1)
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    finally:
        server.send_signal(signal.SIGINT)
        output, _ = server.communicate(timeout=30)
    assert server.returncode == 0, output
