"""Refused messages: a `*.rejected` event with the reason, and a copy in earlyhelp.dead-letter.

Both go through the outbox in the handling transaction, so a refusal is published with confirms
and never lost between the database and the broker. A copy keeps the original body and properties;
headers a sender set that only the broker or the engine may set (x-death, x-earlyhelp-*) are dropped,
so a forged one means nothing.
"""
from __future__ import annotations

import uuid
from datetime import datetime

from earlyhelp.schemas import DEAD_LETTER_QUEUE, EVENTS_EXCHANGE, serialize_event

from .delivery import Delivery

KEEP_BYTES_OF_OVERSIZED = 64 * 1024
_RESERVED_HEADER_PREFIXES = ("x-earlyhelp-", "x-death", "x-first-death", "x-last-death", "x-delivery-count")
# AMQP properties worth keeping on the copy; user_id is not one: RabbitMQ would refuse the engine
# republishing another user's id, so it travels as a header instead.
_KEPT_PROPERTIES = ("content_type", "content_encoding", "message_id", "correlation_id", "timestamp", "type",
                    "app_id", "reply_to", "priority")


def rejection_event(event_type: str, reason: str, errors: list[str], ids: dict, delivery: Delivery,
                    at: datetime, extra: dict | None = None) -> dict:
    event = {
        "schema_version": 1, "event_id": str(uuid.uuid4()), "event_type": event_type,
        "occurred_at": at, "recorded_at": at, "reason": reason, "errors": list(errors),
        **{k: v for k, v in ids.items() if k in ("notification_id", "command_id", "case_id") and v},
        **(extra or {}),
    }
    if delivery.message_id:
        event["message_id"] = delivery.message_id
    return event


def rejection_row(event: dict, at: datetime) -> dict:
    return {
        "event_id": event["event_id"], "exchange": EVENTS_EXCHANGE, "routing_key": event["event_type"],
        "body": serialize_event(event), "headers": None,
        "properties": {"message_id": event["event_id"], "type": event["event_type"]},
        "mandatory": False, "created_at": at, "published_at": None, "attempts": 0,
    }


def dead_letter_row(delivery: Delivery, reason: str, at: datetime, original_size: int | None = None) -> dict:
    """A copy of the refused message for earlyhelp.dead-letter, published mandatory through the outbox."""
    headers = {k: v for k, v in (delivery.headers or {}).items()
               if not str(k).lower().startswith(_RESERVED_HEADER_PREFIXES)}
    headers.update({
        "x-earlyhelp-error": reason[:1000],
        "x-earlyhelp-original-exchange": delivery.exchange,
        "x-earlyhelp-original-routing-key": delivery.routing_key,
        "x-earlyhelp-refused-at": at.isoformat(),
    })
    if delivery.user_id:
        headers["x-earlyhelp-original-user-id"] = delivery.user_id
    body = delivery.body
    if original_size is not None or len(body) > 1024 * 1024:
        headers["x-earlyhelp-truncated"] = original_size or len(body)
        body = body[:KEEP_BYTES_OF_OVERSIZED]
    properties = {k: _plain(delivery.properties[k]) for k in _KEPT_PROPERTIES
                  if delivery.properties.get(k) is not None}
    return {
        "event_id": str(uuid.uuid4()), "exchange": "", "routing_key": DEAD_LETTER_QUEUE, "body": body,
        "headers": json_safe(headers), "properties": properties, "mandatory": True, "created_at": at,
        "published_at": None, "attempts": 0,
    }


def _plain(value):
    return int(value.timestamp()) if isinstance(value, datetime) else value


def json_safe(value):
    """An AMQP header table as JSON can hold it (bytes, datetimes and decimals are not JSON): for the
    outbox, and for `earlyhelp dead-letters` ids and display."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
