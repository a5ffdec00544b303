"""Each kind of bad input is refused with a reason and a dead-letter copy, and the next good message goes through."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tests.clock import ANCHOR
from tests.factories import command_body, encode, notification_body

pytestmark = pytest.mark.integration

# These tests run at the anchor (tests/clock.py), ticking: two hours after it stays ahead of their clock.
FUTURE = (ANCHOR + timedelta(hours=2)).isoformat()

BAD_NOTIFICATIONS = {
    "not JSON": b"{this is not json",
    "not an object": b"[1, 2, 3]",
    "a required field missing": encode({k: v for k, v in notification_body().items() if k != "reason"}),
    "a future timestamp": encode(notification_body(received_at=FUTURE)),
    "an unknown version": encode(notification_body(schema_version=2)),
    "a body over 1 MiB": encode(notification_body(reason="x" * (1024 * 1024 + 10))),
    "an unknown kind": encode(notification_body(kind="complaint")),
    "a routing key that disagrees with the body": None,  # sent below with the wrong key
}


@pytest.mark.parametrize("problem", list(BAD_NOTIFICATIONS))
def test_a_bad_notification_is_refused_dead_lettered_and_the_next_one_goes_through(
        problem, engine, tap, upstream, dead_letters):
    body = BAD_NOTIFICATIONS[problem]
    key = "notification.school"
    if body is None:
        body, key = encode(notification_body()), "notification.health"
    assert upstream.publish("earlyhelp.notifications", key, body, message_id="bad-1").ok
    good = notification_body(notification_id="oakwood-2026-000999")
    assert upstream.publish("earlyhelp.notifications", "notification.school", encode(good)).ok

    rejected = tap.wait_for(lambda e: e["event_type"] == "notification.rejected")[0]
    assert rejected["reason"] and rejected["errors"], rejected
    assert rejected["message_id"] == "bad-1"
    assert "Sam" not in json.dumps(rejected) and "ME14" not in json.dumps(rejected)
    tap.wait_for(lambda e: e["event_type"] == "case.checked" and e["notification_id"] == "oakwood-2026-000999")

    (copy, props), = dead_letters.take(1)
    headers = props.headers
    assert headers["x-earlyhelp-error"] == rejected["reason"]
    assert headers["x-earlyhelp-original-exchange"] == "earlyhelp.notifications"
    assert headers["x-earlyhelp-original-routing-key"] == key
    assert "x-earlyhelp-refused-at" in headers
    assert props.message_id == "bad-1" and props.delivery_mode == 2
    if problem == "a body over 1 MiB":
        assert headers["x-earlyhelp-truncated"] == len(body)
        assert copy == body[:64 * 1024]
    else:
        assert copy == body


BAD_COMMANDS = {
    "an unknown command": ("case.escalate", lambda case_id: command_body("close", case_id)),
    "an unknown case_id": ("case.triage", lambda case_id: command_body("triage", "no-such-case")),
    "a missing field": ("case.allocate", lambda case_id: {k: v for k, v in command_body("allocate", case_id).items()
                                                           if k != "team"}),
    "a future issued_at": ("case.triage", lambda case_id: command_body("triage", case_id, issued_at=FUTURE)),
    "an unknown district": ("case.triage", lambda case_id: command_body("triage", case_id, district="Atlantis")),
}


@pytest.mark.parametrize("problem", list(BAD_COMMANDS))
def test_a_bad_command_is_refused_dead_lettered_and_the_next_one_goes_through(
        problem, engine, tap, upstream, dead_letters):
    assert upstream.publish("earlyhelp.notifications", "notification.school", encode(notification_body())).ok
    case_id = tap.wait_for(lambda e: e["event_type"] == "case.checked")[0]["case_id"]
    key, build = BAD_COMMANDS[problem]
    assert upstream.publish("earlyhelp.commands", key, encode(build(case_id)), message_id="bad-cmd").ok
    assert upstream.publish("earlyhelp.commands", "case.triage", encode(command_body("triage", case_id))).ok
    rejected = tap.wait_for(lambda e: e["event_type"] == "command.rejected")[0]
    assert rejected["reason"] and rejected["errors"] and rejected["message_id"] == "bad-cmd"
    tap.wait_for(lambda e: e["event_type"] == "case.triaged")
    (_copy, props), = dead_letters.take(1)
    assert props.headers["x-earlyhelp-original-routing-key"] == key


def test_forged_engine_headers_from_a_sender_mean_nothing(engine, tap, upstream, dead_letters):
    forged = {"x-earlyhelp-error": "forged", "x-death": [{"count": 99}], "x-delivery-count": 42}
    assert upstream.publish("earlyhelp.notifications", "notification.school", encode(notification_body()),
                            headers=forged).ok
    tap.wait_for(lambda e: e["event_type"] == "case.checked")
    assert upstream.publish("earlyhelp.notifications", "notification.school", b"nope", headers=forged).ok
    tap.wait_for(lambda e: e["event_type"] == "notification.rejected")
    (_copy, props), = dead_letters.take(1)
    assert props.headers["x-earlyhelp-error"] != "forged"
    assert "x-death" not in props.headers
    # The quorum dead-letter queue sets its own x-delivery-count on delivery; the sender's 42 is gone.
    assert props.headers.get("x-delivery-count", 0) != 42
