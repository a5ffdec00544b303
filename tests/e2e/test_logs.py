"""The engine's logs: one JSON line per message handled, and never a child's or family's details."""
from __future__ import annotations

import json

import pytest

from tests.factories import command_body, encode, notification_body

pytestmark = [pytest.mark.integration]

PERSONAL = ("Sam", "Taylor", "2015-05-02", "ME14 1AA", "nature of the concern", "already tried",
            "hopes support", "wishes and feelings", "J. Patel", "01622 000000", "dsl@oakwood.example",
            "9434765919", "Weekly sessions", "Lives with")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_logs_hold_ids_and_outcomes_but_no_personal_details(serve, upstream, tap):
    engine = serve()
    good = notification_body(child={"nhs_number": "9434765919"})
    assert upstream.publish("earlyhelp.notifications", "notification.school", encode(good), message_id="m-1").ok
    case_id = tap.wait_for(lambda e: e["event_type"] == "case.checked")[0]["case_id"]
    # Refusals whose reasons could echo values: a bad date, a bad NHS number, a conflict, provided details.
    bad = notification_body(notification_id="logs-2", child={"date_of_birth": "Sam Taylor ME14 1AA"})
    nhs = notification_body(notification_id="logs-3", child={"nhs_number": "9434765918"})
    conflict = notification_body(reason="Lives with Sam Taylor at ME14 1AA")
    for body in (bad, nhs, conflict):
        assert upstream.publish("earlyhelp.notifications", "notification.school", encode(body)).ok
    for name, fields in (("request_information", {"missing": ["child_voice"]}),
                         ("provide_information", {"fields": {"child_voice": "Lives with Sam Taylor."}}),
                         ("triage", {}), ("allocate", {}), ("assess", {})):
        assert upstream.publish("earlyhelp.commands", f"case.{name}",
                                encode(command_body(name, case_id, **fields))).ok
    tap.wait_for(lambda e: e["event_type"] == "notification.rejected", count=3)
    tap.wait_for(lambda e: e["event_type"] == "case.assessed")
    assert engine.terminate() == 0
    lines = [json.loads(line) for line in engine.log_path.read_text().splitlines() if line.startswith("{")]
    handled = [line for line in lines if line.get("event") == "message handled"]
    assert len(handled) >= 9
    assert all({"case_id", "message_id", "outcome", "duration_ms"} <= set(line) for line in handled)
    assert any(line["message_id"] == "m-1" and line["outcome"] == "opened" for line in handled)
    text = engine.log_path.read_text()
    leaked = [p for p in PERSONAL if p in text]
    assert not leaked, f"the logs hold {leaked}"
