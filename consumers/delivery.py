"""A delivery as the handlers see it: the raw body and the AMQP facts, free of any broker library."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Delivery:
    body: bytes
    exchange: str
    routing_key: str
    properties: dict = field(default_factory=dict)  # content_type, content_encoding, message_id, ... as sent
    headers: dict = field(default_factory=dict)
    delivery_tag: Any = None
    redelivered: bool = False
    handle: Any = None  # the transport's message object, for acking

    @property
    def message_id(self) -> str | None:
        value = self.properties.get("message_id")
        return str(value)[:200] if value is not None else None

    @property
    def user_id(self) -> str | None:
        """RabbitMQ checks `user_id` against the connection's user, so it is a validated sender name."""
        value = self.properties.get("user_id")
        return str(value)[:200] if value else None

    @property
    def content_encoding(self) -> str | None:
        return self.properties.get("content_encoding")
