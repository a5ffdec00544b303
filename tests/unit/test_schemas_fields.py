"""KNOWN_FIELD_PATHS and apply_provided_fields: provided details land on a new, validated notification."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from earlyhelp.schemas import KNOWN_FIELD_PATHS, MessageRefused, Notification, apply_provided_fields, parse_notification
from earlyhelp.schemas.fields import PROVIDABLE_FIELDS

from .test_schemas_notification import NOW, example

SAMPLES = {
    "reason": "text", "support_already_offered": "text", "intended_outcome": "text", "child_voice": "text",
    "social_care_status": "closed", "referrer.organisation": "Org", "referrer.contact_name": "A. Person",
    "referrer.contact_email": "a@b.example", "referrer.contact_phone": "01234 567890",
    "referrer.school_urn": "118923", "referrer.referral_source_code": "3B", "child.given_name": "Samuel",
    "child.family_name": "Tailor", "child.date_of_birth": "2015-06-01", "child.expected_date_of_birth": None,
    "child.postcode": "ME15 6AA", "child.school_urn": "118924", "child.nhs_number": "9434765919",
    "child.upn": "B801200005001", "child.placing_authority": "Medway", "consent.family_consents": False,
    "consent.share_with_school": True,
}


def notification(**changes) -> Notification:
    return parse_notification(json.dumps(example() | changes).encode(), "notification.school", now=NOW)


def test_known_field_paths_include_the_contract_list():
    assert {
        "reason", "support_already_offered", "intended_outcome", "child_voice", "referrer.organisation",
        "referrer.contact_name", "referrer.contact_email", "referrer.contact_phone", "referrer.school_urn",
        "child.postcode", "child.school_urn", "child.nhs_number", "child.upn", "child.date_of_birth",
    } <= KNOWN_FIELD_PATHS
    # Consent changes only through record_consent (docs/contract.md, "Version 1.1 additions").
    assert not {p for p in KNOWN_FIELD_PATHS if p.startswith("consent.")}


@pytest.mark.parametrize("path", sorted(PROVIDABLE_FIELDS))
def test_every_known_path_is_a_field_of_the_notification_and_can_be_set(path):
    value = SAMPLES[path]
    if value is None:  # expected_date_of_birth: only sensible when date_of_birth is not given
        base = example()
        del base["child"]["date_of_birth"]
        base["child"]["expected_date_of_birth"] = "2027-01-15"
        start = parse_notification(json.dumps(base).encode(), "notification.school", now=NOW)
        value = "2027-02-01"
    else:
        start = notification()
    updated = apply_provided_fields(start, {path: value})
    got = updated.model_dump(mode="json")
    for part in path.split("."):
        got = got[part]
    assert got == value


def test_the_result_is_a_new_notification_and_the_original_is_unchanged():
    original = notification(support_already_offered=None)
    updated = apply_provided_fields(original, {"support_already_offered": "Mentoring", "child.upn": "B801200005001"})
    assert original.support_already_offered is None and original.child.upn is None
    assert updated.support_already_offered == "Mentoring" and updated.child.upn == "B801200005001"


def test_consent_is_not_a_field_to_provide():
    with pytest.raises(MessageRefused) as caught:
        apply_provided_fields(notification(), {"consent.share_with_school": True})
    assert caught.value.errors == ["consent.share_with_school: not a known field path"]


def test_a_date_of_birth_replaces_the_expected_date_of_birth():
    document = example()
    del document["child"]["date_of_birth"]
    document["child"]["expected_date_of_birth"] = "2026-11-01"
    unborn = parse_notification(json.dumps(document).encode(), "notification.school", now=NOW)
    born = apply_provided_fields(unborn, {"child.date_of_birth": "2026-11-03"}, now=NOW)
    assert born.child.expected_date_of_birth is None
    assert str(born.child.date_of_birth) == "2026-11-03"


def test_an_old_received_at_does_not_matter_and_a_later_clock_is_fine():
    start = notification(received_at="2020-01-01T00:00:00Z")
    assert apply_provided_fields(start, {"reason": "x"}).reason == "x"


def test_invalid_provided_values_are_refused_by_path_without_values():
    with pytest.raises(MessageRefused) as caught:
        apply_provided_fields(notification(), {"child.nhs_number": "9434765918", "child.shoe_size": "4", "reason": 5})
    error = caught.value
    assert sorted(error.errors) == [
        "child.shoe_size: not a known field path",
        "reason: value must be text or true/false",
    ]
    with pytest.raises(MessageRefused) as caught:
        apply_provided_fields(notification(), {"child.nhs_number": "9434765918", "child.school_urn": "12345"})
    assert sorted(caught.value.errors) == [
        "child.nhs_number: NHS number check digit does not match",
        "child.school_urn: school URN must be exactly 6 digits",
    ]
    assert caught.value.ids == {"notification_id": "oakwood-2026-000457"}
    assert "9434765918" not in caught.value.reason + "".join(caught.value.errors)


def test_stored_details_reload_without_clock_checks():
    # The engine stores model_dump(mode="json", exclude_none=True) and reloads with context stored=True.
    future = notification(received_at="2026-11-20T09:59:00Z")
    stored = future.model_dump(mode="json", exclude_none=True)
    assert Notification.model_validate(stored, context={"stored": True, "now": datetime(2000, 1, 1, tzinfo=timezone.utc)}) == future
