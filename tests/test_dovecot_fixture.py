"""The test IMAP server itself: it starts, serves LOGIN, offers what the mailbox tests rely on."""

from __future__ import annotations

from collections.abc import Callable

import imapclient
import pytest

from tests.dovecot import MAIL_PASSWORD, MAIL_USER, DovecotServer


def test_dovecot_serves_login_and_special_use_folders(dovecot: DovecotServer) -> None:
    with dovecot.client() as box:
        box.login(MAIL_USER, MAIL_PASSWORD)
        capabilities = box.capabilities()
        assert b"IDLE" in capabilities
        assert b"SPECIAL-USE" in capabilities
        assert b"UIDPLUS" in capabilities
        flags = {name: set(folder_flags) for folder_flags, _sep, name in box.list_folders()}
    assert imapclient.imapclient.SENT in flags["Sent"]
    assert imapclient.imapclient.DRAFTS in flags["Drafts"]
    assert imapclient.imapclient.TRASH in flags["Trash"]
    assert imapclient.imapclient.JUNK in flags["Junk"]
    assert "INBOX" in flags


def test_dovecot_refuses_a_wrong_password(dovecot: DovecotServer) -> None:
    with dovecot.client() as box, pytest.raises(imapclient.exceptions.LoginError):
        box.login(MAIL_USER, "not-the-password")


def test_dovecot_keeps_what_is_appended(dovecot: DovecotServer) -> None:
    raw = b"From: a@example.com\r\nSubject: hi\r\nMessage-ID: <1@x>\r\n\r\nbody\r\n"
    dovecot.append(MAIL_USER, "Sent", raw, flags=(imapclient.SEEN,))
    [(_uid, stored, flags)] = dovecot.messages(MAIL_USER, "Sent")
    assert stored == raw
    assert imapclient.SEEN in flags


@pytest.mark.parametrize("tls", ["starttls", "tls"])
def test_dovecot_speaks_tls_with_a_certificate_clients_can_check(
    start_dovecot: Callable[..., DovecotServer], tls: str
) -> None:
    server = start_dovecot({MAIL_USER: MAIL_PASSWORD}, tls=tls)
    with server.client(MAIL_USER) as box:
        assert box.select_folder("INBOX")[b"EXISTS"] == 0
