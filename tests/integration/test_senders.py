"""Every sender is a stranger (issue 11): the hostile senders' cases, each against the real broker and database.

The engine runs with a senders file naming this run's broker users (tests/integration/conftest.py); each
sender publishes as itself, so RabbitMQ vouches for the `user_id` the engine judges.
"""
from __future__ import annotations

import itertools
import json

import pytest
from sqlalchemy import select

from earlyhelp.persistence.database import make_engine
from earlyhelp.persistence.tables import case_history, cases, processed_messages
from tests.factories import OMIT, command_body, encode, notification_body

pytestmark = pytest.mark.integration
DOVER_MANAGER = {"id": "dover.manager", "role": "manager"}
_numbers = itertools.count(1)


def notify(client, **overrides) -> dict:
    body = notification_body(**overrides)
    assert client.publish("earlyhelp.notifications", f"notification.{body['referrer']['source']}", encode(body),
                          message_id=body["notification_id"]).ok
    return body


def send(client, name: str, case_id: str, **fields) -> dict:
    body = command_body(name, case_id, **fields)
    assert client.publish("earlyhelp.commands", f"case.{name}", encode(body), message_id=body["command_id"]).ok
    return body


def case_in(tap, senders, district: str | None, **overrides) -> str:
    """A case opened by the school portal and, with `district`, triaged there by the triage team."""
    overrides.setdefault("notification_id", f"oakwood-senders-{next(_numbers)}")
    body = notify(senders["school-portal"], **overrides)
    case_id = tap.wait_for(lambda e: e["event_type"] == "case.checked"
                           and e["notification_id"] == body["notification_id"])[0]["case_id"]
    if district:
        send(senders["triage-team"], "triage", case_id, district=district, actor={"id": "t-1", "role": "triage"})
        tap.wait_for(lambda e: e["event_type"] == "case.triaged" and e["case_id"] == case_id)
    return case_id


def rejected(tap, command_id: str) -> dict:
    return tap.wait_for(lambda e: e["event_type"] == "command.rejected" and e.get("command_id") == command_id)[0]


def read(settings, query) -> list:
    engine = make_engine(settings.database_url)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    engine.dispose()
    return rows


def test_unit_maidstone_claiming_a_dover_manager_on_a_dover_case_is_not_permitted(
        guarded_engine, tap, senders, dead_letters, settings):
    case_id = case_in(tap, senders, "Dover")
    attempts = [send(senders["unit-maidstone"], "request_information", case_id, actor=DOVER_MANAGER,
                     missing=["child.school_urn", "referrer.contact_email"]),
                send(senders["unit-maidstone"], "allocate", case_id, actor=DOVER_MANAGER, team="Evil", worker_id="x")]
    for attempt in attempts:
        event = rejected(tap, attempt["command_id"])
        assert event["code"] == "not_permitted"
        assert "may not act on cases in 'dover'" in event["reason"]
    copies = dead_letters.take(2)
    assert {json.loads(body)["command_id"] for body, _ in copies} == {a["command_id"] for a in attempts}
    tap.settle(0.3)
    assert not [k for k in tap.keys() if k.startswith(("case.allocated", "case.information_requested", "school."))]
    assert read(settings, select(cases.c.state, cases.c.team).where(cases.c.case_id == case_id)) == [("triaged", None)]
    # A role its entry does not name, and a command it may not send, on its own district's case.
    own = case_in(tap, senders, "Maidstone")
    as_director = send(senders["unit-maidstone"], "allocate", own, actor={"id": "m-1", "role": "director"})
    assert rejected(tap, as_director["command_id"])["errors"] == ["actor.role: not permitted for this sender"]
    send(senders["unit-maidstone"], "close", own, actor={"id": "m-1", "role": "unit_worker"})  # its own: allowed
    tap.wait_for(lambda e: e["event_type"] == "case.closed" and e["case_id"] == own)


def test_triage_to_a_district_and_the_senders_user_id_kept_beside_the_claimed_actor(
        guarded_engine, tap, senders, settings, broker_users):
    case_id = case_in(tap, senders, "Maidstone")
    send(senders["unit-maidstone"], "allocate", case_id, actor={"id": "w-7", "role": "unit_worker"})
    tap.wait_for(lambda e: e["event_type"] == "case.allocated" and e["case_id"] == case_id)
    rows = read(settings, select(case_history.c.event_type, case_history.c.actor_id, case_history.c.sender_user_id)
                .where(case_history.c.case_id == case_id).order_by(case_history.c.sequence))
    assert rows == [("case.received", None, broker_users.user("school-portal")),
                    ("case.checked", None, broker_users.user("school-portal")),
                    ("case.triaged", "t-1", broker_users.user("triage-team")),
                    ("case.allocated", "w-7", broker_users.user("unit-maidstone"))]


def test_a_message_without_user_id_or_from_an_unknown_user_is_refused_as_an_unknown_sender(
        guarded_engine, tap, upstream, senders, dead_letters, settings):
    body = notification_body(notification_id="anon-1")
    assert upstream.publish("earlyhelp.notifications", "notification.school", encode(body), user_id=None).ok
    event = tap.wait_for(lambda e: e["event_type"] == "notification.rejected")[0]
    assert (event["code"], event["notification_id"], event["errors"]) == ("unknown_sender", "anon-1",
                                                                          ["user_id: missing"])
    # guest is a real broker user (the broker vouches for it), but the file does not name it.
    assert upstream.publish("earlyhelp.notifications", "notification.school",
                            encode(notification_body(notification_id="guest-1"))).ok
    event = tap.wait_for(lambda e: e["event_type"] == "notification.rejected" and e["notification_id"] == "guest-1")[0]
    assert event["code"] == "unknown_sender"
    assert len(dead_letters.take(2)) == 2
    # Health may not send as a school, even with a matching routing key and body.
    notify(senders["health-referrals"], notification_id="posing-1")
    event = tap.wait_for(lambda e: e["event_type"] == "notification.rejected" and e["notification_id"] == "posing-1")[0]
    assert event["code"] == "not_permitted"
    tap.settle(0.3)
    assert tap.of_type("case.received") == []
    assert read(settings, select(processed_messages.c.message_key)) == []  # refused ids are not recorded


def test_health_using_the_schools_id_first_makes_two_cases_not_a_conflict(guarded_engine, tap, senders, settings):
    ident = "oakwood-2026-000999"
    # Another child (by name), or the school's notification would join the health case as a child already known.
    notify(senders["health-referrals"], notification_id=ident, referrer={"source": "health", "school_urn": OMIT},
           child={"given_name": "Alex", "family_name": "Jones"})
    notify(senders["school-portal"], notification_id=ident)
    received = tap.wait_for(lambda e: e["event_type"] == "case.received", count=2)
    assert {e["source"] for e in received} == {"health", "school"}
    assert len({e["case_id"] for e in received}) == 2
    tap.settle(0.3)
    assert tap.of_type("notification.rejected") == []
    # And the school's repeat is still a repeat.
    notify(senders["school-portal"], notification_id=ident)
    tap.settle(0.5)
    assert len(tap.of_type("case.received")) == 2
    assert len(read(settings, select(cases.c.case_id))) == 2


def test_an_allocation_issued_in_2001_is_out_of_order_and_may_be_sent_again_corrected(
        guarded_engine, tap, senders, dead_letters):
    case_id = case_in(tap, senders, "Maidstone")
    early = send(senders["unit-maidstone"], "allocate", case_id, actor={"id": "w-7", "role": "unit_worker"},
                 issued_at="2001-01-01T00:00:00Z")
    event = rejected(tap, early["command_id"])
    assert (event["code"], event["command"], event["state"]) == ("time_out_of_order", "allocate", "triaged")
    assert dead_letters.take(1, timeout=0.5) == []
    corrected = dict(early, issued_at="2026-11-21T10:00:00Z")  # the same id: it was not recorded
    assert senders["unit-maidstone"].publish("earlyhelp.commands", "case.allocate", encode(corrected)).ok
    allocated = tap.wait_for(lambda e: e["event_type"] == "case.allocated")[0]
    assert allocated["caused_by"] == early["command_id"]


def test_provide_information_of_a_path_not_requested_is_refused(guarded_engine, tap, senders, dead_letters, settings):
    case_id = case_in(tap, senders, None)
    team = senders["triage-team"]
    actor = {"id": "t-1", "role": "triage"}
    send(team, "request_information", case_id, actor=actor, missing=["child_voice"])
    tap.wait_for(lambda e: e["event_type"] == "case.information_requested" and e["case_id"] == case_id)
    sneaky = send(team, "provide_information", case_id, actor=actor,
                  fields={"child_voice": "Fine.", "referrer.contact_email": "attacker@evil.example"})
    event = rejected(tap, sneaky["command_id"])
    assert event["code"] == "invalid"
    assert event["errors"] == ["fields.referrer.contact_email: not requested"]
    assert len(dead_letters.take(1)) == 1
    assert read(settings, select(cases.c.state).where(cases.c.case_id == case_id)) == [("awaiting_information",)]
    send(team, "provide_information", case_id, actor=actor, fields={"child_voice": "Fine."})
    tap.wait_for(lambda e: e["event_type"] == "case.information_provided" and e["case_id"] == case_id)


def test_consent_changes_only_through_record_consent_which_stops_the_schools_events(
        guarded_engine, tap, senders, dead_letters):
    case_id = case_in(tap, senders, "Maidstone")
    team, actor = senders["triage-team"], {"id": "t-1", "role": "triage"}
    asked = send(team, "request_information", case_id, actor=actor, missing=["consent.share_with_school"])
    event = rejected(tap, asked["command_id"])
    assert event["code"] == "invalid"
    assert event["errors"] == ["missing: Consent changes only through the record_consent command"]
    assert len(dead_letters.take(1)) == 1
    send(team, "record_consent", case_id, actor=actor, share_with_school=False)
    changed = tap.wait_for(lambda e: e["event_type"] == "case.consent_changed")[0]
    late = changed["data"].pop("recorded_late_hours")  # issued on 21 November, recorded days later
    assert late > 24
    assert changed["data"] == {"share_with_school": False, "family_consent": None}
    assert changed["state"] == changed["previous_state"] == "triaged"
    assert "case.consent_changed.maidstone" in tap.keys()
    unit = senders["unit-maidstone"]
    send(unit, "allocate", case_id, actor={"id": "w-7", "role": "unit_worker"})
    send(unit, "close", case_id, actor={"id": "w-7", "role": "unit_worker"})
    tap.wait_for(lambda e: e["event_type"] == "case.closed" and e["case_id"] == case_id)
    tap.settle(0.3)
    assert not [k for k in tap.keys() if k.startswith("school.")]
