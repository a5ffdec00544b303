"""Event models and serialize_event: every event type round-trips; a bad event fails without its values."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from earlyhelp.schemas import EVENT_MODELS, InvalidEvent, serialize_event

AT = datetime(2026, 11, 20, 9, 14, tzinfo=timezone.utc)
CHILD = {"given_name": "Sam", "family_name": "Taylor"}

DATA = {
    "case.received": {"needs_review": ["family consent not given"]},
    "case.checked": {"by": "engine"},
    "case.information_requested": {"missing": ["child_voice"], "by": "staff"},
    "case.information_provided": {"fields": ["child_voice"]},
    "case.triaged": {"service": "early_help_unit", "district": "Maidstone", "priority": False},
    "case.allocated": {
        "team": "Maidstone Early Help Unit 2",
        "worker_id": "w-0042",
        "child": CHILD | {"date_of_birth": "2015-05-02", "postcode": "ME14 1AA", "school_urn": "118923"},
        "notifier": {"source": "school", "contact_phone": "01622 000000"},
    },
    "case.assessed": {"outcome": "plan agreed", "has_plan": True},
    "case.stepped_down": {"to": "open_access"},
    "case.closed": {"reason": "needs_met"},
    "case.consent_changed": {"share_with_school": False, "family_consent": None},
    "school.allocated": {"school_urn": "118923", "child": CHILD, "team": "Maidstone Early Help Unit 2"},
    "school.stepped_down": {"school_urn": "118923", "child": CHILD, "to": "universal"},
    "school.closed": {"school_urn": "118923", "child": CHILD, "reason": "needs_met"},
    "case.notification_linked": {"linked_notification_id": "gp-77", "source": "health", "kind": "request_for_support",
                                 "matched_on": ["nhs_number", "name_dob"]},
    "referrer.received": {},
    "referrer.linked": {},
    "referrer.information_requested": {"missing": ["child.date_of_birth"]},
    "referrer.decided": {"service": "early_help_unit", "district": "Maidstone"},
    "referrer.allocated": {"team": "Maidstone Early Help Unit 2"},
    "referrer.closed": {"reason": "needs_met", "stepped_down": True},
}
for _kind in ("warning", "breached"):
    for _stage, _unit in (("triage", "calendar_days"), ("allocation", "working_days"), ("assessment", "working_days")):
        DATA[f"sla.{_kind}.{_stage}"] = {
            "stage": _stage,
            "allowance": {"amount": 4, "unit": _unit},
            "due_at": AT + timedelta(days=6),
            "elapsed": {"amount": 3.5, "unit": _unit},
        }
for _stage in ("triage", "allocation", "assessment"):  # extend_clock: the deadline before and after
    DATA[f"sla.extended.{_stage}"] = {"previous_due_at": AT + timedelta(days=6), "due_at": AT + timedelta(days=8)}


def event(event_type: str, **changes) -> dict:
    envelope = {"schema_version": 1, "event_id": f"ev-{event_type}", "event_type": event_type,
                "occurred_at": AT, "recorded_at": AT + timedelta(seconds=1)}
    if event_type.endswith(".rejected"):
        return envelope | {"reason": "The notification was refused.", "errors": ["reason: Field required"],
                           "notification_id": "oakwood-1", "message_id": "m-1"} | changes
    if event_type.startswith("referrer."):
        return envelope | {"case_id": "case-1", "notification_id": "oakwood-1", "source": "school", "sequence": 3,
                           "data": DATA[event_type]} | changes
    return envelope | {
        "case_id": "case-1", "notification_id": "oakwood-1", "state": "triaged", "sequence": 3,
        "source": "school", "kind": "request_for_support", "priority": False, "district": "Maidstone",
        "service": "early_help_unit", "previous_state": "checked",
        "actor": {"id": "staff-17", "role": "triage"}, "caused_by": "cmd-1", "data": DATA[event_type],
    } | changes


def test_every_contract_event_type_has_a_model():
    expected = set(DATA) | {"notification.rejected", "command.rejected"}
    assert set(EVENT_MODELS) == expected


@pytest.mark.parametrize("event_type", sorted(EVENT_MODELS))
def test_every_event_type_round_trips(event_type):
    body = serialize_event(event(event_type))
    decoded = json.loads(body)
    assert body == json.dumps(decoded, separators=(",", ":"), ensure_ascii=False).encode()  # compact
    assert decoded["event_type"] == event_type
    assert decoded["occurred_at"] == "2026-11-20T09:14:00Z"
    again = EVENT_MODELS[event_type].model_validate_json(body, strict=True)
    assert serialize_event(again.model_dump()) == body


def test_referrer_events_carry_no_personal_data_and_no_case_facts_beyond_ids():
    body = json.loads(serialize_event(event("referrer.closed")))
    assert set(body) == {"schema_version", "event_id", "event_type", "occurred_at", "recorded_at", "case_id",
                         "notification_id", "source", "sequence", "data"}
    with pytest.raises(InvalidEvent):  # nothing beyond the contract's fields, a child's name least of all
        serialize_event(event("referrer.allocated", data={"team": "T", "child": CHILD}))
    with pytest.raises(InvalidEvent):  # matched_on names identifiers, never values
        serialize_event(event("case.notification_linked", data=DATA["case.notification_linked"] | {
            "matched_on": ["9434765919"]}))


def test_a_re_referral_names_the_previous_cases():
    body = json.loads(serialize_event(event("case.received", data={"needs_review": [], "previous_case_ids": ["c-0"]})))
    assert body["data"]["previous_case_ids"] == ["c-0"]


def test_none_values_are_left_out():
    body = json.loads(serialize_event(event("case.received", district=None, service=None, previous_state=None,
                                             actor=None, caused_by=None, state="received", sequence=1)))
    assert not {"district", "service", "previous_state", "actor", "caused_by"} & set(body)


def test_times_are_normalised_to_utc():
    local = datetime(2026, 11, 20, 10, 14, tzinfo=timezone(timedelta(hours=1)))
    assert json.loads(serialize_event(event("case.closed", occurred_at=local)))["occurred_at"] == "2026-11-20T09:14:00Z"


def test_a_naive_time_is_refused():
    with pytest.raises(InvalidEvent):
        serialize_event(event("case.closed", occurred_at=datetime(2026, 11, 20, 9, 14)))


def test_an_invalid_event_fails_without_echoing_personal_data():
    bad = event("case.allocated")
    bad["data"] = bad["data"] | {"child": {"given_name": "Sam", "family_name": "Taylor", "shoe": "Sam's"}}
    bad["sequence"] = 0
    with pytest.raises(InvalidEvent) as caught:
        serialize_event(bad)
    assert "Sam" not in str(caught.value) and "Taylor" not in str(caught.value)
    assert sorted(caught.value.errors) == [
        "data.child.shoe: Extra inputs are not permitted",
        "sequence: Input should be greater than or equal to 1",
    ]


def test_unknown_event_types_and_mismatched_sla_stage_are_refused():
    with pytest.raises(InvalidEvent):
        serialize_event(event("case.closed") | {"event_type": "case.reopened"})
    with pytest.raises(InvalidEvent):
        serialize_event(event("sla.breached.triage") | {"event_type": "sla.breached.allocation"})


def test_rejections_are_not_case_events_and_may_name_the_command_and_state():
    body = json.loads(serialize_event(event("command.rejected", command="allocate", state="received",
                                            command_id="c-1", case_id="case-1", notification_id=None)))
    assert body["command"] == "allocate" and body["state"] == "received"
    assert "sequence" not in body and "notification_id" not in body
