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

Replay republishes an engine or broker copy to its original exchange and routing key, only ever
`earlyhelp.notifications` or `earlyhelp.commands` (never `earlyhelp.events`), with its properties but
without the diagnostic headers, and with the operator's own broker user as `user_id` (RabbitMQ accepts
no other; under a senders file the engine holds the replay to the operator's entry), with publisher
confirms and `mandatory`; only when the broker has
confirmed it (routed, not returned, not nacked) is the copy acked and so removed from the dead-letter
queue. If the process dies between the confirm and the ack, the copy stays and a second replay
republishes it: the engine recognises the repeat by its notification_id / command_id (exact repeats
change nothing). Purge removes exactly the copies named (or, with --all, the copies present when it
started), by ack. A broker user without the permission to read the queue or write the exchange gets
AccessRefused (reports.broker_status), and no copy is removed.
"""
from __future__ import annotations

import hashlib
import json
import urllib.parse
from dataclasses import dataclass
from datetime import datetime, timezone

import pika
from pika.exceptions import ChannelClosedByBroker, NackError, UnroutableError

from earlyhelp.consumers.refusals import json_safe
from earlyhelp.consumers.topology import COMMANDS_QUEUE, NOTIFICATIONS_QUEUE
from earlyhelp.schemas import COMMANDS_EXCHANGE, DEAD_LETTER_QUEUE, NOTIFICATIONS_EXCHANGE

from .broker_status import AccessRefused, access_refused, broker_urls, connect

DIAGNOSTIC_PREFIXES = ("x-earlyhelp-", "x-death", "x-first-death", "x-last-death", "x-delivery-count")
_PROPERTY_NAMES = ("content_type", "content_encoding", "message_id", "correlation_id", "timestamp", "type",
                   "app_id", "reply_to", "priority", "expiration")

ENGINE, BROKER, SENDER = "engine", "broker", "sender"
# The only exchanges replay publishes to.
REPLAY_EXCHANGES = (NOTIFICATIONS_EXCHANGE, COMMANDS_EXCHANGE)
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

    def replay_target(self) -> tuple[tuple[str, str] | None, str]:
        """(exchange, routing key) to replay to, or None and why not."""
        made_by, exchange, key = self.made_by, self.original_exchange, self.original_routing_key
        if made_by == SENDER:
            return None, ("not replayed: a copy made by a sender, not by the engine or the broker, so "
                          "where it came from cannot be trusted (purge it once read)")
        if exchange is None or key is None:
            return None, "not replayed: its original exchange and routing key cannot be established"
        if exchange not in REPLAY_EXCHANGES:
            return None, (f"not replayed: replay sends only to {' or '.join(REPLAY_EXCHANGES)}, "
                          f"and this copy names {exchange or '(the default exchange)'}")
        return (exchange, key), ""

    def summary(self) -> dict:
        engine = self.made_by == ENGINE
        return {"id": self.id, "refused_at": self.refused_at, "reason": self.reason,
                "original_exchange": self.original_exchange, "original_routing_key": self.original_routing_key,
                "message_id": self.properties.message_id, "bytes": len(self.body),
                "truncated_from": self.headers.get("x-earlyhelp-truncated") if engine else None,
                "by": self.made_by, "user_id": self.user_id, "sent_by": self.sent_by}

    def replay_properties(self, user_id: str | None = None) -> pika.BasicProperties:
        """The copy's properties for its replay. `user_id` is the replaying operator's broker user: the
        broker accepts no other, and the engine then holds the replay to that user's senders entry."""
        headers = {k: v for k, v in self.headers.items() if not str(k).lower().startswith(DIAGNOSTIC_PREFIXES)}
        kept = {name: getattr(self.properties, name) for name in _PROPERTY_NAMES
                if getattr(self.properties, name, None) is not None}
        return pika.BasicProperties(delivery_mode=2, headers=headers or None, user_id=user_id, **kept)


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

    def __init__(self, broker_url: str, engine_users: frozenset[str] | None = None) -> None:
        self.connection = connect(broker_url)
        self.reading = self.connection.channel()
        self.publishing = None
        # Whose copies are the engine's: the users named in the URL unless the operator connects as
        # someone else and says who the engine is (EARLYHELP_ENGINE_USER).
        self.engine_users = broker_users(broker_url) if engine_users is None else frozenset(engine_users)

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

    def replay(self, copy: DeadLetter) -> str:
        """Republish with confirms and mandatory; ack (remove) the copy only once the broker confirmed it.

        Returns "replayed", or why the copy was kept (not replayed: no trusted destination; unroutable;
        nacked). Raises AccessRefused if this broker user may not publish there (the copy is kept).
        """
        target, why_not = copy.replay_target()
        if target is None:
            return why_not
        exchange, key = target
        if self.publishing is None:
            self.publishing = self.connection.channel()
            self.publishing.confirm_delivery()
        try:
            self.publishing.basic_publish(exchange, key, copy.body,
                                          copy.replay_properties(self.connection.broker_user), mandatory=True)
        except ChannelClosedByBroker as error:
            self.publishing = None
            refused = access_refused(error)
            if refused:
                raise AccessRefused(refused) from None
            raise
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
