"""A notification becomes a case and commands walk it to closed: on the real RabbitMQ, on both databases."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from earlyhelp.persistence.database import make_engine
from earlyhelp.persistence.tables import case_history, cases, processed_messages
from tests.factories import OMIT, command_body, encode, notification_body

pytestmark = pytest.mark.integration


def send_notification(upstream, body: dict, message_id: str | None = None):
    sent = upstream.publish("earlyhelp.notifications", f"notification.{body['referrer']['source']}", encode(body),
                            message_id=message_id or body["notification_id"])
    assert sent.ok, sent.explanation
    return body


def send_command(upstream, name: str, case_id: str, **fields) -> dict:
    body = command_body(name, case_id, issued_at=fields.pop("issued_at", "2026-11-21T10:00:00Z"), **fields)
    sent = upstream.publish("earlyhelp.commands", f"case.{name}", encode(body), message_id=body["command_id"])
    assert sent.ok, sent.explanation
    return body


def opened_case(tap, upstream, **overrides) -> str:
    body = send_notification(upstream, notification_body(**overrides))
    received = tap.wait_for(lambda e: e["event_type"] == "case.received"
                            and e["notification_id"] == body["notification_id"])
    return received[0]["case_id"]


def without_lateness(data: dict) -> dict:
    """An event's data less `recorded_late_hours`: the factories' times are days before the tests' clock."""
    return {k: v for k, v in data.items() if k != "recorded_late_hours"}


def count_rows(settings, table) -> int:
    engine = make_engine(settings.database_url)
    with engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(table)).scalar_one()
    engine.dispose()
    return n


def test_a_sufficient_notification_becomes_one_case_received_then_checked(engine, tap, upstream, settings):
    send_notification(upstream, notification_body())
    checked = tap.wait_for(lambda e: e["event_type"] == "case.checked")[0]
    received = tap.of_type("case.received")[0]
    assert (received["sequence"], received["state"]) == (1, "received")
    assert without_lateness(received["data"]) == {"needs_review": []}
    assert (checked["sequence"], checked["state"], checked["previous_state"]) == (2, "checked", "received")
    assert without_lateness(checked["data"]) == {"by": "engine"}
    assert checked["data"]["recorded_late_hours"] > 24  # happened at received_at, days before it was recorded
    assert checked["case_id"] == received["case_id"]
    assert checked["caused_by"] == "oakwood-2026-000457"
    assert tap.keys()[:2] == ["case.received.unassigned", "case.checked.unassigned"]
    assert count_rows(settings, cases) == 1
    assert count_rows(settings, case_history) == 2


def test_an_insufficient_notification_asks_for_what_is_missing(engine, tap, upstream):
    send_notification(upstream, notification_body(child_voice=OMIT, referrer={"contact_email": OMIT,
                                                                              "contact_phone": OMIT}))
    requested = tap.wait_for(lambda e: e["event_type"] == "case.information_requested")[0]
    assert requested["state"] == "awaiting_information"
    assert set(requested["data"]["missing"]) == {"child_voice", "referrer.contact_email", "referrer.contact_phone"}
    assert requested["data"]["by"] == "engine"
    tap.settle(0.3)
    assert tap.of_type("case.checked") == []


def test_a_notification_needing_judgement_stays_received_and_says_why(engine, tap, upstream):
    send_notification(upstream, notification_body(consent={"family_consents": False},
                                                   child={"date_of_birth": "2005-01-01"}))
    received = tap.wait_for(lambda e: e["event_type"] == "case.received")[0]
    assert set(received["data"]["needs_review"]) == {"child_aged_19_or_over", "family_consent_not_given"}
    tap.settle(0.3)
    assert tap.keys() == ["case.received.unassigned"]


def test_commands_walk_a_case_through_every_state_to_closed(engine, tap, upstream, settings):
    case_id = opened_case(tap, upstream)
    tap.wait_for(lambda e: e["event_type"] == "case.checked")
    steps = [
        ("request_information", {"missing": ["child_voice"]}, "case.information_requested", "checked"),
        ("provide_information", {"fields": {"child_voice": "Wants help."}}, "case.information_provided",
         "awaiting_information"),
        ("triage", {"district": "Tonbridge and Malling", "priority": True}, "case.triaged", "checked"),
        ("allocate", {}, "case.allocated", "triaged"),
        ("assess", {}, "case.assessed", "allocated"),
        ("step_down", {}, "case.stepped_down", "assessed"),
        ("close", {}, "case.closed", "stepped_down"),
    ]
    for name, fields, event_type, previous in steps:
        sent = send_command(upstream, name, case_id, **fields)
        event = tap.wait_for(lambda e, t=event_type: e["event_type"] == t)[0]
        assert event["previous_state"] == previous
        assert event["caused_by"] == sent["command_id"]
        assert event["actor"] == sent["actor"]
    flow = [e for _, e, _ in tap.events if e["event_type"].startswith("case.")]
    assert [e["sequence"] for e in flow] == list(range(1, 10))
    assert [e["state"] for e in flow] == ["received", "checked", "awaiting_information", "checked", "triaged",
                                          "allocated", "assessed", "stepped_down", "closed"]
    triaged = tap.of_type("case.triaged")[0]
    assert triaged["district"] == "Tonbridge and Malling" and triaged["priority"] is True
    assert "case.closed.tonbridge-and-malling" in tap.keys()
    allocated = tap.of_type("case.allocated")[0]
    assert allocated["data"]["child"]["given_name"] == "Sam"
    assert allocated["data"]["notifier"]["contact_email"] == "dsl@oakwood.example"
    assert [k for k in tap.keys() if k.startswith("school.")] == [
        "school.118923.allocated", "school.118923.stepped_down", "school.118923.closed"]
    assert count_rows(settings, case_history) == 9


def test_the_same_notification_or_command_sent_again_changes_nothing(engine, tap, upstream, settings):
    body = notification_body()
    send_notification(upstream, body)
    case_id = tap.wait_for(lambda e: e["event_type"] == "case.checked")[0]["case_id"]
    # The same content, written differently (key order, an equivalent time zone), is still the same notification.
    same = {k: body[k] for k in reversed(list(body))}
    same["received_at"] = "2026-11-20T09:14:00+00:00"
    send_notification(upstream, same, message_id="another-message-id")
    command = send_command(upstream, "triage", case_id)
    tap.wait_for(lambda e: e["event_type"] == "case.triaged")
    upstream.publish("earlyhelp.commands", "case.triage", encode(command), message_id=command["command_id"])
    send_command(upstream, "allocate", case_id)  # a later command proves the repeats were handled first
    tap.wait_for(lambda e: e["event_type"] == "case.allocated")
    tap.settle(0.3)
    assert len(tap.of_type("case.received")) == 1
    assert len(tap.of_type("case.triaged")) == 1
    assert tap.of_type("notification.rejected") == [] and tap.of_type("command.rejected") == []
    assert count_rows(settings, cases) == 1
    assert count_rows(settings, processed_messages) == 3


def test_the_same_id_with_different_content_is_refused_naming_the_first(engine, tap, upstream, dead_letters):
    case_id = opened_case(tap, upstream)
    send_notification(upstream, notification_body(reason="Different words."))
    rejected = tap.wait_for(lambda e: e["event_type"] == "notification.rejected")[0]
    assert "oakwood-2026-000457" in rejected["reason"] and case_id in rejected["reason"]
    assert rejected["notification_id"] == "oakwood-2026-000457"
    (body, props), = dead_letters.take(1)
    assert json.loads(body)["reason"] == "Different words."
    assert "already used" in props.headers["x-earlyhelp-error"]


def test_a_command_the_state_does_not_allow_gets_command_rejected_and_nothing_else(
        engine, tap, upstream, dead_letters, settings):
    case_id = opened_case(tap, upstream)
    tap.wait_for(lambda e: e["event_type"] == "case.checked")
    early = send_command(upstream, "allocate", case_id)
    rejected = tap.wait_for(lambda e: e["event_type"] == "command.rejected")[0]
    assert rejected["command_id"] == early["command_id"] and rejected["case_id"] == case_id
    assert rejected["state"] == "checked" and rejected["command"] == "allocate"
    assert "cannot take 'allocate'" in rejected["reason"]
    assert dead_letters.take(1, timeout=0.5) == []
    # Not recorded as processed: the same command is accepted once the state allows it.
    send_command(upstream, "triage", case_id)
    tap.wait_for(lambda e: e["event_type"] == "case.triaged")
    upstream.publish("earlyhelp.commands", "case.allocate", encode(early), message_id=early["command_id"])
    allocated = tap.wait_for(lambda e: e["event_type"] == "case.allocated")[0]
    assert allocated["caused_by"] == early["command_id"]


def test_school_events_only_where_the_family_agreed_to_share(engine, tap, upstream):
    case_id = opened_case(tap, upstream, consent={"share_with_school": False})
    tap.wait_for(lambda e: e["event_type"] == "case.checked" and e["case_id"] == case_id)
    for name in ("triage", "allocate"):
        send_command(upstream, name, case_id)
    tap.wait_for(lambda e: e["event_type"] == "case.allocated")
    tap.settle(0.3)
    assert not [k for k in tap.keys() if k.startswith("school.")]


PERSONAL = ("Sam", "Taylor", "2015-05-02", "ME14 1AA", "nature of the concern", "already tried",
            "hopes support", "wishes and feelings", "J. Patel", "01622 000000", "dsl@oakwood.example",
            "Weekly sessions", "Wants help")


def test_events_name_the_case_not_the_child_except_where_the_contract_allows(engine, tap, upstream):
    case_id = opened_case(tap, upstream)
    for name, fields in [("request_information", {"missing": ["child_voice"]}),
                         ("provide_information", {"fields": {"child_voice": "Wants help."}}),
                         ("triage", {}), ("allocate", {}), ("assess", {}), ("step_down", {}), ("close", {})]:
        send_command(upstream, name, case_id, **fields)
    send_notification(upstream, notification_body(reason="Other words about Sam Taylor."))  # a conflict
    send_command(upstream, "triage", case_id)  # wrong state
    tap.wait_for(lambda e: e["event_type"] == "case.closed")
    tap.wait_for(lambda e: e["event_type"] in ("notification.rejected", "command.rejected"), count=2)
    for key, event, _ in tap.events:
        allowed = dict(event)
        if event["event_type"] == "case.allocated":
            allowed["data"] = {k: v for k, v in event["data"].items() if k not in ("child", "notifier")}
        if event["event_type"].startswith("school."):
            allowed["data"] = {k: v for k, v in event["data"].items() if k != "child"}
        text = json.dumps(allowed)
        leaked = [p for p in PERSONAL if p in text]
        assert not leaked, f"{key} carries {leaked}"
    provided = tap.of_type("case.information_provided")[0]
    assert without_lateness(provided["data"]) == {"fields": ["child_voice"]}
