"""PostgreSQL crashes, restarts or stays away mid-stream: the engine holds, acks nothing uncommitted, loses nothing."""
from __future__ import annotations

import time

import pytest

from earlyhelp.status_server import start_status_server
from tests.conftest import free_port
from tests.faults import services
from tests.faults.helpers import notifications, readyz, settled
from tests.faults.stream import Sender

pytestmark = [pytest.mark.faults, pytest.mark.integration]
ON_POSTGRES = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


def queue_counts(vhost: str, queue: str = "earlyhelp.engine.notifications") -> tuple[int, int]:
    """(ready, unacknowledged) as the broker counts them."""
    for line in services.rabbitmqctl("list_queues", "-p", vhost, "name", "messages_ready",
                                     "messages_unacknowledged").splitlines():
        name, *counts = line.split()
        if name == queue:
            return int(counts[0]), int(counts[1])
    raise AssertionError(f"no queue {queue}")


@ON_POSTGRES
def test_postgres_restarted_immediately_mid_stream_loses_nothing_and_does_nothing_twice(
        start_engine, settings, collector):
    engine = start_engine()
    stream = notifications("pg-restart", 400)
    sender = Sender(settings.broker_url, stream, pause_s=0.002).start()
    collector.wait_for(lambda e: e["event_type"] == "case.checked", count=40)
    services.postgres_restart()  # -m immediate: every connection cut, mid-transaction included
    sender.join()
    result = settled(collector, settings.database_url, sender.confirmed, len(stream))
    assert result.ok and result.cases == 400 and result.transitions == 800, result.lines()
    assert engine.thread.is_alive() and engine.runtime.ready()[0]


@ON_POSTGRES
def test_postgres_away_the_engine_holds_unacked_answers_503_and_catches_up(
        start_engine, settings, collector, vhost):
    engine = start_engine()
    port = free_port()
    server = start_status_server(port, engine.runtime.ready, host="127.0.0.1")
    try:
        assert readyz(port) == 200
        stream = notifications("pg-away", 60)
        with services.postgres_down():
            sender = Sender(settings.broker_url, stream).start().join()
            deadline = time.monotonic() + 15
            while readyz(port) != 503 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert readyz(port) == 503, engine.runtime.ready()
            assert "database=down" in engine.runtime.ready()[1]
            time.sleep(3)  # several retries with backoff
            # Quorum queues publish their counts every few seconds: wait for them to catch up.
            deadline = time.monotonic() + 15
            while sum(queue_counts(vhost)) != len(stream) and time.monotonic() < deadline:
                time.sleep(0.5)
            ready, unacked = queue_counts(vhost)
            assert (ready, unacked) == (0, len(stream)), "held unacked: nothing acked that is not committed"
            assert engine.thread.is_alive()
        result = settled(collector, settings.database_url, sender.confirmed, len(stream))
        assert result.ok and result.cases == len(stream), result.lines()
        deadline = time.monotonic() + 10
        while readyz(port) != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert readyz(port) == 200
        deadline = time.monotonic() + 15
        while queue_counts(vhost) != (0, 0) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert queue_counts(vhost) == (0, 0)
    finally:
        server.shutdown()


@ON_POSTGRES
def test_postgres_away_while_the_engine_is_idle_readyz_says_so(start_engine, settings):
    engine = start_engine()
    with services.postgres_down():
        deadline = time.monotonic() + 15
        while engine.runtime.ready()[0] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not engine.runtime.ready()[0], "no message came, yet readiness notices the database is away"
    deadline = time.monotonic() + 15
    while not engine.runtime.ready()[0] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert engine.runtime.ready()[0]
