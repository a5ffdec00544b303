"""A message the AMQP library cannot encode never reaches the broker, so it takes no delivery tag: the
broker's confirms still settle the messages they are for, wherever the bad one sits in a chunk."""
from __future__ import annotations

import uuid

import pytest

from earlyhelp.consumers.runtime import broker_connection
from earlyhelp.producers.confirming_publisher import (
    CHUNK, CONFIRMED, NACKED, UNPUBLISHABLE, ConfirmingPublisher, Outgoing,
)

pytestmark = pytest.mark.integration


def test_unencodable_messages_take_no_delivery_tag(broker_url):
    queue, limit = f"publisher-tags-{uuid.uuid4().hex[:8]}", 100
    bad = {0, 20, CHUNK - 1, CHUNK, 2 * CHUNK + 5, 2 * CHUNK + 19}  # first, middle, either side of a chunk, last
    messages = [Outgoing("", queue, b"{}", {"message_id": str(i), **({"expiration": 12345} if i in bad else {})})
                for i in range(2 * CHUNK + 20)]
    connection = broker_connection(broker_url)
    try:
        # The broker refuses (nacks) every message past the queue's limit: were a delivery tag lost or
        # taken by a message never sent, the nacks would land on the wrong messages.
        connection.channel().queue_declare(queue, auto_delete=True, arguments={
            "x-max-length": limit, "x-overflow": "reject-publish"})
        publisher = ConfirmingPublisher(connection)
        outcomes = publisher.publish_batch(messages)
        good = [i for i in range(len(messages)) if i not in bad]
        assert [i for i, o in enumerate(outcomes) if o == UNPUBLISHABLE] == sorted(bad)
        assert [i for i, o in enumerate(outcomes) if o == CONFIRMED] == good[:limit]
        assert [i for i, o in enumerate(outcomes) if o == NACKED] == good[limit:]
        channel = connection.channel()
        received = [channel.basic_get(queue, no_ack=True).properties["message_id"] for _ in range(limit)]
        assert received == [str(i) for i in good[:limit]] and channel.basic_get(queue) is None
        assert publisher.publish_batch(messages[1:3]) == [CONFIRMED, CONFIRMED]  # still in step afterwards
        publisher.close()
    finally:
        connection.release()


def test_a_timestamp_goes_out_and_a_row_struct_cannot_pack_fails_alone(broker_url):
    """A dead-letter copy keeps its sender's timestamp, stored as whole seconds (consumers/refusals.py)."""
    queue = f"publisher-properties-{uuid.uuid4().hex[:8]}"
    properties = [{"timestamp": 1700000000}, {"timestamp": 1700000000.7}, {"priority": 300},
                  {"timestamp": "yesterday"}, {}]
    connection = broker_connection(broker_url)
    try:
        channel = connection.channel()
        channel.queue_declare(queue, auto_delete=True)
        publisher = ConfirmingPublisher(connection)
        assert publisher.publish_batch([Outgoing("", queue, b"{}", p) for p in properties]) == [
            CONFIRMED, CONFIRMED, UNPUBLISHABLE, UNPUBLISHABLE, CONFIRMED]
        received = [channel.basic_get(queue, no_ack=True).properties.get("timestamp") for _ in range(3)]
        assert received == [1700000000, 1700000000, None] and channel.basic_get(queue) is None
        publisher.close()
    finally:
        connection.release()
