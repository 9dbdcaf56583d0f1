"""A real IMAP server for the tests: Debian's Dovecot, started as the test's child process.

Each server gets a throwaway directory with its own config, a passwd-file of mail
users and their mail, listens on a free port on 127.0.0.1 only, and is stopped
(and its processes reaped) when the test ends. `make mailbox-deps` installs it.

What the config must say on these machines (everything runs as root; see
shared/notes/dovecot-in-tests.md): logins run as `dovenull`, mail processes as
`nobody`/`nogroup` by number, the passwd-file has no uid/gid/home, mail lives in a
chroot owned by nobody, `base_dir` is short (unix sockets are limited to 108 bytes),
and the anvil auth penalty is off so a wrong-password test does not slow the next one.

    with DovecotServer.start({"ann@example.com": "secret"}) as imap:
        imap.host, imap.port, imap.security  # what a mailbox's IMAP settings hold
        with imap.client("ann@example.com") as box:   # an IMAPClient, logged in
            box.select_folder("Sent")

The folders every user has, by SPECIAL-USE: Sent (\\Sent), Drafts (\\Drafts),
Trash (\\Trash), Junk (\\Junk), and INBOX. `tls="starttls"` or `tls="tls"` adds
STARTTLS or implicit TLS with a certificate from a `trustme` CA (`imap.ca`).

Tests take the `dovecot` fixture (one server, user `MAIL_USER` with `MAIL_PASSWORD`)
or `start_dovecot` (a factory: any users, any TLS mode); conftest.py loads both.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import imapclient
import pytest
import trustme

from tests.helpers import free_port

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
HOST = "127.0.0.1"
MAIL_USER = "sales@example.com"
MAIL_PASSWORD = "imap-password-1"
Security = Literal["none", "starttls", "tls"]

CONFIG = """\
# Throwaway config for one test: written by tests/dovecot.py.
base_dir = {base_dir}
state_dir = {state_dir}
instance_name = mb-{port}
listen = 127.0.0.1
protocols = imap
ssl = {ssl}
{ssl_files}
disable_plaintext_auth = no
auth_mechanisms = plain login
log_path = {log}
info_log_path = {log}
default_login_user = dovenull
default_internal_user = root
default_internal_group = root
first_valid_uid = 0
mail_uid = {uid}
mail_gid = {gid}
mail_chroot = {mail_root}
mail_home = /%u
mail_location = maildir:~/Maildir
mailbox_idle_check_interval = 1 secs
login_trusted_networks = 127.0.0.0/8

passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {passwd}
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {passwd}
}}

namespace inbox {{
  inbox = yes
  separator = /
  mailbox Sent {{
    special_use = \\Sent
    auto = subscribe
  }}
  mailbox Drafts {{
    special_use = \\Drafts
    auto = subscribe
  }}
  mailbox Trash {{
    special_use = \\Trash
    auto = subscribe
  }}
  mailbox Junk {{
    special_use = \\Junk
    auto = subscribe
  }}
}}

service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
    ssl = yes
  }}
}}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""


@dataclass
class DovecotServer:
    """One running Dovecot; `host`, `port` and `security` are what a client connects with."""

    root: Path
    port: int
    security: Security
    users: dict[str, str]
    process: subprocess.Popen[bytes]
    ca: trustme.CA | None = None
    log: Path = field(init=False)
    host: str = HOST

    def __post_init__(self) -> None:
        self.log = self.root / "dovecot.log"

    @classmethod
    @contextmanager
    def start(cls, users: dict[str, str], *, tls: Security = "none") -> Iterator[DovecotServer]:
        """Start a server for `users` (address -> password); stop it when the block ends.

        `tls`: "none" (plain IMAP), "starttls" (plain port offering STARTTLS) or "tls"
        (`port` is the implicit-TLS port).
        """
        if not Path(DOVECOT).exists():
            raise RuntimeError("Dovecot is not installed: run `make mailbox-deps`")
        # In /tmp, not pytest's tmp_path: base_dir's sockets must fit in 108 bytes, and
        # `nobody` must reach the mail (pytest's temp root is root's, mode 0700).
        root = Path(tempfile.mkdtemp(prefix="mbdc-", dir="/tmp"))
        try:
            server = cls._launch(root, users, tls)
            try:
                yield server
            finally:
                server.stop()
        finally:
            shutil.rmtree(root, ignore_errors=True)

    @classmethod
    def _launch(cls, root: Path, users: dict[str, str], tls: Security) -> DovecotServer:
        nobody = pwd.getpwnam("nobody")
        mail_root = root / "mail"
        mail_root.mkdir()
        os.chown(mail_root, nobody.pw_uid, nobody.pw_gid)
        # Reachable for nobody: the temp dir itself is root's 0700 by default.
        root.chmod(0o755)
        (root / "state").mkdir()
        passwd = root / "users"
        passwd.write_text("".join(f"{user}:{{PLAIN}}{pw}::::::\n" for user, pw in users.items()))
        passwd.chmod(0o644)
        ca: trustme.CA | None = None
        ssl_files = ""
        if tls != "none":
            ca = trustme.CA()
            cert = ca.issue_cert(HOST, "localhost")
            cert.private_key_and_cert_chain_pem.write_to_path(str(root / "server.pem"))
            ssl_files = f"ssl_cert = <{root}/server.pem\nssl_key = <{root}/server.pem"
        imap_port, imaps_port = free_port(), free_port()
        while imaps_port == imap_port:
            imaps_port = free_port()
        (root / "dovecot.conf").write_text(
            CONFIG.format(
                base_dir=root / "run",
                state_dir=root / "state",
                port=imap_port,
                ssl="yes" if tls != "none" else "no",
                ssl_files=ssl_files,
                log=root / "dovecot.log",
                uid=nobody.pw_uid,
                gid=nobody.pw_gid,
                mail_root=mail_root,
                passwd=passwd,
                imap_port=imap_port,
                imaps_port=imaps_port if tls != "none" else 0,
            )
        )
        process = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(root / "dovecot.conf")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        port = imaps_port if tls == "tls" else imap_port
        server = cls(root, port, tls, dict(users), process, ca)
        server._wait_listening()
        return server

    def _wait_listening(self, timeout: float = 20.0) -> None:
        """Until the server greets on its port (a child process, polled, not slept on)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                out = self.process.stdout.read().decode() if self.process.stdout else ""
                raise RuntimeError(f"dovecot exited: {out}\n{self.log_text()}")
            try:
                with self.client():
                    return
            except (OSError, imapclient.exceptions.IMAPClientError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"dovecot did not answer:\n{self.log_text()}") from None
                time.sleep(0.05)

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's throwaway CA (and checks the name)."""
        context = ssl.create_default_context()
        if self.ca is not None:
            self.ca.configure_trust(context)
        return context

    @contextmanager
    def client(self, user: str | None = None) -> Iterator[imapclient.IMAPClient]:
        """An IMAPClient to this server, logged in as `user` when one is given."""
        box = imapclient.IMAPClient(
            self.host,
            port=self.port,
            ssl=self.security == "tls",
            ssl_context=self.ssl_context(),
            timeout=10,
        )
        try:
            if self.security == "starttls":
                box.starttls(self.ssl_context())
            if user is not None:
                box.login(user, self.users[user])
            yield box
        finally:
            try:
                box.logout()
            except (OSError, imapclient.exceptions.IMAPClientError):
                box.shutdown()

    def messages(self, user: str, folder: str) -> list[tuple[int, bytes, tuple[bytes, ...]]]:
        """Every message in `folder` as (uid, raw bytes, flags), in UID order."""
        with self.client(user) as box:
            box.select_folder(folder, readonly=True)
            uids = box.search("ALL")
            fetched = box.fetch(uids, ["BODY.PEEK[]", "FLAGS"]) if uids else {}
            return [
                (uid, bytes(fetched[uid][b"BODY[]"]), tuple(fetched[uid][b"FLAGS"]))
                for uid in sorted(fetched)
            ]

    def append(self, user: str, folder: str, raw: bytes, flags: tuple[bytes, ...] = ()) -> None:
        """Put a message into a user's folder, as a provider or another client would."""
        with self.client(user) as box:
            box.append(folder, raw, flags=flags)

    def stop(self) -> None:
        """SIGTERM the master (it stops its children), then make sure nothing is left."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture
def start_dovecot() -> Iterator[object]:
    """A factory: `start_dovecot(users, tls=...)` -> a running DovecotServer, stopped after."""
    with ExitStack() as stack:

        def start(users: dict[str, str], *, tls: Security = "none") -> DovecotServer:
            return stack.enter_context(DovecotServer.start(users, tls=tls))

        yield start


@pytest.fixture
def dovecot() -> Iterator[DovecotServer]:
    """One plain-IMAP server with the user MAIL_USER (password MAIL_PASSWORD)."""
    with DovecotServer.start({MAIL_USER: MAIL_PASSWORD}) as server:
        yield server
