"""Replaying and purging copies in earlyhelp.dead-letter: the writes, on top of the read-only session.

Copies are read, identified and classified (made by the engine, the broker or a sender) by
earlyhelp.reports.dead_letters; `DeadLetterQueue` is that session with the two ways of removing a copy.

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

import pika
from pika.exceptions import ChannelClosedByBroker, NackError, UnroutableError

from earlyhelp.consumers.refusals import RESERVED_HEADER_PREFIXES
from earlyhelp.reports.broker_status import AccessRefused, access_refused
from earlyhelp.reports.dead_letters import SENDER, DeadLetter, DeadLetterReader
from earlyhelp.schemas import COMMANDS_EXCHANGE, NOTIFICATIONS_EXCHANGE

_PROPERTY_NAMES = ("content_type", "content_encoding", "message_id", "correlation_id", "timestamp", "type",
                   "app_id", "reply_to", "priority", "expiration")
# The only exchanges replay publishes to.
REPLAY_EXCHANGES = (NOTIFICATIONS_EXCHANGE, COMMANDS_EXCHANGE)


def replay_target(copy: DeadLetter) -> tuple[tuple[str, str] | None, str]:
    """(exchange, routing key) to replay the copy to, or None and why not."""
    made_by, exchange, key = copy.made_by, copy.original_exchange, copy.original_routing_key
    if made_by == SENDER:
        return None, ("not replayed: a copy made by a sender, not by the engine or the broker, so "
                      "where it came from cannot be trusted (purge it once read)")
    if exchange is None or key is None:
        return None, "not replayed: its original exchange and routing key cannot be established"
    if exchange not in REPLAY_EXCHANGES:
        return None, (f"not replayed: replay sends only to {' or '.join(REPLAY_EXCHANGES)}, "
                      f"and this copy names {exchange or '(the default exchange)'}")
    return (exchange, key), ""


def replay_properties(copy: DeadLetter, user_id: str | None = None) -> pika.BasicProperties:
    """The copy's properties for its replay. `user_id` is the replaying operator's broker user: the
    broker accepts no other, and the engine then holds the replay to that user's senders entry."""
    headers = {k: v for k, v in copy.headers.items() if not str(k).lower().startswith(RESERVED_HEADER_PREFIXES)}
    kept = {name: getattr(copy.properties, name) for name in _PROPERTY_NAMES
            if getattr(copy.properties, name, None) is not None}
    return pika.BasicProperties(delivery_mode=2, headers=headers or None, user_id=user_id, **kept)


class DeadLetterQueue(DeadLetterReader):
    """A session on earlyhelp.dead-letter: read (holding copies unacked), replay, remove, release."""

    def __init__(self, broker_url: str, engine_users: frozenset[str] | None = None,
                 ca_file: str | None = None) -> None:
        super().__init__(broker_url, engine_users, ca_file)
        self.publishing = None

    def replay(self, copy: DeadLetter) -> str:
        """Republish with confirms and mandatory; ack (remove) the copy only once the broker confirmed it.

        Returns "replayed", or why the copy was kept (not replayed: no trusted destination; unroutable;
        nacked). Raises AccessRefused if this broker user may not publish there (the copy is kept).
        """
        target, why_not = replay_target(copy)
        if target is None:
            return why_not
        exchange, key = target
        if self.publishing is None:
            self.publishing = self.connection.channel()
            self.publishing.confirm_delivery()
        try:
            self.publishing.basic_publish(exchange, key, copy.body,
                                          replay_properties(copy, self.connection.broker_user), mandatory=True)
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
