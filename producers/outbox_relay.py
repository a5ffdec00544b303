"""The outbox relay: publishes stored events and dead-letter copies with confirms, then marks them sent.

Rows are written in the same transaction as the case change, so an event exists exactly when its
transition does. The relay publishes pending rows in id order, a batch at a time, waits for the
broker's confirms once per batch and marks the confirmed rows. A crash between publish and mark
publishes a row again under the same event_id (at-least-once; subscribers drop repeats by id).
On PostgreSQL several workers' relays share the table: `FOR UPDATE SKIP LOCKED` lets each claim
different rows. While the broker blocks publishers (a memory or disk alarm) the relay publishes
nothing and waits, keeping its connection; rows held back by a block are not counted as attempts.
A confirmed row is deleted in the transaction that claimed it: nothing reads a published row, and a
`case.allocated` body carries the child's details, which must live only where they can be erased
(case_details). Deleting costs PostgreSQL a quarter of what marking did (`profile_batch.py --statements`:
8-9 µs per notification against 29-36; a mark wrote a new version of the row and its index entries, and
the row still had to be deleted later). Rows an earlier version marked published are deleted an hour after.
"""
from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from typing import Callable

from kombu import Connection
from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.engine import Engine

from earlyhelp import metrics
from earlyhelp.clock import next_backoff
from earlyhelp.logs import describe_error, get_logger
from earlyhelp.persistence.case_store import pending_outbox
from earlyhelp.persistence.database import among
from earlyhelp.persistence.failures import is_database_unavailable
from earlyhelp.persistence.tables import outbox

from .confirming_publisher import CONFIRMED, HELD, RETURNED, UNPUBLISHABLE, ConfirmingPublisher, Outgoing

log = get_logger("earlyhelp.outbox")


KEEP_PUBLISHED = timedelta(hours=1)  # rows an earlier version marked published instead of deleting them
# A row the AMQP library cannot encode is tried this often, then left in the table, out of every batch,
# for an operator to see (it stays in the outbox backlog gauge): it would fail the same way forever.
UNPUBLISHABLE_ATTEMPTS = 3
_not_given_up = ~and_(func.coalesce(outbox.c.last_error, "") == UNPUBLISHABLE, outbox.c.attempts >= UNPUBLISHABLE_ATTEMPTS)
PRUNE_EVERY_S = 60.0


class OutboxRelay:
    def __init__(self, engine: Engine, connect: Callable[[], Connection], clock: Callable[[], datetime],
                 batch_size: int = 500, on_return: Callable[[Connection], None] | None = None,
                 on_database_state: Callable[[bool], None] | None = None) -> None:
        self.engine, self.connect, self.clock = engine, connect, clock
        self.batch_size = batch_size
        self.on_return = on_return  # e.g. redeclare the topology when a dead-letter copy came back
        # The relay reads the outbox every half second even when no message comes: it is what notices
        # (for /readyz) that the database went away while the engine is idle.
        self.on_database_state = on_database_state or (lambda up: None)
        self.wake = threading.Event()
        self._connection: Connection | None = None
        self._publisher: ConfirmingPublisher | None = None
        self._locks = engine.dialect.name == "postgresql"
        self._stop = threading.Event()
        self._was_blocked = False
        self._pruned_at = 0.0

    # -- one pass --------------------------------------------------------------------------------
    def publish_pending(self) -> int:
        """Publish one batch of pending rows; returns how many were confirmed. Raises on broker errors."""
        publisher = self._ensure_publisher()
        if self._blocked(publisher):
            return 0
        with self.engine.begin() as conn:
            query = (select(outbox.c.id, outbox.c.exchange, outbox.c.routing_key, outbox.c.body, outbox.c.headers,
                            outbox.c.properties, outbox.c.mandatory)
                     .where(outbox.c.published_at.is_(None), _not_given_up)
                     .order_by(outbox.c.id).limit(self.batch_size))
            if self._locks:
                query = query.with_for_update(skip_locked=True)
            rows = conn.execute(query).all()
            if not rows:
                return 0
            # Rows unpacked as tuples: a Row's attributes are looked up by name, seven per event (py-spy: a
            # tenth of the relay).
            outcomes = publisher.publish_batch([
                Outgoing(exchange, routing_key, bytes(body), dict(properties or {}), headers, mandatory)
                for _, exchange, routing_key, body, headers, properties, mandatory in rows])
            confirmed = [r[0] for r, o in zip(rows, outcomes) if o == CONFIRMED]
            failed = [(r[0], o) for r, o in zip(rows, outcomes) if o not in (CONFIRMED, HELD)]
            if confirmed:
                conn.execute(delete(outbox).where(among(conn, outbox.c.id, confirmed)))
            for row_id, outcome in failed:
                conn.execute(update(outbox).where(outbox.c.id == row_id)
                             .values(attempts=outbox.c.attempts + 1, last_error=outcome))
        metrics.EVENTS_PUBLISHED.inc(len(confirmed))
        if failed:
            log.error("outbox rows not confirmed; kept for retry", count=len(failed),
                      outcomes=sorted({o for _, o in failed}))
            if any(o == RETURNED for _, o in failed) and self.on_return:
                self.on_return(self._connection)
            # Only the broker's refusals mean the connection may be at fault; a row that cannot be encoded
            # is that row's problem, and raising would back off every event behind it.
            if not confirmed and not publisher.blocked and any(o != UNPUBLISHABLE for _, o in failed):
                raise UnconfirmedPublish(f"{len(failed)} outbox rows were not confirmed")
        return len(confirmed)

    def drain(self, timeout: float = 10.0) -> int:
        """Publish until nothing is pending or `timeout` passes (used at shutdown and by tests)."""
        deadline, total = time.monotonic() + timeout, 0
        while time.monotonic() < deadline:
            sent = self.publish_pending()
            total += sent
            if sent == 0 and self.backlog() == 0:
                break
        return total

    def prune_published(self) -> int:
        """Delete rows an earlier version marked published more than KEEP_PUBLISHED ago (a rolling upgrade's
        last ones); returns how many."""
        with self.engine.begin() as conn:
            result = conn.execute(delete(outbox).where(outbox.c.published_at < self.clock() - KEEP_PUBLISHED))
        return result.rowcount

    def backlog(self) -> int:
        with self.engine.connect() as conn:
            count, oldest = pending_outbox(conn)
        metrics.OUTBOX_BACKLOG.set(count)
        metrics.OUTBOX_OLDEST_SECONDS.set((self.clock() - oldest).total_seconds() if oldest else 0)
        return count

    # -- the loop the engine runs in a thread ----------------------------------------------------
    def run(self, stop: threading.Event, idle_wait: float = 0.5) -> None:
        self._stop = stop
        backoff = 0.2
        while not stop.is_set():
            try:
                published = self.publish_pending()
                self.on_database_state(True)
                if time.monotonic() - self._pruned_at > PRUNE_EVERY_S:
                    self._pruned_at = time.monotonic()
                    self.prune_published()
                if published < self.batch_size:  # all caught up: no second, empty pass
                    self.wake.wait(idle_wait)
                    self.wake.clear()
                    if self._publisher is not None:
                        self._publisher.poll()  # heartbeats and blocked/unblocked while idle
                backoff = 0.2
            except Exception as error:  # noqa: BLE001 - broker or database away: wait, reconnect, go on
                if is_database_unavailable(error):
                    self.on_database_state(False)
                log.warning("outbox relay waiting", error=type(error).__name__, detail=describe_error(error)[:200],
                            retry_in_s=backoff)
                self._reset()
                stop.wait(backoff)
                backoff = next_backoff(backoff)
        self._reset()

    def _ensure_publisher(self) -> ConfirmingPublisher:
        if self._publisher is None:
            self._connection = self.connect()
            self._connection.ensure_connection(max_retries=1)
            self._publisher = ConfirmingPublisher(self._connection, keep_waiting=lambda: not self._stop.is_set())
        return self._publisher

    def _blocked(self, publisher: ConfirmingPublisher) -> bool:
        blocked = publisher.poll()
        if blocked != self._was_blocked:
            self._was_blocked = blocked
            metrics.BROKER_BLOCKED.set(1 if blocked else 0)
            if blocked:
                log.warning("the broker blocks publishers (a memory or disk alarm); the outbox waits")
            else:
                log.info("the broker accepts publishes again; publishing the outbox")
        return blocked

    def _reset(self) -> None:
        if self._publisher is not None:
            self._publisher.close()
        if self._connection is not None:
            try:
                self._connection.release()
            except Exception:  # noqa: BLE001
                pass
        self._publisher = self._connection = None


class UnconfirmedPublish(Exception):
    """The broker did not confirm (nack, return or timeout): the rows stay pending."""
