"""`earlyhelp serve`: consumes notifications and commands, handles them in batches, acks after commit.

The loop: drain deliveries from the broker (up to a batch, waiting a few milliseconds for more once
one has come) → BatchProcessor (one transaction) → ack the batch with one `multiple` ack → wake the
outbox relay. The relay (its own thread and connection) publishes what the transaction stored.

Two batches are in hand at once, so the phases that wait on different things overlap: while a handling
thread runs batch N's transaction (mostly waiting on PostgreSQL), the consuming thread drains and parses
batch N+1; it acks N as soon as N has committed, then hands N+1 over. Batches are still handled one after
another in the order they came, each committed before it is acked; the broker connection is only ever
used by the consuming thread (py-amqp connections are not thread-safe).

The connection is re-established with backoff whenever the broker goes away; anything not yet acked is
redelivered by the broker and recognised as a repeat if it was already committed (a batch that was being
handled when the connection went is waited for first, so batches never overlap).
On SIGTERM or SIGINT the engine stops consuming, handles and acks what it already holds, lets the relay
publish what is pending, and exits 0.

The runtime only runs: its collaborators (database engine, batch processor, relay, scanner, senders) are
built and wired by earlyhelp/bootstrap.py, the one composition root.
"""
from __future__ import annotations

import signal
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from functools import partial
from typing import Callable

from kombu import Connection, Consumer
from kombu.exceptions import OperationalError as BrokerUnreachable

from earlyhelp import buffered_amqp, metrics
from earlyhelp.clock import next_backoff
from earlyhelp.config import Settings
from earlyhelp.logs import get_logger
from earlyhelp.persistence.database import migrate
from earlyhelp.persistence.failures import is_database_unavailable

from . import tolerant_amqp
from .batch import UNSETTLED, BatchProcessor, BatchResult, DatabaseUnavailable, Prepared
from .delivery import Delivery
from .topology import INPUT_QUEUES, declare_topology

log = get_logger("earlyhelp.engine")

COLLECT_WAIT_S = 0.003  # once one delivery has come, how long to wait for more to fill a batch
FAULT_PAUSE_S = 1.0  # after a batch failed in a way no message should cause, before taking the next
HEARTBEAT_EVERY_S = 0.5  # while waiting for a batch's commit (a database outage can hold it for minutes)

# A message_id or routing key that is not UTF-8, or headers nested past the recursion limit, made py-amqp
# raise out of drain_events and stop the engine (consumers/tolerant_amqp.py).
tolerant_amqp.install()
# Frames cut from one recv of up to 64 KiB, not three recv calls and two timeout changes per frame
# (earlyhelp/buffered_amqp.py).
buffered_amqp.install()


def broker_connection(url: str, ca_file: str | None = None) -> Connection:
    if url.startswith("memory://"):
        # In-process only: no confirms, returns, queue arguments or dead-lettering (docs/engineering.md).
        return Connection(url, transport_options={"polling_interval": 0.01})
    if url.startswith("amqps://"):
        # The server certificate must chain to ca_file (EARLYHELP_BROKER_CA_FILE) or a system CA, and name
        # the host: an untrusted certificate fails the connection, never falls back to plaintext.
        # server_hostname None: kombu fills in the host of the URL it is connecting to.
        tls = {"cert_reqs": ssl.CERT_REQUIRED, "server_hostname": None,
               "ca_certs": str(ca_file) if ca_file else None}
        return _TlsConnection(url, heartbeat=30, connect_timeout=5, ssl=tls)
    if ca_file:
        raise ValueError("EARLYHELP_BROKER_CA_FILE is set but the broker URL is not amqps://")
    return Connection(url, heartbeat=30, connect_timeout=5)


class _TlsConnection(Connection):
    """kombu writes the host it connects to into ssl["server_hostname"] in place: after a failover switch
    the next broker would be checked against the first one's name. Cleared before each switch."""

    def switch(self, conn_str):
        if isinstance(self.ssl, dict):
            self.ssl["server_hostname"] = None
        super().switch(conn_str)


class EngineStatus:
    """What the engine's parts share while it runs: the stop flag, and whether the broker and the database are
    up (/readyz, /metrics)."""

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self.broker_connected = False
        self.database_up = False

    def database_state(self, up: bool) -> None:
        self.database_up = up
        metrics.DATABASE_UP.set(1 if up else 0)

    def broker_state(self, up: bool) -> None:
        self.broker_connected = up
        metrics.BROKER_CONNECTED.set(1 if up else 0)

    def patient_sleep(self, seconds: float) -> None:
        """Sleep while holding a batch (database away), waking early when the engine stops. The consuming
        thread keeps the broker connection's heartbeats going meanwhile (EngineRuntime._settle)."""
        self.stopping.wait(seconds)


@dataclass
class _InHand:
    """A batch handed to the handling thread: its deliveries (acked by the consuming thread) and the result."""
    deliveries: list[Delivery]
    result: Future
    size: int  # bytes of the bodies, counted against max_unacked_bytes until acked


class EngineRuntime:
    """The consume loop and the threads beside it (relay, SLA scanner, extras), given everything it runs."""

    def __init__(self, settings: Settings, clock: Callable[[], datetime], *, status: EngineStatus, db,
                 processor: BatchProcessor, relay, scanner, senders, connect: Callable[[], Connection],
                 migrate_on_start: bool = True,
                 extra_threads: list[Callable[[threading.Event], None]] | None = None) -> None:
        self.settings, self.clock, self.status = settings, clock, status
        self.db, self.processor, self.relay, self.scanner = db, processor, relay, scanner
        self.senders, self.connect = senders, connect
        self.migrate_on_start = migrate_on_start
        self.extra_threads = list(extra_threads or [])
        self.pending: list[Delivery] = []
        self.in_hand: _InHand | None = None
        self.handled_total = 0
        # One thread handles batches, one at a time: the order of batches is the order of the deliveries.
        self._handler: ThreadPoolExecutor | None = None

    @property
    def stopping(self) -> threading.Event:
        return self.status.stopping

    @property
    def broker_connected(self) -> bool:
        return self.status.broker_connected

    @property
    def database_up(self) -> bool:
        return self.status.database_up

    # -- lifecycle -------------------------------------------------------------------------------
    def run(self, install_signals: bool = True) -> int:
        if install_signals:
            signal.signal(signal.SIGTERM, lambda *_: self.stop())
            signal.signal(signal.SIGINT, lambda *_: self.stop())
        if self.migrate_on_start:
            self._migrate_when_the_database_answers()
        self.status.database_state(True)
        if self.senders.is_open:
            log.warning("no senders file (EARLYHELP_SENDERS): the engine is open to every sender, with or "
                        "without user_id; every broker user may send every source and command")
        if self.settings.is_memory_broker:
            log.warning("running on kombu's in-memory transport: one process only, no publisher confirms, "
                        "no queue arguments, no dead-lettering by the broker")
        relay_stop = threading.Event()
        threads = [threading.Thread(target=self.relay.run, args=(relay_stop,), name="outbox-relay", daemon=True)]
        threads += [threading.Thread(target=t, args=(self.stopping,), name=getattr(t, "__name__", "worker"),
                                     daemon=True) for t in self.extra_threads]
        for thread in threads:
            thread.start()
        log.info("engine started", broker=url_without_password(self.settings.broker_url), database=self.db.dialect.name)
        self._handler = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch-handler")
        try:
            self._consume_until_stopped()
        finally:
            self._handler.shutdown(wait=True)
            relay_stop.set()
            threads[0].join(timeout=15)
            try:
                self.relay.drain(timeout=10)  # publish what the last batches stored
            except Exception as error:  # noqa: BLE001 - left in the outbox for the next start
                log.warning("outbox not fully drained at shutdown", error=type(error).__name__)
            for thread in threads[1:]:
                thread.join(timeout=5)
            self.db.dispose()
        log.info("engine stopped", handled=self.handled_total)
        return 0

    def stop(self) -> None:
        self.stopping.set()

    def _migrate_when_the_database_answers(self) -> None:
        """A worker restarted while PostgreSQL is restarting waits for it, instead of exiting."""
        backoff = 0.5
        while True:
            try:
                migrate(self.settings.database_url)
                return
            except Exception as error:  # noqa: BLE001 - sorted below
                if not is_database_unavailable(error) or self.stopping.is_set():
                    raise
                log.warning("database unavailable at start; waiting for it", error=type(error).__name__,
                            retry_in_s=backoff)
                self.stopping.wait(backoff)
                backoff = next_backoff(backoff)

    def ready(self) -> tuple[bool, str]:
        ok = self.broker_connected and self.database_up and not self.stopping.is_set()
        return ok, f"broker={'up' if self.broker_connected else 'down'} database={'up' if self.database_up else 'down'}"

    # -- consuming -------------------------------------------------------------------------------
    def _consume_until_stopped(self) -> None:
        backoff = 0.2
        while not self.stopping.is_set():
            conn = self.connect()
            try:
                conn.ensure_connection(max_retries=1)
                channel = conn.channel()
                channel.basic_qos(0, self.settings.prefetch, False)
                declare_topology(channel)
                consumers = [Consumer(channel, queues=[queue], on_message=partial(self._received, name),
                                      no_ack=False, auto_declare=False)
                             for name, queue in INPUT_QUEUES.items()]
                for consumer in consumers:
                    # nowait: Consumer.consume() waits for consume-ok, and while it waits py-amqp hands over
                    # every delivery the other queue sends (a full prefetch of large bodies at a start with
                    # a backlog), past max_unacked_bytes. Without the wait, deliveries come only through
                    # _collect, which keeps the budget.
                    for queue in consumer.queues:
                        consumer._basic_consume(queue, no_ack=False, nowait=True)
                self.status.broker_state(True)
                backoff = 0.2
                while not self.stopping.is_set():
                    self._collect(conn)
                    prepared = self._prepare()  # parsed while the batch before commits
                    self._settle(conn, channel)  # the batch before: committed, then acked
                    self._hand_over(prepared)
                    conn.heartbeat_check()
                # Stopping: no new deliveries; handle and ack what is already here.
                for consumer in consumers:
                    consumer.cancel()
                self._collect(conn, wait=0.2)
                prepared = self._prepare()
                self._settle(conn, channel)
                self._hand_over(prepared)
                self._settle(conn, channel)
            except DatabaseUnavailable:
                log.warning("stopping while the database is away; unacked deliveries return to the queue")
                self.pending.clear()
            # ensure_connection wraps "refused" / "timed out" as kombu's OperationalError, which is
            # none of the transport's connection_errors: without it a broker that is still away at the
            # reconnect would end the engine.
            except conn.connection_errors + conn.channel_errors + (OSError, BrokerUnreachable) as error:
                self.status.broker_state(False)
                self.pending.clear()  # unacked: the broker redelivers them
                log.warning("broker connection lost; reconnecting", error=type(error).__name__,
                            detail=str(error)[:200], retry_in_s=backoff)
                self.stopping.wait(backoff)
                backoff = next_backoff(backoff)
            except Exception as error:  # noqa: BLE001 - the consume loop never dies from one message
                # What is held goes back to the broker with the connection; the queue's delivery limit
                # dead-letters a message that keeps causing this.
                self.pending.clear()
                log.error("consume loop fault; reconnecting", error=type(error).__name__, retry_in_s=backoff)
                self.stopping.wait(backoff)
                backoff = next_backoff(backoff)
            finally:
                # A batch still being handled finishes (or gives up, when stopping) before anything else is
                # handled: its deliveries, unacked on a connection that is gone, come back as repeats.
                self._abandon_in_hand()
                self.status.broker_state(False)
                try:
                    conn.release()
                except Exception:  # noqa: BLE001
                    pass

    def _received(self, input_name: str, message) -> None:
        info = message.delivery_info
        body = message.body
        body = bytes(body) if isinstance(body, (bytes, bytearray, memoryview)) else str(body).encode("utf-8", "replace")
        try:
            properties = {k: v for k, v in (message.properties or {}).items() if k != "application_headers"}
            properties.setdefault("content_type", message.content_type)
            properties.setdefault("content_encoding", message.content_encoding)
            headers = dict(message.headers or {})
        except Exception as error:  # noqa: BLE001 - a sender's odd properties must not stop the loop
            log.warning("delivery properties unreadable; handled without them", error=type(error).__name__)
            properties, headers = {}, {}
        self.pending.append(Delivery(
            body=body, exchange=str(info.get("exchange", "")), routing_key=str(info.get("routing_key", "")),
            properties=properties, headers=headers, delivery_tag=message.delivery_tag,
            redelivered=bool(info.get("redelivered")), handle=message))

    def _collect(self, conn: Connection, wait: float = 1.0) -> None:
        """Take deliveries for the next batch: up to one batch, and no further once the bodies held (this
        batch's and the one being handled) reach max_unacked_bytes.

        With no batch being handled: wait up to `wait` for a first delivery, then a few ms more for others.
        With one being handled: take what comes until that batch has committed (its ack then goes first),
        keeping the connection's heartbeats going if the commit takes long.

        RabbitMQ ignores basic.qos prefetch_size, so the byte bound is kept here: the broker sends up
        to `prefetch` deliveries, but they wait in the socket until drained, one per drain_events. The
        bodies held are at most the budget plus the last message taken (itself bounded by the broker's
        max_message_size).
        """
        limit, budget = self.settings.batch_size, self.settings.max_unacked_bytes
        in_hand = self.in_hand
        held = sum(len(d.body) for d in self.pending) + (in_hand.size if in_hand else 0)
        heartbeat_at = time.monotonic() + HEARTBEAT_EVERY_S
        try:
            if not self.pending and in_hand is None:
                conn.drain_events(timeout=wait)
                held += sum(len(d.body) for d in self.pending)
            while len(self.pending) < limit and held < budget:
                if in_hand is not None and in_hand.result.done():
                    return  # ack the batch before now; what came meanwhile is the next batch
                before = len(self.pending)
                try:
                    conn.drain_events(timeout=COLLECT_WAIT_S)
                except socket.timeout:
                    if in_hand is None or self.stopping.is_set():
                        return
                    if time.monotonic() > heartbeat_at:  # a commit held by a database outage
                        conn.heartbeat_check()
                        heartbeat_at = time.monotonic() + HEARTBEAT_EVERY_S
                    continue
                held += sum(len(d.body) for d in self.pending[before:])
        except socket.timeout:
            pass

    def _prepare(self) -> Prepared | None:
        """Parse what was collected, here on the consuming thread (while the batch before commits)."""
        if not self.pending:
            return None
        batch, self.pending = self.pending, []
        return self.processor.prepare(batch)

    def _hand_over(self, prepared: Prepared | None) -> None:
        """Give a parsed batch to the handling thread; the batch before it has been settled."""
        if prepared is not None:
            self.in_hand = _InHand(prepared.deliveries, self._handler.submit(self.processor.handle, prepared),
                                   sum(len(d.body) for d in prepared.deliveries))

    def _settle(self, conn: Connection, channel) -> None:
        """Wait for the batch in hand to commit, keeping the connection's heartbeats going, then ack it.

        A database outage can hold a batch for minutes; the handling thread must not touch the connection,
        so the heartbeats are sent from here."""
        in_hand = self.in_hand
        if in_hand is None:
            return
        while True:
            try:
                result: BatchResult = in_hand.result.result(timeout=HEARTBEAT_EVERY_S)
                break
            except TimeoutError:
                try:
                    conn.heartbeat_check()
                except Exception:  # noqa: BLE001 - a lost connection shows up at the ack
                    pass
            except DatabaseUnavailable:
                self.in_hand = None
                raise
            except Exception as error:  # noqa: BLE001 - a fault no message should cause; the loop goes on
                self.in_hand = None
                log.error("batch failed; its deliveries go back to the queue", error=type(error).__name__,
                          batch=len(in_hand.deliveries))
                self._ack(channel, in_hand.deliveries, returned=set(range(len(in_hand.deliveries))))
                self.stopping.wait(FAULT_PAUSE_S)
                return
        self.in_hand = None
        # A message neither handled nor dead-lettered goes back to the queue, whose delivery limit
        # dead-letters it (with x-death) if it keeps failing; the others are acked.
        self._ack(channel, in_hand.deliveries,
                  returned={i for i, h in enumerate(result.handled) if h.outcome == UNSETTLED})
        self.handled_total += len(in_hand.deliveries)
        self.relay.wake.set()

    def _abandon_in_hand(self) -> None:
        """After the connection went: let the batch being handled end (committed or given up); its acks are
        lost with the connection, so the broker redelivers its deliveries, recognised as repeats."""
        in_hand, self.in_hand = self.in_hand, None
        if in_hand is None:
            return
        try:
            in_hand.result.result()
        except Exception as error:  # noqa: BLE001 - logged; the deliveries come back either way
            log.warning("a batch in hand when the connection went did not commit", error=type(error).__name__,
                        batch=len(in_hand.deliveries))

    def _ack(self, channel, batch: list[Delivery], returned: set[int] = frozenset()) -> None:
        amqp = getattr(channel.connection.client.transport, "driver_type", "") == "amqp"
        if amqp and not returned:
            # One frame for the batch. Every delivery with a lower tag belongs to this batch or to one settled
            # before it: the batch being collected meanwhile came after it on this channel.
            channel.basic_ack(max(d.delivery_tag for d in batch), multiple=True)
            return
        for i, delivery in enumerate(batch):
            if i in returned:
                delivery.handle.reject(requeue=True)  # counts as a delivery attempt on a quorum queue
            else:
                delivery.handle.ack()


def redeclare_topology(conn: Connection | None) -> None:
    """After the broker returned an engine message (its queue was gone), declare the topology again."""
    if conn is not None:
        try:
            declare_topology(conn.default_channel)
        except Exception as error:  # noqa: BLE001
            log.warning("could not redeclare the topology", error=type(error).__name__)


def url_without_password(url: str) -> str:
    """The broker URL (or kombu's `;`-joined failover list) with every password masked, for logs and messages."""
    from earlyhelp.secrets import mask_secrets  # the one masking function (earlyhelp/secrets.py)

    return mask_secrets(url)
