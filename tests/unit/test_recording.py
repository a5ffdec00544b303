"""What recording adds to a change: recorded_late_hours past 24 hours; case ids and processed keys per namespace."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from earlyhelp.consumers.recording import case_id_for, command_key, marked_if_late, notification_key
from earlyhelp.workflows.case_flow import Change

AT = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)


def change(**data) -> Change:
    return Change("case.allocated", 5, "allocated", "triaged", AT, "cmd-1", None, dict(data))


def test_a_change_recorded_within_24_hours_is_not_marked():
    assert marked_if_late(change(team="t"), AT + timedelta(hours=24)).data == {"team": "t"}


def test_a_change_recorded_more_than_24_hours_after_it_happened_carries_the_hours():
    original = change(team="t")
    late = marked_if_late(original, AT + timedelta(days=3, minutes=30))
    assert late.data == {"team": "t", "recorded_late_hours": 72.5}
    assert original.data == {"team": "t"}


def test_case_ids_and_processed_keys_are_per_source_and_per_sender():
    assert case_id_for("school", "oakwood-1") != case_id_for("health", "oakwood-1")
    assert case_id_for("school", "oakwood-1") == case_id_for("school", "oakwood-1")
    assert notification_key("health", "oakwood-1") == "notification:health:oakwood-1"
    assert command_key("c-1", None) == "command:c-1"
    assert command_key("c-1", "triage-team") == "command:triage-team:c-1"
    # A user name holding the separator cannot reach into another sender's namespace.
    assert command_key("b:c", "a") != command_key("c", "a:b")
