"""Refused messages: a `*.rejected` event with the reason, and a copy in earlyhelp.dead-letter.

Both go through the outbox in the handling transaction, so a refusal is published with confirms
and never lost between the database and the broker. A copy keeps the original body and properties;
headers a sender set that only the broker or the engine may set (x-death, x-earlyhelp-*) are dropped,
so a forged one means nothing.
"""
from __future__ import annotations

import json
import math
import uuid
from datetime import datetime

from earlyhelp.schemas import DEAD_LETTER_QUEUE, EVENTS_EXCHANGE, MAX_BODY_BYTES, serialize_event
from earlyhelp.schemas.errors import InvalidEvent, cap_errors, cap_reason

from .delivery import Delivery, printable

KEEP_BYTES_OF_OVERSIZED = 64 * 1024
# Headers only the broker or the engine may set: dropped from a sender's message when its copy is made,
# and from a copy when it is replayed (earlyhelp.operations.dead_letters).
RESERVED_HEADER_PREFIXES = ("x-earlyhelp-", "x-death", "x-first-death", "x-last-death", "x-delivery-count")
# AMQP properties worth keeping on the copy; user_id is not one: RabbitMQ would refuse the engine
# republishing another user's id, so it travels as a header instead. Nor is priority: a quorum queue has
# none, and the relay's py-amqp call takes priority as its own argument, so a copy carrying one (kombu
# sends priority 0 on every message) failed to publish on every attempt and held up every event behind it.
_KEPT_PROPERTIES = ("content_type", "content_encoding", "message_id", "correlation_id", "timestamp", "type",
                    "app_id", "reply_to")


def rejection_event(event_type: str, reason: str, errors: list[str], ids: dict, delivery: Delivery,
                    at: datetime, extra: dict | None = None) -> dict:
    event = {
        "schema_version": 1, "event_id": str(uuid.uuid4()), "event_type": event_type,
        "occurred_at": at, "recorded_at": at, "reason": cap_reason(reason), "errors": cap_errors(errors),
        # Only ids the event's model takes as they are: a sender's odd id must not stop the rejection.
        **{k: v for k, v in ids.items() if k in ("notification_id", "command_id", "case_id") and _plain_id(v)},
        **(extra or {}),
    }
    message_id = (delivery.message_id or "").strip()  # already escaped to printable text
    if message_id:
        event["message_id"] = message_id
    return event


def _plain_id(value) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 200 and value.isprintable() and value == value.strip()


def rejection_row(event: dict, at: datetime) -> dict:
    try:
        body = serialize_event(event)
    except InvalidEvent:
        # Something the sender chose (an id, an extra field) does not fit the event's model: publish the
        # refusal with what is certain, rather than fail the batch and publish nothing.
        event = {k: event[k] for k in ("schema_version", "event_id", "event_type", "occurred_at", "recorded_at",
                                       "reason", "errors")}
        event["errors"] = [printable(e, 300) for e in event["errors"]]
        body = serialize_event(event)
    return {
        "event_id": event["event_id"], "exchange": EVENTS_EXCHANGE, "routing_key": event["event_type"],
        "body": body, "headers": None,
        "properties": {"message_id": event["event_id"], "type": event["event_type"]},
        "mandatory": False, "created_at": at, "published_at": None, "attempts": 0,
    }


def dead_letter_row(delivery: Delivery, reason: str, at: datetime, original_size: int | None = None) -> dict:
    """A copy of the refused message for earlyhelp.dead-letter, published mandatory through the outbox.

    Headers and properties are made storable (json_safe) and bounded (storable_headers): whatever the
    sender put there, the row goes into a JSON/JSONB column and its header frame fits the broker's
    frame size when the relay publishes it.
    """
    sent = {k: v for k, v in (delivery.headers or {}).items()
            if not _header_name(k).lower().startswith(RESERVED_HEADER_PREFIXES)}
    headers = storable_headers(sent)
    headers.update(_engine_headers(delivery, reason, at))
    if delivery.user_id:
        headers["x-earlyhelp-original-user-id"] = json_safe(delivery.user_id)
    body = delivery.body
    if original_size is not None or len(body) > MAX_BODY_BYTES:
        headers["x-earlyhelp-truncated"] = original_size or len(body)
        body = body[:KEEP_BYTES_OF_OVERSIZED]
    properties = {k: json_safe(_plain(delivery.properties[k])) for k in _KEPT_PROPERTIES
                  if delivery.properties.get(k) is not None}
    return {
        "event_id": str(uuid.uuid4()), "exchange": "", "routing_key": DEAD_LETTER_QUEUE, "body": bytes(body),
        "headers": headers, "properties": properties, "mandatory": True, "created_at": at,
        "published_at": None, "attempts": 0,
    }


def minimal_dead_letter_row(delivery: Delivery, reason: str, at: datetime) -> dict:
    """The copy kept when the full one could not be stored: the body (the first 64 KiB of an oversized
    one), the reason, and where it came from; none of the sender's headers or properties."""
    row = dead_letter_row(Delivery(body=delivery.body, exchange=delivery.exchange,
                                   routing_key=delivery.routing_key), reason, at)
    row["headers"]["x-earlyhelp-minimal-copy"] = "headers and properties could not be stored"
    return row


def _engine_headers(delivery: Delivery, reason: str, at: datetime) -> dict:
    return {
        "x-earlyhelp-error": json_safe(reason[:1000]),
        "x-earlyhelp-original-exchange": json_safe(delivery.exchange),
        "x-earlyhelp-original-routing-key": json_safe(delivery.routing_key),
        "x-earlyhelp-refused-at": at.isoformat(),
    }


def _plain(value):
    return int(value.timestamp()) if isinstance(value, datetime) else value


def _header_name(key) -> str:
    return bytes(key).decode("utf-8", "backslashreplace") if isinstance(key, (bytes, bytearray)) else str(key)


# Bounds on the sender's headers kept on a copy. RabbitMQ's default frame_max is 128 KiB and a content
# header must fit one frame: a copy whose headers outgrew it would make the relay's connection fail on
# every attempt and hold up every event behind it.
MAX_KEPT_HEADERS = 100
MAX_HEADER_TEXT = 4096  # characters of one string (or bytes) value
MAX_KEPT_HEADER_BYTES = 32 * 1024  # all kept headers together, as JSON
MAX_HEADER_NESTING = 8
HEADERS_TRIMMED = "x-earlyhelp-headers-trimmed"


def storable_headers(headers: dict) -> dict:
    """The sender's headers as JSON can hold them (json_safe), at most MAX_KEPT_HEADERS of them, each
    string cut to MAX_HEADER_TEXT characters and all within MAX_KEPT_HEADER_BYTES; what was left out
    or cut is said in HEADERS_TRIMMED."""
    kept: dict = {}
    size = dropped = cut = 0
    for key, value in headers.items():
        if len(kept) >= MAX_KEPT_HEADERS:
            dropped += 1
            continue
        name = json_safe(_header_name(key))[:255]
        safe = json_safe(value, MAX_HEADER_NESTING)
        bounded = _cut_text(safe)
        cut += bounded is not safe
        entry = len(json.dumps([name, bounded]))
        if size + entry > MAX_KEPT_HEADER_BYTES:
            dropped += 1
            continue
        kept[name], size = bounded, size + entry
    if dropped or cut:
        kept[HEADERS_TRIMMED] = (f"{dropped} of {len(headers)} headers left out, {cut} cut to "
                                 f"{MAX_HEADER_TEXT} characters (limits: {MAX_KEPT_HEADERS} headers, "
                                 f"{MAX_KEPT_HEADER_BYTES} bytes)")
    return kept


def _cut_text(value):
    """`value` with every string over MAX_HEADER_TEXT cut; the same object when nothing was cut."""
    if isinstance(value, str):
        return value[:MAX_HEADER_TEXT] + "…" if len(value) > MAX_HEADER_TEXT else value
    if isinstance(value, dict):
        items = {k: _cut_text(v) for k, v in value.items()}
        return value if all(items[k] is value[k] for k in value) else items
    if isinstance(value, list):
        items = [_cut_text(v) for v in value]
        return value if all(a is b for a, b in zip(items, value)) else items
    return value


def json_safe(value, depth: int = 32):
    """An AMQP header table (or property) as JSON and both databases can hold it, for the outbox and
    for `earlyhelp dead-letters` ids and display: bytes, datetimes and decimals become text; NUL
    (PostgreSQL's JSONB refuses it) and lone surrogates (no JSON encoder writes them) become backslash
    escapes; NaN and infinities become text; tables nested past `depth` become a note."""
    if isinstance(value, str):
        return _storable_text(value)
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if depth <= 0 and isinstance(value, (dict, list, tuple)):
        return "(nested too deep)"
    if isinstance(value, dict):
        return {_storable_text(_header_name(k)): json_safe(v, depth - 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v, depth - 1) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _storable_text(bytes(value).decode("utf-8", "replace"))
    if isinstance(value, datetime):
        return value.isoformat()
    try:
        return _storable_text(str(value))
    except Exception:  # noqa: BLE001 - an object whose str() fails is named by its type
        return f"({type(value).__name__})"


def _storable_text(text: str) -> str:
    if "\x00" in text:
        text = text.replace("\x00", "\\u0000")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates, as py-amqp and the standard library let through
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text
