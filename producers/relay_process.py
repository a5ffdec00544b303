"""The outbox relay in a process of its own: `serve`'s default on PostgreSQL.

Why a process: a worker is one Python process, and every thread in it takes turns at the GIL. The handling
thread waits on PostgreSQL for half of each batch, and each answer then waits again for the GIL while the
consuming thread parses and the relay encodes and publishes (docs/engineering.md, "the GIL convoy"). The
relay's work is the one part that needs nothing from the handling thread but a nudge, so it moves out:
the same OutboxRelay, run by a child process with its own database and broker connections.

What crosses between the two processes, and nothing else:
- a wake-up: a byte written to a pipe after each committed batch and each SLA scan that raised events, as
  the thread's Event was set; the child still reads the outbox every half second without one;
- what the relay reports, in shared memory the child writes and the engine reads every quarter second:
  events published (earlyhelp_outbox_published_total), whether the broker blocks publishers
  (earlyhelp_broker_blocked), and its database reads' outcome (/readyz);
- "started", in shared memory too: the engine waits for it (consumers/runtime.py, RELAY_STARTUP_S)
  before it consumes;
- a stop flag, likewise: set when the engine stops, after its last batch committed; the child
  then publishes what is pending (up to DRAIN_SECONDS) and exits.
None of them is a multiprocessing Event: its set() waits for every sleeper to wake, so a child killed while
it waited would hang the engine's next set() for ever (a test killing the child found it). A pipe write that
would block is dropped (a full pipe is a wake-up already pending), and plain shared integers need no lock.

The engine's thread supervises the child: if it dies, it is started again, with backoff, and logged. The
child ignores SIGINT and SIGTERM (a Ctrl-C reaches the whole process group; the engine stops it in order)
and exits by itself, without draining, when the engine's process is gone: what it leaves pending stays in
the outbox for the next relay. Several workers' relays share the outbox with `FOR UPDATE SKIP LOCKED`,
as before. The child is started with `spawn`, never `fork`: the engine has threads and open connections.
"""
from __future__ import annotations

import multiprocessing
import os
import select
import signal
import threading
import time
from functools import partial

from earlyhelp import metrics
from earlyhelp.clock import next_backoff
from earlyhelp.logs import get_logger

log = get_logger("earlyhelp.outbox")

DRAIN_SECONDS = 10.0  # at a stop, how long the child publishes what the last batches stored
FORWARD_EVERY_S = 0.25  # how often the engine copies the child's reports into its metrics and status
WATCH_EVERY_S = 0.1  # how often the child looks at the stop flag and whether the engine's process is there


class _Reports:
    """Written by the child, read by the engine: plain shared integers, one writer each, no lock needed."""

    def __init__(self, context) -> None:
        self.published = context.RawValue("q", 0)
        self.blocked = context.RawValue("b", 0)
        self.database_up = context.RawValue("b", 1)
        self.database_reports = context.RawValue("q", 0)  # counts reports, so a repeat "up" is seen too
        self.started = context.RawValue("b", 0)  # set once the child has imported and built its relay

    # -- the child's side ------------------------------------------------------------------------
    def add_published(self, count: int) -> None:
        self.published.value += count

    def set_blocked(self, blocked: bool) -> None:
        self.blocked.value = int(blocked)

    def database_state(self, up: bool) -> None:
        self.database_up.value = int(up)
        self.database_reports.value += 1


class RelayProcess:
    """Runs OutboxRelay in a child process; has the relay's face to the runtime: `wake`, `run`, `drain`."""

    def __init__(self, settings, on_database_state, log_level: str = "INFO") -> None:
        self.settings, self.on_database_state, self.log_level = settings, on_database_state, log_level
        self._context = multiprocessing.get_context("spawn")
        # One pipe for the engine's life, handed to each child: its write end is never closed while a thread
        # may write to it, and the read end kept here gives each new child what came while none ran.
        self._wake_reader, writer = self._context.Pipe(duplex=False)
        self.wake = _WakeWriter(writer)
        self._stop = self._context.RawValue("b", 0)
        self._reports = _Reports(self._context)
        self._process = None
        self.restarts = 0
        self._seen = {"published": 0, "blocked": 0, "database_reports": 0}

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def run(self, stop: threading.Event) -> None:
        """The engine's supervising thread: start the child, forward its reports, start it again if it dies."""
        backoff = 1.0
        while not stop.is_set():
            try:
                self._start()
            except Exception as error:  # noqa: BLE001 - e.g. out of processes or files: the thread must go on
                log.error("could not start the outbox relay process; trying again", error=type(error).__name__,
                          detail=str(error)[:200], retry_in_s=backoff)
            else:
                while self._process.is_alive() and not stop.wait(FORWARD_EVERY_S):
                    self._forward()
                self._forward()
                if stop.is_set():
                    break
                self.restarts += 1
                metrics.RELAY_RESTARTS.inc()
                log.error("the outbox relay process ended; starting it again", exit_code=self._process.exitcode,
                          restarts=self.restarts, retry_in_s=backoff)
            stop.wait(backoff)
            backoff = next_backoff(backoff)
        self._stop.value = 1  # the child publishes what is pending, then exits (drain waits for it)

    def drain(self, timeout: float = DRAIN_SECONDS) -> int:
        """Wait for the stopped child to publish what is pending and exit; returns what it published meanwhile."""
        before = self._reports.published.value
        self._stop.value = 1
        if self._process is not None:
            self._process.join(timeout + 2.0)
            if self._process.is_alive():
                log.warning("the outbox relay process did not stop in time; ending it",
                            pending_rows_stay_in_the_outbox=True)
                self._process.kill()  # SIGKILL: the child ignores SIGTERM (module docstring)
                self._process.join(5.0)
        self._forward()
        return self._reports.published.value - before

    def wait_started(self, timeout: float, stopping: threading.Event) -> bool:
        """Wait until the child is ready to publish (about 0.8 s of imports), so that the engine does not
        consume into an outbox nobody publishes yet: at a start with a backlog, a second of batches would
        pile up and then go out in a burst. False if it is not ready within `timeout` (the engine goes on:
        the events wait in the outbox)."""
        deadline = time.monotonic() + timeout
        while not self._reports.started.value:
            if stopping.is_set() or time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def _start(self) -> None:
        self._reports.started.value = 0
        process = self._context.Process(
            target=_child_main, name="earlyhelp-relay", daemon=True,
            args=(self.settings, self.log_level, self._wake_reader, self._stop, self._reports, os.getpid()))
        process.start()
        self._process = process  # only a started one: drain joins it
        log.info("outbox relay process started", pid=process.pid)

    def _forward(self) -> None:
        reports, seen = self._reports, self._seen
        published = reports.published.value
        if published != seen["published"]:
            metrics.EVENTS_PUBLISHED.inc(published - seen["published"])
            seen["published"] = published
        if reports.blocked.value != seen["blocked"]:
            seen["blocked"] = reports.blocked.value
            metrics.BROKER_BLOCKED.set(seen["blocked"])
        if reports.database_reports.value != seen["database_reports"]:
            seen["database_reports"] = reports.database_reports.value
            self.on_database_state(bool(reports.database_up.value))


class _WakeWriter:
    """The engine's side of the wake-up: `set()` as on a threading.Event, from any thread, never blocking."""

    def __init__(self, connection) -> None:
        self._connection = connection  # kept: closing it would close the descriptor written to
        self._fd = connection.fileno()
        os.set_blocking(self._fd, False)

    def set(self) -> None:
        try:
            os.write(self._fd, b"w")
        except BlockingIOError:  # the pipe is full: the child has a wake-up waiting already
            pass


class _WakeReader:
    """The child's side: what OutboxRelay.run asks of its wake-up, `wait(timeout)` then `clear()`."""

    def __init__(self, connection) -> None:
        self._connection = connection
        self._fd = connection.fileno()
        os.set_blocking(self._fd, False)

    def wait(self, timeout: float) -> bool:
        return bool(select.select([self._fd], [], [], timeout)[0])

    def clear(self) -> None:
        try:
            while os.read(self._fd, 4096):
                pass
        except BlockingIOError:
            pass


def _child_main(settings, log_level: str, wake_connection, stop_flag, reports: _Reports, parent_pid: int) -> None:
    """The child process: the relay on its own connections until the engine says stop or is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from earlyhelp.clock import utc_now
    from earlyhelp.logs import configure_logging
    from earlyhelp.persistence.database import make_engine
    from earlyhelp.producers.outbox_relay import OutboxRelay

    # The engine's connection helpers; importing them also installs its py-amqp read path and its
    # tolerance of malformed frames in this process (consumers/runtime.py).
    from earlyhelp.consumers.runtime import broker_connection, redeclare_topology

    configure_logging(log_level)
    db = make_engine(settings.database_url)
    relay = OutboxRelay(db, partial(broker_connection, settings.broker_url, settings.broker_ca_file), utc_now,
                        on_return=redeclare_topology, on_database_state=reports.database_state,
                        on_published=reports.add_published, on_blocked=reports.set_blocked,
                        wake=_WakeReader(wake_connection))
    reports.started.value = 1
    stop, orphaned = threading.Event(), threading.Event()
    threading.Thread(target=_watch, args=(stop_flag, parent_pid, stop, orphaned), name="stop-watch",
                     daemon=True).start()
    try:
        relay.run(stop)
        if not orphaned.is_set():
            try:
                relay.drain(timeout=DRAIN_SECONDS)
            except Exception as error:  # noqa: BLE001 - left in the outbox for the next start
                log.warning("outbox not fully drained at shutdown", error=type(error).__name__)
        else:
            log.warning("the engine's process is gone; the outbox relay process ends, leaving what is pending "
                        "for the next relay")
    finally:
        db.dispose()


def _watch(stop_flag, parent_pid: int, stop: threading.Event, orphaned: threading.Event) -> None:
    """The child's stop: the engine's flag, or the engine's process gone (this child adopted by another)."""
    while not stop.wait(WATCH_EVERY_S):
        if os.getppid() != parent_pid:
            orphaned.set()
        if stop_flag.value or orphaned.is_set():
            stop.set()
