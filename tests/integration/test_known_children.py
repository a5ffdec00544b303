"""A child already known, linked; referrers told (issue 14 items 1 and 2), on the real broker and both databases:
a second notification of an open case's child joins it (case.notification_linked, referrer.<its source>.linked,
its details in linked_notifications, no second case, the clocks as they were); a child whose case closed
within the year is a re-referral (case.received's previous_case_ids); the referrer's own events on
referrer.<source>.<event>, in the outbox with the case's; `earlyhelp status`; one identifier look-up per
batch; the report's counts."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from click.testing import CliRunner
from sqlalchemy import event, func, select

from earlyhelp.cli.main import cli
from earlyhelp.consumers.batch import BatchProcessor
from earlyhelp.consumers.delivery import Delivery
from earlyhelp.consumers.recording import case_id_for
from earlyhelp.persistence.database import make_engine
from earlyhelp.persistence.tables import cases, linked_notifications, sla_clocks
from earlyhelp.schemas import DEFAULT_DISTRICTS, NOTIFICATIONS_EXCHANGE
from tests.conftest import EventTap
from tests.factories import OMIT, command_body, encode, notification_body

pytestmark = pytest.mark.integration

NHS, UPN = "9434765919", "B801200005001"


def school_referral(notification_id: str, **child) -> dict:
    return notification_body(notification_id=notification_id, child={"nhs_number": NHS, **child})


def gp_referral(notification_id: str, **child) -> dict:
    """A GP's notification; by default for Alex Jones, another child than the school's Sam Taylor."""
    return notification_body(notification_id=notification_id,
                             referrer={"source": "health", "organisation": "Maidstone GP", "school_urn": OMIT},
                             child={"given_name": "Alex", "family_name": "Jones", "date_of_birth": "2012-03-04",
                                    "school_urn": OMIT, **child})


def publish(upstream, body: dict) -> dict:
    sent = upstream.publish(NOTIFICATIONS_EXCHANGE, f"notification.{body['referrer']['source']}", encode(body),
                            message_id=body["notification_id"])
    assert sent.ok, sent.explanation
    return body


def command(upstream, name: str, case_id: str, issued_at: str, **fields) -> None:
    body = command_body(name, case_id, issued_at=issued_at, **fields)
    assert upstream.publish("earlyhelp.commands", f"case.{name}", encode(body)).ok


def run(settings, *args):
    env = {"EARLYHELP_BROKER_URL": settings.broker_url, "EARLYHELP_DATABASE_URL": settings.database_url}
    return CliRunner().invoke(cli, list(args), env=env)


def rows(settings, query):
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            return conn.execute(query).all()
    finally:
        engine.dispose()


def test_a_second_notification_of_an_open_cases_child_joins_it_and_each_referrer_hears_its_own(
        settings, engine, tap, referrer_tap, upstream):
    publish(upstream, school_referral("oak-1"))
    case_id = case_id_for("school", "oak-1")
    tap.wait_for(lambda e: e["event_type"] == "case.checked")
    clocks_before = rows(settings, select(sla_clocks.c.stage, sla_clocks.c.due_at, sla_clocks.c.warning_at)
                         .where(sla_clocks.c.case_id == case_id).order_by(sla_clocks.c.stage))

    publish(upstream, gp_referral("gp-1", nhs_number=NHS))
    [linked] = tap.wait_for(lambda e: e["event_type"] == "case.notification_linked")
    assert linked["case_id"] == case_id and linked["state"] == "checked"
    assert {k: v for k, v in linked["data"].items() if k != "recorded_late_hours"} == {
        "linked_notification_id": "gp-1", "source": "health", "kind": "request_for_support",
        "matched_on": ["nhs_number"]}
    assert [k for k, _, _ in tap.events if k.startswith("case.notification_linked")] == [
        "case.notification_linked.unassigned"]
    told = referrer_tap.wait_for(lambda e: True, count=2)
    assert sorted(k for k, _, _ in referrer_tap.events) == ["referrer.health.linked", "referrer.school.received"]
    gp = [e for e in told if e["source"] == "health"][0]
    assert (gp["notification_id"], gp["case_id"], gp["data"]) == ("gp-1", case_id, {})

    assert rows(settings, select(func.count()).select_from(cases))[0][0] == 1  # no second case
    [kept] = rows(settings, select(linked_notifications.c.case_id, linked_notifications.c.source,
                                   linked_notifications.c.matched_on, linked_notifications.c.notification))
    assert (kept.case_id, kept.source, kept.matched_on) == (case_id, "health", ["nhs_number"])
    assert kept.notification["child"]["given_name"] == "Alex"  # the GP's details, kept with the case
    assert rows(settings, select(sla_clocks.c.stage, sla_clocks.c.due_at, sla_clocks.c.warning_at)
                .where(sla_clocks.c.case_id == case_id).order_by(sla_clocks.c.stage)) == clocks_before

    publish(upstream, gp_referral("gp-2"))  # Alex Jones, no identifier in common: a case of its own
    tap.wait_for(lambda e: e["event_type"] == "case.received" and e["notification_id"] == "gp-2")
    assert rows(settings, select(func.count()).select_from(cases))[0][0] == 2


@pytest.fixture
def everything(clean_broker):
    """Case and referrer events in one queue, in the order the relay sent them."""
    tap = EventTap(clean_broker)
    yield tap
    tap.close()


def test_a_child_whose_case_closed_this_year_is_a_re_referral_and_status_tells_each_referrer_its_story(
        settings, engine, tap, referrer_tap, everything, upstream):
    publish(upstream, school_referral("oak-2", upn=UPN))
    case_id = case_id_for("school", "oak-2")
    tap.wait_for(lambda e: e["event_type"] == "case.checked")
    publish(upstream, gp_referral("gp-3", upn=UPN))
    tap.wait_for(lambda e: e["event_type"] == "case.notification_linked")
    command(upstream, "triage", case_id, "2026-11-23T10:00:00Z")
    command(upstream, "allocate", case_id, "2026-11-23T11:00:00Z")
    command(upstream, "close", case_id, "2026-11-24T09:00:00Z")
    tap.wait_for(lambda e: e["event_type"] == "case.closed")
    publish(upstream, gp_referral("gp-4", upn=UPN))  # after the close: a new case naming the closed one
    [received] = tap.wait_for(lambda e: e["event_type"] == "case.received" and e["notification_id"] == "gp-4")
    assert received["data"]["previous_case_ids"] == [case_id]
    referrer_tap.wait_for(lambda e: e["notification_id"] == "gp-4")

    school = [e for _, e, _ in referrer_tap.events if e["source"] == "school"]
    assert [(e["event_type"], e["data"]) for e in school] == [
        ("referrer.received", {}), ("referrer.decided", {"service": "early_help_unit", "district": "Maidstone"}),
        ("referrer.allocated", {"team": "Maidstone Early Help Unit 2"}),
        ("referrer.closed", {"reason": "needs_met", "stepped_down": False})]
    assert [k for k, e, _ in referrer_tap.events if e["notification_id"] == "gp-3"] == ["referrer.health.linked"]
    bodies = json.dumps([e for _, e, _ in referrer_tap.events])
    for personal in ("Sam", "Taylor", "Alex", "Jones", UPN, "2015-05-02", "ME14", "Patel", "worker-0042"):
        assert personal not in bodies
    # The referrer's events were stored beside the case's own, in the same transactions: the relay publishes
    # the outbox in id order, so each follows its case event.
    everything.wait_for(lambda e: e["event_type"] == "referrer.closed")
    keys = everything.keys()
    assert keys.index("referrer.school.decided") == keys.index("case.triaged.maidstone") + 1

    own = run(settings, "status", "oak-2", "--source", "school")
    assert own.exit_code == 0, own.output
    lines = own.output.splitlines()
    assert lines[0] == f"notification oak-2 from school: case {case_id}"
    assert [line.split("UTC  ")[1] for line in lines[1:]] == [
        "received: a case was opened", "decided at triage: early help unit, Maidstone",
        "allocated to Maidstone Early Help Unit 2", "closed: needs met"]
    as_json = json.loads(run(settings, "status", "oak-2", "--source", "school", "--json").stdout)
    assert [s["event"] for s in as_json["told"]] == ["received", "decided", "allocated", "closed"]
    assert [s["data"] for s in as_json["told"]] == [e["data"] for e in school]  # the same story as the events
    linked = run(settings, "status", "gp-3", "--source", "health").output
    assert f"linked to case {case_id}" in linked and "linked to the case already open" in linked
    assert "closed" not in linked
    for unknown in (("oak-2", "health"), ("nobody", "school")):
        said = run(settings, "status", unknown[0], "--source", unknown[1])
        assert said.exit_code == 2 and len(said.output.strip().splitlines()) == 1
        assert "is known to the engine" in said.output


def test_a_batch_looks_up_its_childrens_hashes_once_and_links_two_notifications_of_one_new_child(settings):
    from earlyhelp.persistence.database import migrate

    migrate(settings.database_url)
    db = make_engine(settings.database_url)
    statements: list[str] = []
    event.listen(db, "before_cursor_execute", lambda conn, cursor, sql, *a: statements.append(sql))
    processor = BatchProcessor(db, lambda: datetime(2026, 11, 25, 12, tzinfo=timezone.utc), DEFAULT_DISTRICTS)
    bodies = [gp_referral(f"gp-{i:02d}", given_name="Robin", family_name="Ash" + "abcdefghijklmnopqrst"[i])
              for i in range(20)]
    # gp-01's child again, by name and date of birth
    bodies[7] = school_referral("oak-7", given_name="Robin", family_name="Ashb", date_of_birth="2012-03-04")
    try:
        handled = processor.process([Delivery(encode(b), NOTIFICATIONS_EXCHANGE, f"notification.{b['referrer']['source']}")
                                     for b in bodies]).handled
        looked_up = [s for s in statements if "case_identifiers" in s and s.lstrip().upper().startswith("SELECT")]
        assert len(looked_up) == 1  # one query for the batch, not one per message
        assert [h.outcome for h in handled].count("linked") == 1 and handled[7].outcome == "linked"
        assert handled[7].case_id == case_id_for("health", "gp-01")
        statements.clear()
        again = processor.process([Delivery(encode(gp_referral("gp-99", given_name="Robin", family_name="Ashc")),
                                            NOTIFICATIONS_EXCHANGE, "notification.health")])
        assert again.handled[0].outcome == "linked" and again.handled[0].case_id == case_id_for("health", "gp-02")
    finally:
        db.dispose()


def test_the_report_counts_linked_notifications_and_re_referrals_within_twelve_months(
        settings, engine, tap, upstream):
    publish(upstream, school_referral("oak-3"))
    case_id = case_id_for("school", "oak-3")
    tap.wait_for(lambda e: e["event_type"] == "case.checked")
    publish(upstream, gp_referral("gp-5", nhs_number=NHS))
    tap.wait_for(lambda e: e["event_type"] == "case.notification_linked")
    command(upstream, "close", case_id, "2026-11-23T09:00:00Z")
    tap.wait_for(lambda e: e["event_type"] == "case.closed")
    publish(upstream, gp_referral("gp-6", nhs_number=NHS))
    tap.wait_for(lambda e: e["event_type"] == "case.received" and e["notification_id"] == "gp-6")

    report = json.loads(run(settings, "report", "--from", "2026-11-01", "--to", "2026-11-25", "--format", "json").stdout)
    known = report["known_children"]
    assert known["linked_notifications"]["total"] == 1
    assert known["linked_notifications"]["by_matched_on"] == {"nhs_number": 1}
    assert known["re_referrals_within_12_months"]["count"] == 1
    assert known["re_referrals_within_12_months"]["of_notifications"] == 2
    text = run(settings, "report", "--from", "2026-11-01", "--to", "2026-11-25").output
    assert "Notifications linked to a case already open: 1" in text and "Re-referrals within 12 months: 1" in text
    csv_text = run(settings, "report", "--from", "2026-11-01", "--to", "2026-11-25", "--format", "csv").output
    assert "known_children,linked_notifications,count,1" in csv_text
    assert "known_children,re_referrals_within_12_months,count,1" in csv_text
    html = run(settings, "report", "--from", "2026-11-01", "--to", "2026-11-25", "--format", "html").output
    assert "linked to a case already open" in html and "re-referrals within 12 months" in html


@pytest.fixture
def one_key(monkeypatch):
    """The engine in this process and the tools read the same pseudonym key (no key file in the home folder)."""
    key = "3c" * 32
    monkeypatch.setenv("EARLYHELP_PSEUDONYM_KEY", key)
    monkeypatch.setenv("EARLYHELP_OPERATOR", "dpo-test")
    return key


def test_a_linked_notification_is_in_subject_access_and_is_erased_with_the_case(one_key, settings, engine, tap, upstream):
    publish(upstream, school_referral("oak-9"))
    case_id = case_id_for("school", "oak-9")
    tap.wait_for(lambda e: e["event_type"] == "case.checked")
    publish(upstream, gp_referral("gp-9", nhs_number=NHS, given_name="Alexandra"))
    tap.wait_for(lambda e: e["event_type"] == "case.notification_linked")
    env = {"EARLYHELP_PSEUDONYM_KEY": one_key, "EARLYHELP_OPERATOR": "dpo-test", "EARLYHELP_MANAGEMENT_URL": ""}

    def tool(*args):
        return CliRunner().invoke(cli, list(args), env={"EARLYHELP_BROKER_URL": settings.broker_url,
                                                        "EARLYHELP_DATABASE_URL": settings.database_url, **env})

    [found] = json.loads(tool("subject-access", "--nhs-number", NHS, "--reason", "SAR-1").stdout)["cases"]
    [linked] = found["linked_notifications"]
    assert (found["case_id"], linked["notification_id"], linked["source"]) == (case_id, "gp-9", "health")
    assert linked["notification"]["child"]["given_name"] == "Alexandra" and linked["matched_on"] == ["nhs_number"]

    command(upstream, "close", case_id, "2026-11-23T09:00:00Z")
    tap.wait_for(lambda e: e["event_type"] == "case.closed")
    period = ("report", "--from", "2026-11-01", "--to", "2026-11-25", "--format", "json")
    before = json.loads(tool(*period).stdout)["known_children"]
    erased = tool("erase", case_id, "--reason", "ER-1")
    assert erased.exit_code == 0, erased.output
    assert rows(settings, select(func.count()).select_from(linked_notifications))[0][0] == 0
    assert json.loads(tool(*period).stdout)["known_children"] == before == {
        "linked_notifications": {"total": 1, "by_source": {"health": 1}, "by_matched_on": {"nhs_number": 1}},
        "re_referrals_within_12_months": {"count": 0, "of_notifications": 1, "percent": 0.0}}
    assert json.loads(tool("subject-access", "--nhs-number", NHS, "--reason", "SAR-2").stdout)["cases"] == []
    told = tool("status", "gp-9", "--source", "health")  # the referrer's story holds no personal data: it stays
    assert told.exit_code == 0 and "linked to the case already open" in told.output
