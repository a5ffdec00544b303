"""Counting as RabbitMQ's Jepsen tests count: what was sent, what the engine did, what was lost or done twice.

`Collector` gathers every event into a durable queue of its own (it outlives closed connections and a
broker restart) and reads it with fresh connections. `tally` compares the notifications sent with the
database and the events seen: lost (sent, no case), duplicated (a case or transition stored twice),
transitions published under two event ids; republished events (one id seen twice) are at-least-once
delivery, allowed by the contract, and counted apart.
"""
from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from sqlalchemy import func, select

from earlyhelp.persistence.database import make_engine
from earlyhelp.persistence.tables import case_history, cases, outbox, processed_messages


class Collector:
    def __init__(self, broker_url: str, queue: str, exchange: str = "earlyhelp.events", binding: str = "#"):
        self.broker_url, self.queue = broker_url, queue
        self.events: list[tuple[str, dict]] = []
        self._with_channel(lambda ch: (ch.queue_declare(queue, durable=True),
                                       ch.queue_bind(queue, exchange, routing_key=binding)))

    def _with_channel(self, action, attempts: int = 60):
        import pika

        from earlyhelp.producers.upstream_client import _pika_url

        for attempt in range(attempts):
            try:
                connection = pika.BlockingConnection(pika.URLParameters(_pika_url(self.broker_url)))
                try:
                    return action(connection.channel())
                finally:
                    if connection.is_open:
                        connection.close()
            except Exception:  # noqa: BLE001 - the broker may be restarting: try again
                if attempt == attempts - 1:
                    raise
                time.sleep(0.5)

    def pump(self) -> int:
        def read(channel):
            got = 0
            while True:
                method, _props, body = channel.basic_get(self.queue, auto_ack=True)
                if method is None:
                    return got
                self.events.append((method.routing_key, json.loads(body)))
                got += 1
        return self._with_channel(read)

    def wait_for(self, predicate, count: int = 1, timeout: float = 60.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while True:
            found = [e for _, e in self.events if predicate(e)]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out: {len(found)} of {count} matching events; "
                                     f"{len(self.events)} events in all")
            if not self.pump():
                time.sleep(0.1)

    def of_type(self, event_type: str) -> list[dict]:
        return [e for _, e in self.events if e.get("event_type") == event_type]

    def delete(self) -> None:
        self._with_channel(lambda ch: ch.queue_delete(self.queue), attempts=5)


@dataclass
class Tally:
    sent: int
    confirmed: int
    cases: int = 0
    transitions: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    two_event_ids: int = 0
    unpublished_transitions: int = 0
    republished: int = 0
    outbox_pending: int = 0

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.two_event_ids or self.unpublished_transitions
                    or self.outbox_pending)

    def lines(self) -> list[str]:
        return [
            f"sent                                 {self.sent}",
            f"confirmed by the broker              {self.confirmed}",
            f"cases                                {self.cases}",
            f"transitions stored                   {self.transitions}",
            f"lost (confirmed, no effect)          {len(self.lost)}",
            f"duplicated (effect stored twice)     {len(self.duplicated)}",
            f"transitions under two event ids      {self.two_event_ids}",
            f"stored transitions never published   {self.unpublished_transitions}",
            f"events delivered again, same id      {self.republished}  (at-least-once, allowed)",
            f"outbox rows still pending            {self.outbox_pending}",
        ]


def tally(database_url: str, confirmed_notification_ids: list[str], sent: int, events: list[dict],
          confirmed_command_ids: list[str] = ()) -> Tally:
    """Compare what the broker confirmed with what the database holds and what subscribers saw."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            case_rows = conn.execute(select(cases.c.case_id, cases.c.notification_id)).all()
            history = conn.execute(select(case_history.c.case_id, case_history.c.sequence,
                                          case_history.c.event_type, case_history.c.event_id,
                                          case_history.c.caused_by)).all()
            processed = set(conn.execute(select(processed_messages.c.message_key)).scalars())
            pending = conn.execute(select(func.count()).select_from(outbox)
                                   .where(outbox.c.published_at.is_(None))).scalar_one()
    finally:
        engine.dispose()
    result = Tally(sent=sent, confirmed=len(confirmed_notification_ids) + len(confirmed_command_ids),
                   cases=len(case_rows), transitions=len(history), outbox_pending=pending)
    per_notification = Counter(r.notification_id for r in case_rows)
    result.lost += [n for n in confirmed_notification_ids if n not in per_notification]
    # A command's key is in its sender's namespace (command:<user>:<id>) or the shared one (command:<id>).
    processed_commands = {key.rsplit(":", 1)[-1] for key in processed if key.startswith("command:")}
    result.lost += [c for c in confirmed_command_ids if c not in processed_commands]
    result.duplicated += [n for n, k in per_notification.items() if k > 1]
    # A transition is one (case, sequence); a command or notification causes at most one per case.
    per_step = Counter((r.case_id, r.sequence) for r in history)
    result.duplicated += [f"{c}#{s}" for (c, s), k in per_step.items() if k > 1]
    per_cause = Counter((r.case_id, r.caused_by, r.event_type) for r in history)
    result.duplicated += [f"{c}:{cause}:{t}" for (c, cause, t), k in per_cause.items() if k > 1]
    ids_per_transition: dict[tuple, set] = defaultdict(set)
    seen_ids = Counter()
    for event in events:
        seen_ids[event["event_id"]] += 1
        if "sequence" in event:
            ids_per_transition[(event["case_id"], event["sequence"], event["event_type"])].add(event["event_id"])
    result.two_event_ids = sum(1 for ids in ids_per_transition.values() if len(ids) > 1)
    result.unpublished_transitions = sum(1 for r in history if r.event_id not in seen_ids)
    result.republished = sum(k - 1 for k in seen_ids.values() if k > 1)
    return result
