"""py-amqp's frame decoding made unable to fail on what a sender wrote.

py-amqp decodes a delivery's short strings (message_id, correlation_id, type, app_id, ..., and the
routing key in basic.deliver) as strict UTF-8, and header tables recursively. RabbitMQ passes any bytes
through, so one message with `message_id` b"\\xff" or a routing key that is not UTF-8 raised
UnicodeDecodeError out of `drain_events` (and left the connection mid-frame), and a header table nested
a few thousand deep raised RecursionError: either stopped `earlyhelp serve`, and again on every restart.

`install()` wraps the two decoding entry points. Well-formed frames take the original path unchanged; a
frame it refuses is decoded again leniently: bytes that are not UTF-8 become `\\xNN` escapes, and headers
that cannot be read at all are replaced by one `x-earlyhelp-unreadable-headers` note (the sender's own
header of that name is dropped with the other reserved ones). The message then reaches the handlers,
which refuse it like any other bad input.
"""
from __future__ import annotations

from struct import unpack_from

from amqp import abstract_channel, serialization
from amqp.exceptions import FrameSyntaxError
from amqp.spec import Basic

UNREADABLE_HEADERS = "x-earlyhelp-unreadable-headers"
# What py-amqp raises on a table it cannot read: bad text, nesting past Python's recursion limit, an
# unknown field type (FrameSyntaxError, which would otherwise close the connection as if it were broken).
_UNREADABLE = (UnicodeDecodeError, RecursionError, FrameSyntaxError, ValueError, KeyError, TypeError)

_original_loads = serialization.loads
_original_properties = serialization.decode_properties_basic

# Basic's content-header properties in flag order: (flag, name, kind); s = short string, F = table,
# o = octet, Q = 64-bit timestamp.
_BASIC_PROPERTIES = (
    (0x8000, "content_type", "s"), (0x4000, "content_encoding", "s"), (0x2000, "application_headers", "F"),
    (0x1000, "delivery_mode", "o"), (0x0800, "priority", "o"), (0x0400, "correlation_id", "s"),
    (0x0200, "reply_to", "s"), (0x0100, "expiration", "s"), (0x0080, "message_id", "s"),
    (0x0040, "timestamp", "Q"), (0x0020, "type", "s"), (0x0010, "user_id", "s"), (0x0008, "app_id", "s"),
    (0x0004, "cluster_id", "s"),
)


class _Lenient(bytes):
    """Bytes whose slices decode as UTF-8 with `\\xNN` for what is not: py-amqp slices its buffer and
    calls .decode on the slice, so passing one of these makes its own decoder lenient."""

    def __getitem__(self, key):
        item = bytes.__getitem__(self, key)
        return _Lenient(item) if isinstance(key, slice) else item

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:  # noqa: ARG002
        return bytes.decode(self, encoding, "backslashreplace")


def lenient_loads(format, buf, offset=0, *args, **kwargs):
    """Method arguments (basic.deliver's exchange and routing key, ...)."""
    try:
        return _original_loads(format, buf, offset, *args, **kwargs)
    except UnicodeDecodeError:
        return _original_loads(format, _Lenient(bytes(buf)), offset, *args, **kwargs)


def lenient_properties(buf, offset):
    """A content header's properties: the original decoder, else field by field, never raising."""
    try:
        return _original_properties(buf, offset)
    except _UNREADABLE:
        return _properties_field_by_field(_Lenient(bytes(buf)), offset)


def _properties_field_by_field(buf: _Lenient, offset: int):
    properties = {}
    flags, = unpack_from(">H", buf, offset)
    offset += 2
    for flag, name, kind in _BASIC_PROPERTIES:
        if not flags & flag:
            continue
        if kind == "s":
            length = buf[offset]
            properties[name] = buf[offset + 1:offset + 1 + length].decode()
            offset += 1 + length
        elif kind == "o":
            properties[name] = buf[offset]
            offset += 1
        elif kind == "Q":
            properties[name], = unpack_from(">Q", buf, offset)
            offset += 8
        else:  # a table: its length comes first, so one that cannot be read is skipped whole
            length, = unpack_from(">I", buf, offset)
            try:
                (properties[name],), _ = _original_loads("F", buf, offset)
            except _UNREADABLE as error:
                properties[name] = {UNREADABLE_HEADERS: f"{type(error).__name__}; {length} bytes not read"}
            offset += 4 + length
    return properties, offset


def install() -> None:
    """Idempotent; affects every py-amqp connection in the process (the engine's and the relay's)."""
    abstract_channel.loads = lenient_loads
    serialization.PROPERTY_CLASSES[Basic.CLASS_ID] = lenient_properties
