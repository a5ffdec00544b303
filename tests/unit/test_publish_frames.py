"""producers/publish_frames.py gives the bytes py-amqp gives: its Message's encoded properties, and the frames
its frame writer sends for channel.basic_publish; and refuses what py-amqp cannot encode."""
from __future__ import annotations

import random
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from amqp import Message, spec
from amqp.method_framing import frame_writer
from amqp.serialization import dumps

from earlyhelp.producers.publish_frames import ENCODING_ERRORS as REFUSED
from earlyhelp.producers.publish_frames import encode_properties, publish_frames


def amqp_frames(channel: int, frame_max: int, exchange, routing_key, mandatory: bool, body: bytes,
                properties: dict) -> bytes:
    """What py-amqp writes for channel.basic_publish(Message(body, **properties), exchange, routing_key, mandatory)."""
    class Connection:
        bytes_sent = 0

    Connection.frame_max = frame_max
    written: list[bytes] = []

    class Transport:
        def write(self, data):
            written.append(bytes(data))

    write = frame_writer(Connection(), Transport())
    args = dumps("Bssbb", (0, exchange, routing_key, mandatory, False))
    write(1, channel, spec.Basic.Publish, args, Message(body, **properties))
    return b"".join(written)


def random_properties(rng: random.Random) -> dict:
    text = lambda: rng.choice(["", "a", "application/json", "ünïcode ✓", "x" * 255, "ev-" + str(rng.random())])  # noqa: E731
    candidates = {
        "content_type": text, "content_encoding": text, "correlation_id": text, "reply_to": text,
        "expiration": lambda: str(rng.randrange(10**6)), "message_id": text, "type": text, "user_id": text,
        "app_id": text, "cluster_id": text,
        "delivery_mode": lambda: rng.choice([1, 2]), "priority": lambda: rng.randrange(256),
        "timestamp": lambda: rng.randrange(2**40),
        "application_headers": lambda: rng.choice([
            {}, {"x-earlyhelp-reason": "not JSON", "x-count": 3},
            {"nested": {"a": [1, "two", True, None, 2.5]}, "when": datetime(2026, 11, 25, 12, tzinfo=timezone.utc),
             "amount": Decimal("1.25"), "raw": b"\x00\xff", "big": 2**40, "neg": -7}]),
    }
    chosen = rng.sample(sorted(candidates), rng.randrange(len(candidates) + 1))
    properties = {name: candidates[name]() for name in chosen}
    if rng.random() < 0.2:
        properties["not_a_property"] = "ignored by py-amqp too"
    if rng.random() < 0.2:
        properties[rng.choice(chosen or ["type"])] = None
    return properties


def test_properties_are_encoded_as_py_amqp_encodes_them():
    rng = random.Random(15)
    for _ in range(2000):
        properties = random_properties(rng)
        assert encode_properties(properties) == Message(b"", **properties)._serialize_properties(), properties


@pytest.mark.parametrize("size", [0, 1, 4087, 4088, 4089, 10_000])
@pytest.mark.parametrize("mandatory", [False, True])
def test_frames_are_the_bytes_py_amqp_writes_with_the_body_split_at_frame_max(size, mandatory):
    rng = random.Random(size)
    body = bytes(rng.randrange(256) for _ in range(size))
    properties = {"content_type": "application/json", "delivery_mode": 2, "message_id": "ev-1",
                  "application_headers": {}, "user_id": "earlyhelp-engine"}
    for channel, exchange, routing_key in [(1, "earlyhelp.events", "case.checked.maidstone"),
                                           (7, "", "earlyhelp.dead-letter"), (65535, "ëx", "ünï.✓" * 20)]:
        ours = publish_frames(channel, 4096, exchange, routing_key, mandatory, encode_properties(properties), body)
        assert ours == amqp_frames(channel, 4096, exchange, routing_key, mandatory, body, properties)


@pytest.mark.parametrize("properties", [
    {"message_id": "x" * 256},                   # a short string over 255 bytes
    {"type": "é" * 128},                         # 256 bytes in UTF-8
    {"priority": 256},
    {"delivery_mode": "2"},
    {"timestamp": 1.5},
    {"timestamp": -1},
    {"message_id": 12},
    {"application_headers": {"x": object()}},
])
def test_what_py_amqp_cannot_encode_is_refused_here_too(properties):
    with pytest.raises(REFUSED):
        Message(b"", **properties)._serialize_properties()
    with pytest.raises(REFUSED):
        encode_properties(properties)


@pytest.mark.parametrize("exchange, routing_key", [("x" * 256, "k"), ("e", "é" * 128), (None, "k"), ("e", 5)])
def test_an_exchange_or_routing_key_the_protocol_cannot_carry_is_refused(exchange, routing_key):
    with pytest.raises(REFUSED):
        publish_frames(1, 4096, exchange, routing_key, False, encode_properties({}), b"{}")
