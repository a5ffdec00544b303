"""The engine's own checks on a notification (docs/contract.md, "The engine's checks")."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from earlyhelp.workflows.checks import (
    CHILD_AGED_19_OR_OVER,
    FAMILY_CONSENT_NOT_GIVEN,
    CheckOutcome,
    age_on,
    check_notification,
)

from tests.factories import OMIT, notification

FREE_TEXT = ("support_already_offered", "intended_outcome", "child_voice")
CONTACTS = ("referrer.contact_email", "referrer.contact_phone")


# --- sufficient ----------------------------------------------------------------------------------

def test_the_contracts_example_is_sufficient_with_nothing_to_review() -> None:
    outcome = check_notification(notification())
    assert outcome == CheckOutcome(missing=(), needs_review=())
    assert outcome.sufficient


def test_only_the_required_fields_and_a_contact_is_not_enough() -> None:
    bare = notification(
        referrer={"source": "health", "contact_phone": "01622 111111"},
        child={"given_name": "Sam", "family_name": "Taylor", "date_of_birth": "2015-05-02"},
        reason="Concern.", support_already_offered=OMIT, intended_outcome=OMIT, child_voice=OMIT,
        consent={"family_consents": True}, replace=True,
    )
    outcome = check_notification(bare)
    assert set(outcome.missing) == set(FREE_TEXT)
    assert outcome.needs_review == ()
    assert not outcome.sufficient


# --- missing free text ---------------------------------------------------------------------------

@pytest.mark.parametrize("absent", [OMIT, "", "   \n\t"], ids=["left_out", "empty", "blank"])
@pytest.mark.parametrize("path", FREE_TEXT)
def test_each_missing_free_text_field_is_named_by_its_path(path: str, absent: object) -> None:
    outcome = check_notification(notification(**{path: absent}))
    assert outcome.missing == (path,)
    assert outcome.needs_review == ()
    assert not outcome.sufficient


def test_every_missing_field_is_named_once() -> None:
    outcome = check_notification(
        notification(support_already_offered=OMIT, child_voice="",
                     referrer={"contact_email": OMIT, "contact_phone": OMIT})
    )
    assert sorted(outcome.missing) == sorted(["support_already_offered", "child_voice", *CONTACTS])
    assert len(set(outcome.missing)) == len(outcome.missing)


def test_a_blank_concern_is_named_as_reason() -> None:
    # The schema requires `reason`; the checks still name it if a notification without one gets here.
    outcome = check_notification(notification().model_copy(update={"reason": "  "}))
    assert outcome.missing == ("reason",)


# --- a way to contact the notifier ---------------------------------------------------------------

@pytest.mark.parametrize("absent", [OMIT, "", " "], ids=["left_out", "empty", "blank"])
def test_no_email_and_no_phone_names_both_contact_paths(absent: object) -> None:
    outcome = check_notification(notification(referrer={"contact_email": absent, "contact_phone": absent}))
    assert set(outcome.missing) == set(CONTACTS)
    assert len(outcome.missing) == 2


@pytest.mark.parametrize("kept", CONTACTS)
def test_either_contact_alone_suffices(kept: str) -> None:
    dropped = next(p for p in CONTACTS if p != kept).split(".")[1]
    outcome = check_notification(notification(referrer={dropped: OMIT}))
    assert outcome.missing == ()
    assert outcome.sufficient


# --- age at received_at --------------------------------------------------------------------------

RECEIVED = "2026-11-20T09:14:00Z"


@pytest.mark.parametrize(
    ("born", "review"),
    [
        ("2007-11-21", False),  # the day before the 19th birthday: still 18
        ("2007-11-20", True),   # the 19th birthday itself: 19
        ("2007-11-19", True),
        ("1990-01-01", True),
        ("2008-11-20", False),  # the 18th birthday
        ("2015-05-02", False),
        ("2026-11-20", False),  # born that day
    ],
)
def test_a_child_19_or_over_at_received_at_needs_review(born: str, review: bool) -> None:
    outcome = check_notification(notification(received_at=RECEIVED, child={"date_of_birth": born}))
    assert (CHILD_AGED_19_OR_OVER in outcome.needs_review) is review
    assert outcome.missing == ()
    assert outcome.sufficient is not review


def test_age_is_taken_at_received_at_not_today() -> None:
    # 19 on 22 November 2026, after it was received on the 20th but before the checks run (NOW, the 25th).
    outcome = check_notification(notification(received_at=RECEIVED, child={"date_of_birth": "2007-11-22"}))
    assert outcome.needs_review == ()


@pytest.mark.parametrize(
    ("received_at", "review"),
    [
        ("2023-02-28T12:00:00Z", False),  # no 29 February in 2023: still 18 on the 28th
        ("2023-02-28T23:59:00Z", False),
        ("2023-03-01T00:00:00Z", True),   # 19 on 1 March
        ("2023-03-01T09:00:00Z", True),
    ],
)
def test_a_child_born_on_29_february_turns_19_on_1_march(received_at: str, review: bool) -> None:
    outcome = check_notification(notification(received_at=received_at, child={"date_of_birth": "2004-02-29"}))
    assert (CHILD_AGED_19_OR_OVER in outcome.needs_review) is review


@pytest.mark.parametrize("received_at", ["2026-06-01T23:30:00Z", "2026-06-02T00:30:00+01:00"])
def test_the_19th_birthday_begins_at_midnight_in_london(received_at: str) -> None:
    # 00:30 on 2 June 2026 in London (BST) is 23:30 on 1 June in UTC.
    outcome = check_notification(notification(received_at=received_at, child={"date_of_birth": "2007-06-02"}))
    assert CHILD_AGED_19_OR_OVER in outcome.needs_review


def test_the_day_before_the_19th_birthday_in_london_is_fine_late_in_the_utc_day() -> None:
    # 23:30 UTC on 1 June is already 2 June in London, but for a child born on 3 June that is still 18.
    outcome = check_notification(
        notification(received_at="2026-06-01T23:30:00Z", child={"date_of_birth": "2007-06-03"})
    )
    assert outcome.needs_review == ()


@pytest.mark.parametrize("expected", ["2027-03-01", "2026-11-30", "2026-11-01"])
def test_an_unborn_child_needs_no_review(expected: str) -> None:
    outcome = check_notification(
        notification(child={"date_of_birth": OMIT, "expected_date_of_birth": expected})
    )
    assert outcome == CheckOutcome((), ())


# --- consent ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "consent",
    [OMIT, None, {"family_consents": False}, {"family_consents": None}, {"family_consents": OMIT}],
    ids=["no_consent", "consent_null", "family_refuses", "family_consents_null", "family_consents_left_out"],
)
def test_a_request_for_support_without_the_familys_consent_needs_review(consent: object) -> None:
    outcome = check_notification(notification(kind="request_for_support", consent=consent))
    assert outcome.needs_review == (FAMILY_CONSENT_NOT_GIVEN,)
    assert outcome.missing == ()
    assert not outcome.sufficient


def test_consent_to_share_with_school_is_not_consent_to_the_request() -> None:
    body_consent = {"family_consents": False, "share_with_school": True}
    outcome = check_notification(notification(consent=body_consent, replace=True))
    assert outcome.needs_review == (FAMILY_CONSENT_NOT_GIVEN,)


@pytest.mark.parametrize("kind", ["step_down", "missing_child"])
@pytest.mark.parametrize("consent", [OMIT, {"family_consents": False}], ids=["no_consent", "family_refuses"])
def test_step_down_and_missing_child_need_no_consent(kind: str, consent: object) -> None:
    outcome = check_notification(notification(kind=kind, consent=consent))
    assert outcome == CheckOutcome((), ())


def test_an_adult_without_consent_gets_both_reasons_and_missing_fields_are_still_named() -> None:
    outcome = check_notification(
        notification(child={"date_of_birth": "2000-01-01"}, consent=OMIT, child_voice=OMIT)
    )
    assert set(outcome.needs_review) == {CHILD_AGED_19_OR_OVER, FAMILY_CONSENT_NOT_GIVEN}
    assert outcome.missing == ("child_voice",)


def test_checking_does_not_change_the_notification() -> None:
    n = notification(consent=OMIT, child_voice=OMIT)
    before = n.model_dump()
    check_notification(n)
    assert n.model_dump() == before


# --- age_on, the arithmetic ------------------------------------------------------------------------

def _reference_age(born: date, on: date) -> int:
    """Count birthdays up to `on`; a 29 February birthday falls on 1 March in a common year."""
    years = 0
    while True:
        year = born.year + years + 1
        try:
            birthday = born.replace(year=year)
        except ValueError:
            birthday = date(year, 3, 1)
        if birthday > on:
            return years
        years += 1


@given(born=st.dates(date(1950, 1, 1), date(2030, 12, 31)), days=st.integers(0, 40 * 366))
def test_age_on_counts_whole_years_as_birthdays_passed(born: date, days: int) -> None:
    on = born + timedelta(days=days)
    assert age_on(born, on) == _reference_age(born, on)


@pytest.mark.parametrize(
    ("born", "on", "age"),
    [
        (date(2004, 2, 29), date(2023, 2, 28), 18),
        (date(2004, 2, 29), date(2023, 3, 1), 19),
        (date(2004, 2, 29), date(2024, 2, 28), 19),
        (date(2004, 2, 29), date(2024, 2, 29), 20),
        (date(2007, 11, 20), date(2026, 11, 19), 18),
        (date(2007, 11, 20), date(2026, 11, 20), 19),
        (date(2007, 12, 31), date(2026, 1, 1), 18),
    ],
)
def test_age_on_examples(born: date, on: date, age: int) -> None:
    assert age_on(born, on) == age
