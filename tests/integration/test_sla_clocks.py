"""SLA clocks on the real broker and both databases: breaches are right, once, and not for waiting time."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from earlyhelp.persistence.database import make_engine
from earlyhelp.persistence.tables import sla_clocks
from tests.clock import ago, now
from tests.factories import OMIT, command_body, encode, notification_body

# Every time here is relative to the test's today, so tests/test_any_date.py runs these under chosen dates.
pytestmark = [pytest.mark.integration, pytest.mark.today]


def publish_notification(upstream, **overrides) -> dict:
    body = notification_body(**overrides)
    assert upstream.publish("earlyhelp.notifications", "notification.school", encode(body)).ok
    return body


def publish_command(upstream, name, case_id, **fields) -> dict:
    body = command_body(name, case_id, **fields)
    assert upstream.publish("earlyhelp.commands", f"case.{name}", encode(body)).ok
    return body


def test_a_backdated_priority_notification_breaches_triage_once(engine, tap, upstream):
    publish_notification(upstream, notification_id="sla-priority-1", priority=True, received_at=ago(days=3))
    breach = tap.wait_for(lambda e: e["event_type"] == "sla.breached.triage", timeout=15)[0]
    assert breach["notification_id"] == "sla-priority-1" and breach["priority"] is True
    assert breach["data"]["stage"] == "triage"
    assert breach["data"]["allowance"] == {"amount": 2, "unit": "calendar_days"}
    assert 2.9 < breach["data"]["elapsed"]["amount"] < 3.1
    assert "sla.breached.triage.unassigned" in tap.keys()
    tap.settle(3.0)  # three more scans
    assert len(tap.of_type("sla.breached.triage")) == 1
    assert tap.of_type("sla.warning.triage") == [], "no warning after the deadline has gone"


def test_a_standard_notification_received_three_days_ago_does_not_breach(engine, tap, upstream, settings):
    publish_notification(upstream, notification_id="sla-standard-1", received_at=ago(days=3))
    tap.wait_for(lambda e: e["event_type"] == "case.checked")
    tap.settle(2.5)
    assert not [k for k in tap.keys() if k.startswith("sla.")]
    engine_db = make_engine(settings.database_url)
    with engine_db.connect() as conn:
        clock = conn.execute(select(sla_clocks)).one()
    engine_db.dispose()
    assert clock.stage == "triage" and clock.allowance_amount == 14 and clock.breached_at is None
    assert abs((clock.due_at - (now() + timedelta(days=11))).total_seconds()) < 120


def test_a_triage_decision_backdated_past_four_working_days_breaches_allocation(engine, tap, upstream):
    # Fourteen days hold at least five working days whatever the date: the longest run of days off in
    # England and Wales (Christmas with substitute days, beside two weekends) leaves six.
    publish_notification(upstream, notification_id="sla-alloc-1", received_at=ago(days=15))
    case_id = tap.wait_for(lambda e: e["event_type"] == "case.checked")[0]["case_id"]
    publish_command(upstream, "triage", case_id, issued_at=ago(days=14), district="Dover")
    breach = tap.wait_for(lambda e: e["event_type"] == "sla.breached.allocation", timeout=15)[0]
    assert breach["district"] == "Dover" and breach["state"] == "triaged"
    assert breach["data"]["allowance"] == {"amount": 4, "unit": "working_days"}
    assert "sla.breached.allocation.dover" in tap.keys()
    assert tap.of_type("sla.breached.triage") == [], "triaged within 14 days"


def test_time_awaiting_information_does_not_count_towards_a_breach(engine, tap, upstream):
    # Both priority (2 days) and received 3 days ago; one waited for the child's voice until an hour ago.
    publish_notification(upstream, notification_id="sla-waited", priority=True, received_at=ago(days=3),
                         child_voice=OMIT)
    publish_notification(upstream, notification_id="sla-control", priority=True, received_at=ago(days=3))
    waited = tap.wait_for(lambda e: e["event_type"] == "case.information_requested")[0]["case_id"]
    publish_command(upstream, "provide_information", waited, issued_at=ago(hours=1),
                    fields={"child_voice": "Wants help with school mornings."})
    tap.wait_for(lambda e: e["event_type"] == "case.checked" and e["case_id"] == waited)
    tap.wait_for(lambda e: e["event_type"] == "sla.breached.triage" and e["notification_id"] == "sla-control")
    tap.settle(2.5)
    assert [e["notification_id"] for e in tap.of_type("sla.breached.triage")] == ["sla-control"]


def test_a_warning_comes_once_when_three_quarters_of_the_allowance_has_gone(engine, tap, upstream):
    publish_notification(upstream, notification_id="sla-warn-1", priority=True, received_at=ago(hours=40))
    warning = tap.wait_for(lambda e: e["event_type"] == "sla.warning.triage", timeout=15)[0]
    assert warning["data"]["stage"] == "triage"
    tap.settle(2.5)
    assert len(tap.of_type("sla.warning.triage")) == 1 and tap.of_type("sla.breached.triage") == []
