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
import struct
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable

from amqp import Message, spec
from kombu import Connection, Producer

from earlyhelp.buffered_amqp import buffered_bytes

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
            with self._one_write():
                placed += self._publish_chunk(messages[start:start + CHUNK])
        tags = range(first, self._next_tag)
        deadline = time.monotonic() + self.confirm_timeout
        while any(self._outcomes[t] == UNCONFIRMED for t in tags):
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
        outcomes = [settled[p] if isinstance(p, int) else p for p in placed] + [HELD] * (len(messages) - len(placed))
        # A mandatory message the broker could not route comes back as basic.return before its ack.
        for i, m in enumerate(messages):
            if m.mandatory and (m.exchange, m.routing_key) in self._returned_keys and outcomes[i] == CONFIRMED:
                outcomes[i] = RETURNED
        return outcomes

    def _publish_chunk(self, chunk: list[Outgoing]) -> list:
        # Read per chunk: after a failover kombu's connection holds the next URL's user. With EXTERNAL
        # (certificate) login the broker user is the certificate's name, not the URL's: send none rather
        # than a user_id the broker would refuse by closing the channel.
        external = (self.connection.login_method or "").upper() == "EXTERNAL"
        user = None if external else self.connection.userid
        user_id = {"user_id": user} if user else {}
        placed = []
        for m in chunk:
            try:
                msg = _Encoded(m.body, priority=m.properties.get("priority"),
                               content_type=m.properties.get("content_type", "application/json"),
                               content_encoding=m.properties.get("content_encoding", "utf-8"),
                               application_headers=m.headers or {}, delivery_mode=2, **_amqp_properties(
                                   m.properties, skip=("content_type", "content_encoding", "user_id", "priority")),
                               **user_id)
            except (TypeError, ValueError, OverflowError, UnicodeError, AttributeError, struct.error):
                placed.append(UNPUBLISHABLE)
                continue
            # The Basic.Publish that channel.basic_publish sends, without the drain_events(timeout=0) it
            # runs first to look for connection.blocked: poll() looks before each chunk, and no frame of a
            # chunk is written before the chunk ends, so a look per message changes nothing. It cost a
            # socket timeout set and reset and a failed recv per message: about a quarter of the relay's CPU.
            self.channel.send_method(spec.Basic.Publish, "Bssbb",
                                     (0, m.exchange, m.routing_key, m.mandatory, False), msg)
            self._outcomes[self._next_tag] = UNCONFIRMED
            placed.append(self._next_tag)
            self._next_tag += 1
        return placed

    @contextmanager
    def _one_write(self):
        """Gather a chunk's frames and send them with one write: a socket write per message cost the
        relay a third of its time (py-spy). py-amqp writes each frame through `transport._write`, and
        hands it a buffer it reuses, so each frame is copied as it comes."""
        transport = self.connection.connection.transport
        direct, frames = transport._write, []
        transport._write = lambda data: frames.append(bytes(data))
        try:
            yield
        finally:
            transport._write = direct
            if frames:
                direct(b"".join(frames))

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
        if multiple:
            for t in [t for t, o in self._outcomes.items() if t <= tag and o == UNCONFIRMED]:
                self._outcomes[t] = outcome
        elif tag in self._outcomes:
            self._outcomes[tag] = outcome

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


class _Encoded(Message):
    """A message whose properties are encoded once, as it is made. A stored row the library cannot encode
    (a property of the wrong type) fails here, before any frame is written: that row's failure, not one
    that stops the relay and holds up every event behind it. py-amqp's frame writer would encode them
    again for the header frame; it is handed these bytes instead (a tenth of the relay's time, py-spy).
    Nothing changes the properties in between: py-amqp adds a content_encoding only to a str body."""

    __slots__ = ("encoded_properties",)

    def __init__(self, body: bytes, **properties) -> None:
        super().__init__(body, **properties)
        self.encoded_properties = super()._serialize_properties()

    def _serialize_properties(self) -> bytes:
        return self.encoded_properties


def _amqp_properties(properties: dict, skip=()) -> dict:
    out = {}
    for key, value in properties.items():
        if key in skip or value is None:
            continue
        if key == "timestamp" and isinstance(value, float):
            value = int(value)  # whole seconds: py-amqp packs a timestamp as a 64-bit integer, not a datetime
        out[key] = value
    return out
