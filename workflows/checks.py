"""The engine's own checks on a notification: is it sufficient, and does it need a person's judgement?

docs/contract.md, "The engine's checks": missing information sends the case to awaiting_information with
the field paths named; a child aged 19 or over, or a request for support without the family's consent,
keeps the case in `received` for a person to decide.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from .calendar import local_date

# What a person must decide rather than the engine (data.needs_review on case.received).
CHILD_AGED_19_OR_OVER = "child_aged_19_or_over"
FAMILY_CONSENT_NOT_GIVEN = "family_consent_not_given"

# Free-text fields that make a notification sufficient, by field path.
REQUIRED_TEXT = ("reason", "support_already_offered", "intended_outcome", "child_voice")
# Either of these is "a way to contact the notifier"; both are named when neither is given.
CONTACT_PATHS = ("referrer.contact_email", "referrer.contact_phone")


@dataclass(frozen=True)
class CheckOutcome:
    missing: tuple[str, ...] = ()
    needs_review: tuple[str, ...] = ()

    @property
    def sufficient(self) -> bool:
        return not self.missing and not self.needs_review


def check_notification(notification) -> CheckOutcome:
    """Check a validated Notification (earlyhelp.schemas.Notification); pure, no clock: age is taken at received_at."""
    missing = [path for path in REQUIRED_TEXT if not _text(getattr(notification, path, None))]
    referrer = notification.referrer
    if not (_text(referrer.contact_email) or _text(referrer.contact_phone)):
        missing.extend(CONTACT_PATHS)

    needs_review = []
    born = notification.child.date_of_birth
    # Dates of birth are local dates: the 19th birthday starts at midnight in London, not in UTC.
    if born is not None and age_on(born, local_date(notification.received_at)) >= 19:
        needs_review.append(CHILD_AGED_19_OR_OVER)
    if _word(notification.kind) == "request_for_support":
        consent = notification.consent
        if consent is None or not consent.family_consents:
            needs_review.append(FAMILY_CONSENT_NOT_GIVEN)
    return CheckOutcome(tuple(missing), tuple(needs_review))


def age_on(born: date, on: date) -> int:
    """Whole years of age on a day (a child born on 29 February turns a year older on 1 March)."""
    years = on.year - born.year
    if (on.month, on.day) < (born.month, born.day):
        years -= 1
    return years


def _text(value) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _word(value) -> str:
    return getattr(value, "value", value)
