"""Publishes a batch of messages and waits once for the broker's confirms of the whole batch.

kombu's `confirm_publish` waits for each confirm in turn (~1,500 msg/s here); putting the py-amqp
channel in confirm mode and gathering its basic.ack / basic.nack / basic.return events per batch
goes about ten times faster (ENGINEERING.md). On kombu's memory:// transport there are no confirms
or returns: messages are reported confirmed as soon as they are handed over, and the engine says so.
"""
from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from kombu import Connection, Producer

CONFIRMED, RETURNED, NACKED, UNCONFIRMED = "confirmed", "returned", "nacked", "unconfirmed"


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

    def __init__(self, connection: Connection, confirm_timeout: float = 30.0) -> None:
        self.connection = connection
        self.confirm_timeout = confirm_timeout
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
        first = self._next_tag
        for m in messages:
            msg = self.channel.prepare_message(
                m.body, priority=None, content_type=m.properties.get("content_type", "application/json"),
                content_encoding=m.properties.get("content_encoding", "utf-8"), headers=m.headers or {},
                properties={"delivery_mode": 2, **_amqp_properties(m.properties,
                                                                   skip=("content_type", "content_encoding"))})
            self.channel.basic_publish(msg, exchange=m.exchange, routing_key=m.routing_key, mandatory=m.mandatory)
            self._outcomes[self._next_tag] = UNCONFIRMED
            self._next_tag += 1
        tags = range(first, self._next_tag)
        deadline = time.monotonic() + self.confirm_timeout
        while any(self._outcomes[t] == UNCONFIRMED for t in tags):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                self.connection.drain_events(timeout=min(remaining, 1.0))
            except socket.timeout:
                continue
        outcomes = [self._outcomes.pop(t) for t in tags]
        # A mandatory message the broker could not route comes back as basic.return before its ack.
        for i, m in enumerate(messages):
            if m.mandatory and (m.exchange, m.routing_key) in self._returned_keys and outcomes[i] == CONFIRMED:
                outcomes[i] = RETURNED
        return outcomes

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

    def _on_return(self, _exc, exchange, routing_key, _message):
        self._returned_keys.add((exchange, routing_key))


def _amqp_properties(properties: dict, skip=()) -> dict:
    out = {}
    for key, value in properties.items():
        if key in skip or value is None:
            continue
        if key == "timestamp" and isinstance(value, (int, float)):
            value = datetime.fromtimestamp(value, tz=timezone.utc)
        out[key] = value
    return out
