"""The composer's follow-up reminder (B5), parsed apart from the rest of the form.

"Remind me if not opened / not clicked / not replied in N days": off unless
the user's default (Settings) says otherwise. Kept in its own module and
template partial (mail/_reminder.html) so the composer itself barely changes.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.datastructures import FormData

from mailbeacon.core.policy import N_
from mailbeacon.core.reminders import (
    DEFAULT_DAYS,
    MAX_DAYS,
    MIN_DAYS,
    InvalidRule,
    Rule,
    parse_rule,
)
from mailbeacon.store.tables import User

CONDITIONS = (
    ("not_opened", N_("not opened")),
    ("not_clicked", N_("not clicked")),
    ("not_replied", N_("not replied")),
)
DAYS_PROBLEM = N_("Enter a whole number of days from %(min)s to %(max)s.")


@dataclass(frozen=True, slots=True)
class ReminderForm:
    """The reminder fields as shown and as typed (a refused value is shown again)."""

    enabled: bool = False
    condition: str = "not_opened"
    days: str = str(DEFAULT_DAYS)
    email_me: bool = False

    @classmethod
    def of(cls, user: User) -> ReminderForm:
        """The user's default from Settings."""
        return cls(
            enabled=bool(user.reminder_condition),
            condition=user.reminder_condition or "not_opened",
            days=str(user.reminder_days),
            email_me=user.reminder_email,
        )

    @classmethod
    def from_form(cls, form: FormData) -> ReminderForm:
        def text(name: str) -> str:
            value = form.get(name)
            return value if isinstance(value, str) else ""

        return cls(
            enabled=text("reminder") == "1",
            condition=text("reminder_condition") or "not_opened",
            days=text("reminder_days").strip(),
            email_me=text("reminder_email") == "1",
        )

    def rule(self) -> Rule | None:
        """The reminder to keep, None when off; raises InvalidRule on odd input."""
        if not self.enabled:
            return None
        return parse_rule(self.condition, self.days, self.email_me)


def reminder_problem(exc: InvalidRule) -> tuple[str, dict[str, str]]:
    """The message (untranslated) and its values for a refused reminder."""
    if exc.code == "days":
        return DAYS_PROBLEM, {"min": str(MIN_DAYS), "max": str(MAX_DAYS)}
    return N_("Choose one of the conditions in the list."), {}
