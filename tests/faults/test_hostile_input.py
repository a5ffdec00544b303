"""Hostile input through the real broker and engine, held to I-JSON (RFC 7493).

Each refusal gives a `notification.rejected` event with a reason, a dead-letter copy, an engine
unharmed and the next good message handled; neither the rejection nor the logs echo the child's details.
"""
from __future__ import annotations

import gzip
import io
import json

import pika
import pytest
import structlog

from earlyhelp.logs import configure_logging
from earlyhelp.producers.upstream_client import _pika_url
from tests.factories import command_body, encode, notification_body

pytestmark = [pytest.mark.faults, pytest.mark.integration]
ON_POSTGRES = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)

PERSONAL = ("Sam", "Taylor", "ME14", "2015-05-02", "Oakwood Primary")
GOOD = encode(notification_body())  # carries the personal details a leak would show
TEXT = GOOD.decode()


def raw_publish(broker_url: str, body: bytes, key: str = "notification.school", **properties) -> None:
    """Publish exactly these bytes and properties, with a confirm (UpstreamClient always sends JSON)."""
    connection = pika.BlockingConnection(pika.URLParameters(_pika_url(broker_url)))
    channel = connection.channel()
    channel.confirm_delivery()
    channel.basic_publish("earlyhelp.notifications", key, body,
                          pika.BasicProperties(delivery_mode=2, **properties), mandatory=True)
    connection.close()


def nested(depth: int) -> bytes:
    return TEXT.replace('"reason":', '"deep": ' + "[" * depth + "]" * depth + ', "reason":', 1).encode()


HOSTILE = {
    "nesting deeper than the cap": (nested(40), {}),
    "a body over 1 MiB": (TEXT.replace('"reason": "', '"reason": "' + "Sam " * 300_000, 1).encode(), {}),
    "invalid UTF-8": (GOOD.replace(b"Taylor", b"Tayl\xff\xfer"), {}),
    "a lone surrogate": (TEXT.replace("Taylor", "Tay\\ud800lor").encode(), {}),
    "a duplicate key": (TEXT.replace('"reason":', '"reason": "Sam Taylor, ME14", "reason":', 1).encode(), {}),
    "an integer out of range": (TEXT.replace('"schema_version": 1', '"schema_version": 9007199254740993').encode(), {}),
    "a float out of range": (TEXT.replace('"priority": false', '"priority": 1e400').encode(), {}),
    "NaN": (TEXT.replace('"priority": false', '"priority": NaN').encode(), {}),
    "Infinity": (TEXT.replace('"priority": false', '"priority": -Infinity').encode(), {}),
    "a gzip body": (gzip.compress(GOOD), {"content_encoding": "gzip"}),
    "a deflate encoding": (GOOD, {"content_encoding": "deflate"}),
}


def rejection_for(collector, message_id: str) -> dict:
    return collector.wait_for(lambda e: e["event_type"] == "notification.rejected"
                              and e.get("message_id") == message_id)[0]


def assert_no_personal_data(*texts: str) -> None:
    for text in texts:
        leaked = [p for p in PERSONAL if p in text]
        assert not leaked, f"personal data echoed: {leaked}"


@pytest.fixture
def engine_logs():
    """The engine's log lines, as `serve` writes them (JSON), into a buffer; the earlier set-up restored after."""
    saved = structlog.get_config()
    buffer = io.StringIO()
    configure_logging("INFO", stream=buffer)
    yield buffer
    structlog.configure(**saved)


@ON_POSTGRES
def test_each_hostile_class_is_refused_dead_lettered_and_the_next_good_message_handled(
        start_engine, settings, upstream, collector, dead_letters, engine_logs):
    start_engine()
    for n, (problem, (body, properties)) in enumerate(HOSTILE.items()):
        message_id = f"hostile-{n}"
        raw_publish(settings.broker_url, body, message_id=message_id, content_type="application/json",
                    **properties)
        good_id = f"after-hostile-{n}"
        assert upstream.publish("earlyhelp.notifications", "notification.school",
                                encode(notification_body(notification_id=good_id)), message_id=good_id).ok

        rejected = rejection_for(collector, message_id)
        assert rejected["reason"] and rejected["errors"], (problem, rejected)
        assert_no_personal_data(json.dumps(rejected))
        collector.wait_for(lambda e: e["event_type"] == "case.checked" and e["notification_id"] == good_id)
        (copy, props), = dead_letters.take(1)
        assert props.headers["x-earlyhelp-error"] == rejected["reason"], problem
        assert props.message_id == message_id
        if problem == "a body over 1 MiB":
            assert copy == body[:64 * 1024] and props.headers["x-earlyhelp-truncated"] == len(body)
        else:
            assert copy == body, problem
            assert props.content_encoding == properties.get("content_encoding", props.content_encoding)
    logs = engine_logs.getvalue()
    assert_no_personal_data(logs)
    lines = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    refused = [line for line in lines if line.get("outcome") == "refused"]
    assert len(refused) >= len(HOSTILE), "the engine's log lines were read"


@ON_POSTGRES
def test_forged_and_oversized_headers_mean_nothing(start_engine, settings, upstream, collector, dead_letters):
    start_engine()
    forged = {"x-death": [{"count": 99, "queue": "earlyhelp.engine.notifications", "reason": "rejected"}],
              "x-delivery-count": 99, "x-earlyhelp-error": "forged", "x-earlyhelp-truncated": 1,
              "x-padding": "p" * 100_000}
    good = encode(notification_body(notification_id="forged-good"))
    assert upstream.publish("earlyhelp.notifications", "notification.school", good, headers=forged).ok
    collector.wait_for(lambda e: e["event_type"] == "case.checked" and e["notification_id"] == "forged-good")
    assert dead_letters.take(1, timeout=1.0) == [], "a good message with forged headers is handled, not refused"

    assert upstream.publish("earlyhelp.notifications", "notification.school", b"nope", message_id="forged-bad",
                            headers=forged).ok
    rejected = rejection_for(collector, "forged-bad")
    (copy, props), = dead_letters.take(1)
    assert props.headers["x-earlyhelp-error"] == rejected["reason"] != "forged"
    assert "x-death" not in props.headers and "x-earlyhelp-truncated" not in props.headers
    assert props.headers.get("x-delivery-count", 0) != 99


@ON_POSTGRES
def test_ids_reused_message_id_on_its_merits_notification_and_command_ids_as_conflicts(
        start_engine, settings, upstream, collector, dead_letters):
    start_engine()
    # One message_id on two different notifications: each is handled on its own merits.
    for nid in ("reuse-a", "reuse-b"):
        assert upstream.publish("earlyhelp.notifications", "notification.school",
                                encode(notification_body(notification_id=nid)), message_id="same-message-id").ok
    checked = collector.wait_for(lambda e: e["event_type"] == "case.checked"
                                 and e["notification_id"] in ("reuse-a", "reuse-b"), count=2)
    case_id = next(e["case_id"] for e in checked if e["notification_id"] == "reuse-a")

    # The same notification_id with a different body: a conflict that names the first.
    other = encode(notification_body(notification_id="reuse-a", reason="Another concern about Sam Taylor."))
    assert upstream.publish("earlyhelp.notifications", "notification.school", other, message_id="conflict-n").ok
    rejected = rejection_for(collector, "conflict-n")
    assert "notification_id 'reuse-a' was already used" in rejected["reason"] and case_id in rejected["reason"]
    assert_no_personal_data(json.dumps(rejected))
    (copy, _props), = dead_letters.take(1)
    assert copy == other

    # The same command_id with a different body: a conflict too.
    first = command_body("triage", case_id, command_id="cmd-reused", district="Maidstone")
    second = command_body("triage", case_id, command_id="cmd-reused", district="Ashford")
    for body, mid in ((first, "cmd-1"), (second, "cmd-2")):
        assert upstream.publish("earlyhelp.commands", "case.triage", encode(body), message_id=mid).ok
    collector.wait_for(lambda e: e["event_type"] == "case.triaged" and e["case_id"] == case_id)
    refused = collector.wait_for(lambda e: e["event_type"] == "command.rejected" and e.get("message_id") == "cmd-2")[0]
    assert "command_id 'cmd-reused' was already used" in refused["reason"] and case_id in refused["reason"]
    (copy, _props), = dead_letters.take(1)
    assert copy == encode(second)

    # The next good message is handled.
    assert upstream.publish("earlyhelp.notifications", "notification.school",
                            encode(notification_body(notification_id="after-conflicts"))).ok
    collector.wait_for(lambda e: e["event_type"] == "case.checked" and e["notification_id"] == "after-conflicts")
