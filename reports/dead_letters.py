"""Reading copies in earlyhelp.dead-letter without losing or reordering them, and what each one is.

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

Who made a copy, and so what is believed (a sender can set any header, and the broker keeps a
message's headers when it dead-letters it, e.g. on `expiration`):
- "engine": the copy's AMQP `user_id` is the engine's broker user (RabbitMQ checks user_id against
  the publisher's login) and it has no `x-death`, so the engine's relay published it: its
  `x-earlyhelp-*` headers (reason, original exchange and key, refused-at) are believed.
- "broker": it has `x-death` and the broker last dead-lettered it from one of the engine's input
  queues. A sender can forge the fields of an x-death entry too (the broker only increments the count
  of a matching entry), so the destination is not taken from it: the exchange is the one that queue
  is bound to, and the routing key is used only if that queue takes such keys.
- "sender": anything else. Shown with its headers, none of them believed; never replayed.

Replaying and purging copies (what changes the queue) is earlyhelp.operations.dead_letters; this
module only reads: `DeadLetterReader` gets the copies and hands every one back when it closes.
"""
from __future__ import annotations

import hashlib
import json
import urllib.parse
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Self

import pika
from pika.exceptions import ChannelClosedByBroker

from earlyhelp.consumers.refusals import json_safe
from earlyhelp.consumers.topology import COMMANDS_QUEUE, NOTIFICATIONS_QUEUE
from earlyhelp.schemas import COMMANDS_EXCHANGE, DEAD_LETTER_QUEUE, NOTIFICATIONS_EXCHANGE

from .broker_status import AccessRefused, access_refused, broker_urls, connect

ENGINE, BROKER, SENDER = "engine", "broker", "sender"
# The engine's input queues: the exchange each is bound to, and the start of the routing keys it takes.
_INPUT_QUEUES = {NOTIFICATIONS_QUEUE: (NOTIFICATIONS_EXCHANGE, "notification."),
                 COMMANDS_QUEUE: (COMMANDS_EXCHANGE, "case.")}


def broker_users(broker_url: str) -> frozenset[str]:
    """The broker users named in a broker URL (each of a `;` failover list); kombu logs in as guest
    when a URL names none, and memory:// has no users at all."""
    users = set()
    for url in broker_urls(broker_url):
        if url.startswith("memory://"):
            continue
        authority = url.split("://", 1)[-1].split("/", 1)[0]
        userinfo = authority.rpartition("@")[0] if "@" in authority else ""
        users.add(urllib.parse.unquote(userinfo.partition(":")[0]) or "guest")
    return frozenset(users)


@dataclass
class DeadLetter:
    """One copy in the dead-letter queue, as got (still unacked) on the reading channel."""

    id: str
    delivery_tag: int
    body: bytes
    properties: pika.BasicProperties
    headers: dict
    engine_users: frozenset[str] = frozenset()  # the engine's broker user(s): whose copies are believed

    @property
    def user_id(self) -> str | None:
        """The AMQP user_id the copy was published with (checked by RabbitMQ against the login)."""
        return _text(self.properties.user_id) if self.properties.user_id else None

    @property
    def _deaths(self) -> list:
        deaths = self.headers.get("x-death")
        return deaths if isinstance(deaths, list) else []

    @property
    def made_by(self) -> str:
        """engine, broker or sender (module doc): what decides which headers are believed."""
        if self._deaths:
            return BROKER if self._input_queue is not None else SENDER
        return ENGINE if self.user_id is not None and self.user_id in self.engine_users else SENDER

    @property
    def from_broker(self) -> bool:
        return self.made_by == BROKER

    @property
    def _last_death(self) -> dict:
        """The entry of the dead-lettering that put the copy here: the broker keeps the latest first."""
        death = self._deaths[0] if self._deaths else {}
        return death if isinstance(death, dict) else {}

    @property
    def _input_queue(self) -> str | None:
        queue = _text(self._last_death.get("queue"))
        return queue if queue in _INPUT_QUEUES else None

    def _believed(self, header: str) -> str | None:
        if self.made_by == ENGINE and header in self.headers:
            return _text(self.headers[header])
        return None

    @property
    def reason(self) -> str:
        made_by = self.made_by
        if made_by == ENGINE:
            return self._believed("x-earlyhelp-error") or "no reason recorded"
        if made_by == BROKER:
            death = self._last_death
            return f"dead-lettered by the broker: {_text(death.get('reason'))} in {_text(death.get('queue'))}"
        return (f"not made by the engine or by the broker from the engine's queues (published by "
                f"{self.user_id or 'a sender that set no user_id'}): its headers are not believed")

    @property
    def refused_at(self) -> str:
        if self.made_by == ENGINE:
            return self._believed("x-earlyhelp-refused-at") or ""
        when = self._last_death.get("time") if self.made_by == BROKER else None
        if isinstance(when, datetime):
            return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).isoformat()
        return _text(when) if when is not None else ""

    @property
    def original_exchange(self) -> str | None:
        if self.made_by == ENGINE:
            return self._believed("x-earlyhelp-original-exchange")
        if self.made_by == BROKER:
            return _INPUT_QUEUES[self._input_queue][0]  # the queue's own exchange, not the header's claim
        return None

    @property
    def original_routing_key(self) -> str | None:
        if self.made_by == ENGINE:
            return self._believed("x-earlyhelp-original-routing-key")
        if self.made_by == BROKER:
            keys = self._last_death.get("routing-keys")
            key = _text(keys[0]) if isinstance(keys, list) and keys else ""
            return key if key.startswith(_INPUT_QUEUES[self._input_queue][1]) else None
        return None

    @property
    def sent_by(self) -> str | None:
        """The broker user that sent the original message, where it is known for certain."""
        if self.made_by == ENGINE:
            return self._believed("x-earlyhelp-original-user-id")
        return self.user_id if self.made_by == BROKER else None

    def summary(self) -> dict:
        engine = self.made_by == ENGINE
        return {"id": self.id, "refused_at": self.refused_at, "reason": self.reason,
                "original_exchange": self.original_exchange, "original_routing_key": self.original_routing_key,
                "message_id": self.properties.message_id, "bytes": len(self.body),
                "truncated_from": self.headers.get("x-earlyhelp-truncated") if engine else None,
                "by": self.made_by, "user_id": self.user_id, "sent_by": self.sent_by}


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


class DeadLetterReader:
    """A session on earlyhelp.dead-letter that reads, holding the copies unacked; closing it hands every
    one back, in order. earlyhelp.operations.dead_letters.DeadLetterQueue adds replay and removal."""

    def __init__(self, broker_url: str, engine_users: frozenset[str] | None = None,
                 ca_file: str | None = None) -> None:
        self.connection = connect(broker_url, ca_file)
        self.reading = self.connection.channel()
        # Whose copies are the engine's: the users named in the URL unless the operator connects as
        # someone else and says who the engine is (EARLYHELP_ENGINE_USER).
        self.engine_users = broker_users(broker_url) if engine_users is None else frozenset(engine_users)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def read_all(self, limit: int | None = None) -> list[DeadLetter]:
        """Every copy ready now (at most the count seen at the start, or `limit`), held unacked in order."""
        present = self.reading.queue_declare(DEAD_LETTER_QUEUE, passive=True).method.message_count
        wanted = present if limit is None else min(present, limit)
        copies, seen = [], {}
        while len(copies) < wanted:
            try:
                method, properties, body = self.reading.basic_get(DEAD_LETTER_QUEUE, auto_ack=False)
            except ChannelClosedByBroker as error:
                raise AccessRefused(access_refused(error) or str(error)) from None
            if method is None:
                break
            headers = dict(properties.headers or {})
            key = copy_key(body, properties.message_id, headers)
            seen[key] = seen.get(key, 0) + 1
            copy_id = key if seen[key] == 1 else f"{key}-{seen[key]}"
            copies.append(DeadLetter(copy_id, method.delivery_tag, body, properties, headers, self.engine_users))
        return copies

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
