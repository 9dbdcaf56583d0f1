"""Follow-up reminders in words (B5): the bell, the feed and the email to the user.

One place for the sentence, so the notification and the email say the same
thing: "No open from Anna after 3 days: Prices 2027". Plain text; the feed
escapes it and the bell inserts it as text.
"""

from __future__ import annotations

from mailbeacon.core.reminders import Condition
from mailbeacon.store.reminders import FiredReminder
from mailbeacon.web.i18n import Localizer


def reminder_sentence(condition: str, days: int, who: str, subject: str, l10n: Localizer) -> str:
    """What did not happen, from whom, after how long, and to which email."""
    if condition == Condition.NOT_CLICKED:
        return l10n.ngettext(
            "No click from %(recipient)s after %(num)d day: %(subject)s",
            "No click from %(recipient)s after %(num)d days: %(subject)s",
            days,
            recipient=who,
            subject=subject,
        )
    if condition == Condition.NOT_REPLIED:
        return l10n.ngettext(
            "No reply from %(recipient)s after %(num)d day: %(subject)s",
            "No reply from %(recipient)s after %(num)d days: %(subject)s",
            days,
            recipient=who,
            subject=subject,
        )
    return l10n.ngettext(
        "No open from %(recipient)s after %(num)d day: %(subject)s",
        "No open from %(recipient)s after %(num)d days: %(subject)s",
        days,
        recipient=who,
        subject=subject,
    )


def reminder_email(fired: FiredReminder, public_url: str) -> tuple[str, str]:
    """Subject and plain-text body of the reminder email, in the user's language."""
    l10n = Localizer(fired.locale, fired.timezone)
    who = fired.recipient_name or fired.recipient_address
    subject = fired.subject or l10n.gettext("(no subject)")
    sentence = reminder_sentence(fired.condition, fired.days, who, subject, l10n)
    body = "\n\n".join(
        [
            sentence,
            l10n.gettext(
                "Time to follow up with %(recipient)s.", recipient=fired.recipient_address
            ),
            f"{public_url.rstrip('/')}/mail/{fired.message_id}",
            l10n.gettext("You asked MailBeacon to remind you about this email."),
        ]
    )
    return l10n.gettext("Reminder: %(sentence)s", sentence=sentence), body + "\n"
