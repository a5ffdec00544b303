"""The consume loop holds two batches: it parses the next while the one before commits, and acks in order.

Run on kombu's memory:// transport with a processor that records what it is asked and when, and whose
first transaction is held until the test lets it go: the next batch must be parsed meanwhile (that is
the overlap), handled only after the first has committed (batches never overlap in the database), and
every delivery acked once. The real broker and databases run the same loop in tests/integration and
tests/e2e; the fault suite runs it through outages.
"""
from __future__ import annotations

import threading
import time
from types import SimpleNamespace

from kombu import Connection, Producer

from earlyhelp.config import Settings
from earlyhelp.consumers.batch import BatchResult, Prepared
from earlyhelp.consumers.handlers import Handled
from earlyhelp.consumers.runtime import EngineRuntime, EngineStatus
from earlyhelp.consumers.topology import NOTIFICATIONS_QUEUE, declare_topology, notifications_exchange

URL = "memory://earlyhelp-overlap"


class RecordingProcessor:
    """prepare/handle as BatchProcessor has them; the first handle waits for `release`."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, list[bytes]]] = []
        self.first_in_handle = threading.Event()
        self.release = threading.Event()
        self.lock = threading.Lock()

    def _note(self, step: str, deliveries) -> None:
        with self.lock:
            self.steps.append((step, [d.body for d in deliveries]))

    def prepare(self, deliveries) -> Prepared:
        self._note("prepare", deliveries)
        return Prepared(deliveries, [], 0.0)

    def handle(self, prepared: Prepared) -> BatchResult:
        deliveries = prepared.deliveries
        self._note("handle", deliveries)
        if not self.first_in_handle.is_set():
            self.first_in_handle.set()
            assert self.release.wait(10), "the test never released the first batch"
        self._note("committed", deliveries)
        return BatchResult([Handled("opened") for _ in deliveries])


def _publish(bodies: list[bytes]) -> None:
    with Connection(URL) as conn:
        producer = Producer(conn.default_channel)
        for body in bodies:
            producer.publish(body, exchange=notifications_exchange, routing_key="notification.test.x")


def _queue_depth() -> int:
    with Connection(URL) as conn:
        return conn.default_channel.queue_declare(NOTIFICATIONS_QUEUE, passive=True).message_count


def _wait(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_the_next_batch_is_parsed_while_the_one_before_commits_and_handled_only_after_it():
    with Connection(URL) as conn:
        declare_topology(conn.default_channel)
        conn.default_channel.queue_purge(NOTIFICATIONS_QUEUE)
    processor = RecordingProcessor()
    settings = Settings(broker_url=URL, database_url="sqlite://", metrics_port=0, batch_size=3)
    relay = SimpleNamespace(run=lambda stop: stop.wait(), drain=lambda timeout: 0, wake=threading.Event())
    runtime = EngineRuntime(settings, clock=None, status=EngineStatus(), db=SimpleNamespace(
        dialect=SimpleNamespace(name="sqlite"), dispose=lambda: None), processor=processor, relay=relay,
        scanner=None, senders=SimpleNamespace(is_open=False), connect=lambda: Connection(URL),
        migrate_on_start=False)
    engine = threading.Thread(target=runtime.run, kwargs={"install_signals": False}, daemon=True)
    engine.start()
    try:
        _publish([b"a1", b"a2", b"a3"])
        assert processor.first_in_handle.wait(10)
        _publish([b"b1", b"b2", b"b3"])
        # While the first batch is held in its transaction, the second is taken and parsed ...
        _wait(lambda: ("prepare", [b"b1", b"b2", b"b3"]) in processor.steps)
        # ... but not handled.
        assert [s for s in processor.steps if s[0] == "handle"] == [("handle", [b"a1", b"a2", b"a3"])]
        processor.release.set()
        _wait(lambda: ("committed", [b"b1", b"b2", b"b3"]) in processor.steps)
        _wait(lambda: _queue_depth() == 0 and runtime.handled_total == 6)
    finally:
        runtime.stop()
        engine.join(15)
    assert not engine.is_alive()
    assert processor.steps == [
        ("prepare", [b"a1", b"a2", b"a3"]), ("handle", [b"a1", b"a2", b"a3"]), ("prepare", [b"b1", b"b2", b"b3"]),
        ("committed", [b"a1", b"a2", b"a3"]), ("handle", [b"b1", b"b2", b"b3"]), ("committed", [b"b1", b"b2", b"b3"])]
