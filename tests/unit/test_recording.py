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


def test_ids_are_the_uuid5_text_they_always_were():
    """Case and event ids are stored and published: name_uuid must give uuid.uuid5's text exactly, for any name."""
    import random
    import uuid

    from earlyhelp.consumers.recording import CASE_NAMESPACE, EVENT_NAMESPACE, event_id_for, name_uuid

    rng = random.Random(5)
    names = ["", "school/oakwood-1", "é/ü/漢字/🙂", "\x00\x7f"] + [
        "".join(chr(rng.randrange(32, 0x2FFF)) for _ in range(rng.randrange(0, 80))) for _ in range(500)]
    for name in names:
        for namespace in (CASE_NAMESPACE, EVENT_NAMESPACE, uuid.NAMESPACE_DNS):
            assert name_uuid(namespace, name) == str(uuid.uuid5(namespace, name))
    # Ids already stored stay findable: a case id and an event id as uuid.uuid5 made them before.
    assert case_id_for("school", "oakwood-1") == "5102a86d-796b-52aa-bf9f-84b43f32a174"
    assert event_id_for("c-1", 3, "case.checked") == "6b527a5c-5530-5194-b1fc-dfccf75b07ad"
