"""No message stops or stalls the engine (issue 11, item 1), through the real broker and both databases.

Whatever a sender puts in properties, headers or the routing key, the message is refused (a
`notification.rejected` event and a dead-letter copy), the engine stays up and the good notification
behind it is handled. A copy that cannot be stored is stored minimal; one that cannot be stored at all
is left to the queue's delivery limit, and the engine goes on. The worker takes no more than its byte
budget of unacked bodies into a batch.
"""
from __future__ import annotations

import sys
from decimal import Decimal

import pika
import pytest
from kombu import Connection, Producer

from earlyhelp.producers.upstream_client import _pika_url
from tests.factories import encode, notification_body

pytestmark = [pytest.mark.faults, pytest.mark.integration]

INVALID = b'{"schema_version": 1}'


def _deep_table(levels: int) -> dict:
    top = cur = {}
    for _ in range(levels):
        cur["a"] = {}
        cur = cur["a"]
    return top


def publish_pika(broker_url, body, key="notification.school", **properties):
    connection = pika.BlockingConnection(pika.URLParameters(_pika_url(broker_url)))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish("earlyhelp.notifications", key, body,
                              pika.BasicProperties(delivery_mode=2, **properties), mandatory=True)
    finally:
        connection.close()


def publish_amqp(broker_url, body, message_id, headers):
    """py-amqp writes str headers with 'surrogatepass', so a lone surrogate reaches the broker as sent."""
    with Connection(broker_url) as conn:
        Producer(conn.channel()).publish(body, exchange="earlyhelp.notifications", routing_key="notification.school",
                                         content_type="application/json", content_encoding="utf-8",
                                         message_id=message_id, headers=headers, delivery_mode=2)


def publish_deep(broker_url, message_id, levels=3000):
    """Headers nested deeper than py-amqp's recursive decoder can read (pika needs a raised limit to write them)."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, levels * 4))
    try:
        publish_pika(broker_url, INVALID, message_id=message_id, headers={"deep": _deep_table(levels), "n": 1})
    finally:
        sys.setrecursionlimit(limit)


# name -> (how to publish it, the message_id the rejection event carries, the copy's AMQP message_id)
CASES = {
    "a NUL in message_id": (lambda url: publish_pika(url, INVALID, message_id="nul\x00id"),
                            "nul\\x00id", "nul\\u0000id"),
    "message_id not UTF-8": (lambda url: publish_pika(url, INVALID, message_id=b"bad\xff\xfeid"),
                             "bad\\xff\\xfeid", "bad\\xff\\xfeid"),
    "a lone surrogate in a header": (lambda url: publish_amqp(url, INVALID, "surrogate", {"h": "a\ud800b"}),
                                     "surrogate", "surrogate"),
    "300 headers": (lambda url: publish_pika(url, INVALID, message_id="many-headers",
                                             headers={f"h{i}": "v" * 20 for i in range(300)}),
                    "many-headers", "many-headers"),
    "a 100 KiB header value": (lambda url: publish_pika(url, INVALID, message_id="big-header",
                                                        headers={"big": "x" * 100 * 1024}),
                               "big-header", "big-header"),
    "a bytes header holding NUL": (lambda url: publish_pika(url, INVALID, message_id="bytes-header",
                                                            headers={"b": b"\x00\xff\x00"}),
                                   "bytes-header", "bytes-header"),
    "nested tables and odd types": (lambda url: publish_pika(url, INVALID, message_id="odd-types", headers={
        "n": {"a": {"b": [1, {"c": b"\x00"}, None, True]}}, "d": Decimal("1.5"), "t": 2**62, "f": False,
        "k\x00": "key with NUL"}), "odd-types", "odd-types"),
    "headers nested 3,000 deep": (lambda url: publish_deep(url, "deep-headers"), "deep-headers", "deep-headers"),
    "a routing key that is not UTF-8": (lambda url: publish_pika(url, INVALID, key=b"notification.\xff\x00",
                                                                 message_id="odd-key"), "odd-key", "odd-key"),
}


def test_hostile_properties_headers_and_keys_are_refused_and_the_engine_goes_on(
        start_engine, settings, upstream, collector, dead_letters):
    running = start_engine()
    for n, (problem, (send, event_message_id, copy_message_id)) in enumerate(CASES.items()):
        send(settings.broker_url)
        good_id = f"after-hostile-header-{n}"
        assert upstream.publish("earlyhelp.notifications", "notification.school",
                                encode(notification_body(notification_id=good_id)), message_id=good_id).ok

        rejected = collector.wait_for(lambda e: e["event_type"] == "notification.rejected"
                                      and e.get("message_id") == event_message_id)[0]
        assert rejected["reason"] and rejected["errors"], problem
        collector.wait_for(lambda e: e["event_type"] == "case.checked" and e["notification_id"] == good_id)
        (copy, props), = dead_letters.take(1)
        assert copy == INVALID, problem
        assert props.message_id == copy_message_id, problem
        assert props.headers["x-earlyhelp-error"] == rejected["reason"], problem
        assert running.thread.is_alive(), problem
        if problem == "300 headers":
            assert len(props.headers) <= 110 and "x-earlyhelp-headers-trimmed" in props.headers
        if problem == "a 100 KiB header value":
            assert len(props.headers["big"]) <= 4097 and "x-earlyhelp-headers-trimmed" in props.headers
        if problem == "a lone surrogate in a header":
            assert props.headers["h"] == "a\\ud800b"
        if problem == "headers nested 3,000 deep":
            assert "x-earlyhelp-unreadable-headers" not in props.headers, "a sender's own x-earlyhelp-* is dropped"
    assert running.runtime.ready()[0]


def _poison(monkeypatch, message_id: str) -> None:
    """Handling raises for one message_id (a bug the message triggers), so it is dead-lettered by the engine."""
    from earlyhelp.consumers import batch

    original = batch.handle

    def handle(batch_, parsed):
        if parsed.delivery.message_id == message_id:
            raise RuntimeError("a fault this message triggers")
        return original(batch_, parsed)

    monkeypatch.setattr(batch, "handle", handle)


def test_a_copy_the_database_refuses_is_stored_minimal(monkeypatch, start_engine, settings, upstream, collector,
                                                       dead_letters):
    from earlyhelp.consumers import batch

    _poison(monkeypatch, "poison-minimal")

    def refused(*_args, **_kwargs):
        raise ValueError("the database refuses this copy")

    monkeypatch.setattr(batch, "dead_letter_row", refused)
    running = start_engine()
    body = encode(notification_body(notification_id="poison-minimal"))
    publish_pika(settings.broker_url, body, message_id="poison-minimal", headers={"h": "kept out"})
    assert upstream.publish("earlyhelp.notifications", "notification.school",
                            encode(notification_body(notification_id="behind-minimal"))).ok
    collector.wait_for(lambda e: e["event_type"] == "case.checked" and e["notification_id"] == "behind-minimal")
    (copy, props), = dead_letters.take(1)
    assert copy == body
    assert props.headers["x-earlyhelp-minimal-copy"]
    assert props.headers["x-earlyhelp-original-exchange"] == "earlyhelp.notifications"
    assert props.headers["x-earlyhelp-original-routing-key"] == "notification.school"
    assert "handling failed" in props.headers["x-earlyhelp-error"] and "h" not in props.headers
    assert running.thread.is_alive()


def test_a_copy_that_cannot_be_stored_at_all_is_left_to_the_delivery_limit(
        monkeypatch, start_engine, settings, upstream, collector, dead_letters):
    from earlyhelp.consumers import batch

    _poison(monkeypatch, "poison-unstored")

    def refused(*_args, **_kwargs):
        raise ValueError("the database refuses every copy")

    monkeypatch.setattr(batch, "dead_letter_row", refused)
    monkeypatch.setattr(batch, "minimal_dead_letter_row", refused)
    running = start_engine()
    body = encode(notification_body(notification_id="poison-unstored"))
    publish_pika(settings.broker_url, body, message_id="poison-unstored")
    assert upstream.publish("earlyhelp.notifications", "notification.school",
                            encode(notification_body(notification_id="behind-unstored"))).ok
    collector.wait_for(lambda e: e["event_type"] == "case.checked" and e["notification_id"] == "behind-unstored")
    # Returned to the queue after each failed round, then dead-lettered by the broker past its limit.
    (copy, props), = dead_letters.take(1, timeout=60)
    assert copy == body and props.headers["x-death"][0]["reason"] == "delivery_limit"
    assert running.thread.is_alive() and running.runtime.ready()[0]
    assert upstream.publish("earlyhelp.notifications", "notification.school",
                            encode(notification_body(notification_id="after-unstored"))).ok
    collector.wait_for(lambda e: e["event_type"] == "case.checked" and e["notification_id"] == "after-unstored")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_worker_takes_no_more_than_its_byte_budget_into_a_batch(monkeypatch, start_engine, settings, upstream,
                                                                    collector):
    from earlyhelp.consumers.runtime import EngineRuntime

    budget, size, count = 1024 * 1024, 600 * 1024, 8
    for i in range(count):  # queued before the engine starts, so all are there to be drained at once
        body = encode(notification_body(notification_id=f"large-{i}", reason="r" * size))
        assert upstream.publish("earlyhelp.notifications", "notification.school", body, message_id=f"large-{i}").ok
    held: list[list[int]] = []  # per batch: the bodies taken, after the bytes of the batch still in hand
    taken: list[int] = []
    original = EngineRuntime._prepare

    def observed(self):
        if self.pending:
            held.append(([self.in_hand.size] if self.in_hand else []) + [len(d.body) for d in self.pending])
            taken.append(len(self.pending))
        return original(self)

    monkeypatch.setattr(EngineRuntime, "_prepare", observed)
    start_engine(max_unacked_bytes=budget)
    collector.wait_for(lambda e: e["event_type"] == "notification.rejected"
                       and e.get("notification_id", "").startswith("large-"), count=count)
    print("bodies held per batch (the batch in hand first):", held)
    assert sum(taken) == count
    for sizes in held:
        assert sum(sizes[:-1]) < budget, "draining stopped once the budget was reached"
        assert sum(sizes) <= budget + max(sizes)
    assert max(len(b) for b in held) <= 2


def test_a_mib_of_unknown_keys_is_refused_with_a_rejection_event_and_a_copy(start_engine, settings, upstream,
                                                                             collector, dead_letters):
    """It once took ~42 s and then published no rejection at all (its reason listed every path)."""
    import time
    from datetime import datetime, timezone

    from earlyhelp.schemas import MessageRefused, parse_notification

    body = encode({**notification_body(notification_id="many-keys"), **{f"k{i}": 1 for i in range(80_000)}})
    assert len(body) <= 1024 * 1024
    started = time.perf_counter()
    with pytest.raises(MessageRefused):
        parse_notification(body, "notification.school", now=datetime.now(timezone.utc))
    print(f"1 MiB of 80,000 unknown keys parsed and refused in {(time.perf_counter() - started) * 1000:.0f} ms")
    assert time.perf_counter() - started < 1.0

    running = start_engine()
    publish_pika(settings.broker_url, body, message_id="many-keys", content_type="application/json")
    assert upstream.publish("earlyhelp.notifications", "notification.school",
                            encode(notification_body(notification_id="after-many-keys"))).ok
    rejected = collector.wait_for(lambda e: e["event_type"] == "notification.rejected"
                                  and e.get("message_id") == "many-keys", timeout=30)[0]
    assert len(rejected["reason"]) <= 2000 and 0 < len(rejected["errors"]) <= 21
    assert rejected["notification_id"] == "many-keys"
    collector.wait_for(lambda e: e["event_type"] == "case.checked" and e["notification_id"] == "after-many-keys")
    (copy, _props), = dead_letters.take(1)
    assert copy == body and running.thread.is_alive()
