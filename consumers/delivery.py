"""A delivery as the handlers see it: the raw body and the AMQP facts, free of any broker library."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

_ID_CHARS = 200


def printable(value: object, limit: int = _ID_CHARS) -> str:
    """`value` as plain printable text of at most `limit` characters, for logs, events and the tools.

    Whatever a sender put there (NUL, a lone surrogate, a newline, an escape sequence, bytes) comes out
    as a backslash escape, so writing it to a log, a terminal or a database cannot fail or forge a line.
    """
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value).decode("utf-8", "backslashreplace")
    text = value if isinstance(value, str) else str(value)
    text = text[:limit]
    if text.isprintable():  # the common case, one pass in C (lone surrogates are not printable)
        return text
    return "".join(ch if ch.isprintable() else _escape(ch) for ch in text)[:limit]


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


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
        """The sender's message_id for tracing, escaped to printable text (the raw one stays in properties)."""
        value = self.properties.get("message_id")
        return printable(value) if value is not None else None

    @property
    def printable_routing_key(self) -> str:
        return printable(self.routing_key, 255)

    @property
    def user_id(self) -> str | None:
        """RabbitMQ checks `user_id` against the connection's user, so it is a validated sender name."""
        value = self.properties.get("user_id")
        return str(value)[:200] if value else None

    @property
    def content_encoding(self) -> str | None:
        return self.properties.get("content_encoding")
