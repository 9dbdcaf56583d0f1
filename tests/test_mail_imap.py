"""mail/imap.py against a real Dovecot: TLS modes, certificate checks, private addresses,
the login error, and the Sent folder found by SPECIAL-USE or by name."""

from __future__ import annotations

import ssl
from collections.abc import Callable

import pytest

from mailbeacon.mail import imap
from mailbeacon.mail.imap import Folder, ImapError, ImapTarget, connect, find_sent_folder, probe
from tests.dovecot import MAIL_PASSWORD, MAIL_USER, DovecotServer


def target_for(server: DovecotServer, **overrides: object) -> ImapTarget:
    values: dict[str, object] = {
        "host": server.host,
        "port": server.port,
        "security": server.security,
        "username": MAIL_USER,
        "password": MAIL_PASSWORD,
        "allow_private": True,
        "timeout": 10.0,
    }
    values.update(overrides)
    return ImapTarget(**values)  # type: ignore[arg-type]


@pytest.fixture
def trust_test_ca(monkeypatch: pytest.MonkeyPatch) -> Callable[[DovecotServer], None]:
    """Make MailBeacon trust one test server's throwaway CA (and nothing changes otherwise)."""

    def trust(server: DovecotServer) -> None:
        monkeypatch.setattr(imap, "tls_context", server.ssl_context)

    return trust


def test_probe_finds_capabilities_sent_folder_and_inbox(dovecot: DovecotServer) -> None:
    found = probe(target_for(dovecot))
    assert found.error == ""
    assert found.idle and found.special_use
    assert found.sent_folder == "Sent"
    assert found.inbox_folder == "INBOX"
    assert found.server == f"127.0.0.1:{dovecot.port}"


@pytest.mark.parametrize("tls", ["starttls", "tls"])
def test_tls_modes_connect_with_a_checked_certificate(
    start_dovecot: Callable[..., DovecotServer],
    trust_test_ca: Callable[[DovecotServer], None],
    tls: str,
) -> None:
    server = start_dovecot({MAIL_USER: MAIL_PASSWORD}, tls=tls)
    trust_test_ca(server)
    with connect(target_for(server)) as box:
        assert box.sent_folder() == "Sent"


@pytest.mark.parametrize("tls", ["starttls", "tls"])
def test_an_untrusted_certificate_is_refused(
    start_dovecot: Callable[..., DovecotServer], tls: str
) -> None:
    server = start_dovecot({MAIL_USER: MAIL_PASSWORD}, tls=tls)
    with pytest.raises(ImapError) as caught, connect(target_for(server)):
        pass
    assert caught.value.kind == "tls"
    assert not caught.value.retryable


def test_a_wrong_password_is_a_login_error_in_words(dovecot: DovecotServer) -> None:
    found = probe(target_for(dovecot, password="wrong"))
    assert found.error == imap.LOGIN_FAILED
    assert not found.capabilities


def test_a_private_address_is_refused_unless_the_operator_allows_it(
    dovecot: DovecotServer,
) -> None:
    with pytest.raises(ImapError) as caught, connect(target_for(dovecot, allow_private=False)):
        pass
    assert caught.value.kind == "refused"


def test_nothing_listening_is_unreachable() -> None:
    from tests.helpers import free_port

    target = ImapTarget("127.0.0.1", free_port(), "none", "u", "p", allow_private=True, timeout=5)
    with pytest.raises(ImapError) as caught, connect(target):
        pass
    assert caught.value.kind == "unreachable"
    assert caught.value.retryable


def test_a_configured_sent_folder_must_exist(dovecot: DovecotServer) -> None:
    found = probe(target_for(dovecot, sent_folder="Sent Items"))
    assert found.error == imap.NO_SUCH_FOLDER
    assert found.error_params == {"folder": "Sent Items"}
    assert probe(target_for(dovecot, sent_folder="sent")).sent_folder == "Sent"


def folders(*names: str, delimiter: str = "/", flags: dict[str, str] | None = None) -> list[Folder]:
    marks = flags or {}
    return [
        Folder(n, delimiter, frozenset({marks[n]}) if n in marks else frozenset()) for n in names
    ]


def test_the_sent_folder_is_the_one_marked_sent_whatever_its_name() -> None:
    found = find_sent_folder(folders("INBOX", "Sent", "Wysłane", flags={"Wysłane": "\\sent"}))
    assert found == "Wysłane"


@pytest.mark.parametrize(
    ("names", "delimiter", "expected"),
    [
        (("INBOX", "Gesendete Elemente"), "/", "Gesendete Elemente"),
        (("INBOX", "INBOX.Skickat"), ".", "INBOX.Skickat"),
        (("INBOX", "Elementy wysłane"), "/", "Elementy wysłane"),
        (("INBOX", "Posta inviata"), "/", "Posta inviata"),
        (("INBOX", "Saadetud kirjad"), "/", "Saadetud kirjad"),
        (("INBOX", "[Gmail]", "[Gmail]/Sent Mail"), "/", "[Gmail]/Sent Mail"),
        (("INBOX", "Drafts"), "/", None),
    ],
)
def test_without_special_use_the_sent_folder_is_found_by_name(
    names: tuple[str, ...], delimiter: str, expected: str | None
) -> None:
    assert find_sent_folder(folders(*names, delimiter=delimiter)) == expected


def test_tls_context_checks_certificates_and_names() -> None:
    context = imap.tls_context()
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
