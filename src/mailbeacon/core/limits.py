"""The limits of one email, in one place so they can be documented and enforced alike.

Every limit is checked before the work it bounds: sizes and counts are read off the
raw input (a length, a count of separators) before anything is parsed, so an
oversized request costs nothing but its refusal (DESIGN rules 1 and 6).
"""

from __future__ import annotations

MAX_RECIPIENTS = 100
"""To, Cc and Bcc together, after duplicates are merged."""

MAX_LINKS = 1000
"""Distinct trackable links in one message (HTML and text part together)."""

MAX_SUBJECT = 998
"""Characters in a subject (RFC 5322's line limit)."""

MAX_BODY_CHARS = 5_000_000
"""Characters in each body (HTML and plain text)."""

MAX_FORM_FIELD_BYTES = MAX_BODY_CHARS * 4
"""Bytes of one form field (the composer's body is the big one): MAX_BODY_CHARS characters
of up to four UTF-8 bytes each. The web form parser's own default (1 MiB) sits far below
MAX_BODY_CHARS and turned a pasted screenshot into a generic error; past this a body is
refused by the request-size limit (12 MB) first anyway."""

MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
"""Bytes of all attachments of one email together (the files as chosen, before encoding)."""

MAX_ATTACHMENTS = 20
"""Files attached to one email."""

MAX_FILENAME_CHARS = 200
"""Characters kept of an attachment's file name (longer names are shortened, not refused)."""

MAX_ADDRESS_LENGTH = 320
"""Characters in one address (local part, "@", domain)."""

MAX_MAILBOX_CHARS = 1000
"""Characters in one recipient as typed: a display name (quoted, escaped) and its address."""

MAX_ADDRESS_FIELD_CHARS = MAX_RECIPIENTS * (MAX_MAILBOX_CHARS + 2)
"""Characters in one address field (To, Cc or Bcc) as typed, separators included."""

MAX_TRACKED_URL_CHARS = 65_536
"""Longest link that is tracked (as the browser would request it); longer ones stay as written."""

INLINE_URL_BYTES = 1536
"""Links up to this many UTF-8 bytes travel inside their click token, so the redirect needs
no database; longer ones are named by their stored link id and a digest of the URL."""

__all__ = [
    "INLINE_URL_BYTES",
    "MAX_ADDRESS_FIELD_CHARS",
    "MAX_ADDRESS_LENGTH",
    "MAX_ATTACHMENTS",
    "MAX_ATTACHMENT_BYTES",
    "MAX_BODY_CHARS",
    "MAX_FILENAME_CHARS",
    "MAX_FORM_FIELD_BYTES",
    "MAX_LINKS",
    "MAX_MAILBOX_CHARS",
    "MAX_RECIPIENTS",
    "MAX_SUBJECT",
    "MAX_TRACKED_URL_CHARS",
]
