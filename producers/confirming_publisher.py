"""Publishes a batch of messages and waits once for the broker's confirms of the whole batch.

kombu's `confirm_publish` waits for each confirm in turn (~1,500 msg/s here); putting the py-amqp
channel in confirm mode and gathering its basic.ack / basic.nack / basic.return events per batch
goes about ten times faster (docs/engineering.md). On kombu's memory:// transport there are no confirms
or returns: messages are reported confirmed as soon as they are handed over, and the engine says so.

A broker short of memory or disk blocks publishers (connection.blocked) and stops reading their
sockets: a large batch written into a blocked socket times out part-way through a frame and ruins the
connection, and confirms stop until the alarm clears. So a batch goes out in small chunks, looking for
connection.blocked between them; once blocked, the rest of the batch is HELD (not sent, not a failure)
and the confirms of what was sent are awaited for as long as the block lasts.

Every message goes out with the AMQP `user_id` of the engine's broker user (the connection's user,
which RabbitMQ checks against the login): it is how `earlyhelp dead-letters` tells the engine's own
dead-letter copies from a sender's forgery, since anyone can set `x-earlyhelp-*` headers and the broker
keeps them when it dead-letters an expired message (docs/contract.md, "Refusals and the dead-letter queue").
memory:// has no broker users, so no user_id there.
"""
from __future__ import annotations

import select
import socket
import time
from dataclasses import dataclass, field
from typing import Callable

from kombu import Connection, Producer

from earlyhelp.buffered_amqp import buffered_bytes

from .publish_frames import ENCODING_ERRORS, encode_properties, publish_frames

CONFIRMED, RETURNED, NACKED, UNCONFIRMED = "confirmed", "returned", "nacked", "unconfirmed"
UNPUBLISHABLE = "unpublishable"  # a stored row the AMQP library cannot encode: kept, counted, skipped
HELD = "held"  # not sent: the broker blocks publishers; try again once it unblocks
CHUNK = 50  # messages written between two looks for connection.blocked: well under a socket buffer


@dataclass
class Outgoing:
    exchange: str
    routing_key: str
    body: bytes
    properties: dict = field(default_factory=dict)
    headers: dict | None = None
    mandatory: bool = False


class ConfirmingPublisher:
    """One channel in confirm mode on a connection of its own (py-amqp connections are not thread-safe)."""

    def __init__(self, connection: Connection, confirm_timeout: float = 30.0,
                 keep_waiting: Callable[[], bool] = lambda: True) -> None:
        self.connection = connection
        self.confirm_timeout = confirm_timeout
        self.keep_waiting = keep_waiting  # False once the owner stops: a block no longer extends the wait
        self.blocked = False
        self.supports_confirms = connection.transport.driver_type == "amqp"
        self.channel = connection.channel()
        self._producer = Producer(self.channel)
        self._outcomes: dict[int, str] = {}
        # The tags still awaiting a confirm: what the wait loop asks after every frame it reads. Scanning the
        # batch's outcomes instead went over ~90 tags per confirm (RabbitMQ confirms most messages one by one).
        self._unconfirmed: set[int] = set()
        self._returned_keys: set[tuple[str, str]] = set()
        self._next_tag = 1
        if self.supports_confirms:
            self.channel.confirm_select()
            self.channel.events["basic_ack"].add(self._on_ack)
            self.channel.events["basic_nack"].add(self._on_nack)
            self.channel.events["basic_return"].add(self._on_return)
            raw = connection.connection  # py-amqp's Connection: RabbitMQ's blocked/unblocked notifications
            raw.on_blocked, raw.on_unblocked = self._on_blocked, self._on_unblocked

    def publish_batch(self, messages: list[Outgoing]) -> list[str]:
        """Publish `messages` in order and return each one's outcome (confirmed, returned, nacked, unconfirmed)."""
        if not messages:
            return []
        if not self.supports_confirms:
            for m in messages:
                self._producer.publish(m.body, exchange=m.exchange, routing_key=m.routing_key, headers=m.headers,
                                       delivery_mode=2, content_type=m.properties.get("content_type",
                                                                                       "application/json"),
                                       content_encoding=m.properties.get("content_encoding", "utf-8"),
                                       **_amqp_properties(m.properties, skip=("content_type", "content_encoding")))
            return [CONFIRMED] * len(messages)

        self._returned_keys.clear()
        first, placed = self._next_tag, []  # per message sent: its delivery tag, or UNPUBLISHABLE
        for start in range(0, len(messages), CHUNK):
            if self.poll():  # blocked: what is not yet written waits for the unblock
                break
            placed += self._publish_chunk(messages[start:start + CHUNK])
        tags = range(first, self._next_tag)
        deadline = time.monotonic() + self.confirm_timeout
        while self._unconfirmed:
            if self.blocked and self.keep_waiting():
                deadline = time.monotonic() + self.confirm_timeout  # confirms resume when the alarm clears
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                self.connection.drain_events(timeout=min(remaining, 1.0))
            except socket.timeout:
                self.connection.heartbeat_check()
        settled = {t: self._outcomes.pop(t) for t in tags}
        self._unconfirmed.clear()  # given up (a timeout): their confirms, if they come, settle nothing
        outcomes = [settled[p] if isinstance(p, int) else p for p in placed] + [HELD] * (len(messages) - len(placed))
        # A mandatory message the broker could not route comes back as basic.return before its ack.
        for i, m in enumerate(messages):
            if m.mandatory and (m.exchange, m.routing_key) in self._returned_keys and outcomes[i] == CONFIRMED:
                outcomes[i] = RETURNED
        return outcomes

    def _publish_chunk(self, chunk: list[Outgoing]) -> list:
        """Write a chunk's messages to the socket with one write, each message's frames made by
        producers/publish_frames.py; returns each one's delivery tag, or UNPUBLISHABLE for a stored row
        the protocol cannot carry (nothing of it is written, and it takes no tag)."""
        # Read per chunk: after a failover kombu's connection holds the next URL's user. With EXTERNAL
        # (certificate) login the broker user is the certificate's name, not the URL's: send none rather
        # than a user_id the broker would refuse by closing the channel.
        external = (self.connection.login_method or "").upper() == "EXTERNAL"
        user = None if external else self.connection.userid
        raw = self.connection.connection  # py-amqp's Connection
        channel_id, frame_max = self.channel.channel_id, raw.frame_max
        frames, placed = [], []
        for m in chunk:
            try:
                properties = encode_properties({
                    **_amqp_properties(m.properties), "application_headers": m.headers or {}, "delivery_mode": 2,
                    "content_type": m.properties.get("content_type", "application/json"),
                    "content_encoding": m.properties.get("content_encoding", "utf-8"),
                    "user_id": user or None})
                frames.append(publish_frames(channel_id, frame_max, m.exchange, m.routing_key, m.mandatory,
                                             properties, m.body))
            except ENCODING_ERRORS:
                placed.append(UNPUBLISHABLE)
                continue
            self._outcomes[self._next_tag] = UNCONFIRMED
            self._unconfirmed.add(self._next_tag)
            placed.append(self._next_tag)
            self._next_tag += 1
        if frames:
            # What channel.basic_publish would send, less its per-message look for connection.blocked: poll()
            # looks before each chunk, and nothing of a chunk is written before the chunk ends. One write per
            # chunk: a socket write per message cost the relay a third of its time (py-spy).
            raw.transport.write(b"".join(frames))
            raw.bytes_sent += 1  # what py-amqp's frame writer counts: the heartbeat check sees we are sending
        return placed

    def poll(self) -> bool:
        """Read what the broker sent (blocked/unblocked, confirms, heartbeats) without waiting; True if blocked.

        An idle relay sends nothing, so without this the broker would close its connection for missed
        heartbeats, and a blocked notification would go unnoticed until the next publish stalled.
        """
        if not self.supports_confirms:
            return False
        try:
            while self._something_to_read():
                self.connection.drain_events(timeout=0.001)  # 0 would spin on EAGAIN
        except socket.timeout:
            pass
        self.connection.heartbeat_check()
        return self.blocked

    def _something_to_read(self) -> bool:
        """Without waiting: bytes on the socket, or in py-amqp's buffer. A drain with a timeout costs
        its whole timeout when nothing came, and poll runs before every chunk the relay publishes."""
        transport = self.connection.connection.transport
        if buffered_bytes(transport):  # frames received and not yet read (earlyhelp/buffered_amqp.py)
            return True
        return bool(select.select([transport.sock], [], [], 0)[0])

    def close(self) -> None:
        try:
            self.channel.close()
        except Exception:  # noqa: BLE001 - closing a channel on a dead connection
            pass

    # -- broker callbacks ------------------------------------------------------------------------
    def _settle(self, tag: int, multiple: bool, outcome: str) -> None:
        settled = [t for t in self._unconfirmed if t <= tag] if multiple else [tag] if tag in self._unconfirmed else []
        for t in settled:
            self._outcomes[t] = outcome
            self._unconfirmed.discard(t)

    def _on_ack(self, tag, multiple):
        self._settle(tag, multiple, CONFIRMED)

    def _on_nack(self, tag, multiple):
        self._settle(tag, multiple, NACKED)

    def _on_blocked(self, _reason=None):
        self.blocked = True

    def _on_unblocked(self):
        self.blocked = False

    def _on_return(self, _exc, exchange, routing_key, _message):
        self._returned_keys.add((exchange, routing_key))


def _amqp_properties(properties: dict, skip=()) -> dict:
    out = {}
    for key, value in properties.items():
        if key in skip or value is None:
            continue
        if key == "timestamp" and isinstance(value, float):
            value = int(value)  # whole seconds: py-amqp packs a timestamp as a 64-bit integer, not a datetime
        out[key] = value
    return out
