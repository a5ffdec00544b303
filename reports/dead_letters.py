"""Reading, replaying and removing copies in earlyhelp.dead-letter without losing or reordering them.

How a copy is read: `basic_get` without ack on one channel, holding every copy got so far unacked,
until the queue has nothing more ready (or the count seen at the start is reached). Closing that channel
hands every copy not acked back to the queue, in order (a quorum queue delivers returned messages
first, in the order they were returned). A return counts as a delivery attempt on a quorum queue
(the copy gains an `x-delivery-count` header); earlyhelp.dead-letter has no delivery limit, so that is
harmless, and the header is ignored by the id below and dropped by replay.

A copy's id (stable while it sits in the queue, the same for every operator): the first 12 hex digits
of SHA-256 over its body, its message_id and the headers the refusal set (x-earlyhelp-* or the
broker's first x-death entry without its changing `count`). Two copies identical in all of those (the
same message refused twice in one batch) get `ID` and `ID-2`, numbered in queue order.

Replay republishes a copy to its original exchange and routing key, with its properties but without
the diagnostic headers, with publisher confirms and `mandatory`; only when the broker has confirmed it
(routed, not returned, not nacked) is the copy acked and so removed from the dead-letter queue. If the
process dies between the confirm and the ack, the copy stays and a second replay republishes it: the
engine recognises the repeat by its notification_id / command_id (exact repeats change nothing).
Purge removes exactly the copies named (or, with --all, the copies present when it started), by ack.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone

import pika
from pika.exceptions import NackError, UnroutableError

from earlyhelp.consumers.refusals import json_safe
from earlyhelp.producers.upstream_client import _pika_url
from earlyhelp.schemas import DEAD_LETTER_QUEUE

DIAGNOSTIC_PREFIXES = ("x-earlyhelp-", "x-death", "x-first-death", "x-last-death", "x-delivery-count")
_PROPERTY_NAMES = ("content_type", "content_encoding", "message_id", "correlation_id", "timestamp", "type",
                   "app_id", "reply_to", "priority", "expiration")


@dataclass
class DeadLetter:
    """One copy in the dead-letter queue, as got (still unacked) on the reading channel."""

    id: str
    delivery_tag: int
    body: bytes
    properties: pika.BasicProperties
    headers: dict

    @property
    def from_broker(self) -> bool:
        return "x-earlyhelp-error" not in self.headers and bool(self.headers.get("x-death"))

    @property
    def _first_death(self) -> dict:
        deaths = self.headers.get("x-death") or []
        return deaths[-1] if deaths else {}  # x-death lists the most recent first

    @property
    def reason(self) -> str:
        if "x-earlyhelp-error" in self.headers:
            return _text(self.headers["x-earlyhelp-error"])
        death = self._first_death
        if death:
            return f"dead-lettered by the broker: {_text(death.get('reason'))} in {_text(death.get('queue'))}"
        return "no reason recorded"

    @property
    def refused_at(self) -> str:
        if "x-earlyhelp-refused-at" in self.headers:
            return _text(self.headers["x-earlyhelp-refused-at"])
        when = self._first_death.get("time")
        if isinstance(when, datetime):
            return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).isoformat()
        return _text(when) if when is not None else ""

    @property
    def original_exchange(self) -> str | None:
        if "x-earlyhelp-original-exchange" in self.headers:
            return _text(self.headers["x-earlyhelp-original-exchange"])
        death = self._first_death
        return _text(death["exchange"]) if "exchange" in death else None

    @property
    def original_routing_key(self) -> str | None:
        if "x-earlyhelp-original-routing-key" in self.headers:
            return _text(self.headers["x-earlyhelp-original-routing-key"])
        keys = self._first_death.get("routing-keys") or []
        return _text(keys[0]) if keys else None

    def summary(self) -> dict:
        return {"id": self.id, "refused_at": self.refused_at, "reason": self.reason,
                "original_exchange": self.original_exchange, "original_routing_key": self.original_routing_key,
                "message_id": self.properties.message_id, "bytes": len(self.body),
                "truncated_from": self.headers.get("x-earlyhelp-truncated"),
                "by": "broker" if self.from_broker else "engine"}

    def replay_properties(self) -> pika.BasicProperties:
        headers = {k: v for k, v in self.headers.items() if not str(k).lower().startswith(DIAGNOSTIC_PREFIXES)}
        kept = {name: getattr(self.properties, name) for name in _PROPERTY_NAMES
                if getattr(self.properties, name, None) is not None}
        return pika.BasicProperties(delivery_mode=2, headers=headers or None, **kept)


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def copy_key(body: bytes, message_id: str | None, headers: dict) -> str:
    """The hash part of a copy's id (module doc): the same for the same copy on every read."""
    identity = {k: v for k, v in headers.items() if str(k).lower().startswith("x-earlyhelp-")}
    deaths = headers.get("x-death") or []
    if deaths:
        identity["x-death"] = {k: v for k, v in dict(deaths[-1]).items() if k != "count"}
    digest = hashlib.sha256()
    digest.update(json.dumps(json_safe(identity), sort_keys=True).encode())
    digest.update(b"\0" + (message_id or "").encode() + b"\0" + body)
    return digest.hexdigest()[:12]


def plain_headers(headers: dict) -> dict:
    return json_safe(headers)


class DeadLetterQueue:
    """A session on earlyhelp.dead-letter: read (holding copies unacked), replay, remove, release."""

    def __init__(self, broker_url: str) -> None:
        params = pika.URLParameters(_pika_url(broker_url))
        params.connection_attempts, params.socket_timeout = 1, 5
        self.connection = pika.BlockingConnection(params)
        self.reading = self.connection.channel()
        self.publishing = None

    def __enter__(self) -> DeadLetterQueue:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def read_all(self, limit: int | None = None) -> list[DeadLetter]:
        """Every copy ready now (at most the count seen at the start, or `limit`), held unacked in order."""
        present = self.reading.queue_declare(DEAD_LETTER_QUEUE, passive=True).method.message_count
        wanted = present if limit is None else min(present, limit)
        copies, seen = [], {}
        while len(copies) < wanted:
            method, properties, body = self.reading.basic_get(DEAD_LETTER_QUEUE, auto_ack=False)
            if method is None:
                break
            headers = dict(properties.headers or {})
            key = copy_key(body, properties.message_id, headers)
            seen[key] = seen.get(key, 0) + 1
            copy_id = key if seen[key] == 1 else f"{key}-{seen[key]}"
            copies.append(DeadLetter(copy_id, method.delivery_tag, body, properties, headers))
        return copies

    def replay(self, copy: DeadLetter) -> str:
        """Republish with confirms and mandatory; ack (remove) the copy only once the broker confirmed it.

        Returns "replayed", or why the copy was kept: "unroutable", "nacked", "no original destination".
        """
        exchange, key = copy.original_exchange, copy.original_routing_key
        if exchange is None or key is None:
            return "kept: no original exchange and routing key recorded"
        if self.publishing is None:
            self.publishing = self.connection.channel()
            self.publishing.confirm_delivery()
        try:
            self.publishing.basic_publish(exchange, key, copy.body, copy.replay_properties(), mandatory=True)
        except UnroutableError:
            return f"kept: unroutable (no queue bound to {exchange or '(default)'} with {key})"
        except NackError:
            return "kept: the broker refused it (nacked); try again later"
        self.reading.basic_ack(copy.delivery_tag)
        return "replayed"

    def remove(self, copy: DeadLetter) -> None:
        self.reading.basic_ack(copy.delivery_tag)

    def close(self) -> None:
        """Close the connection: every copy got and not acked goes back to the queue."""
        if self.connection.is_open:
            self.connection.close()


def select(copies: list[DeadLetter], ids: list[str]) -> tuple[list[DeadLetter], list[str]]:
    """The copies named by `ids` (a unique prefix of at least 6 characters works), and ids not found."""
    chosen, missing = [], []
    for wanted in ids:
        exact = [c for c in copies if c.id == wanted]
        matches = exact or ([c for c in copies if c.id.startswith(wanted)] if len(wanted) >= 6 else [])
        if len(matches) == 1 and matches[0] not in chosen:
            chosen.append(matches[0])
        elif len(matches) != 1:
            missing.append(wanted if not matches else f"{wanted} (matches {len(matches)} copies; give more of it)")
    return chosen, missing
