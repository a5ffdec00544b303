"""The command parser: every command from a minimal body, routing by key, district matching, refusals."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from earlyhelp.schemas import COMMAND_MODELS, KNOWN_FIELD_PATHS, MessageRefused, parse_command

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc)

OWN_FIELDS = {
    "check": {"outcome": "sufficient"},
    "request_information": {"missing": ["support_already_offered", "referrer.contact_phone"]},
    "provide_information": {"fields": {"support_already_offered": "Weekly mentoring", "child.upn": "B801200005001"}},
    "triage": {"service": "early_help_unit", "district": "Maidstone"},
    "allocate": {"team": "Maidstone Early Help Unit 2", "worker_id": "w-0042"},
    "assess": {"outcome": "plan agreed"},
    "step_down": {"to": "open_access"},
    "close": {"reason": "needs_met"},
    "record_consent": {"share_with_school": False},
    "extend_clock": {"stage": "allocation", "extra": {"amount": 3, "unit": "working_days"},
                     "reason": "Waiting for the school's report after the holidays."},
}


def command(name: str, **changes) -> dict:
    return {
        "schema_version": 1,
        "command_id": f"frontdoor-{name}-1",
        "case_id": "case-0001",
        "actor": {"id": "staff-17", "role": "triage"},
        "issued_at": "2026-11-20T09:30:00+00:00",
        **OWN_FIELDS[name],
        **changes,
    }


def parse(name: str, document: dict, **kwargs):
    return parse_command(json.dumps(document).encode(), f"case.{name}", now=NOW, **kwargs)


def refused(name: str, document: dict, key: str | None = None, **kwargs) -> MessageRefused:
    with pytest.raises(MessageRefused) as caught:
        parse_command(json.dumps(document).encode(), key or f"case.{name}", now=NOW, **kwargs)
    return caught.value


def test_every_contract_command_has_a_model():
    assert set(COMMAND_MODELS) == set(OWN_FIELDS)
    assert all(model.name == name for name, model in COMMAND_MODELS.items())


@pytest.mark.parametrize("name", sorted(OWN_FIELDS))
def test_every_command_parses_from_a_minimal_body(name):
    parsed = parse(name, command(name))
    assert type(parsed) is COMMAND_MODELS[name]
    assert parsed.command_id == f"frontdoor-{name}-1"
    assert parsed.issued_at == datetime(2026, 11, 20, 9, 30, tzinfo=timezone.utc)


@pytest.mark.parametrize("name", sorted(OWN_FIELDS))
def test_a_field_of_another_command_is_refused_by_name(name):
    error = refused(name, command(name, worker="w-1"))
    assert error.errors == ["worker: Extra inputs are not permitted"]
    assert error.ids == {"command_id": f"frontdoor-{name}-1", "case_id": "case-0001"}


def test_an_unknown_command_is_refused_naming_the_known_ones():
    error = refused("check", command("check"), key="case.reopen")
    assert error.code == "unknown_command"
    for name in COMMAND_MODELS:
        assert name in error.reason
    assert error.ids == {"command_id": "frontdoor-check-1", "case_id": "case-0001"}


def test_issued_at_in_the_future_is_refused():
    error = refused("close", command("close", issued_at=(NOW + timedelta(minutes=10)).isoformat()))
    assert error.errors[0].startswith("issued_at: Time is in the future")


@pytest.mark.parametrize("given", ["maidstone", "  MAIDSTONE ", "tonbridge-and-malling", "Tonbridge and Malling"])
def test_triage_district_matches_configured_names_case_insensitively(given):
    parsed = parse("triage", command("triage", district=given))
    assert parsed.district in {"Maidstone", "Tonbridge and Malling"}
    assert parsed.priority is None


def test_triage_district_must_be_configured():
    error = refused("triage", command("triage", district="Medway"))
    assert error.errors[0].startswith("district: Not one of the configured districts: Dartford")
    assert parse("triage", command("triage", district="medway"), districts=["Medway", "Swale"]).district == "Medway"


def test_triage_service_and_priority_types_are_strict():
    error = refused("triage", command("triage", service="unit", priority="yes"))
    assert {line.split(":")[0] for line in error.errors} == {"service", "priority"}


def test_request_information_needs_known_paths():
    assert refused("request_information", command("request_information", missing=[])).errors[0].startswith("missing:")
    error = refused("request_information", command("request_information", missing=["reason", "child.shoe_size"]))
    assert error.errors[0].startswith("missing.1:")


def test_provide_information_checks_each_value_as_on_intake():
    error = refused(
        "provide_information",
        command(
            "provide_information",
            fields={"child.nhs_number": "9434765918", "child.shoe_size": "4"},
        ),
    )
    assert sorted(error.errors) == [
        "fields.child.nhs_number: NHS number check digit does not match",
        "fields.child.shoe_size: Extra inputs are not permitted",
    ]
    assert "9434765918" not in error.reason + "".join(error.errors)


@pytest.mark.parametrize("path", ["consent.share_with_school", "consent.family_consents"])
def test_consent_is_neither_requested_nor_provided_but_recorded_with_record_consent(path):
    error = refused("provide_information", command("provide_information", fields={path: True, "reason": "x"}))
    assert error.errors == ["fields: Consent changes only through the record_consent command"]
    error = refused("request_information", command("request_information", missing=["reason", path]))
    assert error.errors == ["missing: Consent changes only through the record_consent command"]
    parsed = parse("record_consent", command("record_consent", share_with_school=True, family_consent=False))
    assert (parsed.share_with_school, parsed.family_consent) == (True, False)
    assert parse("record_consent", command("record_consent")).family_consent is None
    assert refused("record_consent", command("record_consent", share_with_school="yes")).errors == [
        "share_with_school: Input should be a valid boolean"]


@pytest.mark.parametrize(("field", "value"), [
    ("command_id", "cmd\n1"), ("case_id", "case\x01"), ("actor", {"id": "dover.manager\nforged", "role": "manager"}),
    ("actor", {"id": "a", "role": "manager\x1b[31m"}), ("team", "Team \x9b2J"), ("worker_id", "w\x7f"),
])
def test_ids_names_and_short_text_refuse_control_characters(field, value):
    error = refused("allocate", command("allocate", **{"team": "Unit 2", "worker_id": "w-1", field: value}))
    assert [e.split(":")[1].strip() for e in error.errors] == ["Must not contain control characters"]


def test_free_text_keeps_its_lines_and_tabs_but_no_other_control_characters():
    parsed = parse("assess", command("assess", plan_summary="Week 1:\n\tmeet the family\r\nWeek 2"))
    assert parsed.plan_summary.count("\n") == 2
    error = refused("assess", command("assess", plan_summary="plan \x1b[2J"))
    assert error.errors == ["plan_summary: Must not contain control characters (only newlines and tabs)"]


def test_provide_information_gives_a_plain_dict_of_the_provided_paths():
    parsed = parse(
        "provide_information",
        command("provide_information", fields={"child.date_of_birth": "2015-05-02", "reason": " new words "}),
    )
    assert parsed.fields == {"child.date_of_birth": "2015-05-02", "reason": "new words"}
    assert set(parsed.fields) <= KNOWN_FIELD_PATHS
    assert parsed.model_dump(mode="json")["fields"] == parsed.fields


def test_provide_information_needs_at_least_one_field():
    error = refused("provide_information", command("provide_information", fields={}))
    assert error.errors == ["fields: Give at least one field"]


def test_close_reason_and_check_outcome_are_enumerations():
    assert refused("close", command("close", reason="bored")).errors[0].startswith("reason:")
    assert refused("check", command("check", outcome="fine")).errors[0].startswith("outcome:")


def test_actor_is_required_with_id_and_role():
    error = refused("assess", command("assess", actor={"id": "staff-17"}))
    assert error.errors == ["actor.role: Field required"]


def test_hostile_input_is_refused_for_commands_too():
    with pytest.raises(MessageRefused) as caught:
        parse_command(b"{" * 100, "case.check", now=NOW)
    assert caught.value.code == "too_deep"
    with pytest.raises(MessageRefused) as caught:
        parse_command(b"{}", "case.check", now=NOW, content_encoding="gzip")
    assert caught.value.code == "content_encoding"
